//! The daemon's own counters: connections, requests by kind and outcome,
//! state writes and their latency, missed monitor events. Atomics, bumped
//! where things happen (accept loop, connections, the service actor) and
//! read as a [`DaemonCounters`] snapshot for `status` and `/metrics`.
//!
//! Every label set is fixed here (request kinds, outcomes, limits), so the
//! exported series are bounded whatever clients send.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::limits::Refusal;
use crate::protocol::{DaemonCounters, ErrorKind, HistogramCounts, RequestCount, RequestKind};

/// Upper bounds (seconds) of the state-write latency buckets: an fsync is
/// about a millisecond on a quiet disk, a second on a drowning one.
pub(crate) const WRITE_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Every request kind, in [`DaemonStats::requests`]'s order.
const KINDS: [RequestKind; 7] = [
    RequestKind::Ping,
    RequestKind::Version,
    RequestKind::Track,
    RequestKind::Untrack,
    RequestKind::Status,
    RequestKind::Events,
    RequestKind::Invalid,
];

/// Every outcome: success, then each error kind.
const OUTCOMES: [Option<ErrorKind>; 9] = [
    None,
    Some(ErrorKind::TooLarge),
    Some(ErrorKind::InvalidJson),
    Some(ErrorKind::UnsupportedVersion),
    Some(ErrorKind::InvalidRequest),
    Some(ErrorKind::PermissionDenied),
    Some(ErrorKind::Refused),
    Some(ErrorKind::Internal),
    Some(ErrorKind::LimitReached),
];

/// The counters; shared by the accept loop, the connections and the
/// service actor.
#[derive(Debug)]
pub(crate) struct DaemonStats {
    started: SystemTime,
    connections: AtomicU64,
    connections_open: AtomicU64,
    refused_per_uid: AtomicU64,
    refused_total: AtomicU64,
    accept_errors: AtomicU64,
    requests: [[AtomicU64; OUTCOMES.len()]; KINDS.len()],
    state_writes: AtomicU64,
    state_write_failures: AtomicU64,
    /// Per bucket (not cumulative); the last one is beyond every bound.
    write_buckets: [AtomicU64; WRITE_BUCKETS.len() + 1],
    write_nanos: AtomicU64,
    events_missed: AtomicU64,
}

impl Default for DaemonStats {
    fn default() -> Self {
        Self {
            started: SystemTime::now(),
            connections: AtomicU64::default(),
            connections_open: AtomicU64::default(),
            refused_per_uid: AtomicU64::default(),
            refused_total: AtomicU64::default(),
            accept_errors: AtomicU64::default(),
            requests: Default::default(),
            state_writes: AtomicU64::default(),
            state_write_failures: AtomicU64::default(),
            write_buckets: Default::default(),
            write_nanos: AtomicU64::default(),
            events_missed: AtomicU64::default(),
        }
    }
}

/// A guard counting one open connection; the count drops with it.
#[derive(Debug)]
pub(crate) struct Open(Arc<DaemonStats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

// Relaxed throughout: each counter stands alone, and a scrape that sees
// one a moment late is fine.
impl DaemonStats {
    /// A connection was admitted; it counts as open while the guard lives.
    pub(crate) fn connection(self: &Arc<Self>) -> Open {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(self))
    }

    /// A connection was refused at a cap.
    pub(crate) fn refused(&self, refusal: &Refusal) {
        let counter = match refusal {
            Refusal::PerUid(_) => &self.refused_per_uid,
            Refusal::Total(_) => &self.refused_total,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// An `accept` failed.
    pub(crate) fn accept_error(&self) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A request of `kind` was answered with `outcome` (an error's kind).
    pub(crate) fn request(&self, kind: RequestKind, outcome: Option<ErrorKind>) {
        let row = KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KINDS.len() - 1);
        let column = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0);
        self.requests[row][column].fetch_add(1, Ordering::Relaxed);
    }

    /// A state write ended (`ok` or not) after `took`.
    pub(crate) fn state_write(&self, ok: bool, took: Duration) {
        let counter = if ok {
            &self.state_writes
        } else {
            &self.state_write_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = WRITE_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(WRITE_BUCKETS.len());
        self.write_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.write_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The service missed `missed` monitor events (and reconciled).
    pub(crate) fn events_missed(&self, missed: u64) {
        self.events_missed.fetch_add(missed, Ordering::Relaxed);
    }

    /// The counters now, with the number of registrations held.
    pub(crate) fn snapshot(&self, registrations: usize) -> DaemonCounters {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut requests = Vec::new();
        for (kind, row) in KINDS.iter().zip(&self.requests) {
            for (outcome, cell) in OUTCOMES.iter().zip(row) {
                let count = load(cell);
                // Zeros are left out, except a kind's successes, so every
                // kind has a series from the start.
                if count > 0 || (outcome.is_none() && *kind != RequestKind::Invalid) {
                    requests.push(RequestCount {
                        request: *kind,
                        outcome: *outcome,
                        count,
                    });
                }
            }
        }
        let buckets = WRITE_BUCKETS
            .iter()
            .zip(&self.write_buckets)
            .map(|(bound, count)| (*bound, load(count)))
            .collect();
        let writes = load(&self.state_writes) + load(&self.state_write_failures);
        DaemonCounters {
            started_at: self
                .started
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            registrations,
            connections: load(&self.connections),
            connections_open: load(&self.connections_open),
            connections_refused_per_uid: load(&self.refused_per_uid),
            connections_refused_total: load(&self.refused_total),
            accept_errors: load(&self.accept_errors),
            requests,
            state_writes: load(&self.state_writes),
            state_write_failures: load(&self.state_write_failures),
            state_write_seconds: HistogramCounts {
                buckets,
                count: writes,
                sum: Duration::from_nanos(load(&self.write_nanos)).as_secs_f64(),
            },
            monitor_events_missed: load(&self.events_missed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_cells_and_buckets() {
        let stats = Arc::new(DaemonStats::default());
        {
            let _open = stats.connection();
            assert_eq!(stats.snapshot(0).connections_open, 1);
        }
        stats.request(RequestKind::Track, None);
        stats.request(RequestKind::Track, Some(ErrorKind::PermissionDenied));
        stats.request(RequestKind::Invalid, Some(ErrorKind::InvalidJson));
        stats.state_write(true, Duration::from_micros(700));
        stats.state_write(false, Duration::from_secs(9));
        let snapshot = stats.snapshot(3);
        assert_eq!((snapshot.connections, snapshot.connections_open), (1, 0));
        assert_eq!(snapshot.registrations, 3);
        let count = |kind, outcome| {
            snapshot
                .requests
                .iter()
                .find(|r| r.request == kind && r.outcome == outcome)
                .map(|r| r.count)
        };
        assert_eq!(count(RequestKind::Track, None), Some(1));
        assert_eq!(
            count(RequestKind::Track, Some(ErrorKind::PermissionDenied)),
            Some(1)
        );
        assert_eq!(count(RequestKind::Ping, None), Some(0), "zero-filled");
        assert_eq!(count(RequestKind::Ping, Some(ErrorKind::Refused)), None);
        assert_eq!(
            count(RequestKind::Invalid, Some(ErrorKind::InvalidJson)),
            Some(1)
        );
        let histogram = &snapshot.state_write_seconds;
        assert_eq!(histogram.count, 2);
        assert_eq!(histogram.buckets[1], (0.001, 1), "700 us is at most 1 ms");
        assert_eq!(
            histogram.buckets.iter().map(|(_, n)| n).sum::<u64>(),
            1,
            "9 s is beyond every bound"
        );
        assert!((histogram.sum - 9.0007).abs() < 1e-9);
        assert_eq!(
            (snapshot.state_writes, snapshot.state_write_failures),
            (1, 1)
        );
    }
}
