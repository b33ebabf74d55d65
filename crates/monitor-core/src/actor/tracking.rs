//! Taking processes in and letting them go: spawn, track (with the
//! checks that refuse what cannot be tracked), untrack.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Actor, Entry, Ownership, Released};
use crate::status::ProcessState;
use crate::{
    ChildProcess, Error, Event, OwnedChild, ParentSpec, ProcessId, SpawnOptions, TrackOptions,
    Tracked, spawn,
};

impl Actor {
    /// Starts a child on the spawner thread and owns it from the first
    /// instant.
    pub(super) async fn spawn(
        &mut self,
        command: std::process::Command,
        options: SpawnOptions,
    ) -> Result<OwnedChild, Error> {
        if !self.config.enabled {
            return Err(Error::Disabled);
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = spawn::spawn(command, options.parent_death_signal)
            .await
            .map_err(|source| Error::Spawn {
                program: program.clone(),
                source,
            })?;
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let pid = child.id() as i32;
        let (waiter, exit) = oneshot::channel();
        let mut owner = Some(Ownership {
            child: Some(ChildProcess::Std(child)),
            waiter: Some(waiter),
        });
        match self.track(pid, options.track, &mut owner) {
            Ok(tracked) => {
                tracing::debug!(pid, program, "spawned");
                Ok(OwnedChild::new(tracked, exit).with_pipes(pipes))
            }
            Err(error) => {
                // Our own unreaped child cannot be refused for a reason that
                // leaves it useful to the caller: kill it and reap it later.
                if let Some(mut ownership) = owner {
                    if let Some(ChildProcess::Std(child)) = ownership.child.as_mut() {
                        let _ = child.kill();
                    }
                    ownership.waiter = None;
                    let (handle, _) = self.os.open(pid)?;
                    self.released.push(Released {
                        handle: Arc::new(handle),
                        ownership,
                    });
                }
                Err(error)
            }
        }
    }

    pub(super) fn check_pid(&self, pid: i32) -> Result<(), Error> {
        match pid {
            0 => Err(Error::PidZero),
            pid if pid < 0 => Err(Error::NegativePid { pid }),
            1 => Err(Error::InitProcess),
            pid if pid == self.my_pid => Err(Error::OwnProcess { pid }),
            _ => Ok(()),
        }
    }

    /// Tracks `pid` as the caller asked. An `owner` (a handed-over child)
    /// is taken only on success; on failure it stays with the caller.
    pub(super) fn track(
        &mut self,
        pid: i32,
        options: TrackOptions,
        owner: &mut Option<Ownership>,
    ) -> Result<Tracked, Error> {
        let tracked = self.insert(pid, options, owner, None)?;
        if tracked.tree {
            self.discover(pid, false);
        }
        Ok(tracked)
    }

    /// Pins, records and watches one process; `descendant_of` names the
    /// tree it was found in.
    pub(super) fn insert(
        &mut self,
        pid: i32,
        options: TrackOptions,
        owner: &mut Option<Ownership>,
        descendant_of: Option<ProcessId>,
    ) -> Result<Tracked, Error> {
        if !self.config.enabled {
            return Err(Error::Disabled);
        }
        self.check_pid(pid)?;
        options.validate()?;
        if let Some(existing) = self.tracked.get(&pid) {
            if self.os.stat(&existing.handle).is_some() {
                return Err(Error::AlreadyTracked { id: existing.id() });
            }
            // The old holder of this pid is gone and nothing has noticed
            // yet: settle it before the new one moves in.
            self.settle_exit(pid);
        }
        let (handle, info) = self.os.open(pid)?;
        if owner.is_none() && info.exited {
            return Err(Error::AlreadyExited { pid });
        }
        if let Some(expected) = options.start_time
            && expected != info.start_time
        {
            return Err(Error::IdentityMismatch {
                pid,
                expected,
                actual: info.start_time,
            });
        }
        let real_parent = ProcessId::new(
            info.ppid,
            self.os.stat_pid(info.ppid).map_or(0, |p| p.start_time),
        );
        let parent = match options.parent {
            None => real_parent,
            Some(ParentSpec::Pid(parent)) => {
                self.check_parent(pid, parent)?;
                // A thread's exit is not its process's death.
                if let Some(tgid) = self.os.tgid(parent).filter(|&tgid| tgid != parent) {
                    return Err(Error::ThreadId { pid: parent, tgid });
                }
                let start = self
                    .os
                    .stat_pid(parent)
                    .filter(|p| !p.exited)
                    .ok_or(Error::NoSuchProcess { pid: parent })?
                    .start_time;
                ProcessId::new(parent, start)
            }
            Some(ParentSpec::Identity(parent)) => parent,
        };
        let handle = Arc::new(handle);
        let watch = self.exit_watch(&handle);
        let ownership = owner.take();
        let id = handle.id;
        let span = tracing::info_span!("tracked", pid = id.pid, start_time = id.start_time);
        let entry = Entry {
            handle,
            parent,
            named_parent: parent != real_parent,
            action: options.action.unwrap_or(self.config.orphan_action),
            target: options.target.unwrap_or(self.config.orphan_target),
            tree: options.tree.unwrap_or(self.config.tree),
            descendant_of,
            grace: options.grace.unwrap_or(self.config.grace),
            signal: options.signal.unwrap_or(self.config.term_signal),
            watch,
            adoptable: ownership.is_none() && info.ppid != self.my_pid,
            stop_requested: false,
            owned: ownership,
            state: ProcessState::Running,
            since: Instant::now(),
            escalation: None,
            span,
        };
        let tracked = entry.describe();
        entry.span.in_scope(|| {
            tracing::debug!(
                parent = %parent,
                owned = tracked.owned,
                exit_watch = tracked.exit_watch,
                descendant_of = ?descendant_of,
                "tracking"
            );
        });
        self.emit(Event::Tracked {
            id,
            parent,
            owned: tracked.owned,
        });
        if tracked.owned {
            self.owned_pids.insert(pid);
        }
        self.tracked.insert(pid, entry);
        self.scan_targets = None;
        if tracked.owned {
            // It may have exited before it was handed over.
            self.reap_tracked(pid);
        }
        self.start_watching(pid);
        Ok(tracked)
    }

    pub(super) fn check_parent(&self, pid: i32, parent: i32) -> Result<(), Error> {
        let reason = match parent {
            parent if parent <= 0 => "not a process id",
            parent if parent == pid => "a process is not its own parent",
            _ => return Ok(()),
        };
        Err(Error::InvalidParent {
            pid,
            parent,
            reason,
        })
    }

    pub(super) fn untrack(&mut self, pid: i32) -> Result<Tracked, Error> {
        let entry = self.remove(pid).ok_or(Error::NotTracked { pid })?;
        entry
            .span
            .in_scope(|| tracing::debug!("untracked on request"));
        self.emit(Event::Untracked { id: entry.id() });
        let tracked = entry.describe();
        if let Some(ownership) = entry.owned {
            self.released.push(Released {
                handle: entry.handle,
                ownership,
            });
        }
        Ok(tracked)
    }

    /// Removes an entry and cancels its pending deadline.
    pub(super) fn remove(&mut self, pid: i32) -> Option<Entry> {
        let mut entry = self.tracked.remove(&pid)?;
        self.owned_pids.remove(&pid);
        self.scan_targets = None;
        if let Some((_, key)) = entry.escalation.take() {
            self.deadlines.remove(&key);
        }
        self.forget_parent(pid, entry.parent);
        Some(entry)
    }
}
