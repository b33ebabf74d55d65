//! The reference model of the model-based test: a plain record of the process
//! world a test case built (who forked whom, with which uid, in which
//! process group) and of the units it registered, and the authorization
//! rule over them, written without any of the actor's machinery.
//!
//! The model does not predict which processes the actor has found as
//! members at a given instant (that depends on scan timing); it knows
//! which processes a unit may ever reach: its root, whatever descends
//! from what it reaches, and whatever shares a process group with what it
//! reaches (a `group` target, or a `stop` naming one), never the
//! monitor's own group. A signal is allowed only on account of a unit
//! that is registered (not untracked) and whose owner may signal the
//! process at that moment; when the ledger cannot tell which unit it was,
//! some such unit must reach the process.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::fake::MY_PID;
use crate::{OrphanAction, ProcessId};

/// The uid allowed everything.
pub(crate) const ROOT_UID: u32 = 0;

/// One process the test created.
#[derive(Debug, Clone)]
pub(crate) struct Proc {
    pub(crate) id: ProcessId,
    /// Its parent when it was born: a unit follows parentage, and a
    /// reparented process keeps the lineage it was born in.
    pub(crate) born_of: i32,
    /// Its real uid now.
    pub(crate) uid: u32,
    /// Its process group (its own pid when it leads one).
    pub(crate) pgrp: i32,
    /// Its uid changed after it was born (a `setuid` helper): the actor
    /// may have found it as a member under its old uid.
    pub(crate) uid_changed: bool,
}

/// One unit the test registered (a successful `track` or `track_child`).
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub(crate) root: ProcessId,
    pub(crate) owner: u32,
    pub(crate) action: OrphanAction,
    pub(crate) grace: Duration,
    /// Handed over with `track_child`: the shutdown policy ends it.
    pub(crate) owned: bool,
    pub(crate) tree: bool,
    /// The parent recorded at track time, whose death orphans the unit.
    pub(crate) parent: ProcessId,
    /// Not untracked since it was tracked.
    pub(crate) registered: bool,
}

#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) procs: BTreeMap<i32, Proc>,
    /// By root pid (pids are never reused in a case; a root tracked again
    /// after its untrack replaces its old unit).
    pub(crate) units: BTreeMap<i32, Unit>,
    next_pid: i32,
}

impl Model {
    pub(crate) fn new() -> Self {
        Self {
            procs: BTreeMap::new(),
            units: BTreeMap::new(),
            // Clear of init, the monitor (100) and the shared groups.
            next_pid: 1000,
        }
    }

    /// A fresh pid; its start time is the pid itself.
    pub(crate) fn new_pid(&mut self) -> i32 {
        self.next_pid += 1;
        self.next_pid
    }

    pub(crate) fn born(&mut self, pid: i32, born_of: i32, uid: u32, pgrp: i32) -> ProcessId {
        let id = ProcessId::new(pid, pid as u64);
        self.procs.insert(
            pid,
            Proc {
                id,
                born_of,
                uid,
                pgrp,
                uid_changed: false,
            },
        );
        id
    }

    pub(crate) fn set_uid(&mut self, pid: i32, uid: u32) {
        if let Some(proc) = self.procs.get_mut(&pid)
            && proc.uid != uid
        {
            proc.uid = uid;
            proc.uid_changed = true;
        }
    }

    pub(crate) fn uid(&self, pid: i32) -> Option<u32> {
        self.procs.get(&pid).map(|p| p.uid)
    }

    /// Every process `root`'s unit may ever reach: the root, what was born
    /// of anything it reaches, and what shares a process group with
    /// anything it reaches (a `group` target, or a `stop` naming one),
    /// never the monitor's own group.
    pub(crate) fn reach(&self, root: i32) -> BTreeSet<i32> {
        let mut reach = BTreeSet::from([root]);
        loop {
            let groups: BTreeSet<i32> = reach
                .iter()
                .filter_map(|pid| self.procs.get(pid))
                .map(|p| p.pgrp)
                .filter(|pgrp| *pgrp != MY_PID)
                .collect();
            let more: Vec<i32> = self
                .procs
                .values()
                .filter(|p| !reach.contains(&p.id.pid))
                .filter(|p| reach.contains(&p.born_of) || groups.contains(&p.pgrp))
                .map(|p| p.id.pid)
                .collect();
            if more.is_empty() {
                return reach;
            }
            reach.extend(more);
        }
    }

    /// The authorization rule: may `unit`'s owner signal `pid` now?
    pub(crate) fn owner_may_signal(&self, unit: &Unit, pid: i32) -> bool {
        unit.owner == ROOT_UID || self.uid(pid) == Some(unit.owner)
    }

    /// Checks one signal to `id`, sent on account of the unit rooted at
    /// `unit` (`None`: the ledger could not tell which, so any registered
    /// unit that reaches it will do). `shutdown`: sent while the monitor
    /// shut down, which ends owned units only.
    pub(crate) fn check_signal(
        &self,
        id: ProcessId,
        unit: Option<i32>,
        shutdown: bool,
    ) -> Result<(), String> {
        let proc = self
            .procs
            .get(&id.pid)
            .ok_or_else(|| format!("{id} was signalled, but no test process has that pid"))?;
        if proc.id != id {
            return Err(format!(
                "{id} was signalled, but {} holds that pid",
                proc.id
            ));
        }
        let allows = |unit: &Unit| {
            unit.registered && self.owner_may_signal(unit, id.pid) && (!shutdown || unit.owned)
        };
        match unit {
            Some(root) => {
                let unit = self
                    .units
                    .get(&root)
                    .ok_or_else(|| format!("{id} was signalled for {root}, never a unit's root"))?;
                if !allows(unit) {
                    return Err(format!(
                        "{id} (uid {}) was signalled for the unit of {root} (owner {}, \
                         registered {}, owned {}, shutdown {shutdown})",
                        proc.uid, unit.owner, unit.registered, unit.owned
                    ));
                }
            }
            None => {
                let any = self
                    .units
                    .values()
                    .any(|unit| allows(unit) && self.reach(unit.root.pid).contains(&id.pid));
                if !any {
                    return Err(format!(
                        "{id} (uid {}) was signalled, but no registered unit whose owner may \
                         signal it reaches it (shutdown {shutdown})",
                        proc.uid
                    ));
                }
            }
        }
        Ok(())
    }
}
