//! Taking processes in and letting them go: spawn, track (with the
//! checks that refuse what cannot be tracked), untrack.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::units::Settings;
use super::{Actor, Entry, Ownership, Released, Unit};
use crate::status::ProcessState;
use crate::watch::WatchKey;
use crate::{
    ChildProcess, Containment, Error, Event, OwnedChild, ParentSpec, ProcessId, SpawnOptions,
    TrackOptions, Tracked,
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
        // Refused before the child exists, not after: a child spawned and
        // then refused would have to be killed.
        self.check_options(&options.track)?;
        if options.adopt_orphans
            && let Some(root) = self.adopting
        {
            return Err(Error::AdoptionTaken { root });
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let mut command = command;
        // Its unit lives in a leaf of the monitor's cgroup, which it joins
        // before it runs the program; without one, it falls back.
        let unit = options.track.tree.unwrap_or(self.config.tree);
        self.next_leaf = match self.cgroups.get().filter(|_| unit) {
            Some(subtree) => match subtree
                .create_leaf()
                .and_then(|leaf| leaf.prepare_spawn(&mut command).map(|()| leaf))
            {
                Ok(leaf) => Some(leaf),
                Err(error) => {
                    tracing::warn!(%error, "no cgroup for this unit; it falls back to scanning");
                    None
                }
            },
            None => None,
        };
        // No leaf: the unit follows fork events where it may.
        if unit && self.next_leaf.is_none() {
            self.listen_for_forks().await;
        }
        // Through the seam: a test's fake table starts a fake child.
        let crate::os::Spawned { pid, child, pipes } = self
            .os
            .spawn(command, options.parent_death_signal)
            .await
            .map_err(|source| {
                self.next_leaf = None;
                Error::Spawn {
                    program: program.clone(),
                    source,
                }
            })?;
        let (waiter, exit) = oneshot::channel();
        let mut owner = Some(Ownership {
            child: Some(child),
            waiter: Some(waiter),
        });
        // Taken by the unit as it is made, before anything (its root's
        // exit included) can need it.
        self.adopt_into_next_unit = options.adopt_orphans;
        let tracked = self.track(pid, options.track, &mut owner);
        self.adopt_into_next_unit = false;
        // Not taken (the track failed): the leaf goes with the child.
        self.next_leaf = None;
        match tracked {
            Ok(tracked) => {
                tracing::debug!(pid, program, "spawned");
                // Registered with this runtime's reactor, as a tokio
                // `Child`'s pipes are with the runtime that spawned it.
                let pipes = crate::child::tokio_pipes(pipes).map_err(|source| {
                    // Nobody could talk to it: end it (the monitor reaps it).
                    let _ = self.stop(pid, true, None);
                    Error::Os {
                        syscall: "epoll_ctl (registering the child's pipes)",
                        pid,
                        source,
                    }
                })?;
                let control = self.control.sender.clone();
                Ok(OwnedChild::new(tracked, exit, control)
                    .with_pipes(pipes)
                    .with_drop_action(options.on_drop))
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
                        foster: false,
                    });
                }
                Err(error)
            }
        }
    }

    /// The options' own checks, then the config's rule for the signal on
    /// the settings in effect (the monitor's defaults filled in).
    fn check_options(&self, options: &TrackOptions) -> Result<(), Error> {
        options.validate()?;
        crate::config::check_grace_signal(
            "signal",
            options.signal.unwrap_or(self.config.term_signal),
            options.action.unwrap_or(self.config.orphan_action),
        )
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
    /// root of the unit it was found in (`None`: it is a unit's root). A
    /// member whose uid the unit's owner may not signal is refused here
    /// (and reported).
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
        // Members inherit their root's settings, checked with the root.
        if descendant_of.is_none() {
            self.check_options(&options)?;
        }
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
        let tree = options.tree.unwrap_or(self.config.tree);
        let settings = Settings {
            action: options.action.unwrap_or(self.config.orphan_action),
            target: options.target.unwrap_or(self.config.orphan_target),
            grace: options.grace.unwrap_or(self.config.grace),
            signal: options.signal.unwrap_or(self.config.term_signal),
        };
        let (unit_owner, containment, unit) = match descendant_of {
            Some(root) => {
                let unit = self
                    .units
                    .get(&root)
                    .ok_or(Error::NotTracked { pid: root.pid })?;
                (unit.owner, unit.containment, None)
            }
            // A root refused when its uid changed left its unit, which
            // still holds members under its name (an untrack or stop of
            // its pid reaches them): a second unit of that name would
            // strand them.
            None if self.units.contains_key(&handle.id) => {
                return Err(Error::AlreadyTracked { id: handle.id });
            }
            None => {
                let unit_owner = options.owner.unwrap_or_else(|| self.os.my_uid());
                // The strongest available: a leaf the child was spawned
                // into, else fork events, else children lists.
                let containment = match (tree, self.next_leaf.is_some()) {
                    (false, _) => Containment::None,
                    (true, true) => Containment::Cgroup,
                    (true, false) if self.fork_events.listening() => Containment::ForkEvents,
                    (true, false) => Containment::Scan,
                };
                let unit = Unit::new(unit_owner, containment, owner.is_some(), settings);
                (unit_owner, containment, Some(unit))
            }
        };
        self.authorize(&handle, unit_owner, descendant_of)?;
        let handle = Arc::new(handle);
        let watch = self.exit_watch(&handle);
        // A member that is already this process's child: either a child
        // the monitor owned and released at an untrack (it still reaps it
        // for its waiter: that ownership, waiter included, comes back with
        // it, or the waiter would lose the status to the member's reap), or
        // one reparented here, which the monitor reaps so it does not
        // linger as a zombie.
        let ownership = owner.take().or_else(|| {
            (descendant_of.is_some() && info.ppid == self.my_pid).then(|| {
                let released = self
                    .released
                    .iter()
                    .position(|released| released.handle.id == handle.id && !released.foster);
                released.map_or_else(Ownership::default, |at| {
                    self.released.swap_remove(at).ownership
                })
            })
        });
        let id = handle.id;
        let span = tracing::info_span!("tracked", pid = id.pid, start_time = id.start_time);
        let entry = Entry {
            handle,
            parent,
            named_parent: parent != real_parent,
            action: settings.action,
            target: settings.target,
            tree,
            descendant_of,
            owner: unit_owner,
            containment,
            grace: settings.grace,
            signal: settings.signal,
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
        if tracked.owned {
            self.owned_pids.insert(pid);
        }
        self.tracked.insert(pid, entry);
        // Once it is in the table, so its unit's feed gets it.
        self.emit(Event::Tracked {
            id,
            parent,
            owned: tracked.owned,
        });
        if unit.is_some() && containment != Containment::None && self.adopt_into_next_unit {
            self.adopting = Some(id);
        }
        let unit = unit.map(|mut unit| {
            if containment == Containment::Cgroup {
                unit.cgroup = self.next_leaf.take().and_then(|leaf| {
                    match leaf.watch(WatchKey::Unit(id), &self.ready) {
                        Ok(mut watch) => {
                            // Armed by a first look.
                            let _ = watch.check();
                            Some((leaf, watch))
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot watch the unit's cgroup");
                            None
                        }
                    }
                });
            }
            unit
        });
        self.join_unit(pid, descendant_of.unwrap_or(id), unit);
        if containment == Containment::ForkEvents {
            // Pinned above: from now on, its forks make members.
            self.follow(descendant_of.unwrap_or(id), pid);
        }
        self.targets_changed();
        if tracked.owned {
            // It may have exited before it was handed over.
            self.reap_tracked(pid);
        }
        self.start_watching(pid);
        // A member found after its whole unit was asked to stop is stopped
        // too; one found after the root is gone (the root's last look, or
        // an orphan adopted late) is orphaned with the unit.
        if let Some(root) = descendant_of
            && let Some(unit) = self.units.get(&root)
        {
            match (unit.stopping, unit.root_running) {
                (Some(kill), _) => self.stop_one(pid, kill),
                (None, false) => self.orphan_member(pid, root),
                (None, true) => {}
            }
        }
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

    /// Untracks a unit's root and, with it, every member: nothing stays
    /// tracked, and nothing is ever signalled, on behalf of a registration
    /// that no longer exists. A member alone cannot be untracked (the unit
    /// would find it again); a unit whose root exited is untracked by the
    /// root's pid.
    pub(super) fn untrack(&mut self, pid: i32) -> Result<Tracked, Error> {
        let root = match self.tracked.get(&pid) {
            Some(entry) if !entry.is_root() => {
                return Err(Error::UnitMember {
                    pid,
                    root: entry.root(),
                });
            }
            Some(entry) => entry.id(),
            None => self.rootless_unit(pid).ok_or(Error::NotTracked { pid })?,
        };
        self.untrack_unit(root)
    }

    /// Untracks the unit of `root`, every member with it.
    pub(super) fn untrack_unit(&mut self, root: ProcessId) -> Result<Tracked, Error> {
        let mut described = None;
        for member in self.unit_pids(root) {
            let Some(entry) = self.remove(member) else {
                continue;
            };
            entry
                .span
                .in_scope(|| tracing::debug!(root = %root, "untracked on request"));
            self.emit(Event::Untracked { id: entry.id() });
            described.get_or_insert_with(|| entry.describe());
            if let Some(ownership) = entry.owned {
                self.released.push(Released {
                    handle: entry.handle,
                    ownership,
                    foster: false,
                });
            }
        }
        self.units.remove(&root);
        self.unit_over(root);
        self.unfollow_unit(root);
        described.ok_or(Error::NotTracked { pid: root.pid })
    }

    /// Removes an entry and cancels its pending deadline.
    pub(super) fn remove(&mut self, pid: i32) -> Option<Entry> {
        let mut entry = self.tracked.remove(&pid)?;
        self.owned_pids.remove(&pid);
        self.targets_changed();
        if let Some((_, key)) = entry.escalation.take() {
            self.deadlines.remove(&key);
        }
        self.forget_parent(pid, entry.parent);
        self.waiting.left(entry.id(), entry.root());
        self.leave_unit(pid, entry.root());
        Some(entry)
    }
}
