//! Orphan actions and their escalation: which signal goes out when, as
//! data (an [`Escalation`] per process plus one key in the deadline queue),
//! never as a task that sleeps.

use std::time::Duration;

use tokio::time::Instant;

use super::Actor;
use crate::os;
use crate::status::ProcessState;
use crate::{Error, ErrorKind, Event, OrphanAction, OrphanTarget, ProcessId, Signal, Tracked};

/// The first re-check of a signalled process without an exit watch (the
/// pidfd fallback); doubled up to [`MAX_RECHECK`]. A watched process needs
/// none: its exit wakes the actor.
const FIRST_RECHECK: Duration = Duration::from_millis(5);
const MAX_RECHECK: Duration = Duration::from_millis(250);

/// Where an escalation stands; the deadline queue holds the next wake-up.
#[derive(Debug, Clone, Copy)]
pub(super) enum Escalation {
    /// Signal sent; `SIGKILL` at `kill_at`.
    Terminating { kill_at: Instant, step: Duration },
    /// `SIGKILL` sent; unkillable after `give_up_at`.
    Killing { give_up_at: Instant, step: Duration },
}

impl Actor {
    /// Starts termination of a tracked process now, whatever its orphan
    /// action, and of what `target` reaches besides it: by default a
    /// root's whole unit, a member alone. `kill` skips straight to
    /// `SIGKILL`. A pid that was a unit's root, gone while members remain,
    /// still names that unit.
    pub(super) fn stop(
        &mut self,
        pid: i32,
        kill: bool,
        target: Option<OrphanTarget>,
    ) -> Result<Tracked, Error> {
        if !self.tracked.contains_key(&pid)
            && let Some(root) = self.rootless_unit(pid)
        {
            return self.stop_unit(root, kill);
        }
        let entry = self.tracked.get(&pid).ok_or(Error::NotTracked { pid })?;
        let tracked = entry.describe();
        let others = match target {
            Some(target) => self.reach(pid, target),
            // A root's unit as it is (looked at once more), and no more:
            // a unit of one is its root alone.
            // Looked at before it is marked as stopping: members found
            // from then on are stopped at once, and the root must be
            // signalled first (a shell whose children die before it does
            // returns from its `wait` and exits 0, and its status would
            // not be the one the caller asked for).
            None if entry.is_root() => {
                let root = entry.id();
                self.discover_tree(root);
                self.mark_stopping(root, kill);
                self.unit_pids(root)
                    .into_iter()
                    .filter(|member| *member != pid)
                    .collect()
            }
            None => Vec::new(),
        };
        self.stop_one(pid, kill);
        for other in others {
            self.stop_one(other, kill);
        }
        Ok(tracked)
    }

    /// Stops every member of a unit whose root is gone.
    pub(super) fn stop_unit(&mut self, root: ProcessId, kill: bool) -> Result<Tracked, Error> {
        self.mark_stopping(root, kill);
        let members = self.unit_pids(root);
        let tracked = members
            .first()
            .and_then(|first| self.tracked.get(first))
            .map(super::Entry::describe)
            .ok_or(Error::NotTracked { pid: root.pid })?;
        for member in members {
            self.stop_one(member, kill);
        }
        Ok(tracked)
    }

    /// The whole unit of `root` is being stopped: members found from now on
    /// are stopped the same way (a kill is never weakened to a terminate).
    pub(super) fn mark_stopping(&mut self, root: ProcessId, kill: bool) {
        if let Some(unit) = self.units.get_mut(&root) {
            unit.stopping = Some(kill || unit.stopping == Some(true));
        }
    }

    pub(super) fn stop_one(&mut self, pid: i32, kill: bool) {
        let Some(entry) = self.tracked.get_mut(&pid) else {
            return;
        };
        let acts = match entry.state {
            ProcessState::Running | ProcessState::Orphaned => true,
            ProcessState::Terminating => kill,
            // Already on its way out: a request changes nothing.
            ProcessState::Killing | ProcessState::Unkillable => false,
        };
        entry
            .span
            .in_scope(|| tracing::info!(kill, acts, "stop requested"));
        if !acts {
            return;
        }
        // Only a stop that acts makes the outcome the caller's, not an
        // orphan's, in the counters.
        entry.stop_requested = true;
        self.counters.stops_requested += 1;
        if kill {
            self.send_kill(pid);
        } else {
            self.send_term(pid);
        }
    }

    /// The processes `target` reaches besides `pid`, each tracked (and so
    /// authorized) first, so a member that dies meanwhile cannot hand its
    /// children on to init unseen.
    fn reach(&mut self, pid: i32, target: OrphanTarget) -> Vec<i32> {
        let members = match target {
            OrphanTarget::Process => Vec::new(),
            OrphanTarget::Tree => self.tree_members(pid),
            OrphanTarget::Group => self.group_members(pid),
        };
        if !members.is_empty() {
            tracing::info!(pid, %target, members = members.len(), "the action reaches more processes");
        }
        members
    }

    /// The recorded parent died: start the orphan action on the orphan and
    /// on whatever else its target reaches.
    pub(super) fn orphaned(&mut self, pid: i32) {
        let Some(entry) = self.tracked.get_mut(&pid) else {
            return;
        };
        let (id, parent, action, target) = (entry.id(), entry.parent, entry.action, entry.target);
        entry.state = ProcessState::Orphaned;
        entry.since = Instant::now();
        entry
            .span
            .in_scope(|| tracing::info!(parent = %parent, ?action, "orphaned"));
        self.counters.orphans_found += 1;
        self.emit(Event::Orphaned { id, parent, action });
        let members = self.reach(pid, target);
        self.act(pid, action);
        for member in members {
            self.act(member, action);
        }
    }

    /// Applies `action` to a process that is not already on its way out.
    pub(super) fn act(&mut self, pid: i32, action: OrphanAction) {
        let Some(entry) = self.tracked.get(&pid) else {
            return;
        };
        if !matches!(entry.state, ProcessState::Running | ProcessState::Orphaned) {
            return;
        }
        match action {
            OrphanAction::Notify => {}
            OrphanAction::Kill => self.send_kill(pid),
            OrphanAction::Terminate => self.send_term(pid),
        }
    }

    /// Sends a signal, if the unit's owner may signal the process now;
    /// `false` when it was refused, turned out to be gone, or the signal
    /// failed (reported; the escalation ends).
    pub(super) fn deliver(&mut self, pid: i32, signal: Signal) -> bool {
        if !self.may_signal(pid) {
            return false;
        }
        let Some(entry) = self.tracked.get(&pid) else {
            return false;
        };
        let id = entry.id();
        match self.os.signal(&entry.handle, signal) {
            Ok(()) => {
                entry
                    .span
                    .in_scope(|| tracing::info!(signal = %signal, "signalled"));
                true
            }
            Err(error) if os::is_gone(&error) => {
                self.settle_exit(pid);
                false
            }
            Err(error) => {
                let kind = if os::is_permission(&error) {
                    ErrorKind::PermissionDenied
                } else {
                    ErrorKind::Signal
                };
                self.error_event(
                    Some(id),
                    kind,
                    format!("could not send {signal} to {id}: {error}"),
                );
                false
            }
        }
    }

    pub(super) fn send_term(&mut self, pid: i32) {
        let Some(signal) = self.tracked.get(&pid).map(|e| e.signal) else {
            return;
        };
        if !self.deliver(pid, signal) {
            return;
        }
        let Some(entry) = self.tracked.get(&pid) else {
            return;
        };
        let (id, grace) = (entry.id(), entry.grace);
        self.emit(Event::Signalled { id, signal });
        if grace.is_zero() {
            self.send_kill(pid);
            return;
        }
        let now = Instant::now();
        self.set_state(pid, ProcessState::Terminating, now);
        self.arm(
            pid,
            Escalation::Terminating {
                kill_at: crate::limits::deadline(now, grace),
                step: FIRST_RECHECK,
            },
            now,
        );
    }

    pub(super) fn send_kill(&mut self, pid: i32) {
        // A cgroup unit is killed whole, forks in flight included (its
        // authorization checked for every process in it); the member's own
        // escalation goes on as if its SIGKILL had been sent.
        let root = self
            .tracked
            .get(&pid)
            .filter(|entry| entry.containment == crate::Containment::Cgroup)
            .map(|entry| entry.root());
        let by_cgroup = root.is_some_and(|root| self.kill_cgroup(root));
        if !by_cgroup && !self.deliver(pid, Signal::KILL) {
            return;
        }
        let Some((id, requested)) = self.tracked.get(&pid).map(|e| (e.id(), e.stop_requested))
        else {
            return;
        };
        if !requested {
            self.counters.orphans_killed += 1;
        }
        self.emit(Event::Killed { id });
        let now = Instant::now();
        self.set_state(pid, ProcessState::Killing, now);
        self.arm(
            pid,
            Escalation::Killing {
                give_up_at: crate::limits::deadline(now, self.config.kill_timeout),
                step: FIRST_RECHECK,
            },
            now,
        );
        // An owned child may already be reapable.
        self.reap_tracked(pid);
    }

    pub(super) fn set_state(&mut self, pid: i32, state: ProcessState, now: Instant) {
        if let Some(entry) = self.tracked.get_mut(&pid) {
            entry.state = state;
            entry.since = now;
        }
    }

    /// Schedules the next wake-up of an escalation: the next re-check or its
    /// deadline, whichever is sooner.
    pub(super) fn arm(&mut self, pid: i32, escalation: Escalation, now: Instant) {
        let Some(entry) = self.tracked.get_mut(&pid) else {
            return;
        };
        let (deadline, step) = match escalation {
            Escalation::Terminating { kill_at, step } => (kill_at, step),
            Escalation::Killing { give_up_at, step } => (give_up_at, step),
        };
        // A watched process wakes the actor when it exits; only the
        // fallback needs re-checks before the deadline.
        let wake = if entry.watch.is_some() {
            deadline
        } else {
            deadline.min(crate::limits::deadline(now, step))
        };
        if let Some((_, key)) = entry.escalation.take() {
            self.deadlines.remove(&key);
        }
        // An empty queue is never polled, so its wheel clock stands still,
        // and an insert more than 2^36 ms past that clock panics: start a
        // fresh one instead (after a long quiet spell, e.g. years).
        if self.deadlines.is_empty() {
            self.deadlines = tokio_util::time::DelayQueue::new();
        }
        let key = self.deadlines.insert_at(entry.id(), wake);
        entry.escalation = Some((escalation, key));
    }

    pub(super) fn on_deadline(&mut self, id: ProcessId) {
        let Some(entry) = self.tracked.get_mut(&id.pid).filter(|e| e.id() == id) else {
            return;
        };
        // The queue already dropped the expired key.
        let Some((escalation, _)) = entry.escalation.take() else {
            return;
        };
        let entry = &self.tracked[&id.pid];
        if !self.is_running(entry) {
            self.settle_exit(id.pid);
            return;
        }
        let now = Instant::now();
        match escalation {
            Escalation::Terminating { kill_at, .. } if now >= kill_at => self.send_kill(id.pid),
            Escalation::Terminating { kill_at, step } => {
                let step = (step * 2).min(MAX_RECHECK);
                self.arm(id.pid, Escalation::Terminating { kill_at, step }, now);
            }
            Escalation::Killing { give_up_at, .. } if now >= give_up_at => {
                self.set_state(id.pid, ProcessState::Unkillable, now);
                let timeout = self.config.kill_timeout;
                self.error_event(
                    Some(id),
                    ErrorKind::Unkillable,
                    format!("{id} still exists {timeout:?} after SIGKILL"),
                );
            }
            Escalation::Killing { give_up_at, step } => {
                let step = (step * 2).min(MAX_RECHECK);
                self.arm(id.pid, Escalation::Killing { give_up_at, step }, now);
            }
        }
    }
}
