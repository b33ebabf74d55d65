//! What a caller hands the monitor when it tracks a process, and what it
//! gets back.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Containment, Error, ExitStatus, OrphanAction, OrphanTarget, ProcessId, Signal};

/// Per-process settings for [`crate::MonitorHandle::track_with`].
///
/// Every field left `None` takes the monitor's configured default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TrackOptions {
    /// The process whose death makes this one an orphan. Default: its
    /// parent at track time.
    pub parent: Option<ParentSpec>,
    /// What to do when it is orphaned.
    pub action: Option<OrphanAction>,
    /// Which processes the orphan action reaches. Only an orphan's: no
    /// effect on a child the monitor owns unless a `parent` is named (see
    /// [`OrphanTarget`]).
    pub target: Option<OrphanTarget>,
    /// Make it the root of a unit that holds its descendants, present and
    /// future (`false`: a unit of one).
    pub tree: Option<bool>,
    /// The uid on whose behalf it is tracked. No process of another uid is
    /// ever made a member of its unit or signalled for it, unless this is
    /// root (0). Default: the monitor's own uid. The process itself must
    /// belong to this uid too (a root owner may track anything).
    pub owner: Option<u32>,
    /// Time between the termination signal and `SIGKILL`.
    #[serde(with = "humantime_serde")]
    pub grace: Option<Duration>,
    /// The signal that starts termination.
    pub signal: Option<Signal>,
    /// Refuse to track unless the process has this start time (guards a pid
    /// read earlier against reuse).
    pub start_time: Option<u64>,
}

impl TrackOptions {
    /// Options with every field at the monitor's default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Watch this pid (as it is now) instead of the real parent.
    pub fn parent(mut self, pid: i32) -> Self {
        self.parent = Some(ParentSpec::Pid(pid));
        self
    }

    /// Watch exactly this parent identity; if it is already gone, the
    /// process is an orphan at the next scan.
    pub fn parent_identity(mut self, id: ProcessId) -> Self {
        self.parent = Some(ParentSpec::Identity(id));
        self
    }

    /// Sets the orphan action.
    pub fn action(mut self, action: OrphanAction) -> Self {
        self.action = Some(action);
        self
    }

    /// Sets which processes the orphan action reaches (see
    /// [`TrackOptions::target`]: not an owned child's, unless a parent is
    /// named).
    pub fn target(mut self, target: OrphanTarget) -> Self {
        self.target = Some(target);
        self
    }

    /// Follows (or not) its descendants as members of its unit.
    pub fn tree(mut self, tree: bool) -> Self {
        self.tree = Some(tree);
        self
    }

    /// Tracks it on behalf of `uid` (see [`TrackOptions::owner`]).
    pub fn owner(mut self, uid: u32) -> Self {
        self.owner = Some(uid);
        self
    }

    /// Sets the grace period.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// Sets the termination signal.
    pub fn signal(mut self, signal: Signal) -> Self {
        self.signal = Some(signal);
        self
    }

    /// Requires this start time.
    pub fn start_time(mut self, start_time: u64) -> Self {
        self.start_time = Some(start_time);
        self
    }
}

/// The parent a tracked process is watched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParentSpec {
    /// The process that has this pid at track time.
    Pid(i32),
    /// Exactly this process.
    Identity(ProcessId),
}

/// What the monitor recorded for a tracked process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tracked {
    /// The process.
    pub id: ProcessId,
    /// The parent whose death makes it an orphan.
    pub parent: ProcessId,
    /// Whether the monitor reaps it and reports its exit status.
    pub owned: bool,
    /// Whether it is pinned by a pidfd (`false`: start-time fallback).
    pub pidfd: bool,
    /// Whether its exit is noticed through pidfd readiness at once
    /// (`false`: only by the scan).
    pub exit_watch: bool,
    /// What happens when it is orphaned.
    pub action: OrphanAction,
    /// Which processes the orphan action reaches.
    pub target: OrphanTarget,
    /// Whether its descendants are followed.
    pub tree: bool,
    /// The root of the unit it was found in, if it is a member and not a
    /// root.
    pub descendant_of: Option<ProcessId>,
    /// How its unit finds members.
    pub containment: Containment,
    /// The uid its unit is tracked for.
    pub owner: u32,
    /// Time between the termination signal and `SIGKILL`.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// The signal that starts termination.
    pub signal: Signal,
}

/// A child process handed to [`crate::MonitorHandle::track_child`].
///
/// The monitor keeps the `Child` value until it has reaped the process, and
/// reaps it through the value's own `try_wait`, so the value never goes to
/// Tokio's orphan queue still holding an unreaped pid.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChildProcess {
    /// A `std::process::Child`.
    Std(std::process::Child),
    /// A `tokio::process::Child`.
    Tokio(tokio::process::Child),
    /// A child of the fake process table (this crate's tests, and
    /// [`crate::testing`]).
    #[cfg(any(test, doc, feature = "test-util"))]
    #[doc(hidden)]
    Fake(crate::fake::FakeChild),
}

impl ChildProcess {
    /// The child's pid, `None` when its status was already collected.
    pub(crate) fn pid(&self) -> Option<i32> {
        let id = match self {
            Self::Std(child) => Some(child.id()),
            Self::Tokio(child) => child.id(),
            #[cfg(any(test, doc, feature = "test-util"))]
            Self::Fake(child) => u32::try_from(child.pid()).ok(),
        };
        id.and_then(|id| i32::try_from(id).ok())
    }

    /// `waitpid(pid, WNOHANG)` through the value itself. The pid of an
    /// unreaped child cannot be reused, so this waits for exactly this one.
    pub(crate) fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        let status = match self {
            Self::Std(child) => child.try_wait()?,
            Self::Tokio(child) => child.try_wait()?,
            #[cfg(any(test, doc, feature = "test-util"))]
            Self::Fake(child) => return child.try_wait(),
        };
        Ok(status.map(ExitStatus::from))
    }
}

impl From<std::process::Child> for ChildProcess {
    fn from(child: std::process::Child) -> Self {
        Self::Std(child)
    }
}

impl From<tokio::process::Child> for ChildProcess {
    fn from(child: tokio::process::Child) -> Self {
        Self::Tokio(child)
    }
}

/// [`crate::MonitorHandle::track_child`] failed. The child is handed back
/// (unless the monitor stopped while holding it), so the caller can still
/// wait for it or kill it.
#[derive(Debug)]
pub struct TrackChildError {
    error: Error,
    /// Boxed: a `Child` is large, and this travels in every `Result`.
    child: Option<Box<ChildProcess>>,
}

impl TrackChildError {
    pub(crate) fn new(error: Error, child: Option<ChildProcess>) -> Self {
        Self {
            error,
            child: child.map(Box::new),
        }
    }

    /// Why it failed.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The child, untouched, if the monitor did not keep it.
    pub fn into_child(self) -> Option<ChildProcess> {
        self.child.map(|child| *child)
    }
}

impl std::fmt::Display for TrackChildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for TrackChildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

impl From<TrackChildError> for Error {
    fn from(error: TrackChildError) -> Self {
        error.error
    }
}
