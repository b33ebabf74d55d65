//! A fake process table behind the [`Os`] seam, for paused-time tests.
//!
//! Processes are plain records. A signal is recorded with the virtual time
//! it was sent at; a process dies on `SIGKILL`, and on the termination
//! signal unless it ignores it. Dead non-children vanish at once, as if
//! their new parent reaped them, and their children go to init.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use tokio::time::Instant;

use crate::os::{Os, ProcHandle, ProcInfo};
use crate::{Error, ExitStatus, ProcessId, Signal};

/// The fake monitor's own pid.
pub(crate) const MY_PID: i32 = 100;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FakeProc {
    pub(crate) start_time: u64,
    pub(crate) ppid: i32,
    /// Its process group; 0 means its own (pgid = pid).
    pub(crate) pgrp: i32,
    /// The process it is a thread of; 0 means it is a process itself.
    pub(crate) tgid: i32,
    pub(crate) ignores_term: bool,
    pub(crate) ignores_kill: bool,
    pub(crate) signal_denied: bool,
    /// Its real uid (0, root, unless set).
    pub(crate) uid: u32,
    /// Signalling it panics, as a bug in the actor would.
    pub(crate) signal_panics: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) at: Instant,
    pub(crate) id: ProcessId,
    pub(crate) signal: Signal,
}

#[derive(Debug, Default)]
struct Table {
    procs: HashMap<i32, FakeProc>,
    sent: Vec<Sent>,
}

impl Table {
    /// Removes a process (reaped at once) and reparents its children to init.
    fn die(&mut self, pid: i32) {
        self.procs.remove(&pid);
        for proc in self.procs.values_mut().filter(|p| p.ppid == pid) {
            proc.ppid = 1;
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct FakeOs {
    table: Mutex<Table>,
}

impl FakeOs {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The process changes its real uid (a privileged `setuid`).
    pub(crate) fn set_uid(&self, pid: i32, uid: u32) {
        if let Some(proc) = self.table().procs.get_mut(&pid) {
            proc.uid = uid;
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .expect("no test panics while holding the table")
    }

    /// Adds a running process; its start time is its pid unless set.
    pub(crate) fn spawn(&self, pid: i32, ppid: i32) -> ProcessId {
        self.spawn_with(
            pid,
            FakeProc {
                start_time: pid as u64,
                ppid,
                ..FakeProc::default()
            },
        )
    }

    pub(crate) fn spawn_with(&self, pid: i32, proc: FakeProc) -> ProcessId {
        self.table().procs.insert(pid, proc);
        ProcessId::new(pid, proc.start_time)
    }

    /// The process exits and is reaped by someone else.
    pub(crate) fn exit(&self, pid: i32) {
        self.table().procs.remove(&pid);
    }

    /// The process dies; its children are reparented to init.
    pub(crate) fn kill_parent(&self, pid: i32) {
        self.table().die(pid);
    }

    pub(crate) fn is_alive(&self, pid: i32) -> bool {
        self.table().procs.contains_key(&pid)
    }

    pub(crate) fn sent(&self) -> Vec<Sent> {
        self.table().sent.clone()
    }
}

fn info(pid: i32, proc: &FakeProc) -> ProcInfo {
    ProcInfo {
        start_time: proc.start_time,
        ppid: proc.ppid,
        exited: false,
        pgrp: if proc.pgrp == 0 { pid } else { proc.pgrp },
    }
}

impl Os for FakeOs {
    fn my_pid(&self) -> i32 {
        MY_PID
    }

    fn my_pgrp(&self) -> i32 {
        MY_PID
    }

    fn my_uid(&self) -> u32 {
        // The fake monitor runs as root; tests name owners explicitly.
        0
    }

    fn uid(&self, handle: &ProcHandle) -> Option<u32> {
        self.stat(handle)?;
        self.table().procs.get(&handle.id.pid).map(|proc| proc.uid)
    }

    fn open_parent(&self, id: ProcessId) -> Option<ProcHandle> {
        self.stat_pid(id.pid)
            .filter(|info| info.start_time == id.start_time)
            .map(|_| ProcHandle::bare(id))
    }

    fn children(&self, handle: &ProcHandle) -> Vec<i32> {
        if self.stat(handle).is_none() {
            return Vec::new();
        }
        let mut children: Vec<i32> = self
            .table()
            .procs
            .iter()
            .filter(|(_, proc)| proc.ppid == handle.id.pid)
            .map(|(pid, _)| *pid)
            .collect();
        children.sort_unstable();
        children
    }

    fn command_name(&self, handle: &ProcHandle) -> Option<String> {
        self.stat(handle).map(|_| format!("fake{}", handle.id.pid))
    }

    fn own_children(&self) -> Vec<i32> {
        let mut children: Vec<i32> = self
            .table()
            .procs
            .iter()
            .filter(|(_, proc)| proc.ppid == MY_PID)
            .map(|(pid, _)| *pid)
            .collect();
        children.sort_unstable();
        children
    }

    fn group_members(&self, pgid: i32) -> Vec<i32> {
        let mut members: Vec<i32> = self
            .table()
            .procs
            .iter()
            .filter(|(pid, proc)| info(**pid, proc).pgrp == pgid)
            .map(|(pid, _)| *pid)
            .collect();
        members.sort_unstable();
        members
    }

    fn open(&self, pid: i32) -> Result<(ProcHandle, ProcInfo), Error> {
        let proc = *self
            .table()
            .procs
            .get(&pid)
            .ok_or(Error::NoSuchProcess { pid })?;
        if proc.tgid != 0 && proc.tgid != pid {
            return Err(Error::ThreadId {
                pid,
                tgid: proc.tgid,
            });
        }
        let info = info(pid, &proc);
        Ok((ProcHandle::bare(ProcessId::new(pid, proc.start_time)), info))
    }

    fn tgid(&self, pid: i32) -> Option<i32> {
        let proc = *self.table().procs.get(&pid)?;
        Some(if proc.tgid == 0 { pid } else { proc.tgid })
    }

    fn stat(&self, handle: &ProcHandle) -> Option<ProcInfo> {
        self.stat_pid(handle.id.pid)
            .filter(|info| info.start_time == handle.id.start_time)
    }

    fn stat_pid(&self, pid: i32) -> Option<ProcInfo> {
        self.table().procs.get(&pid).map(|proc| info(pid, proc))
    }

    fn signal(&self, handle: &ProcHandle, signal: Signal) -> io::Result<()> {
        let mut table = self.table();
        let id = handle.id;
        let Some(proc) = table
            .procs
            .get(&id.pid)
            .filter(|p| p.start_time == id.start_time)
            .copied()
        else {
            return Err(io::Error::from(Errno::ESRCH));
        };
        if proc.signal_denied {
            return Err(io::Error::from(Errno::EPERM));
        }
        if proc.signal_panics {
            drop(table);
            panic!("the fake table was told to fail on signalling {id}");
        }
        table.sent.push(Sent {
            at: Instant::now(),
            id,
            signal,
        });
        let dies = if signal == Signal::KILL {
            !proc.ignores_kill
        } else {
            !proc.ignores_term
        };
        if dies {
            table.die(id.pid);
        }
        Ok(())
    }

    fn reap(&self, _handle: &ProcHandle) -> io::Result<Option<ExitStatus>> {
        Err(io::Error::from(Errno::ECHILD))
    }

    fn reap_any(&self, _named: bool) -> io::Result<Option<crate::os::Reaped>> {
        Ok(None)
    }

    fn child_zombies(&self, _skip: &std::collections::HashSet<i32>) -> Vec<ProcessId> {
        Vec::new()
    }

    fn set_subreaper(&self) -> io::Result<()> {
        Ok(())
    }
}
