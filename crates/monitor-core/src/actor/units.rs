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
use std::time::Duration;

use crate::cgroup::{EventsWatch, Leaf};
use crate::{
    Containment, Error, Event, OrphanAction, OrphanTarget, ProcessId, Signal, TrackOptions,
    UnitResources, UnitStatus,
};

/// What a unit's members inherit from its root, kept with the unit so a
/// member found after the root is gone still gets them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) action: OrphanAction,
    pub(super) target: OrphanTarget,
    pub(super) grace: Duration,
    pub(super) signal: Signal,
}

/// One unit: its owner, how it finds members, and the members tracked now.
#[derive(Debug)]
pub(super) struct Unit {
    pub(super) owner: u32,
    pub(super) settings: Settings,
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
    /// The whole unit was asked to stop (`Some(true)`: killed), so a member
    /// found from now on is stopped the same way at once.
    pub(super) stopping: Option<bool>,
    /// The unit's cgroup leaf and the watch on its `cgroup.events`
    /// (containment `cgroup`).
    pub(super) cgroup: Option<(Leaf, EventsWatch)>,
    /// `cgroup.kill` was written: once is enough, whatever forks after.
    pub(super) cgroup_killed: bool,
}

impl Unit {
    pub(super) fn new(
        owner: u32,
        containment: Containment,
        owned: bool,
        settings: Settings,
    ) -> Self {
        Self {
            owner,
            settings,
            containment,
            members: BTreeSet::new(),
            refused: BTreeSet::new(),
            root_running: true,
            owned,
            stopping: None,
            cgroup: None,
            cgroup_killed: false,
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
                            foster: false,
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
        // A cgroup unit holds processes nobody tracks yet: it ends when its
        // leaf is empty (its watch says so), not when its entries are.
        let populated = unit
            .cgroup
            .as_ref()
            .is_some_and(|(leaf, _)| leaf.events().is_ok_and(|events| events.populated));
        if !unit.root_running && unit.members.is_empty() && !populated {
            self.end_unit(root);
        }
    }

    /// The unit's leaf changed: if it is empty and nothing of the unit is
    /// tracked any more, the unit is over.
    pub(super) fn unit_changed(&mut self, root: ProcessId) {
        let Some(unit) = self.units.get_mut(&root) else {
            return;
        };
        let Some((_, watch)) = unit.cgroup.as_mut() else {
            return;
        };
        match watch.check() {
            Ok(events) if !events.populated => {
                // Whatever was tracked of it is gone too; settle it.
                for pid in self.unit_pids(root) {
                    if self.tracked.get(&pid).is_some_and(|e| !self.is_running(e)) {
                        self.settle_exit(pid);
                    }
                }
                if self
                    .units
                    .get(&root)
                    .is_some_and(|unit| !unit.root_running && unit.members.is_empty())
                {
                    self.end_unit(root);
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(root = %root, %error, "cannot read the unit's cgroup"),
        }
    }

    /// Removes an empty unit: its leaf goes, and `UnitEnded` says so with
    /// what it used.
    fn end_unit(&mut self, root: ProcessId) {
        let Some(mut unit) = self.units.remove(&root) else {
            return;
        };
        let resources = unit.cgroup.as_ref().map(|(leaf, _)| resources(leaf));
        if let Some((mut leaf, _)) = unit.cgroup.take()
            && let Err(error) = leaf.remove()
        {
            tracing::warn!(root = %root, %error, "the unit's cgroup stays behind");
        }
        if self.adopting == Some(root) {
            self.adopting = None;
        }
        self.unfollow_unit(root);
        tracing::debug!(root = %root, ?resources, "unit ended");
        let ended = Event::UnitEnded { root, resources };
        self.waiting.unit_ended(&ended);
        self.emit(ended);
        self.unit_over(root);
    }

    /// The root of `pid`'s unit, if `pid` leaving it would end it (or
    /// orphan it): the unit's root, or the last member of a unit whose root
    /// is gone.
    pub(super) fn ends_its_unit(&self, pid: i32) -> Option<ProcessId> {
        let entry = self.tracked.get(&pid)?;
        let root = entry.root();
        let unit = self.units.get(&root)?;
        let last = entry.is_root() || (!unit.root_running && unit.members.len() == 1);
        last.then_some(root)
    }

    /// A last look for members of `root`'s unit, made when its root or its
    /// last member exits (before it leaves the unit, so the unit does not
    /// end first): every member's children, and, for the adopting unit,
    /// the orphans already reparented to this process (the exiting
    /// process's own children are, by now).
    pub(super) fn last_look(&mut self, root: ProcessId) {
        if !self.units.contains_key(&root) {
            return;
        }
        self.discover_tree(root);
        if self.adopting == Some(root) {
            let own = self.os.own_children();
            self.adopt_orphans(own);
        }
    }

    /// The root of a unit exited: the unit ends, and whatever it still
    /// holds (after [`Actor::last_look`]) is orphaned with it. Each member
    /// gets the unit's orphan action.
    pub(super) fn root_exited(&mut self, root: ProcessId) {
        let Some(unit) = self.units.get(&root) else {
            return;
        };
        let members: Vec<i32> = unit.members.iter().copied().collect();
        if !members.is_empty() {
            tracing::info!(root = %root, members = members.len(), "unit root exited; its members are orphaned with it");
        }
        for pid in members {
            self.orphan_member(pid, root);
        }
    }

    /// A member of a unit whose root is gone: orphaned with it, and given
    /// the unit's action (once: a member on its way out is left as it is).
    pub(super) fn orphan_member(&mut self, pid: i32, root: ProcessId) {
        let Some(entry) = self.tracked.get_mut(&pid) else {
            return;
        };
        if entry.state != ProcessState::Running {
            return;
        }
        let (id, action) = (entry.id(), entry.action);
        entry.state = ProcessState::Orphaned;
        entry.since = Instant::now();
        self.counters.orphans_found += 1;
        self.emit(Event::Orphaned {
            id,
            parent: root,
            action,
        });
        self.act(pid, action);
    }

    /// Orphans reparented to this process join the adopting unit, if there
    /// is one. Each is pinned and must still be this process's child (and
    /// not one it already knows); it is then this monitor's to reap.
    pub(super) fn adopt_orphans(&mut self, own_children: Vec<i32>) {
        let Some(root) = self.adopting else {
            return;
        };
        let released: BTreeSet<i32> = self.released.iter().map(|r| r.handle.id.pid).collect();
        for pid in own_children {
            if self.tracked.contains_key(&pid) || released.contains(&pid) {
                continue;
            }
            let Some(options) = self.member_options(root) else {
                return;
            };
            let mut owner = Some(super::Ownership::default());
            match self.insert(pid, options, &mut owner, Some(root)) {
                Ok(tracked) if tracked.parent.pid == self.my_pid => {
                    tracing::info!(pid, root = %root, "orphan adopted into the unit");
                    // Its own children are the unit's too.
                    self.discover(pid, false);
                }
                Ok(_) => {
                    // The pid was reused meanwhile: not the orphan we saw.
                    if let Some(entry) = self.remove(pid) {
                        self.emit(Event::Untracked { id: entry.id() });
                    }
                }
                Err(error) => tracing::debug!(pid, %error, "orphan not adopted"),
            }
        }
    }

    /// How a new member of `root`'s unit is tracked: with the unit's
    /// settings, following its own children. `None`: no such unit.
    pub(super) fn member_options(&self, root: ProcessId) -> Option<TrackOptions> {
        let settings = self.units.get(&root)?.settings;
        Some(TrackOptions {
            action: Some(settings.action),
            target: Some(settings.target),
            tree: Some(true),
            grace: Some(settings.grace),
            signal: Some(settings.signal),
            ..TrackOptions::default()
        })
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
            .map(|(root, unit)| {
                let tracked = unit.members.len() + usize::from(unit.root_running);
                // A cgroup's list is the membership; entries are only what
                // was looked at so far.
                let members = unit.cgroup.as_ref().map_or(tracked, |(leaf, _)| {
                    leaf.procs().map_or(tracked, |procs| procs.len())
                });
                UnitStatus {
                    root: *root,
                    root_running: unit.root_running,
                    owner: unit.owner,
                    containment: unit.containment,
                    members,
                    owned: unit.owned,
                    resources: unit.cgroup.as_ref().map(|(leaf, _)| resources(leaf)),
                }
            })
            .collect();
        units.sort_by_key(|unit| unit.root);
        units
    }
}

/// What a leaf's files say the unit used (nothing where they cannot be
/// read).
fn resources(leaf: &Leaf) -> UnitResources {
    let usage = leaf.usage().unwrap_or_default();
    UnitResources {
        cpu_usec: usage.cpu_usage_usec,
        memory_bytes: usage.memory_current,
        memory_peak_bytes: usage.memory_peak,
        pids: usage.pids_current,
    }
}

impl Actor {
    /// A cgroup unit's members are its leaf's processes: each not tracked
    /// yet is pinned, checked to be in the leaf still (so a pid reused
    /// between the list and the pin is not taken), authorized, and tracked
    /// as a member.
    pub(super) fn discover_cgroup(&mut self, root: ProcessId) {
        let Some((leaf, _)) = self.units.get(&root).and_then(|unit| unit.cgroup.as_ref()) else {
            return;
        };
        let Ok(listed) = leaf.procs() else {
            return;
        };
        let Some(options) = self.member_options(root) else {
            return;
        };
        let mut pinned = Vec::new();
        for pid in listed {
            if self.tracked.contains_key(&pid) {
                continue;
            }
            if self
                .insert(pid, options.clone(), &mut None, Some(root))
                .is_ok()
            {
                pinned.push(pid);
            }
        }
        if pinned.is_empty() {
            return;
        }
        // Pinned now: each still listed is the process the list meant.
        let still: BTreeSet<i32> = self
            .units
            .get(&root)
            .and_then(|unit| unit.cgroup.as_ref())
            .and_then(|(leaf, _)| leaf.procs().ok())
            .unwrap_or_default()
            .into_iter()
            .collect();
        for pid in pinned {
            let running = self.tracked.get(&pid).is_some_and(|e| self.is_running(e));
            if running
                && !still.contains(&pid)
                && let Some(entry) = self.remove(pid)
            {
                self.emit(Event::Untracked { id: entry.id() });
            }
        }
    }

    /// Kills every process of a cgroup unit at once: freeze (nothing forks
    /// any more), `cgroup.kill` (what forked meanwhile dies too), thaw (so
    /// the frozen can die). Only where the owner may signal every one of
    /// them: root, or a leaf whose processes are all the owner's. `false`:
    /// not done (no cgroup, already done, or a process of another uid in
    /// it), and the members are killed one by one through their pidfds.
    pub(super) fn kill_cgroup(&mut self, root: ProcessId) -> bool {
        let Some(unit) = self.units.get_mut(&root) else {
            return false;
        };
        if unit.cgroup_killed {
            return true;
        }
        let owner = unit.owner;
        let Some((leaf, _)) = unit.cgroup.as_ref() else {
            return false;
        };
        if owner != ROOT_UID {
            let foreign = leaf
                .procs()
                .unwrap_or_default()
                .into_iter()
                .any(|pid| real_uid(pid).is_some_and(|uid| uid != owner));
            if foreign {
                return false;
            }
        }
        let features = leaf.features();
        let frozen = features.freeze && leaf.set_frozen(true).is_ok();
        let killed = features.kill && leaf.kill().is_ok();
        if frozen && let Err(error) = leaf.set_frozen(false) {
            tracing::warn!(root = %root, %error, "cannot thaw the unit's cgroup");
        }
        if killed {
            unit.cgroup_killed = true;
            tracing::info!(root = %root, "the unit's cgroup was killed");
        }
        killed
    }
}

/// The real uid of `pid` (`/proc/<pid>/status`), for the check before a
/// `cgroup.kill`.
fn real_uid(pid: i32) -> Option<u32> {
    procfs::process::Process::new(pid)
        .and_then(|process| process.status())
        .ok()
        .map(|status| status.ruid)
}
