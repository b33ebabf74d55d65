//! Event-driven exits and orphans: what the actor does when a watched
//! pidfd (a tracked process's, or a recorded parent's) becomes readable.
//! See `watch.rs` for how the wake-ups reach the actor.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Actor, ParentWatch};
use crate::ProcessId;
use crate::os::ProcHandle;
use crate::watch::{Watch, WatchKey};

impl Actor {
    /// Registers a tracked process's pidfd; `None` leaves it to the scan
    /// (no pidfd, or the reactor refused it), which status reports.
    pub(super) fn exit_watch(&mut self, handle: &Arc<ProcHandle>) -> Option<Watch> {
        let watch = match Watch::new(handle, WatchKey::Exit(handle.id), &self.ready) {
            Ok(watch) => watch,
            Err(error) => {
                tracing::warn!(pid = handle.id.pid, %error, "cannot watch the pidfd; the scan notices this exit");
                None
            }
        };
        if watch.is_none() {
            self.pidfd_fallbacks += 1;
        }
        watch
    }

    /// Arms a newly tracked process's exit watch and, for a unit's root,
    /// its parent's watch (a member is orphaned with its unit, never by
    /// its own parent). Either may find its process already gone and act
    /// at once.
    pub(super) fn start_watching(&mut self, pid: i32) {
        let Some(entry) = self.tracked.get(&pid) else {
            return;
        };
        let root = entry.is_root();
        if entry.watch.as_ref().is_some_and(Watch::fired) {
            self.confirm_exit(pid);
        }
        if root && self.tracked.contains_key(&pid) {
            self.watch_parent(pid);
        }
    }

    pub(super) fn on_ready(&mut self, key: WatchKey) {
        match key {
            WatchKey::Exit(id) => {
                let fired = self
                    .tracked
                    .get(&id.pid)
                    .filter(|entry| entry.id() == id)
                    .and_then(|entry| entry.watch.as_ref())
                    .is_some_and(Watch::fired);
                // Otherwise the key is stale: untracked, or already handled.
                if fired {
                    self.confirm_exit(id.pid);
                }
            }
            WatchKey::Unit(root) => self.unit_changed(root),
            WatchKey::Parent(parent) => {
                let fired = self
                    .parents
                    .get(&parent)
                    .is_some_and(|watched| watched.watch.fired());
                if fired {
                    self.confirm_parent_exit(parent);
                }
            }
        }
    }

    /// A tracked process's pidfd is readable: settle it if it really exited
    /// (reaped if owned), else re-arm (a ptraced process wakes it falsely).
    pub(super) fn confirm_exit(&mut self, pid: i32) {
        if self.reap_tracked(pid) {
            return;
        }
        let Some(entry) = self.tracked.get(&pid) else {
            return;
        };
        if self.is_running(entry) {
            tracing::debug!(pid, "pidfd readable but the process runs; re-armed");
            if let Some(watch) = &entry.watch {
                watch.rearm();
            }
            return;
        }
        let scanned = entry.containment == crate::Containment::Scan;
        self.settle_exit(pid);
        // Its children were reparented the moment it exited; the rest of
        // its unit may have forked since the last look.
        if scanned {
            self.unit_rescan.notify_one();
        }
    }

    /// Watches the recorded parent of a tracked process, sharing one pidfd
    /// among all the tracked children of the same parent. A parent already
    /// gone orphans the process at once.
    pub(super) fn watch_parent(&mut self, pid: i32) {
        let Some(entry) = self.tracked.get(&pid) else {
            return;
        };
        let parent = entry.parent;
        // Init never exits, and this process outlives its own monitor; a
        // parent whose start time could not be read was already gone, and
        // the scan sees its child reparented.
        if parent.pid <= 1 || parent.pid == self.my_pid || parent.start_time == 0 {
            return;
        }
        if let Some(watched) = self.parents.get_mut(&parent) {
            watched.children.insert(pid);
            return;
        }
        let Some(handle) = self.os.open_parent(parent) else {
            entry.span.in_scope(
                || tracing::debug!(parent = %parent, "the recorded parent is already gone"),
            );
            self.parent_died(pid, parent);
            return;
        };
        let handle = Arc::new(handle);
        match Watch::new(&handle, WatchKey::Parent(parent), &self.ready) {
            Ok(Some(watch)) => {
                let fired = watch.fired();
                self.parents.insert(
                    parent,
                    ParentWatch {
                        handle,
                        watch,
                        children: BTreeSet::from([pid]),
                    },
                );
                if fired {
                    self.confirm_parent_exit(parent);
                }
            }
            // No pidfd: the scan compares ppids instead.
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(pid, parent = %parent, %error, "cannot watch the parent's pidfd; the scan notices its exit");
            }
        }
    }

    /// A parent's pidfd is readable: if it really exited, every tracked
    /// process recorded with it is an orphan now.
    pub(super) fn confirm_parent_exit(&mut self, parent: ProcessId) {
        let Some(watched) = self.parents.get(&parent) else {
            return;
        };
        if self
            .os
            .stat(&watched.handle)
            .is_some_and(|info| !info.exited)
        {
            watched.watch.rearm();
            return;
        }
        let Some(watched) = self.parents.remove(&parent) else {
            return;
        };
        tracing::debug!(parent = %parent, children = watched.children.len(), "recorded parent exited");
        for pid in watched.children {
            self.parent_died(pid, parent);
        }
    }

    /// Reads the orphan once more: it may have exited with its parent, or
    /// have been reparented to this process (a subreaper adopts it).
    pub(super) fn parent_died(&mut self, pid: i32, parent: ProcessId) {
        let Some(entry) = self.tracked.get(&pid).filter(|e| e.parent == parent) else {
            return;
        };
        match self.os.stat(&entry.handle) {
            Some(info) if !info.exited => self.observe_alive(pid, info.ppid, false),
            _ => self.settle_exit(pid),
        }
    }

    /// Drops `pid` from its parent's watch, and the watch with its last child.
    pub(super) fn forget_parent(&mut self, pid: i32, parent: ProcessId) {
        if let Some(watched) = self.parents.get_mut(&parent) {
            watched.children.remove(&pid);
            if watched.children.is_empty() {
                self.parents.remove(&parent);
            }
        }
    }
}
