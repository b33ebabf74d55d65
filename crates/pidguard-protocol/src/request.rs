//! The requests: what a client writes, one JSON object a line.

use std::time::Duration;

use monitor_core::{OrphanAction, OrphanTarget, Signal};
use serde::{Deserialize, Serialize};

/// One request, without its envelope (`version`, `id`).
///
/// The variants without fields are empty structs, not unit variants: serde
/// ignores extra fields next to a unit variant's tag, and a request with a
/// field it does not define must be refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Is the daemon there? Answered with [`Pong`](crate::Pong).
    Ping {},
    /// Which versions does it speak? Answered with [`VersionInfo`](crate::VersionInfo).
    Version {},
    /// Register a process. Answered with a [`Registration`](crate::Registration).
    Track(TrackRequest),
    /// Drop a registration. Answered with [`Untracked`](crate::Untracked).
    Untrack {
        /// The registered process's pid.
        pid: i32,
    },
    /// The caller's registrations. Answered with [`StatusReport`](crate::StatusReport).
    Status {},
    /// Stream the monitor's events about the caller's registrations.
    /// Answered with [`Streaming`](crate::Streaming), then one [`EventLine`](crate::EventLine) per event.
    Events {},
}

/// The fields of a `track` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackRequest {
    /// The process to register.
    pub pid: i32,
    /// The start time (clock ticks since boot, as in
    /// [`ProcessId::start_time`](monitor_core::ProcessId)) the caller
    /// expects `pid` to have: a process with another one is refused, so a
    /// pid that was reused since the caller learned it is never
    /// registered. Default: whatever process holds `pid` now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    /// The process whose death orphans it. Default: its parent now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<i32>,
    /// What happens when it is orphaned. Default: the daemon's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<OrphanAction>,
    /// Time between the signal and `SIGKILL`. Default: the daemon's config.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub grace: Option<Duration>,
    /// The signal that starts termination. Default: the daemon's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// Follow its descendants. Default: the daemon's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<bool>,
    /// What the orphan action reaches. Default: the daemon's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<OrphanTarget>,
}

/// A request with its envelope, as a client writes it.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    /// Always [`VERSION`](crate::VERSION).
    pub version: u32,
    /// Echoed back in the response.
    pub id: u64,
    /// The request itself.
    #[serde(flatten)]
    pub request: &'a Request,
}

/// What a request line asked for, for the daemon's counters: a request
/// kind, or `invalid` for a line that named none (bad JSON, too long, an
/// unknown request or field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
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
    pub fn name(self) -> &'static str {
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

impl Request {
    /// Which kind of request this is.
    pub fn kind(&self) -> RequestKind {
        match self {
            Self::Ping {} => RequestKind::Ping,
            Self::Version {} => RequestKind::Version,
            Self::Track(_) => RequestKind::Track,
            Self::Untrack { .. } => RequestKind::Untrack,
            Self::Status {} => RequestKind::Status,
            Self::Events {} => RequestKind::Events,
        }
    }
}

impl std::fmt::Display for RequestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
