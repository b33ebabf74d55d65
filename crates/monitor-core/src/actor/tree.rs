//! Finding a unit's members in children lists, and the process groups a
//! `group` target reaches: each found process is pinned, authorized
//! against the unit's owner and tracked as a member before anything is
//! signalled, so that only tracked (pinned) processes the owner may signal
//! are ever signalled. Children lists are all a unit contained by scanning
//! has; a unit that follows fork events reads them too, when it is made
//! (what its root forked before), after an overrun, and in the last looks
//! (after draining the events queued so far).
//!
//! A descendant is found through its parent's children lists
//! (`/proc/<pid>/task/*/children`), read by pid but counted only while the
//! pinned parent still runs, and is then pinned itself and tracked with its
//! real parent. Following parentage, not sessions or groups, is what keeps
//! a grandchild that called `setsid` in the unit. What escapes: a process
//! whose parent exited before anyone looked (a double fork completed
//! between two looks), since it is reparented with no trace of where it
//! came from. A subreaper still receives it, and the scan then reports it.

use std::collections::HashMap;

use super::Actor;
use crate::{Containment, ErrorKind, ProcessId, TrackOptions};

impl Actor {
    /// Tracks the untracked children of `pid` (when its unit follows
    /// parentage, by scanning or fork events, or when `force`d for an
    /// orphan action), then theirs, and so on.
    pub(super) fn discover(&mut self, pid: i32, force: bool) {
        // A cgroup unit's membership is its leaf's list, not parentage.
        if let Some(root) = self
            .tracked
            .get(&pid)
            .filter(|entry| entry.containment == Containment::Cgroup)
            .map(|entry| entry.root())
        {
            self.discover_cgroup(root);
            return;
        }
        let mut queue = vec![pid];
        while let Some(pid) = queue.pop() {
            let Some(entry) = self.tracked.get(&pid) else {
                continue;
            };
            if !entry.containment.follows_children() && !force {
                continue;
            }
            let (parent, root) = (entry.id(), entry.root());
            for child in self.os.children(&entry.handle) {
                if let Some(child) = self.track_descendant(child, parent, root) {
                    queue.push(child);
                }
            }
        }
    }

    /// Looks again at every living member of `root`'s unit (after the fork
    /// events queued so far, for a unit that follows them).
    pub(super) fn discover_tree(&mut self, root: ProcessId) {
        self.drain_fork_events();
        if self
            .units
            .get(&root)
            .is_some_and(|unit| unit.containment == Containment::Cgroup)
        {
            self.discover_cgroup(root);
            return;
        }
        for pid in self.unit_pids(root) {
            self.discover(pid, false);
        }
    }

    /// Children a scan found under tracked tree members.
    pub(super) fn adopt_children(&mut self, found: Vec<(ProcessId, Vec<i32>)>) {
        for (parent, children) in found {
            let Some(entry) = self.tracked.get(&parent.pid).filter(|e| e.id() == parent) else {
                continue;
            };
            let root = entry.root();
            for child in children {
                if let Some(child) = self.track_descendant(child, parent, root) {
                    self.discover(child, false);
                }
            }
        }
    }

    /// Tracks `pid` as a child of `parent` in `root`'s unit, with the
    /// parent's settings. Returns the pid when it is newly tracked and
    /// really is that parent's child.
    pub(super) fn track_descendant(
        &mut self,
        pid: i32,
        parent: ProcessId,
        root: ProcessId,
    ) -> Option<i32> {
        if self.tracked.contains_key(&pid) {
            return None;
        }
        let options = self.member_options(root)?;
        match self.insert(pid, options, &mut None, Some(root)) {
            Ok(tracked) if tracked.parent == parent => {
                tracing::info!(pid, parent = %parent, root = %root, "descendant tracked");
                Some(pid)
            }
            Ok(_) => {
                // The pid was reused between the list and the open: not ours.
                if let Some(entry) = self.remove(pid) {
                    self.emit(crate::Event::Untracked { id: entry.id() });
                }
                None
            }
            Err(error) => {
                // Usually it exited in between (nothing to track then), or
                // it belongs to another user (refused, and reported).
                tracing::debug!(pid, parent = %parent, %error, "descendant not tracked");
                None
            }
        }
    }

    /// What a `tree` target reaches besides `pid`, after a last look for
    /// new members: for a unit's root, every member of its unit; for a
    /// member, its tracked descendants.
    pub(super) fn tree_members(&mut self, pid: i32) -> Vec<i32> {
        self.drain_fork_events();
        self.discover(pid, true);
        let Some(entry) = self.tracked.get(&pid) else {
            return Vec::new();
        };
        if entry.is_root() {
            let root = entry.id();
            let members = self.unit_pids(root);
            for &member in &members {
                self.discover(member, true);
            }
            return self
                .unit_pids(root)
                .into_iter()
                .filter(|m| *m != pid)
                .collect();
        }
        let mut children: HashMap<ProcessId, Vec<i32>> = HashMap::new();
        for entry in self.tracked.values() {
            children
                .entry(entry.parent)
                .or_default()
                .push(entry.id().pid);
        }
        let mut members = Vec::new();
        let mut queue = vec![pid];
        while let Some(pid) = queue.pop() {
            let Some(id) = self.tracked.get(&pid).map(|e| e.id()) else {
                continue;
            };
            for &child in children.get(&id).into_iter().flatten() {
                members.push(child);
                queue.push(child);
            }
        }
        members
    }

    /// The other processes of the orphan's process group, tracked. Never
    /// the monitor's own group: that would include the monitor and the
    /// application around it.
    pub(super) fn group_members(&mut self, pid: i32) -> Vec<i32> {
        let Some(entry) = self.tracked.get(&pid) else {
            return Vec::new();
        };
        let (id, root) = (entry.id(), entry.root());
        let options = TrackOptions {
            action: Some(entry.action),
            grace: Some(entry.grace),
            signal: Some(entry.signal),
            ..TrackOptions::default()
        };
        let Some(pgrp) = self.os.stat(&entry.handle).map(|info| info.pgrp) else {
            return Vec::new();
        };
        if pgrp == self.os.my_pgrp() {
            self.error_event(
                Some(id),
                ErrorKind::Signal,
                format!("{id} is in the monitor's own process group {pgrp}; only it is signalled"),
            );
            return Vec::new();
        }
        let mut members = Vec::new();
        for member in self.os.group_members(pgrp) {
            if member == pid {
                continue;
            }
            if self.tracked.contains_key(&member) {
                members.push(member);
                continue;
            }
            match self.insert(member, options.clone(), &mut None, Some(root)) {
                // Pinned now; it must still be in the group to count.
                Ok(_) if self.in_group(member, pgrp) => members.push(member),
                Ok(_) => {
                    let _ = self.remove(member);
                }
                Err(error) => {
                    tracing::debug!(pid = member, pgrp, %error, "group member not tracked");
                }
            }
        }
        members
    }

    pub(super) fn in_group(&self, pid: i32, pgrp: i32) -> bool {
        self.tracked
            .get(&pid)
            .and_then(|e| self.os.stat(&e.handle))
            .is_some_and(|info| info.pgrp == pgrp && !info.exited)
    }
}
