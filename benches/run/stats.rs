//! Median, min and max of a few timings.

use std::time::Duration;

/// The summary of a set of durations.
pub(crate) struct Summary {
    median: Duration,
    min: Duration,
    max: Duration,
}

impl Summary {
    /// Summarises `samples` (at least one).
    pub(crate) fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort();
        Self {
            median: sorted[sorted.len() / 2],
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }

    /// The median.
    pub(crate) fn median(&self) -> Duration {
        self.median
    }

    /// `median (min..max)` in milliseconds.
    pub(crate) fn millis(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "{:.1} ({:.1}..{:.1})",
            ms(self.median),
            ms(self.min),
            ms(self.max)
        )
    }
}
