//! The daemon's own counters, as a `status` for root reports them.

use serde::{Deserialize, Serialize};

use crate::{ErrorKind, RequestKind};

/// Requests of one kind answered with one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    /// The kind.
    pub request: RequestKind,
    /// The error's kind; `None` for success.
    pub outcome: Option<ErrorKind>,
    /// How many.
    pub count: u64,
}

/// A histogram's counts: per bucket (not cumulative), the bucket's upper
/// bound first; what exceeds the last bound is in `count` only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramCounts {
    /// `(upper bound, count)` per bucket.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
}

/// The daemon's own counters, in a `status` for root (and `/metrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonCounters {
    /// When it started, in seconds since the Unix epoch.
    pub started_at: f64,
    /// Registrations held.
    pub registrations: usize,
    /// Connections admitted.
    pub connections: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Connections refused at `max_connections_per_uid`.
    pub connections_refused_per_uid: u64,
    /// Connections refused at `max_connections`.
    pub connections_refused_total: u64,
    /// `accept` failures (e.g. out of descriptors).
    pub accept_errors: u64,
    /// Requests by kind and outcome (zeros left out, but for successes).
    pub requests: Vec<RequestCount>,
    /// State writes that succeeded.
    pub state_writes: u64,
    /// State writes that failed (their changes were rolled back).
    pub state_write_failures: u64,
    /// How long state writes took (fsyncs included), in seconds.
    pub state_write_seconds: HistogramCounts,
    /// Monitor events the service missed (it reconciled each time).
    pub monitor_events_missed: u64,
}
