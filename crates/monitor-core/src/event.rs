//! The monitor's event stream.

use serde::{Deserialize, Serialize};

use crate::{ExitStatus, OrphanAction, ProcessId, Signal};

/// Something the monitor saw or did. Subscribe with
/// [`crate::MonitorHandle::subscribe`]; a slow subscriber misses events
/// (`Lagged`) rather than slowing the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A process is now tracked.
    Tracked {
        /// The process.
        id: ProcessId,
        /// The parent whose death orphans it.
        parent: ProcessId,
        /// Whether the monitor reaps it.
        owned: bool,
    },
    /// A process was untracked on request.
    Untracked {
        /// The process.
        id: ProcessId,
    },
    /// A tracked process exited and is no longer tracked.
    Exited {
        /// The process.
        id: ProcessId,
        /// Its exit status, known only where the monitor reaped it.
        status: Option<ExitStatus>,
    },
    /// A tracked process's recorded parent died.
    Orphaned {
        /// The process.
        id: ProcessId,
        /// The parent that died.
        parent: ProcessId,
        /// The action that starts now.
        action: OrphanAction,
    },
    /// The termination signal was sent.
    Signalled {
        /// The process.
        id: ProcessId,
        /// The signal.
        signal: Signal,
    },
    /// `SIGKILL` was sent.
    Killed {
        /// The process.
        id: ProcessId,
    },
    /// A tracked process's parent died and it was reparented to this
    /// process (a subreaper): the monitor now owns and will reap it.
    Adopted {
        /// The process.
        id: ProcessId,
    },
    /// The monitor reaped a child.
    Reaped {
        /// The child's pid (already free for reuse).
        pid: i32,
        /// How it ended.
        status: ExitStatus,
    },
    /// An exited child that the monitor does not own and leaves for its
    /// owner to reap.
    UnownedZombie {
        /// The zombie.
        id: ProcessId,
    },
    /// Something failed; the monitor carries on.
    Error {
        /// The process concerned, if any.
        id: Option<ProcessId>,
        /// What kind of failure.
        kind: ErrorKind,
        /// A readable description.
        message: String,
    },
}

/// The kinds of [`Event::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Signalling failed with `EPERM`.
    PermissionDenied,
    /// Signalling failed otherwise.
    Signal,
    /// The process outlived `SIGKILL` by `kill_timeout` (stuck in the kernel).
    Unkillable,
    /// Reaping an owned process failed (someone else reaped it).
    Reap,
    /// The scan could not run.
    Scan,
}
