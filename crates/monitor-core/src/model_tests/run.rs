//! A case in progress: the monitor over the fake, the model beside it,
//! and each operation applied to both.

use std::sync::{Arc, Mutex};

use proptest::sample::Index;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::ledger::Ledger;
use super::model::{Model, ROOT_UID, Unit};
use super::ops::{Group, Op, Opts};
use super::{CHECK, GRACE, KILL_TIMEOUT, SLACK, UNIT_SCAN};
use crate::fake::{FakeChild, FakeOs, FakeProc, MY_PID};
use crate::harness::Harness;
use crate::{
    ChildProcess, Config, Event, ExitStatus, Monitor, MonitorHandle, OrphanAction, ProcessId,
    ShutdownPolicy, Status, Tracked,
};

/// An owned child's `wait`, awaited on a task of its own.
pub(super) struct Waiter {
    pub(super) id: ProcessId,
    pub(super) result: Arc<Mutex<Option<Result<ExitStatus, String>>>>,
}

/// The processes a unit held when its root's parent died, and when they
/// must all be gone.
pub(super) struct Prediction {
    pub(super) root: i32,
    pub(super) held: Vec<ProcessId>,
    pub(super) due: Instant,
}

pub(super) struct Run {
    pub(super) os: Arc<FakeOs>,
    pub(super) monitor: Option<Monitor>,
    pub(super) handle: MonitorHandle,
    pub(super) events: broadcast::Receiver<Event>,
    pub(super) model: Model,
    pub(super) ledger: Ledger,
    /// The status at the end of the last step.
    pub(super) last: Status,
    pub(super) waiters: Vec<Waiter>,
    pub(super) predictions: Vec<Prediction>,
}

impl Run {
    pub(super) async fn start(policy: ShutdownPolicy) -> Self {
        let config = Config {
            check_interval: CHECK,
            unit_scan_interval: UNIT_SCAN,
            grace: GRACE,
            kill_timeout: KILL_TIMEOUT,
            shutdown: policy,
            // Every event of a case fits: a lagging ledger would be blind.
            event_capacity: 1 << 16,
            ..Config::default()
        };
        let Harness {
            os,
            monitor,
            handle,
            events,
            ..
        } = Harness::start(config).await;
        let last = handle.status().await.expect("a fresh monitor answers");
        Self {
            os,
            monitor: Some(monitor),
            handle,
            events,
            model: Model::new(),
            ledger: Ledger::default(),
            last,
            waiters: Vec::new(),
            predictions: Vec::new(),
        }
    }

    fn running(&self) -> Vec<i32> {
        let os = &self.os;
        self.model
            .procs
            .keys()
            .copied()
            .filter(|pid| os.is_running(*pid))
            .collect()
    }

    fn spawn(&mut self, ppid: i32, uid: u32, pgrp: Option<i32>, stubborn: bool) -> ProcessId {
        let pid = self.model.new_pid();
        let pgrp = pgrp.unwrap_or(pid);
        self.os.spawn_with(
            pid,
            FakeProc {
                start_time: pid as u64,
                ppid,
                pgrp,
                ignores_term: stubborn,
                uid,
                ..FakeProc::default()
            },
        );
        self.model.born(pid, ppid, uid, pgrp)
    }

    /// Runs one operation; returns the root it untracked, if it did.
    pub(super) async fn apply(&mut self, op: &Op) -> Result<Option<i32>, String> {
        match op {
            Op::Start {
                uid,
                group,
                stubborn,
                kids,
                track,
            } => {
                let parent = self.spawn(1, *uid, None, false);
                let pgrp = match group {
                    Group::Own => None,
                    Group::Shared(pgrp) => Some(*pgrp),
                    Group::Monitors => Some(MY_PID),
                };
                let id = self.spawn(parent.pid, *uid, pgrp, *stubborn);
                // Forked before the track, in their parent's group.
                let pgrp = self.model.procs[&id.pid].pgrp;
                for _ in 0..*kids {
                    self.spawn(id.pid, *uid, Some(pgrp), *stubborn);
                }
                if let Some(opts) = track {
                    self.track(id.pid, opts).await?;
                }
            }
            Op::StartOwned {
                uid,
                stubborn,
                opts,
            } => {
                let id = self.spawn(MY_PID, *uid, None, *stubborn);
                let child = ChildProcess::Fake(FakeChild::new(&self.os, id));
                let owner = opts.owner.of(*uid);
                let tracking = self.handle.track_child_with(child, opts.options(owner));
                if let Ok(mut owned) = tracking.await {
                    self.registered(owned.tracked(), owner, opts, true)?;
                    let result = Arc::new(Mutex::new(None));
                    let slot = Arc::clone(&result);
                    tokio::spawn(async move {
                        let status = owned.wait().await.map_err(|error| error.to_string());
                        *slot.lock().expect("no panic holds it") = Some(status);
                    });
                    self.waiters.push(Waiter { id, result });
                }
            }
            Op::Track { pick, opts } => {
                if let Some(pid) = pick_from(pick, &self.running()) {
                    self.track(pid, opts).await?;
                }
            }
            Op::Untrack { pick } => {
                let roots: Vec<i32> = self.model.units.keys().copied().collect();
                let Some(root) = pick_from(pick, &roots) else {
                    return Ok(None);
                };
                return Ok(self.handle.untrack(root).await.ok().map(|_| root));
            }
            Op::Exit { pick, code } => {
                if let Some(pid) = pick_from(pick, &self.running()) {
                    self.os.exit_with(pid, ExitStatus::Exited(*code));
                }
            }
            Op::ParentDeath { pick } => self.parent_death(pick),
            Op::Fork {
                pick,
                uid,
                setsid,
                stubborn,
            } => {
                if let Some(parent) = pick_from(pick, &self.running()) {
                    let proc = &self.model.procs[&parent];
                    let uid = uid.unwrap_or(proc.uid);
                    let pgrp = (!setsid).then_some(proc.pgrp);
                    self.spawn(parent, uid, pgrp, *stubborn);
                }
            }
            Op::SetUid { pick, tracked, uid } => {
                let mut pids = self.running();
                if *tracked {
                    pids.retain(|pid| self.last.tracked.iter().any(|t| t.id.pid == *pid));
                }
                if let Some(pid) = pick_from(pick, &pids) {
                    self.os.set_uid(pid, *uid);
                    self.model.set_uid(pid, *uid);
                }
            }
            Op::Stop { pick, kill, target } => {
                let mut pids: Vec<i32> = self.last.tracked.iter().map(|t| t.id.pid).collect();
                pids.extend(self.model.units.keys());
                pids.sort_unstable();
                pids.dedup();
                if let Some(pid) = pick_from(pick, &pids) {
                    // Refusals (not tracked, a member) are fine here.
                    let _ = match (target, kill) {
                        (Some(target), _) => self.handle.stop(pid, *kill, *target).await,
                        (None, true) => self.handle.kill(pid).await,
                        (None, false) => self.handle.terminate(pid).await,
                    };
                }
            }
            Op::Advance(duration) => tokio::time::sleep(*duration).await,
        }
        Ok(None)
    }

    async fn track(&mut self, pid: i32, opts: &Opts) -> Result<(), String> {
        let owner = opts.owner.of(self.model.procs[&pid].uid);
        if let Ok(tracked) = self.handle.track_with(pid, opts.options(owner)).await {
            self.registered(&tracked, owner, opts, false)?;
        }
        Ok(())
    }

    /// Records a unit the actor accepted, which it may only have if its
    /// owner may signal its root.
    fn registered(
        &mut self,
        tracked: &Tracked,
        owner: u32,
        opts: &Opts,
        owned: bool,
    ) -> Result<(), String> {
        let pid = tracked.id.pid;
        if owner != ROOT_UID && self.model.uid(pid) != Some(owner) {
            return Err(format!(
                "{} (uid {:?}) tracked as a root for uid {owner}",
                tracked.id,
                self.model.uid(pid)
            ));
        }
        let unit = Unit {
            root: tracked.id,
            owner,
            action: opts.action,
            grace: opts.grace,
            owned,
            tree: opts.tree,
            parent: tracked.parent,
            registered: true,
        };
        self.model.units.insert(pid, unit);
        Ok(())
    }

    /// Kills the recorded parent of a registered unit's root; predicts the
    /// end of what the unit holds if its action ends processes.
    fn parent_death(&mut self, pick: &Index) {
        let candidates: Vec<i32> = self
            .model
            .units
            .values()
            .filter(|unit| unit.registered && unit.parent.pid > 1 && unit.parent.pid != MY_PID)
            .filter(|unit| self.os.is_running(unit.parent.pid))
            .map(|unit| unit.root.pid)
            .collect();
        let Some(root) = pick_from(pick, &candidates) else {
            return;
        };
        let unit = &self.model.units[&root];
        self.os.exit_with(unit.parent.pid, ExitStatus::Exited(1));
        let root_tracked = self
            .last
            .tracked
            .iter()
            .any(|t| t.id == unit.root && t.descendant_of.is_none());
        if unit.action == OrphanAction::Notify || !root_tracked {
            return;
        }
        let held = self
            .last
            .tracked
            .iter()
            .filter(|t| t.descendant_of.unwrap_or(t.id) == unit.root)
            .map(|t| t.id)
            .collect();
        self.predictions.push(Prediction {
            root,
            held,
            due: Instant::now() + CHECK + unit.grace * 2 + SLACK,
        });
    }
}

fn pick_from(pick: &Index, from: &[i32]) -> Option<i32> {
    (!from.is_empty()).then(|| *pick.get(from))
}
