//! How a control call names the process it is about: by identity, or by a
//! bare pid.

use crate::{ProcessId, Tracked};

/// The process a control call ([`crate::MonitorHandle::terminate`],
/// `kill`, `stop`, `untrack`) is about. Every such call takes
/// `impl Into<ProcessRef>`, so a [`ProcessId`] (or a [`Tracked`]) and a
/// bare `i32` pid both work.
///
/// Prefer the identity: the monitor then acts only if the process it
/// tracks under that pid is that very process. An identity whose process
/// is gone (it exited; its pid is free or names another process now) is
/// [`crate::Error::Stale`], and nothing is signalled. A bare pid means
/// "whatever the monitor tracks under this pid now".
///
/// Either way pid 0 is [`crate::Error::PidZero`], a negative pid
/// [`crate::Error::NegativePid`], pid 1 [`crate::Error::InitProcess`] and
/// the monitor's own pid [`crate::Error::OwnProcess`], as for `track`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessRef {
    /// Whatever the monitor tracks under this pid.
    Pid(i32),
    /// Exactly this process.
    Id(ProcessId),
}

impl ProcessRef {
    /// The pid it names.
    pub fn pid(&self) -> i32 {
        match self {
            Self::Pid(pid) => *pid,
            Self::Id(id) => id.pid,
        }
    }
}

impl From<i32> for ProcessRef {
    fn from(pid: i32) -> Self {
        Self::Pid(pid)
    }
}

impl From<ProcessId> for ProcessRef {
    fn from(id: ProcessId) -> Self {
        Self::Id(id)
    }
}

impl From<&ProcessId> for ProcessRef {
    fn from(id: &ProcessId) -> Self {
        Self::Id(*id)
    }
}

impl From<&Tracked> for ProcessRef {
    fn from(tracked: &Tracked) -> Self {
        Self::Id(tracked.id)
    }
}

impl std::fmt::Display for ProcessRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pid(pid) => write!(f, "pid {pid}"),
            Self::Id(id) => write!(f, "process {id}"),
        }
    }
}
