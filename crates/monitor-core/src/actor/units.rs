//! Units: the bookkeeping that makes a tracked root and its members one
//! thing. Who may be a member (the one authorization rule), what happens
//! when the root goes, and what status shows of each unit.
//!
//! **Authorization** is one rule, applied where a member is found
//! ([`Actor::authorize`], from `insert`) and again right before each signal
//! ([`Actor::deliver`](super::Actor) calls [`Actor::may_signal`]): a process
//! whose real uid is not the unit owner's is never a member and never
//! signalled, unless the owner is root. The uid is read through the pinned
//! process, so a pid reused meanwhile cannot answer for it.

use std::collections::BTreeSet;

use tokio::time::Instant;

use super::{Actor, Released};
use crate::status::ProcessState;
use crate::{Containment, Error, Event, ProcessId, UnitStatus};

/// One unit: its owner, how it finds members, and the members tracked now.
#[derive(Debug)]
pub(super) struct Unit {
    pub(super) owner: u32,
    pub(super) containment: Containment,
    /// Tracked members, the root left out.
    pub(super) members: BTreeSet<i32>,
    /// Processes refused for this unit, so each is reported once however
    /// often the unit looks at it again.
    pub(super) refused: BTreeSet<ProcessId>,
    /// The root is still tracked (it has not exited nor been refused).
    pub(super) root_running: bool,
    /// The monitor spawned the root or was handed it: the shutdown policy
    /// ends this unit.
    pub(super) owned: bool,
}

impl Unit {
    pub(super) fn new(owner: u32, containment: Containment, owned: bool) -> Self {
        Self {
            owner,
            containment,
            members: BTreeSet::new(),
            refused: BTreeSet::new(),
            root_running: true,
            owned,
        }
    }
}

/// The uid allowed everything: a root owner's unit takes any process.
const ROOT_UID: u32 = 0;

impl Actor {
    /// Checks a newly pinned process against the owner it would be tracked
    /// for. A refused member is reported (event, log line, counter); a
    /// refused root is the caller's error.
    pub(super) fn authorize(
        &mut self,
        handle: &crate::os::ProcHandle,
        owner: u32,
        root: Option<ProcessId>,
    ) -> Result<(), Error> {
        if owner == ROOT_UID {
            return Ok(());
        }
        let pid = handle.id.pid;
        let uid = self.os.uid(handle).ok_or(Error::NoSuchProcess { pid })?;
        if uid == owner {
            return Ok(());
        }
        if let Some(root) = root {
            self.refused(handle.id, root, uid, owner);
        }
        Err(Error::NotOwner { pid, uid, owner })
    }

    /// Right before a signal: may `pid`'s unit owner signal it now? A
    /// process that changed its uid since it was found is refused and
    /// leaves the monitor (it is no longer a member; the monitor still
    /// reaps it if it owned it, and a root's members are orphaned with
    /// it); one already gone is settled. Either way nothing is sent.
    pub(super) fn may_signal(&mut self, pid: i32) -> bool {
        let Some(entry) = self.tracked.get(&pid) else {
            return false;
        };
        if entry.owner == ROOT_UID {
            return true;
        }
        let (id, root, owner) = (entry.id(), entry.root(), entry.owner);
        match self.os.uid(&entry.handle) {
            None => {
                self.settle_exit(pid);
                false
            }
            Some(uid) if uid == owner => true,
            Some(uid) => {
                self.refused(id, root, uid, owner);
                if let Some(entry) = self.remove(pid) {
                    self.emit(Event::Untracked { id: entry.id() });
                    // Still this process's child: reaped as an untracked
                    // one is, so its exit status reaches its waiter.
                    if let Some(ownership) = entry.owned {
                        self.released.push(Released {
                            handle: entry.handle,
                            ownership,
                        });
                    }
                    // A root that left ends its unit as its exit would:
                    // the members are orphaned with it, never left behind.
                    if root == id {
                        self.root_exited(id);
                    }
                }
                false
            }
        }
    }

    fn refused(&mut self, id: ProcessId, root: ProcessId, uid: u32, owner: u32) {
        let first = self
            .units
            .get_mut(&root)
            .is_none_or(|unit| unit.refused.insert(id));
        if !first {
            return;
        }
        self.counters.refused += 1;
        tracing::warn!(
            pid = id.pid,
            start_time = id.start_time,
            uid,
            owner,
            root = %root,
            "refused: another user's process is never a member or signalled"
        );
        self.emit(Event::Refused {
            id,
            root,
            uid,
            owner,
        });
    }

    /// Records `pid` in its unit: a new unit for a root, a member for the
    /// rest.
    pub(super) fn join_unit(&mut self, pid: i32, root: ProcessId, unit: Option<Unit>) {
        if let Some(unit) = unit {
            self.units.insert(root, unit);
        } else if let Some(unit) = self.units.get_mut(&root) {
            unit.members.insert(pid);
        }
    }

    /// Takes `pid` out of its unit; a unit with no root and no member left
    /// is over.
    pub(super) fn leave_unit(&mut self, pid: i32, root: ProcessId) {
        let Some(unit) = self.units.get_mut(&root) else {
            return;
        };
        if root.pid == pid {
            unit.root_running = false;
        } else {
            unit.members.remove(&pid);
        }
        if !unit.root_running && unit.members.is_empty() {
            self.units.remove(&root);
            tracing::debug!(root = %root, "unit ended");
        }
    }

    /// The root of a unit exited: the unit ends, and whatever it still
    /// holds is orphaned with it, after a last look for new members. Each
    /// member gets its (the root's) orphan action.
    pub(super) fn root_exited(&mut self, root: ProcessId) {
        let Some(unit) = self.units.get(&root) else {
            return;
        };
        let followed: Vec<i32> = unit.members.iter().copied().collect();
        for pid in followed {
            self.discover(pid, false);
        }
        let Some(unit) = self.units.get(&root) else {
            return;
        };
        let members: Vec<i32> = unit.members.iter().copied().collect();
        if !members.is_empty() {
            tracing::info!(root = %root, members = members.len(), "unit root exited; its members are orphaned with it");
        }
        let now = Instant::now();
        for pid in members {
            let Some(entry) = self.tracked.get_mut(&pid) else {
                continue;
            };
            if entry.state != ProcessState::Running {
                continue;
            }
            let (id, action) = (entry.id(), entry.action);
            entry.state = ProcessState::Orphaned;
            entry.since = now;
            self.counters.orphans_found += 1;
            self.emit(Event::Orphaned {
                id,
                parent: root,
                action,
            });
            self.act(pid, action);
        }
    }

    /// Every tracked process of `root`'s unit, the root first if tracked.
    pub(super) fn unit_pids(&self, root: ProcessId) -> Vec<i32> {
        let Some(unit) = self.units.get(&root) else {
            return Vec::new();
        };
        let root_pid = unit
            .root_running
            .then_some(root.pid)
            .filter(|pid| self.tracked.get(pid).is_some_and(|e| e.id() == root));
        root_pid
            .into_iter()
            .chain(unit.members.iter().copied())
            .collect()
    }

    /// A unit whose root is gone, found by the root's pid (its members can
    /// still be stopped or untracked through it).
    pub(super) fn rootless_unit(&self, pid: i32) -> Option<ProcessId> {
        self.units
            .iter()
            .find(|(root, unit)| root.pid == pid && !unit.root_running)
            .map(|(root, _)| *root)
    }

    pub(super) fn unit_statuses(&self) -> Vec<UnitStatus> {
        let mut units: Vec<UnitStatus> = self
            .units
            .iter()
            .map(|(root, unit)| UnitStatus {
                root: *root,
                root_running: unit.root_running,
                owner: unit.owner,
                containment: unit.containment,
                members: unit.members.len() + usize::from(unit.root_running),
                owned: unit.owned,
            })
            .collect();
        units.sort_by_key(|unit| unit.root);
        units
    }
}
