//! Reaping what the monitor owns, and settling processes that ended:
//! sweeps on SIGCHLD and ticks, the `AllChildren` loop, and the exited
//! children nobody owns.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Actor, Entry, Ownership, Released};
use crate::os::{Os, ProcHandle, Reaped};
use crate::status::ProcessState;
use crate::{ErrorKind, Event, ExitStatus, ProcessId, ReapPolicy};

impl Actor {
    /// The process has ended: count it, report it, hand over its status.
    pub(super) fn finish(&mut self, pid: i32, status: Option<ExitStatus>) {
        // A unit's root: one last look for members while the unit still
        // holds it, so a unit whose members were not found yet does not
        // end with its root.
        if let Some(root) = self.ends_its_unit(pid) {
            self.last_look(root);
        }
        // Before the removal, which tells the rest of its waiters it left.
        if let Some(entry) = self.tracked.get(&pid) {
            self.waiting.exited(entry.id(), entry.root(), status);
        }
        let Some(mut entry) = self.remove(pid) else {
            return;
        };
        let id = entry.id();
        // The root of a unit with members left: they are orphaned with it,
        // once its own exit is reported below.
        let unit_left = entry.is_root() && self.units.contains_key(&id);
        match entry.state {
            ProcessState::Terminating if !entry.stop_requested => {
                self.counters.orphans_terminated += 1;
            }
            ProcessState::Terminating => {}
            ProcessState::Running
            | ProcessState::Orphaned
            | ProcessState::Killing
            | ProcessState::Unkillable => {}
        }
        self.counters.exited += 1;
        entry.span.in_scope(|| match status {
            Some(status) => tracing::info!(%status, "exited"),
            None => tracing::info!("exited"),
        });
        if let (Some(status), Some(waiter)) = (
            status,
            entry.owned.as_mut().and_then(|owned| owned.waiter.take()),
        ) {
            // The caller may have dropped its OwnedChild; the status is also in the event.
            let _ = waiter.send(status);
        }
        self.emit(Event::Exited { id, status });
        self.foster(entry);
        if unit_left {
            self.root_exited(id);
        }
    }

    /// Keeps the zombie of a process that was not this one's child when
    /// it died, if it may still become one (this process is a subreaper or
    /// init): a unit member killed just before its parent is reparented
    /// here and must not linger unreaped.
    fn foster(&mut self, entry: Entry) {
        let may_come_here = self.subreaper || self.my_pid == 1;
        if entry.owned.is_some() || !entry.adoptable || !may_come_here {
            return;
        }
        if self.os.stat(&entry.handle).is_some_and(|info| info.exited) {
            self.released.push(Released {
                handle: entry.handle,
                ownership: Ownership::default(),
                foster: true,
            });
        }
    }

    /// Reaps an owned entry if it has exited. Returns whether it is gone.
    pub(super) fn reap_tracked(&mut self, pid: i32) -> bool {
        let Some(entry) = self.tracked.get_mut(&pid) else {
            return false;
        };
        let Some(ownership) = entry.owned.as_mut() else {
            return false;
        };
        let id = entry.handle.id;
        // Named in the debug log, as the `AllChildren` sweep names its
        // reaps: read from the zombie before it is gone.
        let name = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| self.os.command_name(&entry.handle))
            .flatten();
        match reap(self.os.as_ref(), &entry.handle, ownership) {
            Ok(None) => false,
            Ok(Some(status)) => {
                self.counters.reaped += 1;
                tracing::debug!(pid, command = name.as_deref().unwrap_or("?"), %status, "reaped");
                self.emit(Event::Reaped { pid, status });
                self.finish(pid, Some(status));
                true
            }
            Err(error) => {
                self.error_event(
                    Some(id),
                    ErrorKind::Reap,
                    format!("could not reap owned process {id}: {error}"),
                );
                self.finish(pid, None);
                true
            }
        }
    }

    /// Settles a process the scan or an escalation found exited or gone:
    /// reaps it if owned, then reports it.
    pub(super) fn settle_exit(&mut self, pid: i32) {
        self.adopt_if_ours(pid);
        if self.reap_tracked(pid) {
            return;
        }
        // An owned process that still runs was misreported; keep it.
        let owned_and_running = self
            .tracked
            .get(&pid)
            .is_some_and(|e| e.owned.is_some() && self.is_running(e));
        if !owned_and_running {
            self.finish(pid, None);
        }
    }

    /// A tracked process that died as this process's child although it was
    /// not one when tracked (a unit member reparented to this subreaper,
    /// never seen alive by a scan since): adopt it now, so it is reaped
    /// instead of lingering as a zombie nobody owns.
    fn adopt_if_ours(&mut self, pid: i32) {
        let adopted = self.tracked.get(&pid).is_some_and(|entry| {
            entry.adoptable
                && self
                    .os
                    .stat(&entry.handle)
                    .is_some_and(|info| info.ppid == self.my_pid)
        });
        if adopted {
            self.observe_alive(pid, self.my_pid, true);
        }
    }

    /// Whether a pinned process is still running (not exited, not reaped).
    pub(super) fn is_running(&self, entry: &Entry) -> bool {
        self.os.stat(&entry.handle).is_some_and(|info| !info.exited)
    }

    /// SIGCHLD or a tick: reap whatever the monitor may reap, and publish
    /// what the next SIGCHLD-triggered sweep should be spaced by (see
    /// `reap.rs`): the `waitid(P_ALL)` that found nothing walked the
    /// kernel's whole list of running children, which is what a sweep
    /// that comes too early pays for nothing. Averaged over every wait
    /// call instead, a sweep that reaped hundreds looked cheap however
    /// long that walk was, so in a burst the sweeps ran back to back.
    /// Without such a call (`ReapPolicy::Owned` waits by pid), the
    /// average per wait call.
    pub(super) fn sweep(&mut self) {
        let started = std::time::Instant::now();
        let reaped = self.counters.reaped;
        let empty_walk = self.sweep_all();
        let calls = u32::try_from(self.counters.reaped - reaped + 1).unwrap_or(u32::MAX);
        let cost = empty_walk.unwrap_or_else(|| started.elapsed() / calls);
        let cost = u64::try_from(cost.as_nanos()).unwrap_or(u64::MAX);
        self.sweep_cost
            .store(cost, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reaps; returns how long the `AllChildren` loop's last wait call
    /// (the one that found nothing) took.
    fn sweep_all(&mut self) -> Option<std::time::Duration> {
        let mut empty_walk = None;
        if self.config.reap_policy == ReapPolicy::AllChildren {
            // Reading each zombie's name costs a second wait call; only
            // for a log that shows it.
            let named = tracing::enabled!(tracing::Level::DEBUG);
            loop {
                let call = std::time::Instant::now();
                match self.os.reap_any(named) {
                    Ok(Some(Reaped { pid, status, name })) => {
                        self.counters.reaped += 1;
                        self.emit(Event::Reaped { pid, status });
                        tracing::debug!(pid, command = name.as_deref().unwrap_or("?"), %status, "reaped");
                        if self.tracked.contains_key(&pid) {
                            self.finish(pid, Some(status));
                        }
                    }
                    Ok(None) => {
                        empty_walk = Some(call.elapsed());
                        break;
                    }
                    Err(error) => {
                        self.error_event(None, ErrorKind::Reap, format!("waitid(P_ALL): {error}"));
                        break;
                    }
                }
            }
        }
        let owned: Vec<i32> = self.owned_pids.iter().copied().collect();
        for pid in owned {
            self.reap_tracked(pid);
        }
        let os = Arc::clone(&self.os);
        let mut reaped = Vec::new();
        self.released.retain_mut(|released| {
            match reap(os.as_ref(), &released.handle, &mut released.ownership) {
                Ok(None) => true,
                Ok(Some(status)) => {
                    if let Some(waiter) = released.ownership.waiter.take() {
                        let _ = waiter.send(status);
                    }
                    reaped.push((released.handle.id.pid, status));
                    false
                }
                // A foster zombie still waits for its parent (or for us).
                Err(_) if released.foster => os.stat(&released.handle).is_some(),
                // Someone else reaped it; nothing is left to wait for.
                Err(_) => false,
            }
        });
        for (pid, status) in reaped {
            self.counters.reaped += 1;
            self.emit(Event::Reaped { pid, status });
        }
        empty_walk
    }

    pub(super) fn note_zombies(&mut self, zombies: Vec<ProcessId>) {
        let current: BTreeSet<ProcessId> = zombies
            .into_iter()
            .filter(|id| {
                !self
                    .tracked
                    .get(&id.pid)
                    .is_some_and(|e| e.owned.is_some() && e.id() == *id)
            })
            // The scan read them a while ago: one the monitor adopted and
            // reaped since is no zombie any more.
            .filter(|id| {
                self.os
                    .stat_pid(id.pid)
                    .is_some_and(|info| info.exited && info.start_time == id.start_time)
            })
            .collect();
        for id in current.difference(&self.unowned_zombies) {
            tracing::warn!(
                pid = id.pid,
                "unowned zombie child; its owner must wait for it"
            );
            self.emit(Event::UnownedZombie { id: *id });
        }
        self.unowned_zombies = current;
    }
}

/// Reaps one owned process: through its `Child` when the caller handed one
/// over, else through its pidfd.
fn reap(
    os: &dyn Os,
    handle: &ProcHandle,
    ownership: &mut Ownership,
) -> std::io::Result<Option<ExitStatus>> {
    match ownership.child.as_mut() {
        Some(child) => child.try_wait(),
        None => os.reap(handle),
    }
}
