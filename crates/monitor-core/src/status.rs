//! The monitor's status report.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    Containment, ErrorCounts, OrphanAction, OrphanTarget, ProcessId, ReapPolicy, UnitStatus,
};

/// Where a tracked process is in its life as the monitor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    /// Its parent is alive; nothing to do.
    Running,
    /// Its parent died and the action is `notify`: reported, left running.
    Orphaned,
    /// The termination signal was sent; `SIGKILL` follows at the deadline.
    Terminating,
    /// `SIGKILL` was sent; waiting for it to vanish.
    Killing,
    /// It outlived `SIGKILL` by `kill_timeout`.
    Unkillable,
}

/// One tracked process in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrackedStatus {
    /// The process.
    pub id: ProcessId,
    /// Its parent when it was tracked; for a unit's root, the process whose
    /// death orphans the unit.
    pub parent: ProcessId,
    /// Its state.
    pub state: ProcessState,
    /// How long it has been in that state.
    #[serde(with = "humantime_serde")]
    pub since: Duration,
    /// Whether the monitor reaps it.
    pub owned: bool,
    /// Whether it is pinned by a pidfd.
    pub pidfd: bool,
    /// Whether its exit is noticed through pidfd readiness (`false`: by the
    /// scan only, the fallback without pidfds).
    pub exit_watch: bool,
    /// Its orphan action.
    pub action: OrphanAction,
    /// Which processes that action reaches.
    pub target: OrphanTarget,
    /// Whether its descendants are followed.
    pub tree: bool,
    /// The root of the unit it is a member of, if it is not a root.
    pub descendant_of: Option<ProcessId>,
    /// How its unit finds members.
    pub containment: Containment,
}

/// Running totals since the monitor started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Counters {
    /// Scans completed.
    pub scans: u64,
    /// Of those, full scans: every tracked process read, watched or not.
    pub full_scans: u64,
    /// Unit scans completed (children lists of the members of units
    /// contained by scanning), on the unit interval or after a member's
    /// exit; none while no unit is contained by scanning.
    pub unit_scans: u64,
    /// Times fork events were lost (the socket's receive buffer
    /// overflowed), each followed by a look at the children lists of every
    /// unit that follows them. Absent from statuses serialized before it
    /// existed (read as zero).
    #[serde(default)]
    pub fork_event_overruns: u64,
    /// Processes found orphaned.
    pub orphans_found: u64,
    /// Orphans that exited after the termination signal, before `SIGKILL`.
    pub orphans_terminated: u64,
    /// Orphans sent `SIGKILL`.
    pub orphans_killed: u64,
    /// Terminations asked for through `MonitorHandle::terminate` or `kill`.
    pub stops_requested: u64,
    /// Children reaped.
    pub reaped: u64,
    /// Tracked processes that exited.
    pub exited: u64,
    /// Signals refused with `EPERM`.
    pub permission_denied: u64,
    /// Processes refused as unit members, or signals withheld, because
    /// they belong to another uid than the unit's owner (each also a
    /// `Refused` event).
    pub refused: u64,
    /// Failures of any kind (each also an `Error` event).
    pub errors: u64,
    /// The same failures, by kind. Absent from statuses serialized before
    /// it existed (read as zeros).
    #[serde(default)]
    pub errors_by_kind: ErrorCounts,
}

/// What the last scan read and how long it took. Between full scans a
/// scan reads only the processes no pidfd watch covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScanSummary {
    /// How many tracked processes it read.
    pub processes: usize,
    /// Its wall-clock time, including the check for unowned zombies.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

/// A snapshot of the monitor, from [`crate::MonitorHandle::status`].
///
/// Serialized (serde), its durations are strings in the `humantime`
/// format, the sum of their non-zero parts, largest first:
/// `"725ms 297us 847ns"`, `"1m 30s"`, `"0s"`. Deserializing reads the same
/// format, with or without spaces between the parts (`"1m30s"`) and with
/// decimals (`"1.5s"`), but no bare number (`5`, `"5"`). Units are
/// case-sensitive: `ns`, `us` (or `µs`), `ms`, `s`, `m` (minutes), `h`,
/// `d`, `w`, `M` (months of 30.44 days), `y` (years of 365.25 days), and
/// long forms such as `sec`, `min`, `hours`, `days`. The same holds for
/// the durations of [`crate::Config`] in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Status {
    /// The configured `enabled`.
    pub enabled: bool,
    /// Whether the monitor is running (false when disabled).
    pub running: bool,
    /// The pid of the monitor's process.
    pub pid: i32,
    /// The scan interval.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// The default grace period.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// The reap policy.
    pub reap_policy: ReapPolicy,
    /// Whether this process is a child subreaper.
    pub subreaper: bool,
    /// Whether the kernel gave a pidfd for every tracked process so far
    /// (`false` once any fell back to start-time checks).
    pub pidfd_supported: bool,
    /// Tracked processes whose exit (and whose parent's exit) only the scan
    /// notices, because no pidfd could be opened or registered for them.
    pub scan_only: usize,
    /// How many processes are tracked.
    pub tracked_count: usize,
    /// Every tracked process, by pid.
    pub tracked: Vec<TrackedStatus>,
    /// Every unit, by root.
    pub units: Vec<UnitStatus>,
    /// Running totals.
    pub counters: Counters,
    /// The last scan, if one ran.
    pub last_scan: Option<ScanSummary>,
    /// Exited children nobody in this process has reaped yet.
    pub unowned_zombies: Vec<ProcessId>,
}
