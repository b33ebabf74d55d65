//! The monitor's event stream.

use serde::{Deserialize, Serialize};

use crate::{ExitStatus, OrphanAction, ProcessId, Signal, UnitResources};

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
    /// A unit is over: its root and every member are gone.
    UnitEnded {
        /// The unit's root.
        root: ProcessId,
        /// What it used, where its containment tells (a cgroup).
        resources: Option<UnitResources>,
    },
    /// A process was refused as a member of a unit, or a signal to it was
    /// withheld, because its real uid is not the unit owner's (and the
    /// owner is not root). It is not tracked for that unit, and never
    /// signalled on its account.
    Refused {
        /// The process refused.
        id: ProcessId,
        /// The root of the unit it would have belonged to.
        root: ProcessId,
        /// Its real uid.
        uid: u32,
        /// The unit's owner.
        owner: u32,
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

impl Event {
    /// The process the event is about: `None` for `Reaped` (which names only
    /// a pid, see [`Event::pid`]) and for an `Error` about no process.
    pub fn id(&self) -> Option<ProcessId> {
        match self {
            Self::Tracked { id, .. }
            | Self::Untracked { id }
            | Self::Exited { id, .. }
            | Self::Orphaned { id, .. }
            | Self::Signalled { id, .. }
            | Self::Killed { id }
            | Self::Adopted { id }
            | Self::UnownedZombie { id }
            | Self::Refused { id, .. } => Some(*id),
            Self::Error { id, .. } => *id,
            Self::Reaped { .. } => None,
            Self::UnitEnded { root, .. } => Some(*root),
        }
    }

    /// The pid the event is about, `Reaped` included.
    pub fn pid(&self) -> Option<i32> {
        match self {
            Self::Reaped { pid, .. } => Some(*pid),
            other => other.id().map(|id| id.pid),
        }
    }
}

impl std::fmt::Display for Event {
    /// One line for logs and terminals, e.g. `4242@1234 orphaned (parent 4200@1200 died): terminate`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tracked { id, parent, owned } => {
                let whose = if *owned { ", owned" } else { "" };
                write!(f, "{id} tracked (parent {parent}{whose})")
            }
            Self::Untracked { id } => write!(f, "{id} untracked"),
            Self::Exited {
                id,
                status: Some(status),
            } => write!(f, "{id} exited: {status}"),
            Self::Exited { id, status: None } => write!(f, "{id} exited"),
            Self::Orphaned { id, parent, action } => {
                write!(f, "{id} orphaned (parent {parent} died): {action}")
            }
            Self::Signalled { id, signal } => write!(f, "{id} sent {signal}"),
            Self::Killed { id } => write!(f, "{id} sent SIGKILL"),
            Self::Adopted { id } => write!(f, "{id} adopted"),
            Self::Reaped { pid, status } => write!(f, "{pid} reaped: {status}"),
            Self::UnownedZombie { id } => write!(f, "{id} is an unowned zombie child"),
            Self::UnitEnded { root, .. } => write!(f, "the unit of {root} ended"),
            Self::Refused {
                id,
                root,
                uid,
                owner,
            } => write!(
                f,
                "{id} refused for the unit of {root}: it belongs to uid {uid}, the unit to uid {owner}"
            ),
            Self::Error { message, .. } => write!(f, "error: {message}"),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_one_line() {
        let id = ProcessId::new(4242, 1234);
        let parent = ProcessId::new(4200, 1200);
        let orphaned = Event::Orphaned {
            id,
            parent,
            action: OrphanAction::Terminate,
        };
        assert_eq!(
            orphaned.to_string(),
            "4242@1234 orphaned (parent 4200@1200 died): terminate"
        );
        let exited = Event::Exited {
            id,
            status: Some(ExitStatus::Signaled {
                signal: 15,
                core_dumped: false,
            }),
        };
        assert_eq!(exited.to_string(), "4242@1234 exited: killed by SIGTERM");
    }

    #[test]
    fn events_serialize_with_a_tag() {
        let event = Event::Killed {
            id: ProcessId::new(7, 8),
        };
        let json = serde_json::to_string(&event).expect("serializes");
        assert_eq!(json, r#"{"event":"killed","id":{"pid":7,"start_time":8}}"#);
        let back: Event = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, event);
    }
}
