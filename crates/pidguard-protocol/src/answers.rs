//! What each request is answered with, and the lines of an event stream.

use std::time::Duration;

use monitor_core::{
    Containment, Event, OrphanAction, OrphanTarget, ProcessId, ProcessState, Signal,
};
use serde::{Deserialize, Serialize};

use crate::DaemonCounters;

/// The answer to `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The daemon's pid.
    pub pid: i32,
}

/// The answer to `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The daemon's package version.
    pub daemon: String,
    /// The protocol version it speaks.
    pub protocol: u32,
}

/// A registration: what the daemon keeps (and persists) per tracked process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The process.
    pub id: ProcessId,
    /// The parent whose death orphans it.
    pub parent: ProcessId,
    /// The uid of the client that registered it (access control).
    pub uid: u32,
    /// What happens when it is orphaned.
    pub action: OrphanAction,
    /// Time between the signal and `SIGKILL`.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// The signal that starts termination.
    pub signal: Signal,
    /// Whether its descendants are followed (state files written before
    /// this field existed read as `false`).
    #[serde(default)]
    pub tree: bool,
    /// What the orphan action reaches.
    #[serde(default = "process_target")]
    pub target: OrphanTarget,
}

fn process_target() -> OrphanTarget {
    OrphanTarget::Process
}

/// The answer to `untrack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Untracked {
    /// The process that is no longer tracked.
    pub id: ProcessId,
}

/// One registration in a [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationStatus {
    /// The registration.
    #[serde(flatten)]
    pub registration: Registration,
    /// Its state in the monitor (`None` if the monitor no longer lists it,
    /// e.g. it exited a moment ago).
    pub state: Option<ProcessState>,
    /// Its unit: how members are found and how many processes it holds
    /// (absent when the monitor lists no unit for it, and from daemons
    /// older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<RegistrationUnit>,
}

/// A registration's unit in a [`RegistrationStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationUnit {
    /// How its members are found: `cgroup`, `fork-events`, `scan`, or
    /// `none` (not a tree).
    pub containment: Containment,
    /// The processes it holds now, the root included while it runs.
    pub members: usize,
}

/// The answer to `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The daemon's pid.
    pub daemon_pid: i32,
    /// The daemon's package version.
    pub daemon_version: String,
    /// The caller's uid, as the daemon sees it.
    pub peer_uid: u32,
    /// The safety-net scan interval.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// How many registrations the caller may see.
    pub tracked_count: usize,
    /// Those registrations, by pid.
    pub tracked: Vec<RegistrationStatus>,
    /// The monitor's full status (counters and all): for root and the
    /// daemon's own uid only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<monitor_core::Status>,
    /// The daemon's own counters: for root and the daemon's own uid only.
    /// (Added after `monitor`; older daemons leave it out.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonCounters>,
}

/// The answer to `events`: event lines follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streaming {
    /// Always true.
    pub streaming: bool,
}

/// One line of an event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    /// Always [`VERSION`](crate::VERSION).
    pub version: u32,
    /// The event, when one is delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    /// How many events this client missed because it read too slowly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lagged: Option<u64>,
}
