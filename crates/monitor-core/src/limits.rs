//! Bounds on every duration the monitor accepts, and deadline arithmetic
//! that cannot overflow or panic.
//!
//! A duration enters the monitor through [`Config`] and [`TrackOptions`];
//! both are checked here against one [`DurationRange`] per setting, so a
//! value that would overflow `Instant + Duration`, or land a deadline
//! beyond what the timer wheel can hold (about 2.18 years), is refused with
//! an error naming the setting and its limit before any timer exists.
//! [`deadline`] is the one place the actor adds a duration to an instant.

use std::time::Duration;

use tokio::time::Instant;

use crate::{Config, Error, TrackOptions};

/// The allowed values of one duration setting, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationRange {
    /// The setting's name, as in the config file and the track options.
    pub key: &'static str,
    /// The shortest value allowed.
    pub min: Duration,
    /// The longest value allowed.
    pub max: Duration,
}

impl DurationRange {
    /// `Ok` when `value` lies in the range; otherwise an
    /// [`Error::OutOfRange`] naming the setting and both limits.
    pub fn check(&self, value: Duration) -> Result<(), Error> {
        if value < self.min || value > self.max {
            return Err(Error::OutOfRange {
                key: self.key,
                value,
                min: self.min,
                max: self.max,
            });
        }
        Ok(())
    }
}

/// The grace period between the termination signal and `SIGKILL`: up to
/// an hour (a database flushing its buffers takes minutes, not days).
pub const GRACE_RANGE: DurationRange = DurationRange {
    key: "grace",
    min: Duration::ZERO,
    max: Duration::from_secs(60 * 60),
};

/// The wait after `SIGKILL` before a process is reported unkillable.
pub const KILL_TIMEOUT_RANGE: DurationRange = DurationRange {
    key: "kill_timeout",
    min: Duration::from_millis(1),
    max: Duration::from_secs(60 * 60),
};

/// The safety-net scan interval: from 10 ms (a scan costs about 10 µs per
/// process, so a shorter one would keep a core busy) to a day.
pub const CHECK_INTERVAL_RANGE: DurationRange = DurationRange {
    key: "check_interval",
    min: Duration::from_millis(10),
    max: Duration::from_secs(24 * 60 * 60),
};

/// How often units contained by scanning look for new members: from 10 ms
/// (each look reads every member's children lists) to an hour (beyond
/// that, a double fork has all the time it wants to escape).
pub const UNIT_SCAN_INTERVAL_RANGE: DurationRange = DurationRange {
    key: "unit_scan_interval",
    min: Duration::from_millis(10),
    max: Duration::from_secs(60 * 60),
};

/// The full-scan interval (every tracked process read, watched or not):
/// the same bounds as [`CHECK_INTERVAL_RANGE`].
pub const FULL_SCAN_INTERVAL_RANGE: DurationRange = DurationRange {
    key: "full_scan_interval",
    min: Duration::from_millis(10),
    max: Duration::from_secs(24 * 60 * 60),
};

/// The longest wait [`deadline`] ever schedules: well below the deadline
/// queue's limit of 2^36 ms, and above every range here.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// `now + after`, checked: `after` is capped at a day (no range allows
/// more), and an instant that cannot be represented is logged and replaced
/// by `now`, so a bad value can end a wait early but never panic the actor.
pub(crate) fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after.min(LONGEST_WAIT)).unwrap_or_else(|| {
        tracing::error!(?after, "a deadline overflowed the clock; using now");
        now
    })
}

/// The duration checks of [`Config::validate`].
pub(crate) fn check_config(config: &Config) -> Result<(), Error> {
    CHECK_INTERVAL_RANGE.check(config.check_interval)?;
    UNIT_SCAN_INTERVAL_RANGE.check(config.unit_scan_interval)?;
    FULL_SCAN_INTERVAL_RANGE.check(config.full_scan_interval)?;
    GRACE_RANGE.check(config.grace)?;
    KILL_TIMEOUT_RANGE.check(config.kill_timeout)
}

impl TrackOptions {
    /// Checks the values that parse but cannot work: a grace period
    /// outside [`GRACE_RANGE`], and `SIGKILL` as the signal of the
    /// `terminate` action (refused as [`Config::validate`] refuses it for
    /// `term_signal`, with the same reason; key `signal`). The monitor runs
    /// this on every track; a caller may run it first to refuse bad input
    /// early. An unset field is the monitor's default, unknown here: the
    /// monitor checks the signal rule again on the settings in effect, its
    /// defaults filled in, so `signal(Signal::KILL)` alone is refused by a
    /// monitor whose default action is `terminate` (the default), and
    /// accepted by one whose default is `kill`, as their configs would.
    pub fn validate(&self) -> Result<(), Error> {
        if let (Some(signal), Some(action)) = (self.signal, self.action) {
            crate::config::check_grace_signal("signal", signal, action)?;
        }
        match self.grace {
            Some(grace) => GRACE_RANGE.check(grace),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod unit_scan_tests {
    use super::*;

    #[test]
    fn the_unit_scan_interval_is_bounded_by_name() {
        let config = Config {
            unit_scan_interval: Duration::from_secs(2 * 60 * 60),
            ..Config::default()
        };
        let error = check_config(&config).expect_err("two hours is out of range");
        assert!(error.to_string().contains("unit_scan_interval"), "{error}");
        let config = Config {
            unit_scan_interval: Duration::from_millis(1),
            ..Config::default()
        };
        assert!(check_config(&config).is_err());
        check_config(&Config::default()).expect("the default is in range");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_errors_name_the_key_and_the_limit() {
        let error = GRACE_RANGE
            .check(Duration::from_secs(3 * 365 * 24 * 3600))
            .expect_err("three years is too long");
        let message = error.to_string();
        assert!(message.contains("`grace`"), "{message}");
        assert!(message.contains("1h"), "the limit is named: {message}");
        GRACE_RANGE
            .check(Duration::ZERO)
            .expect("zero grace is fine");
        GRACE_RANGE
            .check(GRACE_RANGE.max)
            .expect("the limit itself");
        let short = CHECK_INTERVAL_RANGE
            .check(Duration::from_nanos(1))
            .expect_err("too short");
        assert!(short.to_string().contains("10ms"), "{short}");
    }

    #[test]
    fn config_and_track_options_are_checked() {
        let config = Config {
            kill_timeout: Duration::from_secs(3 * 365 * 24 * 3600),
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(Error::OutOfRange {
                key: "kill_timeout",
                ..
            })
        ));
        let options = TrackOptions::new().grace(Duration::MAX);
        assert!(matches!(
            options.validate(),
            Err(Error::OutOfRange { key: "grace", .. })
        ));
        TrackOptions::new().validate().expect("defaults are fine");
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_never_overflow() {
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::MAX), now + LONGEST_WAIT);
        assert_eq!(
            deadline(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }
}
