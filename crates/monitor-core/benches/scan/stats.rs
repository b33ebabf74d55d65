//! Order statistics of the timed samples, and the one unit they are kept
//! in (µs).

use std::time::Duration;

/// Order statistics of some samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// The median, min, p99 and max of `samples`, which must not be empty.
pub(crate) fn summarize(samples: &[f64]) -> Summary {
    assert!(!samples.is_empty(), "no samples");
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    };
    let p99 = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
    Summary {
        median,
        min: sorted[0],
        p99: sorted[p99],
        max: sorted[sorted.len() - 1],
    }
}

/// `duration` in µs.
pub(crate) fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// The share of a `window_us` window the scanner spent scanning: `scans`
/// scans of `scan_us` each, at most all of it.
pub(crate) fn busy_share(scan_us: f64, scans: u64, window_us: f64) -> f64 {
    (scan_us * scans as f64 / window_us).min(1.0)
}
