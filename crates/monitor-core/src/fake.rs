//! A fake process table behind the [`Os`] seam, for paused-time tests.
//!
//! Processes are plain records. A signal is recorded with the virtual time
//! it was sent at; a process dies on `SIGKILL`, and on the termination
//! signal unless it ignores it. Dead non-children vanish at once, as if
//! their new parent reaped them, and their children go to init. A dead
//! child of the monitor stays a zombie with its exit status until the
//! monitor reaps it (through a [`FakeChild`] or the pidfd path), and
//! raises SIGCHLD if a channel for it was set.
//!
//! Its public face, for users' tests, is `crate::testing`: there a spawn
//! through the monitor starts the fake program registered under the
//! command's name.

// A build with the `test-util` feature but without this crate's own tests
// leaves the helpers only those tests use unused.
#![cfg_attr(not(test), allow(dead_code))]

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use nix::errno::Errno;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::os::{Os, ProcHandle, ProcInfo, SpawnFuture, Spawned};
use crate::testing::FakeProgram;
use crate::{ChildProcess, Error, ExitStatus, ProcessId, Signal};

/// The first pid [`FakeOs::start`] hands out, above the fixed pids of this
/// crate's own tests.
const FIRST_STARTED_PID: i32 = 1000;

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
    /// Exited and not yet reaped (only children of the monitor linger).
    pub(crate) zombie: Option<ExitStatus>,
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
    /// How each process that died ended.
    statuses: HashMap<i32, ExitStatus>,
}

impl Table {
    /// Ends a running process and reparents its children to init. A child
    /// of the monitor becomes a zombie (returns true: SIGCHLD is due);
    /// any other process is reaped at once by its parent.
    fn die(&mut self, pid: i32, status: ExitStatus) -> bool {
        let Some(proc) = self.procs.get_mut(&pid).filter(|p| p.zombie.is_none()) else {
            return false;
        };
        self.statuses.insert(pid, status);
        let zombie = proc.ppid == MY_PID;
        if zombie {
            proc.zombie = Some(status);
        } else {
            self.procs.remove(&pid);
        }
        for proc in self.procs.values_mut().filter(|p| p.ppid == pid) {
            proc.ppid = 1;
        }
        zombie
    }
}

#[derive(Debug, Default)]
pub(crate) struct FakeOs {
    table: Mutex<Table>,
    /// Where a child of the monitor's death raises SIGCHLD.
    sigchld: Mutex<Option<mpsc::Sender<()>>>,
    /// What a spawn of each program name starts.
    programs: Mutex<HashMap<String, FakeProgram>>,
    /// The pid the next started process gets.
    next_pid: AtomicI32,
    /// This table, for the timers of processes that exit on their own and
    /// for the children a spawn hands the monitor.
    me: Weak<FakeOs>,
    /// Where those timers run: the runtime the table was made in.
    runtime: Option<tokio::runtime::Handle>,
}

impl FakeOs {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            next_pid: AtomicI32::new(FIRST_STARTED_PID),
            me: me.clone(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            ..Self::default()
        })
    }

    /// A spawn of `name` starts `program` from now on.
    pub(crate) fn set_program(&self, name: String, program: FakeProgram) {
        self.programs
            .lock()
            .expect("no test panics holding it")
            .insert(name, program);
    }

    /// Starts `program` as a child of `ppid`, its own children with it;
    /// returns the identity of the process started.
    pub(crate) fn start(&self, ppid: i32, program: &FakeProgram) -> ProcessId {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let id = self.spawn_with(
            pid,
            FakeProc {
                start_time: pid.unsigned_abs().into(),
                ppid,
                ignores_term: program.ignores_term,
                ..FakeProc::default()
            },
        );
        if let Some((after, status)) = program.exits_after {
            self.exit_later(id, after, status);
        }
        for child in &program.children {
            self.start(pid, child);
        }
        id
    }

    /// `id` exits with `status` once `after` has passed (on the runtime's
    /// clock, so exactly then on paused time), if it still runs then.
    fn exit_later(&self, id: ProcessId, after: Duration, status: ExitStatus) {
        let Some(runtime) = &self.runtime else {
            tracing::warn!(
                pid = id.pid,
                "no runtime: this fake process never exits on its own"
            );
            return;
        };
        let me = self.me.clone();
        runtime.spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(os) = me.upgrade()
                && os
                    .stat_pid(id.pid)
                    .is_some_and(|info| info.start_time == id.start_time)
            {
                os.exit_with(id.pid, status);
            }
        });
    }

    /// The children of `pid`, sorted by pid.
    pub(crate) fn children_of(&self, pid: i32) -> Vec<ProcessId> {
        let mut children: Vec<ProcessId> = self
            .table()
            .procs
            .iter()
            .filter(|(_, proc)| proc.ppid == pid)
            .map(|(pid, proc)| ProcessId::new(*pid, proc.start_time))
            .collect();
        children.sort_unstable();
        children
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
        self.exit_with(pid, ExitStatus::Exited(0));
    }

    /// The process exits with `status`: a child of the monitor lingers as a
    /// zombie (and raises SIGCHLD), anything else is reaped by its parent.
    pub(crate) fn exit_with(&self, pid: i32, status: ExitStatus) {
        let zombie = self.table().die(pid, status);
        if zombie {
            self.raise_sigchld();
        }
    }

    /// Raise SIGCHLD on this channel when a child of the monitor dies.
    pub(crate) fn set_sigchld(&self, sigchld: mpsc::Sender<()>) {
        *self.sigchld.lock().expect("no test panics holding it") = Some(sigchld);
    }

    fn raise_sigchld(&self) {
        if let Some(sigchld) = self
            .sigchld
            .lock()
            .expect("no test panics holding it")
            .as_ref()
        {
            // Full: a sweep is pending already (SIGCHLD coalesces too).
            let _ = sigchld.try_send(());
        }
    }

    /// Whether the process exists, a zombie included.
    pub(crate) fn is_alive(&self, pid: i32) -> bool {
        self.table().procs.contains_key(&pid)
    }

    /// Whether the process runs (exists and has not exited).
    pub(crate) fn is_running(&self, pid: i32) -> bool {
        self.table()
            .procs
            .get(&pid)
            .is_some_and(|p| p.zombie.is_none())
    }

    /// How the process ended, once it has.
    pub(crate) fn exit_status(&self, pid: i32) -> Option<ExitStatus> {
        self.table().statuses.get(&pid).copied()
    }

    /// Reaps a zombie child of the monitor by pid, as `waitpid` would.
    fn wait_child(&self, pid: i32, start_time: u64) -> io::Result<Option<ExitStatus>> {
        let mut table = self.table();
        match table.procs.get(&pid) {
            Some(p) if p.ppid != MY_PID || p.start_time != start_time => {
                Err(io::Error::from(Errno::ECHILD))
            }
            Some(FakeProc {
                zombie: Some(status),
                ..
            }) => {
                let status = *status;
                table.procs.remove(&pid);
                Ok(Some(status))
            }
            Some(_) => Ok(None),
            None => Err(io::Error::from(Errno::ECHILD)),
        }
    }

    pub(crate) fn sent(&self) -> Vec<Sent> {
        self.table().sent.clone()
    }
}

/// A child of the fake monitor, handed over as a `Child` would be: its
/// `try_wait` reaps the zombie from the fake table. `pub` (in this
/// test-only module) because `ChildProcess::Fake` is.
#[derive(Debug, Clone)]
pub struct FakeChild {
    os: Arc<FakeOs>,
    id: ProcessId,
}

impl FakeChild {
    pub(crate) fn new(os: &Arc<FakeOs>, id: ProcessId) -> Self {
        Self {
            os: Arc::clone(os),
            id,
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.id.pid
    }

    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.os.wait_child(self.id.pid, self.id.start_time)
    }
}

fn info(pid: i32, proc: &FakeProc) -> ProcInfo {
    ProcInfo {
        start_time: proc.start_time,
        ppid: proc.ppid,
        exited: proc.zombie.is_some(),
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
            .filter(|(pid, proc)| proc.zombie.is_none() && info(**pid, proc).pgrp == pgid)
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
        let status = ExitStatus::Signaled {
            signal: signal.as_raw(),
            core_dumped: false,
        };
        // A zombie takes the signal and stays as it is.
        if dies && table.die(id.pid, status) {
            drop(table);
            self.raise_sigchld();
        }
        Ok(())
    }

    fn reap(&self, handle: &ProcHandle) -> io::Result<Option<ExitStatus>> {
        self.wait_child(handle.id.pid, handle.id.start_time)
    }

    fn reap_any(&self, _named: bool) -> io::Result<Option<crate::os::Reaped>> {
        Ok(None)
    }

    fn child_zombies(&self, skip: &std::collections::HashSet<i32>) -> Vec<ProcessId> {
        self.table()
            .procs
            .iter()
            .filter(|(pid, p)| p.ppid == MY_PID && p.zombie.is_some() && !skip.contains(pid))
            .map(|(pid, p)| ProcessId::new(*pid, p.start_time))
            .collect()
    }

    fn set_subreaper(&self) -> io::Result<()> {
        Ok(())
    }

    /// Starts the fake program registered under the command's name (the
    /// whole program string, else its file name), as a child of the
    /// monitor; arguments and stdio are not looked at.
    fn spawn(
        &self,
        command: std::process::Command,
        _parent_death_signal: Option<Signal>,
    ) -> SpawnFuture {
        let name = command.get_program().to_string_lossy().into_owned();
        let program = {
            let programs = self.programs.lock().expect("no test panics holding it");
            let file_name = std::path::Path::new(&name)
                .file_name()
                .map(|file| file.to_string_lossy().into_owned());
            programs
                .get(&name)
                .or_else(|| file_name.and_then(|file| programs.get(&file)))
                .cloned()
        };
        let spawned = match (program, self.me.upgrade()) {
            (Some(program), Some(os)) => {
                let id = self.start(MY_PID, &program);
                Ok(Spawned {
                    pid: id.pid,
                    child: ChildProcess::Fake(FakeChild::new(&os, id)),
                    pipes: (None, None, None),
                })
            }
            (None, _) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no fake program is named {name:?} (FakeOs::program names one)"),
            )),
            (Some(_), None) => Err(io::Error::other("the fake process table is gone")),
        };
        Box::pin(std::future::ready(spawned))
    }
}
