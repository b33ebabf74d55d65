//! The daemon's resource limits: what one client (and all of them
//! together) may hold, how long a connection may stay idle or take over
//! one line, and how the descriptor limit is split between connections,
//! the monitor's pidfds and the daemon's own files.
//!
//! The caps bind every client but root: root can stop the daemon anyway,
//! and must always be able to reach it while other users are at their caps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Descriptors kept for the daemon itself: stdio, the listener, the lock
/// file, the state directory and its reserve, the runtime's own (epoll,
/// signal pipe, blocking threads), a state write in flight.
pub(crate) const FD_RESERVE: u64 = 64;

/// The most descriptors one registration can cost the monitor: a pidfd
/// and an open `stat` for the process, and the same for a parent no other
/// registration shares.
pub(crate) const FDS_PER_REGISTRATION: u64 = 4;

/// The limits, as configured (see `config/pidguard.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The longest request line.
    pub(crate) max_request_bytes: usize,
    /// Connections of all non-root clients together.
    pub(crate) max_connections: usize,
    /// Connections of one non-root uid.
    pub(crate) max_connections_per_uid: usize,
    /// Registrations of all non-root clients together.
    pub(crate) max_registrations: usize,
    /// Registrations of one non-root uid.
    pub(crate) max_registrations_per_uid: usize,
    /// How long a connection may wait between requests.
    pub(crate) idle_timeout: Duration,
    /// How long one request line may take to arrive, and one response (or
    /// event line) to be written.
    pub(crate) line_timeout: Duration,
}

/// An allowed range, for config validation.
pub(crate) struct Range<T> {
    pub(crate) key: &'static str,
    pub(crate) min: T,
    pub(crate) max: T,
}

/// `max_request_bytes`: a line must hold a request; a mebibyte holds any.
pub(crate) const REQUEST_BYTES: Range<usize> = Range {
    key: "max_request_bytes",
    min: 64,
    max: 1024 * 1024,
};
/// `max_connections` and `max_connections_per_uid`.
pub(crate) const CONNECTIONS: Range<usize> = Range {
    key: "max_connections",
    min: 1,
    max: 65_536,
};
/// `max_registrations` and `max_registrations_per_uid`.
pub(crate) const REGISTRATIONS: Range<usize> = Range {
    key: "max_registrations",
    min: 1,
    max: 1_000_000,
};
/// `idle_timeout`.
pub(crate) const IDLE: Range<Duration> = Range {
    key: "idle_timeout",
    min: Duration::from_millis(100),
    max: Duration::from_secs(24 * 60 * 60),
};
/// `line_timeout`.
pub(crate) const LINE: Range<Duration> = Range {
    key: "line_timeout",
    min: Duration::from_millis(100),
    max: Duration::from_secs(60 * 60),
};

impl<T: PartialOrd + std::fmt::Debug> Range<T> {
    /// `Err` naming the key and the limits when `value` is outside.
    pub(crate) fn check(&self, key: &str, value: T) -> anyhow::Result<()> {
        if value < self.min || value > self.max {
            anyhow::bail!(
                "invalid config value for `{key}`: {value:?} is out of range; it must be between {:?} and {:?}",
                self.min,
                self.max
            );
        }
        Ok(())
    }
}

impl Limits {
    /// Every value in its range, and each per-uid cap within its total.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        REQUEST_BYTES.check(REQUEST_BYTES.key, self.max_request_bytes)?;
        CONNECTIONS.check(CONNECTIONS.key, self.max_connections)?;
        CONNECTIONS.check("max_connections_per_uid", self.max_connections_per_uid)?;
        REGISTRATIONS.check(REGISTRATIONS.key, self.max_registrations)?;
        REGISTRATIONS.check("max_registrations_per_uid", self.max_registrations_per_uid)?;
        IDLE.check(IDLE.key, self.idle_timeout)?;
        LINE.check(LINE.key, self.line_timeout)?;
        if self.max_connections_per_uid > self.max_connections {
            anyhow::bail!(
                "invalid config value for `max_connections_per_uid`: {} is more than `max_connections` ({})",
                self.max_connections_per_uid,
                self.max_connections
            );
        }
        if self.max_registrations_per_uid > self.max_registrations {
            anyhow::bail!(
                "invalid config value for `max_registrations_per_uid`: {} is more than `max_registrations` ({})",
                self.max_registrations_per_uid,
                self.max_registrations
            );
        }
        Ok(())
    }

    /// The limits after reserving descriptors: with `nofile` descriptors,
    /// connections and registrations (at their worst case) must leave
    /// [`FD_RESERVE`] for the daemon, so the caps are lowered to fit (and
    /// the lowering logged) when the descriptor limit is too small.
    pub(crate) fn fit_descriptors(mut self, nofile: u64) -> Self {
        let available = nofile.saturating_sub(FD_RESERVE);
        let wanted =
            self.max_connections as u64 + FDS_PER_REGISTRATION * self.max_registrations as u64;
        if wanted <= available {
            return self;
        }
        let configured = self;
        // A quarter for connections, the rest for registrations.
        let connections = (available / 4).max(1);
        self.max_connections = self.max_connections.min(to_usize(connections));
        let left = available.saturating_sub(self.max_connections as u64);
        self.max_registrations = self
            .max_registrations
            .min(to_usize(left / FDS_PER_REGISTRATION).max(1));
        self.max_connections_per_uid = self.max_connections_per_uid.min(self.max_connections);
        self.max_registrations_per_uid = self.max_registrations_per_uid.min(self.max_registrations);
        tracing::warn!(
            nofile,
            max_connections = self.max_connections,
            max_registrations = self.max_registrations,
            configured_connections = configured.max_connections,
            configured_registrations = configured.max_registrations,
            "RLIMIT_NOFILE is too small for the configured caps; lowered them to fit"
        );
        self
    }
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// Who holds how many connections, shared by the accept loop (which takes
/// a slot) and the connection tasks (whose slot is freed when they end).
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionCounts {
    inner: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// A connection's place in the counts; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Slot {
    counts: ConnectionCounts,
    uid: u32,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// This uid holds `max_connections_per_uid`.
    PerUid(usize),
    /// Non-root clients together hold `max_connections`.
    Total(usize),
}

impl ConnectionCounts {
    /// A slot for a new connection of `uid`, unless it is over a cap.
    /// Root always gets one.
    pub(crate) fn take(&self, uid: u32, limits: &Limits) -> Result<Slot, Refusal> {
        let mut counts = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if uid != 0 {
            let mine = counts.per_uid.get(&uid).copied().unwrap_or(0);
            if mine >= limits.max_connections_per_uid {
                return Err(Refusal::PerUid(limits.max_connections_per_uid));
            }
            if counts.total >= limits.max_connections {
                return Err(Refusal::Total(limits.max_connections));
            }
            counts.total += 1;
        }
        *counts.per_uid.entry(uid).or_insert(0) += 1;
        Ok(Slot {
            counts: self.clone(),
            uid,
        })
    }

    /// Open connections: (non-root total, this uid's).
    #[cfg(test)]
    fn held(&self, uid: u32) -> (usize, usize) {
        let counts = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (counts.total, counts.per_uid.get(&uid).copied().unwrap_or(0))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .counts
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.uid != 0 {
            counts.total = counts.total.saturating_sub(1);
        }
        if let Some(held) = counts.per_uid.get_mut(&self.uid) {
            *held -= 1;
            if *held == 0 {
                counts.per_uid.remove(&self.uid);
            }
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PerUid(cap) => write!(
                f,
                "this uid already holds {cap} connections (max_connections_per_uid)"
            ),
            Self::Total(cap) => write!(
                f,
                "the daemon already holds {cap} connections of non-root clients (max_connections)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::config::FileConfig;

    fn limits() -> Limits {
        FileConfig::default().limits()
    }

    #[test]
    fn caps_bind_each_uid_and_all_but_root() {
        let limits = Limits {
            max_connections: 3,
            max_connections_per_uid: 2,
            ..limits()
        };
        let counts = ConnectionCounts::default();
        let a1 = counts.take(1000, &limits).expect("first");
        let _a2 = counts.take(1000, &limits).expect("second");
        assert_eq!(
            counts.take(1000, &limits).expect_err("third"),
            Refusal::PerUid(2)
        );
        let _b1 = counts.take(1001, &limits).expect("another uid");
        assert_eq!(
            counts.take(1002, &limits).expect_err("total"),
            Refusal::Total(3)
        );
        let roots: Vec<Slot> = (0..10)
            .map(|_| counts.take(0, &limits).expect("root always"))
            .collect();
        drop(a1);
        assert_eq!(counts.held(1000), (2, 1));
        let _c1 = counts.take(1002, &limits).expect("a freed slot is reused");
        drop(roots);
        assert_eq!(counts.held(0), (3, 0));
    }

    #[test]
    fn a_small_descriptor_limit_lowers_the_caps() {
        let configured = limits();
        assert_eq!(configured.fit_descriptors(1 << 20), configured);
        let fitted = configured.fit_descriptors(1024);
        let used =
            fitted.max_connections as u64 + FDS_PER_REGISTRATION * fitted.max_registrations as u64;
        assert!(used + FD_RESERVE <= 1024, "{fitted:?}");
        assert!(fitted.max_connections_per_uid <= fitted.max_connections);
        assert!(fitted.max_registrations_per_uid <= fitted.max_registrations);
        fitted.validate().expect("still valid");
    }

    #[test]
    fn each_limit_is_checked_by_name() {
        for (limits, key) in [
            (
                Limits {
                    max_request_bytes: 300 * 1024 * 1024,
                    ..limits()
                },
                "max_request_bytes",
            ),
            (
                Limits {
                    max_connections_per_uid: 10_000,
                    ..limits()
                },
                "max_connections_per_uid",
            ),
            (
                Limits {
                    idle_timeout: Duration::ZERO,
                    ..limits()
                },
                "idle_timeout",
            ),
        ] {
            let error = limits.validate().expect_err(key);
            assert!(error.to_string().contains(key), "{error}");
        }
    }
}
