//! The ledger of the model-based test: the tracked set rebuilt from the event
//! stream, step by step, and the invariants checked against it, against
//! the fake's signal log and against `status()`.
//!
//! Every signal the actor sends outside shutdown is followed, in the same
//! turn and before any other event, by its `Signalled` or `Killed` event,
//! so the k-th such event names the k-th signal the fake recorded. That
//! places each signal exactly in the event stream: the process must be in
//! the tracked set rebuilt from `Tracked`, `Untracked` and `Exited` up to
//! that point. Its unit is the one `status()` shows it in at the end of
//! the step (a membership never changes while it lasts); a membership that
//! began and ended within one step is checked against every unit that may
//! reach the process. Shutdown also signals without events; those signals
//! are checked against the process's latest membership. A unit counts as
//! registered until the end of the step that untracked it: a signal after
//! the untrack in that step would reach a process whose `Untracked` came
//! first, which the rebuilt set catches.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::model::{Model, ROOT_UID};
use crate::fake::{FakeOs, Sent};
use crate::{Containment, ErrorKind, Event, ProcessId, Signal, Status};

/// One stretch of time a process was tracked, and the root of the unit it
/// was tracked in, once a status has shown it.
#[derive(Debug)]
struct Membership {
    unit: Option<i32>,
}

/// A signal waiting for its membership's unit to be known.
#[derive(Debug)]
struct Pending {
    id: ProcessId,
    membership: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    memberships: Vec<Membership>,
    /// Tracked now, as the events tell it.
    open: HashMap<ProcessId, usize>,
    /// Each process's latest membership, open or closed.
    latest: HashMap<ProcessId, usize>,
    /// Signals of the fake's log already accounted for.
    sent_seen: usize,
    exited: HashSet<ProcessId>,
    reaped: HashSet<i32>,
}

/// What one step left behind, to be checked.
pub(crate) struct StepOutcome<'a> {
    pub(crate) events: &'a [Event],
    pub(crate) sent: &'a [Sent],
    /// `None` after shutdown.
    pub(crate) status: Option<&'a Status>,
    pub(crate) shutdown: bool,
}

impl Ledger {
    /// Replays one step's events; checks every signal, exit and reap, then
    /// the status.
    pub(crate) fn step(
        &mut self,
        model: &Model,
        fake: &FakeOs,
        step: StepOutcome<'_>,
    ) -> Result<(), String> {
        let mut pending = Vec::new();
        for event in step.events {
            match event {
                Event::Tracked { id, .. } => {
                    if self.open.contains_key(id) {
                        return Err(format!("{id} tracked twice at once"));
                    }
                    let index = self.memberships.len();
                    self.memberships.push(Membership { unit: None });
                    self.open.insert(*id, index);
                    self.latest.insert(*id, index);
                }
                Event::Untracked { id } => {
                    self.open
                        .remove(id)
                        .ok_or_else(|| format!("{id} untracked while not tracked"))?;
                }
                Event::Exited { id, status } => {
                    self.open
                        .remove(id)
                        .ok_or_else(|| format!("{id} exited while not tracked"))?;
                    if !self.exited.insert(*id) {
                        return Err(format!("{id} reported exited twice"));
                    }
                    if let Some(status) = status
                        && fake.exit_status(id.pid) != Some(*status)
                    {
                        return Err(format!(
                            "{id} exited with {status}, but it ended with {:?}",
                            fake.exit_status(id.pid)
                        ));
                    }
                }
                Event::Reaped { pid, status } => {
                    if !self.reaped.insert(*pid) {
                        return Err(format!("{pid} reaped twice"));
                    }
                    if fake.exit_status(*pid) != Some(*status) {
                        return Err(format!(
                            "{pid} reaped with {status}, but it ended with {:?}",
                            fake.exit_status(*pid)
                        ));
                    }
                }
                Event::Signalled { id, signal } => {
                    self.signal(*id, *signal, &step, &mut pending)?;
                }
                Event::Killed { id } => self.signal(*id, Signal::KILL, &step, &mut pending)?,
                Event::Refused { id, uid, owner, .. }
                    if *owner == ROOT_UID || uid == owner || model.uid(id.pid) != Some(*uid) =>
                {
                    return Err(format!("a wrong refusal: {event}"));
                }
                // Only the monitor's own process group is refused this way;
                // nothing in the fake fails to reap or to die of SIGKILL.
                Event::Error { kind, .. } if *kind != ErrorKind::Signal => {
                    return Err(format!("an unexpected error: {event}"));
                }
                _ => {}
            }
        }
        // What is left was sent without an event: only shutdown does that.
        while self.sent_seen < step.sent.len() {
            if !step.shutdown {
                return Err(format!(
                    "signals without their events: {:?}",
                    &step.sent[self.sent_seen..]
                ));
            }
            pending.push(self.unannounced(step.sent[self.sent_seen].id)?);
            self.sent_seen += 1;
        }
        if let Some(status) = step.status {
            self.check_status(model, status)?;
        }
        for Pending { id, membership } in pending {
            let unit = self.memberships[membership].unit;
            model
                .check_signal(id, unit, step.shutdown)
                .map_err(|error| format!("only members are signalled: {error}"))?;
        }
        Ok(())
    }

    /// The next signal in the log must be this one, to a tracked process.
    /// In shutdown, signals sent without events may come first.
    fn signal(
        &mut self,
        id: ProcessId,
        signal: Signal,
        step: &StepOutcome<'_>,
        pending: &mut Vec<Pending>,
    ) -> Result<(), String> {
        loop {
            let next = step
                .sent
                .get(self.sent_seen)
                .ok_or_else(|| format!("an event says {id} got {signal}, the log has nothing"))?;
            self.sent_seen += 1;
            if next.id == id && next.signal == signal {
                break;
            }
            if !step.shutdown {
                return Err(format!(
                    "an event says {id} got {signal}, the log says {} got {}",
                    next.id, next.signal
                ));
            }
            pending.push(self.unannounced(next.id)?);
        }
        let membership = *self
            .open
            .get(&id)
            .ok_or_else(|| format!("{id} got {signal} while not tracked"))?;
        pending.push(Pending { id, membership });
        Ok(())
    }

    /// A signal sent in shutdown with no event: the process's latest
    /// membership answers for it.
    fn unannounced(&self, id: ProcessId) -> Result<Pending, String> {
        let membership = *self
            .latest
            .get(&id)
            .ok_or_else(|| format!("{id} was signalled in shutdown, never tracked"))?;
        Ok(Pending { id, membership })
    }

    /// The status agrees with the events and with itself: every tracked
    /// entry is an open membership and the other way round, every entry
    /// belongs to a listed unit, member counts match, every unit is one
    /// the test registered (and has not untracked), with its owner, and no
    /// member is another user's unless its uid changed after it was found.
    fn check_status(&mut self, model: &Model, status: &Status) -> Result<(), String> {
        if status.tracked_count != status.tracked.len() {
            return Err(format!(
                "tracked_count {} for {} entries",
                status.tracked_count,
                status.tracked.len()
            ));
        }
        if status.tracked.len() != self.open.len() {
            let listed: Vec<ProcessId> = status.tracked.iter().map(|t| t.id).collect();
            let mut open: Vec<ProcessId> = self.open.keys().copied().collect();
            open.sort_unstable();
            return Err(format!("status tracks {listed:?}, the events say {open:?}"));
        }
        let units: BTreeMap<i32, &crate::UnitStatus> =
            status.units.iter().map(|u| (u.root.pid, u)).collect();
        let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
        for entry in &status.tracked {
            let root = entry.descendant_of.unwrap_or(entry.id).pid;
            let index = *self
                .open
                .get(&entry.id)
                .ok_or_else(|| format!("{} is tracked without a Tracked event", entry.id))?;
            let membership = &mut self.memberships[index];
            if membership.unit.is_some_and(|unit| unit != root) {
                return Err(format!("{} moved from one unit to another", entry.id));
            }
            membership.unit = Some(root);
            let unit = units
                .get(&root)
                .ok_or_else(|| format!("{} is tracked in {root}, which lists no unit", entry.id))?;
            if entry.descendant_of.is_none() && !unit.root_running {
                return Err(format!("{} is a root, its unit says it is gone", entry.id));
            }
            *counts.entry(root).or_default() += 1;
            let registered = model
                .units
                .get(&root)
                .ok_or_else(|| format!("{} is tracked in {root}, never registered", entry.id))?;
            if !registered.registered {
                return Err(format!(
                    "{} outlived its unit: {root} was untracked",
                    entry.id
                ));
            }
            let proc = &model.procs[&entry.id.pid];
            if !model.owner_may_signal(registered, entry.id.pid) && !proc.uid_changed {
                return Err(format!(
                    "{} (uid {}) is a member of {root}, owned by {}",
                    entry.id, proc.uid, registered.owner
                ));
            }
        }
        for (root, unit) in &units {
            let expected = model
                .units
                .get(root)
                .filter(|m| m.root == unit.root && m.registered)
                .ok_or_else(|| format!("unit {} was never registered, or untracked", unit.root))?;
            let containment = if expected.tree {
                Containment::Scan
            } else {
                Containment::None
            };
            if unit.owner != expected.owner
                || unit.owned != expected.owned
                || unit.containment != containment
            {
                return Err(format!("unit {} as listed: {unit:?}", unit.root));
            }
            let root_tracked = status
                .tracked
                .iter()
                .any(|t| t.id == unit.root && t.descendant_of.is_none());
            if unit.root_running != root_tracked {
                return Err(format!(
                    "unit {} says its root runs: {}",
                    unit.root, unit.root_running
                ));
            }
            let held = counts.get(root).copied().unwrap_or(0);
            if unit.members != held || held == 0 {
                return Err(format!(
                    "unit {} counts {} members and holds {held}",
                    unit.root, unit.members
                ));
            }
        }
        Ok(())
    }
}
