//! Waiting for what the monitor holds to end: one process by identity
//! (`wait_for`), every unit at once (`drain`), and the events of one unit
//! (`subscribe_unit`).
//!
//! Every waiter lives here, in the actor, and is answered where the state
//! changes: an exit ([`Actor::finish`]), a removal without an exit
//! ([`Actor::remove`]: untrack, refusal), the end of a unit. Nothing polls.
//! Two things wait until the message that caused them is fully handled
//! ([`Actor::after_message`]): a unit's `UnitEnded` reaches its feed after
//! the exit that ended the unit (which the actor reports after the unit is
//! gone), and a drain is answered once it has seen every exit the message
//! caused.

use std::collections::{BTreeSet, HashMap, VecDeque};

use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use super::Actor;
use crate::{DrainReport, Error, Event, ExitInfo, ExitStatus, ProcessId};

/// How many ends the monitor remembers, so a `wait_for` that comes right
/// after its process ended (a job that took a millisecond) gets its end
/// instead of `NotTracked`. About 32 bytes each, allocated as they come.
const REMEMBERED_ENDS: usize = 1024;

/// The most events one unit's feed keeps for a subscriber that has not
/// read them (it then sees `Lagged`). A broadcast channel allocates every
/// slot when it is made, so this stays well below the monitor's
/// `event_capacity`: a unit's life is a few events per process.
pub(super) const UNIT_FEED_CAPACITY: usize = 256;

type ExitReply = oneshot::Sender<Result<ExitInfo, Error>>;

/// Resolves at `deadline`; never without one. Made anew on each turn of
/// the actor's loop: the timer is only registered when it is polled, which
/// happens only while a drain waits.
pub(super) async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A drain in progress.
#[derive(Debug)]
struct Drain {
    /// The units it waits for (roots) that have not ended yet.
    roots: BTreeSet<ProcessId>,
    deadline: Instant,
    ended: Vec<ExitInfo>,
    reply: oneshot::Sender<DrainReport>,
}

/// The actor's waiters, feeds and recent ends.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    /// Who waits for the end of which tracked process.
    exits: HashMap<ProcessId, Vec<ExitReply>>,
    /// The last ends, oldest first.
    recent: VecDeque<ExitInfo>,
    drains: Vec<Drain>,
    /// Each subscribed unit's own event channel, by root.
    feeds: HashMap<ProcessId, broadcast::Sender<Event>>,
    /// Processes removed while the current message is handled, with their
    /// unit's root: the events about them that follow (their exit, their
    /// untrack) still reach their unit's feed. Kept only while a feed
    /// exists.
    departed: HashMap<ProcessId, ProcessId>,
    /// `UnitEnded` events of subscribed units, held until the message is
    /// handled so they come last on their feeds.
    ended_units: Vec<Event>,
}

impl Waiting {
    /// Whether anything waits after a message.
    fn idle(&self) -> bool {
        self.drains.is_empty() && self.feeds.is_empty()
    }

    /// When the earliest drain gives up.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.drains.iter().map(|drain| drain.deadline).min()
    }

    /// `id` (of `root`'s unit) ended: its waiters and drains learn how.
    pub(super) fn exited(&mut self, id: ProcessId, root: ProcessId, status: Option<ExitStatus>) {
        let end = ExitInfo { id, status };
        for waiter in self.exits.remove(&id).into_iter().flatten() {
            // The caller may have stopped waiting (a timeout); fine.
            let _ = waiter.send(Ok(end));
        }
        for drain in &mut self.drains {
            if drain.roots.contains(&root) {
                drain.ended.push(end);
            }
        }
        if self.recent.len() == REMEMBERED_ENDS {
            self.recent.pop_front();
        }
        self.recent.push_back(end);
    }

    /// `id` (of `root`'s unit) left the monitor without an exit (untrack,
    /// refusal): whoever waited for its end is told, since no end will
    /// come.
    pub(super) fn left(&mut self, id: ProcessId, root: ProcessId) {
        for waiter in self.exits.remove(&id).into_iter().flatten() {
            let _ = waiter.send(Err(Error::Untracked { id }));
        }
        if !self.feeds.is_empty() {
            self.departed.insert(id, root);
        }
    }

    /// The root of a process removed during this message, if a feed may
    /// want its events.
    fn departed_root(&self, id: ProcessId) -> Option<ProcessId> {
        self.departed.get(&id).copied()
    }

    /// A unit ended; its feed, if any, gets `UnitEnded` once the message
    /// is handled.
    pub(super) fn unit_ended(&mut self, event: &Event) {
        if let Event::UnitEnded { root, .. } = event
            && self.feeds.contains_key(root)
        {
            self.ended_units.push(event.clone());
        }
    }

    /// Sends `event` to the feed of `root`'s unit, if it has one.
    fn feed(&self, root: ProcessId, event: &Event) {
        if let Some(feed) = self.feeds.get(&root) {
            // No receiver left is not an error: the feed is closed below
            // once the unit is gone.
            let _ = feed.send(event.clone());
        }
    }
}

impl Actor {
    /// Copies an event to its unit's feed. `UnitEnded` is held back (see
    /// [`Waiting::unit_ended`]).
    pub(super) fn feed_unit(&self, event: &Event) {
        if self.waiting.feeds.is_empty() {
            return;
        }
        let root = match event {
            Event::UnitEnded { .. } => return,
            Event::Refused { root, .. } => Some(*root),
            Event::Reaped { pid, .. } => self.tracked.get(pid).map(super::Entry::root),
            other => other.id().and_then(|id| {
                self.tracked
                    .get(&id.pid)
                    .filter(|entry| entry.id() == id)
                    .map(super::Entry::root)
                    .or_else(|| self.waiting.departed_root(id))
            }),
        };
        if let Some(root) = root {
            self.waiting.feed(root, event);
        }
    }

    /// Registers a waiter for the end of `id`; answers at once when it is
    /// not tracked (or ended a moment ago).
    pub(super) fn wait_for(&mut self, id: ProcessId, reply: ExitReply) {
        if !self.config.enabled {
            let _ = reply.send(Err(Error::Disabled));
            return;
        }
        let pid = id.pid;
        let running = match self.tracked.get(&pid) {
            Some(entry) if entry.id() == id => self.is_running(entry),
            Some(entry) => {
                let _ = reply.send(Err(Error::Stale {
                    id,
                    now: Some(entry.id()),
                }));
                return;
            }
            None => {
                let known = self.waiting.recent.iter().rev().find(|end| end.id == id);
                let _ = reply.send(known.copied().ok_or(Error::NotTracked { pid }));
                return;
            }
        };
        let waiters = self.waiting.exits.entry(id).or_default();
        // Waits given up on (a timeout dropped them) are not kept forever.
        waiters.retain(|waiter| !waiter.is_closed());
        waiters.push(reply);
        // An exit nothing has reported yet (a process only the scan
        // watches): settle it now rather than at the next scan.
        if !running {
            self.settle_exit(pid);
        }
    }

    /// A receiver of the events of the unit `id` names (its root, or one of
    /// its members).
    pub(super) fn subscribe_unit(
        &mut self,
        id: ProcessId,
    ) -> Result<broadcast::Receiver<Event>, Error> {
        if !self.config.enabled {
            return Err(Error::Disabled);
        }
        let root = if self.units.contains_key(&id) {
            id
        } else {
            match self.tracked.get(&id.pid) {
                Some(entry) if entry.id() == id => entry.root(),
                Some(entry) => {
                    return Err(Error::Stale {
                        id,
                        now: Some(entry.id()),
                    });
                }
                None => return Err(Error::NotTracked { pid: id.pid }),
            }
        };
        let feed = self
            .waiting
            .feeds
            .entry(root)
            .or_insert_with(|| broadcast::channel(UNIT_FEED_CAPACITY).0);
        Ok(feed.subscribe())
    }

    /// Terminates every unit (its processes' own signal, grace and
    /// `SIGKILL`) and registers the drain that waits for them.
    pub(super) fn drain(
        &mut self,
        timeout: std::time::Duration,
        reply: oneshot::Sender<DrainReport>,
    ) {
        let roots: BTreeSet<ProcessId> = self.units.keys().copied().collect();
        tracing::info!(units = roots.len(), ?timeout, "draining");
        // Registered first, so exits the signals cause at once are seen.
        self.waiting.drains.push(Drain {
            roots: roots.clone(),
            deadline: crate::limits::deadline(Instant::now(), timeout),
            ended: Vec::new(),
            reply,
        });
        for root in roots {
            self.drain_unit(root);
        }
    }

    /// Starts termination of one whole unit, whether its root still runs
    /// or only members are left.
    fn drain_unit(&mut self, root: ProcessId) {
        let root_tracked = self
            .tracked
            .get(&root.pid)
            .is_some_and(|entry| entry.id() == root);
        if root_tracked {
            // Can only fail for an untracked pid, which this is not.
            let _ = self.stop(root.pid, false, None);
            return;
        }
        // Only members are left: looked at once more, then stopped as a
        // rootless unit is (nothing left of it is not an error here).
        self.discover_tree(root);
        let _ = self.stop_unit(root, false);
    }

    /// Done after every message: feeds get their units' ends and close
    /// with them, drains whose units are all gone (or whose time is up)
    /// are answered.
    pub(super) fn after_message(&mut self) {
        if self.waiting.idle() {
            return;
        }
        for event in std::mem::take(&mut self.waiting.ended_units) {
            if let Event::UnitEnded { root, .. } = &event
                && let Some(feed) = self.waiting.feeds.remove(root)
            {
                let _ = feed.send(event);
            }
        }
        // A unit untracked whole ends without `UnitEnded`: its feed closes
        // after the `Untracked` events.
        let units = &self.units;
        self.waiting
            .feeds
            .retain(|root, _| units.contains_key(root));
        self.waiting.departed.clear();
        self.settle_drains(false);
    }

    /// Answers the drains that are done: every unit gone, the deadline
    /// passed, or (with `stopping`) the monitor stopping.
    pub(super) fn settle_drains(&mut self, stopping: bool) {
        if self.waiting.drains.is_empty() {
            return;
        }
        let now = Instant::now();
        let drains = std::mem::take(&mut self.waiting.drains);
        for mut drain in drains {
            drain.roots.retain(|root| self.units.contains_key(root));
            if !drain.roots.is_empty() && now < drain.deadline && !stopping {
                self.waiting.drains.push(drain);
                continue;
            }
            let mut remaining: Vec<ProcessId> = drain
                .roots
                .iter()
                .flat_map(|root| self.unit_processes(*root))
                .collect();
            remaining.sort_unstable();
            remaining.dedup();
            if !remaining.is_empty() {
                tracing::warn!(
                    remaining = remaining.len(),
                    "drain stopped waiting; processes remain"
                );
            }
            // The caller may have stopped waiting; the work is done anyway.
            let _ = drain.reply.send(DrainReport {
                ended: drain.ended,
                remaining,
            });
        }
    }

    /// The living processes of a unit: its tracked ones, and for a cgroup
    /// unit the processes in its leaf nobody has looked at yet.
    fn unit_processes(&self, root: ProcessId) -> Vec<ProcessId> {
        let mut ids: Vec<ProcessId> = self
            .unit_pids(root)
            .into_iter()
            .filter_map(|pid| self.tracked.get(&pid))
            .filter(|entry| self.is_running(entry))
            .map(super::Entry::id)
            .collect();
        let leaf = self
            .units
            .get(&root)
            .and_then(|unit| unit.cgroup.as_ref())
            .and_then(|(leaf, _)| leaf.procs().ok());
        for pid in leaf.unwrap_or_default() {
            if self.tracked.contains_key(&pid) {
                continue;
            }
            if let Some(info) = self.os.stat_pid(pid).filter(|info| !info.exited) {
                ids.push(ProcessId::new(pid, info.start_time));
            }
        }
        ids
    }
}
