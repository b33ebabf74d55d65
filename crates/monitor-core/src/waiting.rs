//! What waiting on the monitor gives back: the end of one process
//! ([`crate::MonitorHandle::wait_for`]) and the outcome of a drain
//! ([`crate::MonitorHandle::drain`]).

use serde::{Deserialize, Serialize};

use crate::{ExitStatus, ProcessId};

/// How a tracked process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExitInfo {
    /// The process.
    pub id: ProcessId,
    /// Its exit status, where the monitor reaped it (it owned the process:
    /// spawned, handed over, or adopted). `None` for a process somebody
    /// else reaps: the kernel tells only its parent how it ended.
    pub status: Option<ExitStatus>,
}

/// What [`crate::MonitorHandle::drain`] did.
///
/// A drain that finished in time has nothing `remaining`. One that timed
/// out names the processes still there; their termination goes on (the
/// `SIGKILL` after the grace period still comes), only the wait stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DrainReport {
    /// Every process of the drained units that ended during the drain, in
    /// the order the monitor saw them end.
    pub ended: Vec<ExitInfo>,
    /// The processes of the drained units still alive when the drain
    /// stopped waiting (its timeout, or the monitor's shutdown), sorted.
    pub remaining: Vec<ProcessId>,
}

impl DrainReport {
    /// Whether every drained unit is gone.
    pub fn is_complete(&self) -> bool {
        self.remaining.is_empty()
    }
}
