//! Units contained by fork events: the actor's side of the process
//! connector.
//!
//! One source serves the monitor, opened when the first unit that wants it
//! is made (a monitor that never needs it opens nothing); a refusal is
//! logged once with its cause, and that unit and every later one falls
//! back to scanning. Every unit's root is seeded into a
//! `Lineage<ProcessId>` keyed by the root once pinned, followed by the
//! members the unit's first children-list look finds; from then on the
//! lineage turns each fork by a member into a `Joined` change, which the
//! actor checks and tracks here:
//!
//! - **Joined**: the new process is read (`/proc/<pid>/stat`) and must be
//!   the one its fork event announced: started no later than the event
//!   (a later start time is a process that reused the pid) and a child of
//!   the forking member, unless that member is gone already (its children
//!   were reparented). It is then pinned by `insert` with exactly that
//!   start time (its pidfd opened first, the identity read after it),
//!   authorized against the unit's owner, and tracked as a member with
//!   the same events and settings as a member a scan finds. One that is
//!   refused (another user's, or not the announced process) leaves the
//!   lineage, so nothing it forks is followed either. One already gone
//!   stays in the lineage until its exit event: its queued forks are still
//!   followed, which is how a double fork that finished before the actor
//!   read a single event is caught link by link.
//! - **Left** and **Revived** need nothing: the member's pidfd watch says
//!   when it has really exited (an exit event of a thread group leader may
//!   not be the process's end: see `lineage`), and settles it.
//! - **Stale**: the member's pid went to a new task, so the member exited
//!   unseen; it is settled if its pidfd agrees.
//! - **Overrun**: events were lost; every fork-events unit reads its
//!   members' children lists once, as a scan would.
//!
//! Events are machine-wide, so each wake-up reads at most [`BATCH`] of
//! them before the actor turns to its other inputs (it yields after a full
//! batch), and a fork storm elsewhere cannot starve commands. Before a
//! unit's membership must be complete (its root's or last member's exit,
//! a stop, shutdown) the actor drains what is queued synchronously, so a
//! fork that happened before the exit is never read after the unit ended.

use std::task::{Context, Poll};

use super::Actor;
use crate::connector::{EventSource, OpenEvents, ProcEvent};
use crate::lineage::{Change, Lineage};
use crate::sys_error::SysError;
use crate::{Containment, Error, ErrorKind, ProcessId};

/// Events read per wake-up before the actor turns to its other inputs.
const BATCH: usize = 64;

/// The most events one synchronous drain reads: the socket holds a few
/// thousand, and a drain outpaces the forks that add to them.
const DRAIN_LIMIT: usize = 1 << 16;

/// The monitor's fork events, if units may use them.
pub(super) enum ForkEvents {
    /// Not for this monitor (the config's ceiling, or a test's fake OS).
    Off,
    /// To be opened by the first unit that wants it.
    NotYet(OpenEvents),
    /// Open: units follow forks.
    Listening(Box<Listener>),
    /// It was refused, or failed (the log said why once): units scan.
    Unavailable,
}

impl std::fmt::Debug for ForkEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "Off",
            Self::NotYet(_) => "NotYet",
            Self::Listening(_) => "Listening",
            Self::Unavailable => "Unavailable",
        })
    }
}

/// The open source and the membership its events imply.
pub(super) struct Listener {
    source: Box<dyn EventSource>,
    lineage: Lineage<ProcessId>,
}

/// What reading events brought the actor.
pub(super) enum Polled {
    /// An event that changed some unit's membership, and how.
    Changed(ProcEvent, Vec<Change<ProcessId>>),
    /// Events were lost.
    Overrun,
    /// A full batch about other processes was read; more may wait.
    Busy,
    /// The source failed for good.
    Failed(SysError),
}

impl Listener {
    /// Applies one event; what the actor must act on, if anything.
    fn apply(&mut self, event: ProcEvent) -> Option<Polled> {
        if event == ProcEvent::Overrun {
            return Some(Polled::Overrun);
        }
        let changes = self.lineage.apply(&event);
        (!changes.is_empty()).then_some(Polled::Changed(event, changes))
    }
}

impl ForkEvents {
    pub(super) fn listening(&self) -> bool {
        matches!(self, Self::Listening(_))
    }

    /// Reads events until one needs the actor, a batch is full, or none is
    /// left (`Pending`, the waker registered).
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Polled> {
        let Self::Listening(listener) = self else {
            return Poll::Pending;
        };
        for _ in 0..BATCH {
            let event = match listener.source.poll_event(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Polled::Failed(error)),
                Poll::Ready(Ok(event)) => event,
            };
            if let Some(polled) = listener.apply(event) {
                return Poll::Ready(polled);
            }
        }
        Poll::Ready(Polled::Busy)
    }

    /// Like [`ForkEvents::poll`], for what is queued now, without waiting;
    /// `None`: nothing (more) to act on.
    fn try_next(&mut self) -> Option<Polled> {
        let Self::Listening(listener) = self else {
            return None;
        };
        loop {
            match listener.source.try_event()? {
                Err(error) => return Some(Polled::Failed(error)),
                Ok(event) => {
                    if let Some(polled) = listener.apply(event) {
                        return Some(polled);
                    }
                }
            }
        }
    }

    fn listener(&mut self) -> Option<&mut Listener> {
        match self {
            Self::Listening(listener) => Some(listener),
            Self::Off | Self::NotYet(_) | Self::Unavailable => None,
        }
    }
}

impl Actor {
    /// Opens the source if this is the first unit that wants it. Refused:
    /// said once, with the cause, and never tried again.
    pub(super) async fn listen_for_forks(&mut self) {
        if !matches!(self.fork_events, ForkEvents::NotYet(_)) {
            return;
        }
        let ForkEvents::NotYet(open) =
            std::mem::replace(&mut self.fork_events, ForkEvents::Unavailable)
        else {
            return;
        };
        let started = std::time::Instant::now();
        match open().await {
            Ok(source) => {
                tracing::info!(
                    took = ?started.elapsed(),
                    "units the monitor cannot put in a cgroup follow fork events (the process connector)"
                );
                self.fork_events = ForkEvents::Listening(Box::new(Listener {
                    source,
                    lineage: Lineage::new(),
                }));
            }
            Err(error) if error.is_unavailable() => {
                tracing::info!(%error, "no fork events for units; they fall back to scanning");
            }
            Err(error) => {
                tracing::warn!(%error, "no fork events for units; they fall back to scanning");
            }
        }
    }

    /// Acts on what reading events brought.
    pub(super) async fn on_fork_events(&mut self, polled: Polled) {
        if let Polled::Busy = polled {
            // Let the runtime's other tasks run between two full batches.
            tokio::task::yield_now().await;
            return;
        }
        self.apply_polled(polled);
    }

    fn apply_polled(&mut self, polled: Polled) {
        match polled {
            Polled::Changed(event, changes) => {
                for change in changes {
                    self.apply_change(&event, change);
                }
            }
            Polled::Overrun => self.fork_events_lost(),
            Polled::Busy => {}
            Polled::Failed(error) => self.fork_events_failed(&error),
        }
    }

    /// Reads and applies every event queued now (bounded), so that what a
    /// unit's members forked before this instant is known.
    pub(super) fn drain_fork_events(&mut self) {
        for _ in 0..DRAIN_LIMIT {
            let Some(polled) = self.fork_events.try_next() else {
                return;
            };
            self.apply_polled(polled);
        }
    }

    fn apply_change(&mut self, event: &ProcEvent, change: Change<ProcessId>) {
        match change {
            Change::Joined { unit, pid, parent } => {
                let ProcEvent::Fork(fork) = event else {
                    return;
                };
                self.joined(unit, pid, parent, fork.timestamp_ns);
            }
            Change::Stale { unit, pid } => {
                let gone = self
                    .tracked
                    .get(&pid)
                    .is_some_and(|entry| entry.root() == unit && !self.is_running(entry));
                if gone {
                    self.settle_exit(pid);
                }
            }
            // The pidfd watch settles a real exit.
            Change::Left { .. } | Change::Revived { .. } => {}
        }
    }

    /// `pid` was forked by member `parent` of `root`'s unit at
    /// `forked_ns`: checked, pinned, authorized and tracked as a member.
    fn joined(&mut self, root: ProcessId, pid: i32, parent: i32, forked_ns: u64) {
        if let Some(entry) = self.tracked.get(&pid)
            && self.os.stat(&entry.handle).is_some()
        {
            // Found by a children-list look already, or tracked on its own
            // account (then its own unit follows it).
            let (own_root, containment) = (entry.root(), entry.containment);
            if own_root != root {
                self.unfollow(pid);
                if containment == Containment::ForkEvents {
                    self.follow(own_root, pid);
                }
            }
            return;
        }
        let Some(mut options) = self.member_options(root) else {
            self.unfollow(pid);
            return;
        };
        let Some(limit) = self
            .fork_events
            .listener()
            .map(|listener| listener.source.start_ticks(forked_ns))
        else {
            return;
        };
        // Gone already: nothing to track, and it stays in the lineage until
        // its exit event, so what it forked is still followed.
        let Some(info) = self.os.stat_pid(pid).filter(|info| !info.exited) else {
            return;
        };
        let reparented = || {
            self.os
                .stat_pid(parent)
                .is_none_or(|p| p.exited || p.start_time > limit)
        };
        if info.start_time > limit || (info.ppid != parent && !reparented()) {
            tracing::debug!(
                pid,
                parent,
                root = %root,
                start_time = info.start_time,
                ppid = info.ppid,
                "not the process its fork event announced (the pid was reused); not a member"
            );
            self.unfollow(pid);
            return;
        }
        // Pinned with exactly the start time checked above, so the pidfd
        // holds the process that was read.
        options.start_time = Some(info.start_time);
        match self.insert(pid, options, &mut None, Some(root)) {
            Ok(_) => tracing::debug!(pid, parent, root = %root, "member by fork event"),
            Err(Error::NoSuchProcess { .. } | Error::AlreadyExited { .. }) => {}
            Err(error) => {
                // Another user's (reported as refused), or not trackable:
                // neither it nor anything it forks is a member.
                tracing::debug!(pid, parent, root = %root, %error, "forked process not tracked");
                self.unfollow(pid);
            }
        }
    }

    /// Makes `pid`, just pinned, a member of `root`'s unit in the lineage,
    /// known to be that process from now on. A unit that tracks it takes
    /// it from whatever unit the lineage had it in.
    pub(super) fn follow(&mut self, root: ProcessId, pid: i32) {
        let Some(listener) = self.fork_events.listener() else {
            return;
        };
        let since = listener.source.now_ns();
        if listener.lineage.insert(root, pid, since).is_err() {
            listener.lineage.remove(pid);
            let _ = listener.lineage.insert(root, pid, since);
        }
    }

    /// Takes `pid` out of the lineage: nothing it forks is followed.
    fn unfollow(&mut self, pid: i32) {
        if let Some(listener) = self.fork_events.listener() {
            listener.lineage.remove(pid);
        }
    }

    /// `root`'s unit is over (or untracked): its lineage goes.
    pub(super) fn unfollow_unit(&mut self, root: ProcessId) {
        if let Some(listener) = self.fork_events.listener() {
            listener.lineage.remove_unit(root);
        }
    }

    /// Events were lost: every unit that follows them reads its members'
    /// children lists once, as a scan would.
    fn fork_events_lost(&mut self) {
        self.counters.fork_event_overruns += 1;
        let roots: Vec<ProcessId> = self
            .units
            .iter()
            .filter(|(_, unit)| unit.containment == Containment::ForkEvents)
            .map(|(root, _)| *root)
            .collect();
        tracing::warn!(
            units = roots.len(),
            "fork events were lost (the socket's buffer overflowed); the units read their children lists"
        );
        for root in roots {
            for pid in self.unit_pids(root) {
                self.discover(pid, false);
            }
        }
    }

    /// The source failed for good: every unit it served is contained by
    /// scanning from now on (and says so in status), at once looked at.
    fn fork_events_failed(&mut self, error: &SysError) {
        self.fork_events = ForkEvents::Unavailable;
        let mut units = 0;
        for unit in self.units.values_mut() {
            if unit.containment == Containment::ForkEvents {
                unit.containment = Containment::Scan;
                units += 1;
            }
        }
        for entry in self.tracked.values_mut() {
            if entry.containment == Containment::ForkEvents {
                entry.containment = Containment::Scan;
            }
        }
        self.targets_changed();
        self.unit_rescan.notify_one();
        self.error_event(
            None,
            ErrorKind::Scan,
            format!("fork events stopped ({error}); {units} units fall back to scanning"),
        );
    }
}
