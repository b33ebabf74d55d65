//! The daemon's wire protocol: newline-delimited JSON over a Unix stream
//! socket, one request per line, one response line per request (plus event
//! lines after an `events` request). `docs/protocol.md` documents every
//! request and response; this module is the one definition both the daemon
//! and the client commands use.
//!
//! Requests are strict: every line carries `"version": 1`, names a known
//! `request`, and has no fields that request does not define, so fields
//! added later are refused by a daemon
//! that would otherwise ignore them.

use std::time::Duration;

use monitor_core::{
    Containment, Event, OrphanAction, OrphanTarget, ProcessId, ProcessState, Signal,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

mod parse;

pub(crate) use parse::parse;

/// The protocol version this build speaks.
pub(crate) const VERSION: u32 = 1;

/// How long an event stream stays quiet at most: after this long without a
/// line, the daemon sends a keepalive (an event line with neither `event`
/// nor `lagged`), so a client can tell a quiet daemon from a stopped one.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(15);

/// One request, without its envelope (`version`, `id`).
///
/// The variants without fields are empty structs, not unit variants: serde
/// ignores extra fields next to a unit variant's tag, and a request with a
/// field it does not define must be refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Request {
    /// Is the daemon there? Answered with [`Pong`].
    Ping {},
    /// Which versions does it speak? Answered with [`VersionInfo`].
    Version {},
    /// Register a process. Answered with a [`Registration`].
    Track(TrackRequest),
    /// Drop a registration. Answered with [`Untracked`].
    Untrack {
        /// The registered process's pid.
        pid: i32,
    },
    /// The caller's registrations. Answered with [`StatusReport`].
    Status {},
    /// Stream the monitor's events about the caller's registrations.
    /// Answered with [`Streaming`], then one [`EventLine`] per event.
    Events {},
}

/// The fields of a `track` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrackRequest {
    /// The process to register.
    pub(crate) pid: i32,
    /// The process whose death orphans it. Default: its parent now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parent: Option<i32>,
    /// What happens when it is orphaned. Default: the daemon's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) action: Option<OrphanAction>,
    /// Time between the signal and `SIGKILL`. Default: the daemon's config.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) grace: Option<Duration>,
    /// The signal that starts termination. Default: the daemon's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) signal: Option<Signal>,
    /// Follow its descendants. Default: the daemon's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tree: Option<bool>,
    /// What the orphan action reaches. Default: the daemon's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) target: Option<OrphanTarget>,
}

/// A request with its envelope, as a client writes it.
#[derive(Debug, Serialize)]
pub(crate) struct Envelope<'a> {
    /// Always [`VERSION`].
    pub(crate) version: u32,
    /// Echoed back in the response.
    pub(crate) id: u64,
    /// The request itself.
    #[serde(flatten)]
    pub(crate) request: &'a Request,
}

/// Why a request line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorKind {
    /// The line was longer than the daemon's `max_request_bytes`.
    TooLarge,
    /// The line was not a JSON object.
    InvalidJson,
    /// `version` was missing or not one this daemon speaks.
    UnsupportedVersion,
    /// Unknown request, missing or unknown field, or a field of the wrong
    /// type or value.
    InvalidRequest,
    /// The caller may not do this (another user's process or registration).
    PermissionDenied,
    /// The monitor refused (no such process, already tracked, not tracked...).
    Refused,
    /// The daemon could not do it (e.g. the state file could not be written).
    Internal,
    /// A resource limit was reached (connections or registrations of this
    /// uid, or of every non-root client); the message names the config key.
    LimitReached,
}

/// The error part of a failed response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    /// What kind of failure.
    pub(crate) kind: ErrorKind,
    /// A readable description naming what was wrong.
    pub(crate) message: String,
}

impl ErrorBody {
    /// An error of `kind` saying `message`.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Response {
    /// Always [`VERSION`].
    pub(crate) version: u32,
    /// The request's `id`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<Value>,
    /// Whether the request succeeded.
    pub(crate) ok: bool,
    /// The answer, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) result: Option<Value>,
    /// What went wrong, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<ErrorBody>,
}

/// A response as the daemon writes it: the result is serialized in place,
/// not through an intermediate [`Value`] (a `status` listing thousands of
/// registrations would otherwise be built twice).
#[derive(Debug, Serialize)]
struct Outgoing<'a, T> {
    version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RawValue>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

/// A request's `id`, exactly as the client wrote it: a JSON string or an
/// integer of any size, echoed byte for byte (an integer beyond 64 bits is
/// never turned into a float).
pub(crate) type RequestId = Box<RawValue>;

/// One response line (with its newline) for `outcome`.
pub(crate) fn encode<T: Serialize>(
    id: Option<&RawValue>,
    outcome: Result<T, ErrorBody>,
) -> Vec<u8> {
    let (ok, result, error) = match outcome {
        Ok(result) => (true, Some(result), None),
        Err(error) => (false, None, Some(error)),
    };
    let mut line = serde_json::to_vec(&Outgoing {
        version: VERSION,
        id,
        ok,
        result,
        error,
    })
    .unwrap_or_else(|error| {
        let body = ErrorBody::new(
            ErrorKind::Internal,
            format!("the daemon could not serialize its answer: {error}"),
        );
        // An `ErrorBody` always serializes; the fallback cannot fail.
        serde_json::to_vec(&Outgoing::<()> {
            version: VERSION,
            id,
            ok: false,
            result: None,
            error: Some(body),
        })
        .unwrap_or_default()
    });
    line.push(b'\n');
    line
}

/// The answer to `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pong {
    /// The daemon's pid.
    pub(crate) pid: i32,
}

/// The answer to `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VersionInfo {
    /// The daemon's package version.
    pub(crate) daemon: String,
    /// The protocol version it speaks.
    pub(crate) protocol: u32,
}

/// A registration: what the daemon keeps (and persists) per tracked process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Registration {
    /// The process.
    pub(crate) id: ProcessId,
    /// The parent whose death orphans it.
    pub(crate) parent: ProcessId,
    /// The uid of the client that registered it (access control).
    pub(crate) uid: u32,
    /// What happens when it is orphaned.
    pub(crate) action: OrphanAction,
    /// Time between the signal and `SIGKILL`.
    #[serde(with = "humantime_serde")]
    pub(crate) grace: Duration,
    /// The signal that starts termination.
    pub(crate) signal: Signal,
    /// Whether its descendants are followed (state files written before
    /// this field existed read as `false`).
    #[serde(default)]
    pub(crate) tree: bool,
    /// What the orphan action reaches.
    #[serde(default = "process_target")]
    pub(crate) target: OrphanTarget,
}

fn process_target() -> OrphanTarget {
    OrphanTarget::Process
}

/// The answer to `untrack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Untracked {
    /// The process that is no longer tracked.
    pub(crate) id: ProcessId,
}

/// One registration in a [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RegistrationStatus {
    /// The registration.
    #[serde(flatten)]
    pub(crate) registration: Registration,
    /// Its state in the monitor (`None` if the monitor no longer lists it,
    /// e.g. it exited a moment ago).
    pub(crate) state: Option<ProcessState>,
    /// Its unit: how members are found and how many processes it holds
    /// (absent when the monitor lists no unit for it, and from daemons
    /// older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unit: Option<RegistrationUnit>,
}

/// A registration's unit in a [`RegistrationStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RegistrationUnit {
    /// How its members are found: `cgroup`, `fork-events`, `scan`, or
    /// `none` (not a tree).
    pub(crate) containment: Containment,
    /// The processes it holds now, the root included while it runs.
    pub(crate) members: usize,
}

/// The answer to `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatusReport {
    /// The daemon's pid.
    pub(crate) daemon_pid: i32,
    /// The daemon's package version.
    pub(crate) daemon_version: String,
    /// The caller's uid, as the daemon sees it.
    pub(crate) peer_uid: u32,
    /// The safety-net scan interval.
    #[serde(with = "humantime_serde")]
    pub(crate) check_interval: Duration,
    /// How many registrations the caller may see.
    pub(crate) tracked_count: usize,
    /// Those registrations, by pid.
    pub(crate) tracked: Vec<RegistrationStatus>,
    /// The monitor's full status (counters and all): for root and the
    /// daemon's own uid only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) monitor: Option<monitor_core::Status>,
    /// The daemon's own counters: for root and the daemon's own uid only.
    /// (Added after `monitor`; older daemons leave it out.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) daemon: Option<DaemonCounters>,
}

/// What a request line asked for, for the daemon's counters: a request
/// kind, or `invalid` for a line that named none (bad JSON, too long, an
/// unknown request or field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RequestKind {
    /// `ping`.
    Ping,
    /// `version`.
    Version,
    /// `track`.
    Track,
    /// `untrack`.
    Untrack,
    /// `status`.
    Status,
    /// `events`.
    Events,
    /// A line that is no valid request.
    Invalid,
}

impl RequestKind {
    /// Its name on the wire (and as a metric label).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Version => "version",
            Self::Track => "track",
            Self::Untrack => "untrack",
            Self::Status => "status",
            Self::Events => "events",
            Self::Invalid => "invalid",
        }
    }
}

impl ErrorKind {
    /// Its name on the wire (and as a metric label).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::InvalidJson => "invalid_json",
            Self::UnsupportedVersion => "unsupported_version",
            Self::InvalidRequest => "invalid_request",
            Self::PermissionDenied => "permission_denied",
            Self::Refused => "refused",
            Self::Internal => "internal",
            Self::LimitReached => "limit_reached",
        }
    }
}

/// Requests of one kind answered with one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RequestCount {
    /// The kind.
    pub(crate) request: RequestKind,
    /// The error's kind; `None` for success.
    pub(crate) outcome: Option<ErrorKind>,
    /// How many.
    pub(crate) count: u64,
}

/// A histogram's counts: per bucket (not cumulative), the bucket's upper
/// bound first; what exceeds the last bound is in `count` only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct HistogramCounts {
    /// `(upper bound, count)` per bucket.
    pub(crate) buckets: Vec<(f64, u64)>,
    /// Every observation.
    pub(crate) count: u64,
    /// Their sum.
    pub(crate) sum: f64,
}

/// The daemon's own counters, in a `status` for root (and `/metrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DaemonCounters {
    /// When it started, in seconds since the Unix epoch.
    pub(crate) started_at: f64,
    /// Registrations held.
    pub(crate) registrations: usize,
    /// Connections admitted.
    pub(crate) connections: u64,
    /// Connections open now.
    pub(crate) connections_open: u64,
    /// Connections refused at `max_connections_per_uid`.
    pub(crate) connections_refused_per_uid: u64,
    /// Connections refused at `max_connections`.
    pub(crate) connections_refused_total: u64,
    /// `accept` failures (e.g. out of descriptors).
    pub(crate) accept_errors: u64,
    /// Requests by kind and outcome (zeros left out, but for successes).
    pub(crate) requests: Vec<RequestCount>,
    /// State writes that succeeded.
    pub(crate) state_writes: u64,
    /// State writes that failed (their changes were rolled back).
    pub(crate) state_write_failures: u64,
    /// How long state writes took (fsyncs included), in seconds.
    pub(crate) state_write_seconds: HistogramCounts,
    /// Monitor events the service missed (it reconciled each time).
    pub(crate) monitor_events_missed: u64,
}

/// The answer to `events`: event lines follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Streaming {
    /// Always true.
    pub(crate) streaming: bool,
}

/// One line of an event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EventLine {
    /// Always [`VERSION`].
    pub(crate) version: u32,
    /// The event, when one is delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) event: Option<Event>,
    /// How many events this client missed because it read too slowly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lagged: Option<u64>,
}
