//! The actor: the one task that owns every tracked process, every deadline
//! and every counter. Commands, scan reports, SIGCHLD wake-ups, pidfd
//! wake-ups and expired deadlines arrive here one at a time; nothing else
//! mutates state.
//!
//! This file holds the state and the run loop; the handlers live beside it:
//! `tracking` (spawn, track, untrack), `units` (membership, owners,
//! authorization, a unit's end), `watches` (pidfd wake-ups), `escalation`
//! (orphan actions, stops and their deadlines), `tree` (finding members:
//! descendants and process groups), `fork_events` (members from the
//! kernel's fork events), `reaping` (sweeps and settling exits),
//! `control` (control calls by identity, owned children's requests),
//! `shutdown`, `waiting` (waiters for an end, drains, per-unit feeds).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::time::{DelayQueue, delay_queue};
use tracing::Span;

use crate::cgroup::Subtree;
use crate::connector::OpenEvents;
use crate::event::EventBus;
use crate::os::{Os, ProcHandle};
use crate::scan::{Observation, ScanMsg, ScanReport, ScanTarget, Snapshot, UnitSnapshot};
use crate::watch::{Watch, WatchKey};

use self::escalation::Escalation;
use self::fork_events::ForkEvents;

mod control;
mod escalation;
mod fork_events;
mod reaping;
mod shutdown;
mod tracking;
mod tree;
mod units;
mod waiting;
mod watches;
use self::units::Unit;
use crate::status::{Counters, ProcessState, ScanSummary, Status, TrackedStatus};
use crate::{
    ChildProcess, Config, Containment, DrainReport, Error, ErrorKind, Event, ExitInfo, ExitStatus,
    OrphanAction, OrphanTarget, OwnedChild, ProcessId, ProcessRef, ReapPolicy, Signal,
    SpawnOptions, TrackChildError, TrackOptions, Tracked,
};
pub(crate) use control::Control;

/// A request from a [`crate::MonitorHandle`].
#[derive(Debug)]
pub(crate) enum Command {
    Track {
        pid: i32,
        options: TrackOptions,
        reply: oneshot::Sender<Result<Tracked, Error>>,
    },
    TrackChild {
        child: ChildProcess,
        options: TrackOptions,
        reply: oneshot::Sender<Result<OwnedChild, TrackChildError>>,
    },
    Spawn {
        command: Box<std::process::Command>,
        options: SpawnOptions,
        reply: oneshot::Sender<Result<OwnedChild, Error>>,
    },
    Untrack {
        process: ProcessRef,
        reply: oneshot::Sender<Result<Tracked, Error>>,
    },
    /// Start termination (or, with `kill`, send `SIGKILL`) now, of what
    /// `target` reaches (default: a root's whole unit, a member alone).
    Stop {
        process: ProcessRef,
        kill: bool,
        target: Option<OrphanTarget>,
        reply: oneshot::Sender<Result<Tracked, Error>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Subscribe {
        reply: oneshot::Sender<broadcast::Receiver<Event>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// Terminate every unit; answer once all are gone or `timeout` passed.
    Drain {
        timeout: Duration,
        reply: oneshot::Sender<DrainReport>,
    },
    /// Answer when this tracked process ends.
    WaitFor {
        id: ProcessId,
        reply: oneshot::Sender<Result<ExitInfo, Error>>,
    },
    /// A receiver of one unit's events.
    SubscribeUnit {
        id: ProcessId,
        reply: oneshot::Sender<Result<broadcast::Receiver<Event>, Error>>,
    },
}

/// The monitor's cgroup subtree, if units may have one.
#[derive(Debug)]
enum Cgroups {
    /// Not for this monitor (config, or a test's fake OS).
    Off,
    /// To be made by this on the first spawn that needs a leaf.
    NotYet(fn() -> Option<Subtree>),
    /// Made: spawned children start in leaves of it.
    Ready(Subtree),
    /// It could not be made (the log said why once): scanning it is.
    Unavailable,
}

impl Cgroups {
    /// The subtree, made now if this is the first time it is needed.
    fn get(&mut self) -> Option<&Subtree> {
        if let Self::NotYet(make) = *self {
            *self = make().map_or(Self::Unavailable, Self::Ready);
        }
        match self {
            Self::Ready(subtree) => Some(subtree),
            Self::Off | Self::NotYet(_) | Self::Unavailable => None,
        }
    }
}

/// The kernel mechanisms units may use besides children lists, each made
/// when the first unit needs it; `None` (the default): not for this
/// monitor.
#[derive(Default)]
pub(crate) struct Mechanisms {
    /// Makes the monitor's cgroup subtree, for spawned children.
    pub(crate) cgroups: Option<fn() -> Option<Subtree>>,
    /// Opens the fork-event source, for every other unit.
    pub(crate) fork_events: Option<OpenEvents>,
}

/// How the actor learns that its process is gone in the shutdown wait.
const SHUTDOWN_POLL: Duration = Duration::from_millis(5);

/// What the monitor holds to reap a process it owns.
#[derive(Debug, Default)]
struct Ownership {
    /// The caller's `Child`, reaped through its own `try_wait`; `None` for
    /// adopted processes, reaped through the pidfd.
    child: Option<ChildProcess>,
    /// Where the exit status goes.
    waiter: Option<oneshot::Sender<ExitStatus>>,
}

#[derive(Debug)]
struct Entry {
    handle: Arc<ProcHandle>,
    parent: ProcessId,
    named_parent: bool,
    action: OrphanAction,
    target: OrphanTarget,
    /// Its descendants are followed (and tracked as they are found).
    tree: bool,
    /// The root of the unit it is a member of; `None` for a root.
    descendant_of: Option<ProcessId>,
    /// Its unit's owner and containment, copied from the unit (fixed for
    /// the unit's life) so a signal's authorization needs no second lookup.
    owner: u32,
    containment: Containment,
    grace: Duration,
    signal: Signal,
    /// Its pidfd registered with the reactor; `None`: the scan notices its
    /// exit (no pidfd, or the registration failed).
    watch: Option<Watch>,
    owned: Option<Ownership>,
    /// Its parent was not this process at track time (and it is not owned),
    /// so becoming our child later means we adopted it (as a subreaper).
    /// Cleared on adoption.
    adoptable: bool,
    /// Termination was asked for through `stop`, not caused by orphaning,
    /// so the orphan counters leave it out.
    stop_requested: bool,
    state: ProcessState,
    since: Instant,
    escalation: Option<(Escalation, delay_queue::Key)>,
    span: Span,
}

impl Entry {
    fn id(&self) -> ProcessId {
        self.handle.id
    }

    /// The root of its unit (itself, for a root).
    fn root(&self) -> ProcessId {
        self.descendant_of.unwrap_or(self.id())
    }

    fn is_root(&self) -> bool {
        self.descendant_of.is_none()
    }

    fn describe(&self) -> Tracked {
        Tracked {
            id: self.id(),
            parent: self.parent,
            owned: self.owned.is_some(),
            pidfd: self.handle.has_pidfd(),
            exit_watch: self.watch.is_some(),
            action: self.action,
            target: self.target,
            tree: self.tree,
            descendant_of: self.descendant_of,
            containment: self.containment,
            owner: self.owner,
            grace: self.grace,
            signal: self.signal,
        }
    }
}

/// A recorded parent, pinned and watched for every tracked process whose
/// orphaning its death means.
#[derive(Debug)]
struct ParentWatch {
    handle: Arc<ProcHandle>,
    watch: Watch,
    /// The tracked pids recorded with this parent.
    children: BTreeSet<i32>,
}

/// An owned process that was untracked: no longer watched for orphaning,
/// still reaped so it never lingers as a zombie.
#[derive(Debug)]
struct Released {
    handle: Arc<ProcHandle>,
    ownership: Ownership,
    /// Not ours yet: a tracked process that died as another process's
    /// child while this one is a subreaper (or init). If its parent dies
    /// without reaping it, the zombie is reparented here and reaped; until
    /// then the reap finds nothing (`ECHILD`) and it waits while it exists.
    foster: bool,
}

pub(crate) struct Actor {
    os: Arc<dyn Os>,
    config: Config,
    my_pid: i32,
    tracked: HashMap<i32, Entry>,
    /// The pids of tracked entries the monitor owns, so a sweep (on every
    /// SIGCHLD) touches only those, however many are tracked.
    owned_pids: BTreeSet<i32>,
    /// What the scanner reads, rebuilt only after the tracked set changed,
    /// so a steady scan costs the actor one `Arc` clone.
    scan_targets: Option<Arc<[ScanTarget]>>,
    /// The members of units contained by scanning, whose children lists
    /// the unit scan reads; rebuilt like `scan_targets`.
    unit_targets: Option<Arc<[Arc<ProcHandle>]>>,
    /// Every unit, by root. A unit outlives its root while members remain.
    units: HashMap<ProcessId, Unit>,
    /// Requests from owned children (see `control.rs`).
    control: control::ControlChannel,
    /// Owned children's `kill`/`terminate` calls waiting for their unit to
    /// end, by root; answered when it ends or leaves the monitor.
    unit_waiters: HashMap<ProcessId, Vec<oneshot::Sender<Result<(), Error>>>>,
    /// Asks the scanner for a unit scan now (a member exited, so the rest
    /// of its unit may have forked since the last look). A `Notify` keeps
    /// one permit: a burst of exits costs one scan, read off the actor.
    unit_rescan: Arc<Notify>,
    /// The root of the unit that orphans reparented to this process join
    /// (`SpawnOptions::adopt_orphans`).
    adopting: Option<ProcessId>,
    /// Set while a spawn that asks for `adopt_orphans` tracks its child.
    adopt_into_next_unit: bool,
    /// The monitor's own cgroup subtree, made on the first spawn that
    /// needs a leaf: spawned children start in leaves of it.
    cgroups: Cgroups,
    /// The leaf a spawn's child was started in, taken by its unit as it is
    /// made.
    next_leaf: Option<crate::cgroup::Leaf>,
    /// The kernel's fork events, opened for the first unit that wants
    /// them, and the membership they imply.
    fork_events: ForkEvents,
    released: Vec<Released>,
    /// Escalation wake-ups, keyed back to the process by identity.
    deadlines: DelayQueue<ProcessId>,
    /// Every event goes here; subscribers each hold a receiver.
    events: EventBus,
    counters: Counters,
    last_scan: Option<ScanSummary>,
    unowned_zombies: BTreeSet<ProcessId>,
    pidfd_fallbacks: u64,
    subreaper: bool,
    /// Watched parents, by identity.
    parents: HashMap<ProcessId, ParentWatch>,
    /// Where the watches' wakers send their keys (see `watch.rs`).
    ready: mpsc::UnboundedSender<WatchKey>,
    cancel: CancellationToken,
    /// Where each sweep leaves its cost (ns) for the SIGCHLD forwarder.
    sweep_cost: Arc<std::sync::atomic::AtomicU64>,
    /// Where the counters are copied after each message, for
    /// [`crate::LiveCounters`] readers.
    published: Arc<crate::counters::Published>,
    /// Waiters for ends, drains, per-unit event feeds.
    waiting: waiting::Waiting,
}

/// The receiving ends the actor selects over.
pub(crate) struct Inputs {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) scans: mpsc::Receiver<ScanMsg>,
    /// "Some child changed state": sweep the owned set.
    pub(crate) sigchld: mpsc::Receiver<()>,
    /// A watched pidfd became readable: a process or a parent exited.
    pub(crate) ready: mpsc::UnboundedReceiver<WatchKey>,
}

impl Actor {
    pub(crate) fn new(
        os: Arc<dyn Os>,
        config: Config,
        events: EventBus,
        subreaper: bool,
        ready: mpsc::UnboundedSender<WatchKey>,
        unit_rescan: Arc<Notify>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            my_pid: os.my_pid(),
            os,
            config,
            tracked: HashMap::new(),
            owned_pids: BTreeSet::new(),
            scan_targets: None,
            unit_targets: None,
            units: HashMap::new(),
            control: control::ControlChannel::new(),
            unit_waiters: HashMap::new(),
            unit_rescan,
            adopting: None,
            adopt_into_next_unit: false,
            cgroups: Cgroups::Off,
            next_leaf: None,
            fork_events: ForkEvents::Off,
            released: Vec::new(),
            deadlines: DelayQueue::new(),
            events,
            counters: Counters::default(),
            last_scan: None,
            unowned_zombies: BTreeSet::new(),
            pidfd_fallbacks: 0,
            subreaper,
            parents: HashMap::new(),
            ready,
            cancel,
            sweep_cost: Arc::default(),
            published: Arc::default(),
            waiting: waiting::Waiting::default(),
        }
    }

    /// Publishes each sweep's duration through `cost`.
    pub(crate) fn measuring_sweeps(mut self, cost: Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.sweep_cost = cost;
        self
    }

    /// Units of spawned children live in leaves of the subtree
    /// `mechanisms` makes (when it can), on the first spawn that needs
    /// one; every other unit follows fork events from the source it opens
    /// (when it can), on the first unit that wants them.
    pub(crate) fn with_mechanisms(mut self, mechanisms: Mechanisms) -> Self {
        self.cgroups = mechanisms.cgroups.map_or(Cgroups::Off, Cgroups::NotYet);
        self.fork_events = mechanisms
            .fork_events
            .map_or(ForkEvents::Off, ForkEvents::NotYet);
        self
    }

    /// Copies the counters into `published` after each message.
    pub(crate) fn publishing(mut self, published: Arc<crate::counters::Published>) -> Self {
        self.published = published;
        self
    }

    pub(crate) async fn run(mut self, mut inputs: Inputs) {
        // A local, dropped before the actor's state: an `OwnedChild` that
        // finds its exit status dropped while this channel is still open
        // knows the monitor runs on and the status itself was lost.
        let Some(mut control) = self.control.receiver.take() else {
            return;
        };
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => break,
                command = inputs.commands.recv() => match command {
                    Some(command) => if self.handle(command).await {
                        self.published.store(&self.counters);
                        return;
                    },
                    // Every handle is gone: nobody can ask anything again.
                    None => break,
                },
                Some(()) = inputs.sigchld.recv() => self.sweep(),
                Some(key) = inputs.ready.recv() => self.on_ready(key),
                // Never `None`: the actor holds a sender.
                Some(request) = control.recv() => self.on_control(request),
                Some(message) = inputs.scans.recv() => match message {
                    ScanMsg::Snapshot(reply) => {
                        // The scanner may have been cancelled meanwhile.
                        let _ = reply.send(self.snapshot());
                    }
                    ScanMsg::Report(report) => self.apply_scan(report),
                    ScanMsg::UnitSnapshot(reply) => {
                        let _ = reply.send(self.unit_snapshot());
                    }
                    ScanMsg::Children(found) => {
                        self.counters.unit_scans += 1;
                        self.adopt_children(found.members);
                        self.adopt_orphans(found.own);
                    }
                },
                Some(expired) = std::future::poll_fn(|cx| self.deadlines.poll_expired(cx)),
                    if !self.deadlines.is_empty() => self.on_deadline(expired.into_inner()),
                // A drain's timeout; `after_message` answers it.
                () = waiting::until(self.waiting.next_deadline()) => {}
                polled = std::future::poll_fn(|cx| self.fork_events.poll(cx)),
                    if self.fork_events.listening() => self.on_fork_events(polled).await,
            }
            self.after_message();
            self.published.store(&self.counters);
        }
        self.shut_down().await;
        self.published.store(&self.counters);
    }

    /// Before a track that would make a unit following its descendants:
    /// the fork-event source is opened if this is the first unit that
    /// wants it (a track bound to fail early opens nothing).
    async fn before_unit(&mut self, pid: i32, options: &TrackOptions) {
        if options.tree.unwrap_or(self.config.tree) && self.check_pid(pid).is_ok() {
            self.listen_for_forks().await;
        }
    }

    /// The tracked set changed: the scanners' cached views are stale.
    fn targets_changed(&mut self) {
        self.scan_targets = None;
        self.unit_targets = None;
    }

    fn emit(&self, event: Event) {
        self.feed_unit(&event);
        // No subscriber is not an error: events are for whoever listens.
        let _ = self.events.send(event);
    }

    fn error_event(&mut self, id: Option<ProcessId>, kind: ErrorKind, message: String) {
        self.counters.count_error(kind);
        tracing::warn!(pid = ?id.map(|id| id.pid), ?kind, %message, "monitor error");
        self.emit(Event::Error { id, kind, message });
    }

    /// Answers one command; returns whether it was a shutdown, after which
    /// the actor is done.
    async fn handle(&mut self, command: Command) -> bool {
        // A dropped reply receiver means the caller stopped waiting: the work
        // is done either way, so the failed sends below are ignored.
        match command {
            Command::Track {
                pid,
                options,
                reply,
            } => {
                self.before_unit(pid, &options).await;
                let _ = reply.send(self.track(pid, options, &mut None));
            }
            Command::TrackChild {
                child,
                options,
                reply,
            } => {
                let (waiter, exit) = oneshot::channel();
                let pid = child.pid();
                if let Some(pid) = pid {
                    self.before_unit(pid, &options).await;
                }
                let mut owner = Some(Ownership {
                    child: Some(child),
                    waiter: Some(waiter),
                });
                let result = match pid {
                    None => Err(Error::ChildAlreadyReaped),
                    Some(pid) => self.track(pid, options, &mut owner),
                };
                let control = self.control.sender.clone();
                let result = result
                    .map(|tracked| OwnedChild::new(tracked, exit, control))
                    .map_err(|error| {
                        TrackChildError::new(error, owner.and_then(|owner| owner.child))
                    });
                let _ = reply.send(result);
            }
            Command::Spawn {
                command,
                options,
                reply,
            } => {
                // Nothing else runs until the child is registered, so no
                // sweep can reap it first.
                let _ = reply.send(self.spawn(*command, options).await);
            }
            Command::Untrack { process, reply } => {
                let _ = reply.send(self.untrack_ref(process));
            }
            Command::Stop {
                process,
                kill,
                target,
                reply,
            } => {
                let _ = reply.send(self.stop_ref(process, kill, target));
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Subscribe { reply } => {
                let _ = reply.send(self.events.subscribe());
            }
            Command::Shutdown { reply } => {
                self.shut_down().await;
                let _ = reply.send(());
                return true;
            }
            Command::Drain { timeout, reply } => self.drain(timeout, reply),
            Command::WaitFor { id, reply } => self.wait_for(id, reply),
            Command::SubscribeUnit { id, reply } => {
                let _ = reply.send(self.subscribe_unit(id));
            }
        }
        false
    }

    fn snapshot(&mut self) -> Snapshot {
        let (tracked, parents, my_pid) = (&self.tracked, &self.parents, self.my_pid);
        let may_adopt = self.subreaper || my_pid == 1;
        // What only a scan would notice: an exit without a watch; for a
        // root, the death of a parent that is not watched (init and this
        // process never die first); for a member, an adoption.
        let watched = |entry: &Entry| {
            let pid = entry.id().pid;
            entry.watch.is_some()
                && if entry.is_root() {
                    [1, my_pid].contains(&entry.parent.pid)
                        || parents
                            .get(&entry.parent)
                            .is_some_and(|watch| watch.children.contains(&pid))
                } else {
                    !(entry.adoptable && may_adopt)
                }
        };
        let targets = self.scan_targets.get_or_insert_with(|| {
            tracked
                .values()
                .map(|entry| ScanTarget {
                    handle: Arc::clone(&entry.handle),
                    parent: entry.parent,
                    named_parent: entry.named_parent,
                    adoptable: entry.adoptable,
                    member: !entry.is_root(),
                    watched: watched(entry),
                })
                .collect()
        });
        Snapshot {
            targets: Arc::clone(targets),
            my_pid: self.my_pid,
            find_zombies: self.config.reap_policy == ReapPolicy::Owned,
            owned: self
                .owned_pids
                .iter()
                .copied()
                .chain(self.released.iter().map(|released| released.handle.id.pid))
                .collect(),
        }
    }

    /// The pinned members of units contained by scanning, for the unit
    /// scan, and whether orphans are adopted into a unit. Units that
    /// follow fork events are left out: they need no periodic look, so a
    /// daemon whose registrations all follow them reads nothing on a unit
    /// tick.
    fn unit_snapshot(&mut self) -> UnitSnapshot {
        let tracked = &self.tracked;
        let members = Arc::clone(self.unit_targets.get_or_insert_with(|| {
            tracked
                .values()
                .filter(|entry| entry.containment == Containment::Scan)
                .map(|entry| Arc::clone(&entry.handle))
                .collect()
        }));
        UnitSnapshot {
            members,
            adopt: self.adopting.is_some(),
        }
    }

    fn apply_scan(&mut self, report: ScanReport) {
        self.counters.scans += 1;
        self.counters.full_scans += u64::from(report.full);
        self.last_scan = Some(ScanSummary {
            processes: report.processes,
            duration: report.duration,
        });
        for (id, observation) in report.observations {
            // The set may have changed while the scan ran.
            let Some(entry) = self.tracked.get(&id.pid).filter(|e| e.id() == id) else {
                continue;
            };
            match observation {
                Observation::Gone | Observation::Exited => {
                    if entry.containment == Containment::Scan {
                        self.unit_rescan.notify_one();
                    }
                    self.settle_exit(id.pid);
                }
                Observation::Alive { ppid, parent_alive } => {
                    self.observe_alive(id.pid, ppid, parent_alive);
                }
            }
        }
        self.sweep();
        self.note_zombies(report.zombies);
    }

    /// A running tracked process seen with parent `ppid`: adopt it if it
    /// was reparented to this process (a subreaper), and, for a unit's
    /// root, start its orphan action if its recorded parent died. A member
    /// is never orphaned by its own parent: it belongs to its unit, which
    /// ends with its root.
    fn observe_alive(&mut self, pid: i32, ppid: i32, parent_alive: bool) {
        let Some(entry) = self.tracked.get_mut(&pid) else {
            return;
        };
        let id = entry.id();
        if entry.adoptable && ppid == self.my_pid {
            entry.owned = Some(Ownership::default());
            entry.adoptable = false;
            self.owned_pids.insert(pid);
            entry
                .span
                .in_scope(|| tracing::info!("adopted; the monitor reaps it"));
            self.targets_changed();
            self.emit(Event::Adopted { id });
        }
        let running = self
            .tracked
            .get(&pid)
            .is_some_and(|e| e.state == ProcessState::Running && e.is_root());
        if !parent_alive && running {
            self.orphaned(pid);
        }
    }

    fn status(&self) -> Status {
        let now = Instant::now();
        let mut tracked: Vec<TrackedStatus> = self
            .tracked
            .values()
            .map(|entry| TrackedStatus {
                id: entry.id(),
                parent: entry.parent,
                state: entry.state,
                since: now.saturating_duration_since(entry.since),
                owned: entry.owned.is_some(),
                pidfd: entry.handle.has_pidfd(),
                exit_watch: entry.watch.is_some(),
                action: entry.action,
                target: entry.target,
                tree: entry.tree,
                descendant_of: entry.descendant_of,
                containment: entry.containment,
            })
            .collect();
        tracked.sort_by_key(|t| t.id);
        let units = self.unit_statuses();
        Status {
            enabled: self.config.enabled,
            running: self.config.enabled && !self.cancel.is_cancelled(),
            pid: self.my_pid,
            check_interval: self.config.check_interval,
            grace: self.config.grace,
            reap_policy: self.config.reap_policy,
            subreaper: self.subreaper,
            pidfd_supported: self.pidfd_fallbacks == 0,
            scan_only: tracked.iter().filter(|t| !t.exit_watch).count(),
            tracked_count: tracked.len(),
            tracked,
            units,
            counters: self.counters.clone(),
            last_scan: self.last_scan,
            unowned_zombies: self.unowned_zombies.iter().copied().collect(),
        }
    }
}
