//! The actor: the one task that owns every tracked process, every deadline
//! and every counter. Commands, scan reports, SIGCHLD wake-ups and expired
//! deadlines arrive here one at a time; nothing else mutates state.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::time::{DelayQueue, delay_queue};
use tracing::Span;

use crate::os::{self, Os, ProcHandle};
use crate::scan::{Observation, ScanMsg, ScanReport, ScanTarget, Snapshot};
use crate::status::{Counters, ProcessState, ScanSummary, Status, TrackedStatus};
use crate::{
    ChildProcess, Config, Error, ErrorKind, Event, ExitStatus, OrphanAction, OwnedChild,
    ParentSpec, ProcessId, ReapPolicy, ShutdownPolicy, Signal, SpawnOptions, TrackChildError,
    TrackOptions, Tracked, spawn,
};

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
        pid: i32,
        reply: oneshot::Sender<Result<Tracked, Error>>,
    },
    /// Start termination (or, with `kill`, send `SIGKILL`) now.
    Stop {
        pid: i32,
        kill: bool,
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
}

/// A command the run loop finishes outside the synchronous handler.
enum Deferred {
    Shutdown(oneshot::Sender<()>),
    Spawn {
        command: Box<std::process::Command>,
        options: SpawnOptions,
        reply: oneshot::Sender<Result<OwnedChild, Error>>,
    },
}

/// The first re-check of a signalled process; doubled up to [`MAX_RECHECK`].
/// Until exits are event-driven, this is how an escalation notices that its
/// process has gone before the deadline.
const FIRST_RECHECK: Duration = Duration::from_millis(5);
const MAX_RECHECK: Duration = Duration::from_millis(250);

/// How the actor learns that its process is gone in the shutdown wait.
const SHUTDOWN_POLL: Duration = Duration::from_millis(5);

/// Where an escalation stands; the deadline queue holds the next wake-up.
#[derive(Debug, Clone, Copy)]
enum Escalation {
    /// Signal sent; `SIGKILL` at `kill_at`.
    Terminating { kill_at: Instant, step: Duration },
    /// `SIGKILL` sent; unkillable after `give_up_at`.
    Killing { give_up_at: Instant, step: Duration },
}

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
    grace: Duration,
    signal: Signal,
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

    fn describe(&self) -> Tracked {
        Tracked {
            id: self.id(),
            parent: self.parent,
            owned: self.owned.is_some(),
            pidfd: self.handle.has_pidfd(),
            action: self.action,
            grace: self.grace,
            signal: self.signal,
        }
    }
}

/// An owned process that was untracked: no longer watched for orphaning,
/// still reaped so it never lingers as a zombie.
#[derive(Debug)]
struct Released {
    handle: Arc<ProcHandle>,
    ownership: Ownership,
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
    released: Vec<Released>,
    /// Escalation wake-ups, keyed back to the process by identity.
    deadlines: DelayQueue<ProcessId>,
    /// Every event goes here; subscribers each hold a receiver.
    events: broadcast::Sender<Event>,
    counters: Counters,
    last_scan: Option<ScanSummary>,
    unowned_zombies: BTreeSet<ProcessId>,
    pidfd_fallbacks: u64,
    subreaper: bool,
    cancel: CancellationToken,
}

/// The receiving ends the actor selects over.
pub(crate) struct Inputs {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) scans: mpsc::Receiver<ScanMsg>,
    /// "Some child changed state": sweep the owned set.
    pub(crate) sigchld: mpsc::Receiver<()>,
}

impl Actor {
    pub(crate) fn new(
        os: Arc<dyn Os>,
        config: Config,
        events: broadcast::Sender<Event>,
        subreaper: bool,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            my_pid: os.my_pid(),
            os,
            config,
            tracked: HashMap::new(),
            owned_pids: BTreeSet::new(),
            scan_targets: None,
            released: Vec::new(),
            deadlines: DelayQueue::new(),
            events,
            counters: Counters::default(),
            last_scan: None,
            unowned_zombies: BTreeSet::new(),
            pidfd_fallbacks: 0,
            subreaper,
            cancel,
        }
    }

    pub(crate) async fn run(mut self, mut inputs: Inputs) {
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => break,
                command = inputs.commands.recv() => match command {
                    Some(command) => match self.handle(command) {
                        None => {}
                        Some(Deferred::Shutdown(reply)) => {
                            self.shut_down().await;
                            // The caller may have stopped waiting; nothing to do then.
                            let _ = reply.send(());
                            return;
                        }
                        Some(Deferred::Spawn { command, options, reply }) => {
                            // Nothing else runs until the child is registered,
                            // so no sweep can reap it first.
                            let result = self.spawn(*command, options).await;
                            let _ = reply.send(result);
                        }
                    },
                    // Every handle is gone: nobody can ask anything again.
                    None => break,
                },
                Some(()) = inputs.sigchld.recv() => self.sweep(),
                Some(message) = inputs.scans.recv() => match message {
                    ScanMsg::Snapshot(reply) => {
                        // The scanner may have been cancelled meanwhile.
                        let _ = reply.send(self.snapshot());
                    }
                    ScanMsg::Report(report) => self.apply_scan(report),
                },
                Some(expired) = std::future::poll_fn(|cx| self.deadlines.poll_expired(cx)),
                    if !self.deadlines.is_empty() => self.on_deadline(expired.into_inner()),
            }
        }
        self.shut_down().await;
    }

    fn emit(&self, event: Event) {
        // No subscriber is not an error: events are for whoever listens.
        let _ = self.events.send(event);
    }

    fn error_event(&mut self, id: Option<ProcessId>, kind: ErrorKind, message: String) {
        self.counters.errors += 1;
        if kind == ErrorKind::PermissionDenied {
            self.counters.permission_denied += 1;
        }
        tracing::warn!(pid = ?id.map(|id| id.pid), ?kind, %message, "monitor error");
        self.emit(Event::Error { id, kind, message });
    }

    /// Answers one command; returns the ones that must await something
    /// (shutdown, spawn), which the run loop finishes.
    fn handle(&mut self, command: Command) -> Option<Deferred> {
        // A dropped reply receiver means the caller stopped waiting: the work
        // is done either way, so the failed sends below are ignored.
        match command {
            Command::Track {
                pid,
                options,
                reply,
            } => {
                let _ = reply.send(self.track(pid, options, &mut None));
            }
            Command::TrackChild {
                child,
                options,
                reply,
            } => {
                let (waiter, exit) = oneshot::channel();
                let pid = child.pid();
                let mut owner = Some(Ownership {
                    child: Some(child),
                    waiter: Some(waiter),
                });
                let result = match pid {
                    None => Err(Error::ChildAlreadyReaped),
                    Some(pid) => self.track(pid, options, &mut owner),
                };
                let result = result
                    .map(|tracked| OwnedChild::new(tracked, exit))
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
                return Some(Deferred::Spawn {
                    command,
                    options,
                    reply,
                });
            }
            Command::Untrack { pid, reply } => {
                let _ = reply.send(self.untrack(pid));
            }
            Command::Stop { pid, kill, reply } => {
                let _ = reply.send(self.stop(pid, kill));
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Subscribe { reply } => {
                let _ = reply.send(self.events.subscribe());
            }
            Command::Shutdown { reply } => return Some(Deferred::Shutdown(reply)),
        }
        None
    }

    /// Starts a child on the spawner thread and owns it from the first
    /// instant.
    async fn spawn(
        &mut self,
        command: std::process::Command,
        options: SpawnOptions,
    ) -> Result<OwnedChild, Error> {
        if !self.config.enabled {
            return Err(Error::Disabled);
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = spawn::spawn(command, options.parent_death_signal)
            .await
            .map_err(|source| Error::Spawn {
                program: program.clone(),
                source,
            })?;
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let pid = child.id() as i32;
        let (waiter, exit) = oneshot::channel();
        let mut owner = Some(Ownership {
            child: Some(ChildProcess::Std(child)),
            waiter: Some(waiter),
        });
        match self.track(pid, options.track, &mut owner) {
            Ok(tracked) => {
                tracing::debug!(pid, program, "spawned");
                Ok(OwnedChild::new(tracked, exit).with_pipes(pipes))
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
                    });
                }
                Err(error)
            }
        }
    }

    /// Starts termination of a tracked process now, whatever its orphan
    /// action; `kill` skips straight to `SIGKILL`.
    fn stop(&mut self, pid: i32, kill: bool) -> Result<Tracked, Error> {
        let entry = self
            .tracked
            .get_mut(&pid)
            .ok_or(Error::NotTracked { pid })?;
        let tracked = entry.describe();
        let state = entry.state;
        entry.stop_requested = true;
        entry
            .span
            .in_scope(|| tracing::info!(kill, "stop requested"));
        match (state, kill) {
            (ProcessState::Running | ProcessState::Orphaned, false) => {
                self.counters.stops_requested += 1;
                self.send_term(pid);
            }
            (ProcessState::Running | ProcessState::Orphaned | ProcessState::Terminating, true) => {
                self.counters.stops_requested += 1;
                self.send_kill(pid);
            }
            // Already on its way out: a second request changes nothing.
            (ProcessState::Terminating, false)
            | (ProcessState::Killing | ProcessState::Unkillable, _) => {}
        }
        Ok(tracked)
    }

    fn check_pid(&self, pid: i32) -> Result<(), Error> {
        match pid {
            0 => Err(Error::PidZero),
            pid if pid < 0 => Err(Error::NegativePid { pid }),
            1 => Err(Error::InitProcess),
            pid if pid == self.my_pid => Err(Error::OwnProcess { pid }),
            _ => Ok(()),
        }
    }

    /// Tracks `pid`. An `owner` (a handed-over child) is taken only on
    /// success; on failure it stays with the caller.
    fn track(
        &mut self,
        pid: i32,
        options: TrackOptions,
        owner: &mut Option<Ownership>,
    ) -> Result<Tracked, Error> {
        if !self.config.enabled {
            return Err(Error::Disabled);
        }
        self.check_pid(pid)?;
        if let Some(existing) = self.tracked.get(&pid) {
            if self.os.stat(&existing.handle).is_some() {
                return Err(Error::AlreadyTracked { id: existing.id() });
            }
            // The old holder of this pid is gone and the scan has not
            // noticed yet: settle it before the new one moves in.
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
        if !handle.has_pidfd() {
            self.pidfd_fallbacks += 1;
        }
        let ownership = owner.take();
        let id = handle.id;
        let span = tracing::info_span!("tracked", pid = id.pid, start_time = id.start_time);
        let entry = Entry {
            handle: Arc::new(handle),
            parent,
            named_parent: parent != real_parent,
            action: options.action.unwrap_or(self.config.orphan_action),
            grace: options.grace.unwrap_or(self.config.grace),
            signal: options.signal.unwrap_or(self.config.term_signal),
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
            tracing::debug!(parent = %parent, owned = tracked.owned, pidfd = tracked.pidfd, "tracking");
        });
        self.emit(Event::Tracked {
            id,
            parent,
            owned: tracked.owned,
        });
        if tracked.owned {
            self.owned_pids.insert(pid);
        }
        self.tracked.insert(pid, entry);
        self.scan_targets = None;
        if tracked.owned {
            // It may have exited before it was handed over.
            self.reap_tracked(pid);
        }
        Ok(tracked)
    }

    fn check_parent(&self, pid: i32, parent: i32) -> Result<(), Error> {
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

    fn untrack(&mut self, pid: i32) -> Result<Tracked, Error> {
        let entry = self.remove(pid).ok_or(Error::NotTracked { pid })?;
        entry
            .span
            .in_scope(|| tracing::debug!("untracked on request"));
        self.emit(Event::Untracked { id: entry.id() });
        let tracked = entry.describe();
        if let Some(ownership) = entry.owned {
            self.released.push(Released {
                handle: entry.handle,
                ownership,
            });
        }
        Ok(tracked)
    }

    /// Removes an entry and cancels its pending deadline.
    fn remove(&mut self, pid: i32) -> Option<Entry> {
        let mut entry = self.tracked.remove(&pid)?;
        self.owned_pids.remove(&pid);
        self.scan_targets = None;
        if let Some((_, key)) = entry.escalation.take() {
            self.deadlines.remove(&key);
        }
        Some(entry)
    }

    /// The process has ended: count it, report it, hand over its status.
    fn finish(&mut self, pid: i32, status: Option<ExitStatus>) {
        let Some(mut entry) = self.remove(pid) else {
            return;
        };
        let id = entry.id();
        match entry.state {
            ProcessState::Terminating if !entry.stop_requested => {
                self.counters.orphans_terminated += 1;
            }
            ProcessState::Terminating => {}
            ProcessState::Running
            | ProcessState::Orphaned
            | ProcessState::Killing
            | ProcessState::Unkillable => {}
        }
        self.counters.exited += 1;
        entry.span.in_scope(|| match status {
            Some(status) => tracing::info!(%status, "exited"),
            None => tracing::info!("exited"),
        });
        if let (Some(status), Some(waiter)) = (
            status,
            entry.owned.as_mut().and_then(|owned| owned.waiter.take()),
        ) {
            // The caller may have dropped its OwnedChild; the status is also in the event.
            let _ = waiter.send(status);
        }
        self.emit(Event::Exited { id, status });
    }

    /// Reaps an owned entry if it has exited. Returns whether it is gone.
    fn reap_tracked(&mut self, pid: i32) -> bool {
        let Some(entry) = self.tracked.get_mut(&pid) else {
            return false;
        };
        let Some(ownership) = entry.owned.as_mut() else {
            return false;
        };
        let id = entry.handle.id;
        match reap(self.os.as_ref(), &entry.handle, ownership) {
            Ok(None) => false,
            Ok(Some(status)) => {
                self.counters.reaped += 1;
                self.emit(Event::Reaped { pid, status });
                self.finish(pid, Some(status));
                true
            }
            Err(error) => {
                self.error_event(
                    Some(id),
                    ErrorKind::Reap,
                    format!("could not reap owned process {id}: {error}"),
                );
                self.finish(pid, None);
                true
            }
        }
    }

    /// Settles a process the scan or an escalation found exited or gone:
    /// reaps it if owned, then reports it.
    fn settle_exit(&mut self, pid: i32) {
        if self.reap_tracked(pid) {
            return;
        }
        // An owned process that still runs was misreported; keep it.
        let owned_and_running = self
            .tracked
            .get(&pid)
            .is_some_and(|e| e.owned.is_some() && self.is_running(e));
        if !owned_and_running {
            self.finish(pid, None);
        }
    }

    /// Whether a pinned process is still running (not exited, not reaped).
    fn is_running(&self, entry: &Entry) -> bool {
        self.os.stat(&entry.handle).is_some_and(|info| !info.exited)
    }

    /// SIGCHLD or a tick: reap whatever the monitor may reap.
    fn sweep(&mut self) {
        if self.config.reap_policy == ReapPolicy::AllChildren {
            loop {
                match self.os.reap_any() {
                    Ok(Some((pid, status))) => {
                        self.counters.reaped += 1;
                        self.emit(Event::Reaped { pid, status });
                        tracing::debug!(pid, %status, "reaped");
                        if self.tracked.contains_key(&pid) {
                            self.finish(pid, Some(status));
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        self.error_event(None, ErrorKind::Reap, format!("waitid(P_ALL): {error}"));
                        break;
                    }
                }
            }
        }
        let owned: Vec<i32> = self.owned_pids.iter().copied().collect();
        for pid in owned {
            self.reap_tracked(pid);
        }
        let os = Arc::clone(&self.os);
        let mut reaped = Vec::new();
        self.released.retain_mut(|released| {
            match reap(os.as_ref(), &released.handle, &mut released.ownership) {
                Ok(None) => true,
                Ok(Some(status)) => {
                    if let Some(waiter) = released.ownership.waiter.take() {
                        let _ = waiter.send(status);
                    }
                    reaped.push((released.handle.id.pid, status));
                    false
                }
                // Someone else reaped it; nothing is left to wait for.
                Err(_) => false,
            }
        });
        for (pid, status) in reaped {
            self.counters.reaped += 1;
            self.emit(Event::Reaped { pid, status });
        }
    }

    fn snapshot(&mut self) -> Snapshot {
        let tracked = &self.tracked;
        let targets = self.scan_targets.get_or_insert_with(|| {
            tracked
                .values()
                .map(|entry| ScanTarget {
                    handle: Arc::clone(&entry.handle),
                    parent: entry.parent,
                    named_parent: entry.named_parent,
                    adoptable: entry.adoptable,
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

    fn apply_scan(&mut self, report: ScanReport) {
        self.counters.scans += 1;
        self.last_scan = Some(ScanSummary {
            processes: report.processes,
            duration: report.duration,
        });
        for (id, observation) in report.observations {
            // The set may have changed while the scan ran.
            let Some(entry) = self.tracked.get_mut(&id.pid).filter(|e| e.id() == id) else {
                continue;
            };
            match observation {
                Observation::Gone | Observation::Exited => self.settle_exit(id.pid),
                Observation::Alive { ppid, parent_alive } => {
                    if entry.adoptable && ppid == self.my_pid {
                        entry.owned = Some(Ownership::default());
                        entry.adoptable = false;
                        self.owned_pids.insert(id.pid);
                        self.scan_targets = None;
                        entry
                            .span
                            .in_scope(|| tracing::info!("adopted; the monitor reaps it"));
                        self.emit(Event::Adopted { id });
                    }
                    let entry = &self.tracked[&id.pid];
                    if !parent_alive && entry.state == ProcessState::Running {
                        self.orphaned(id.pid);
                    }
                }
            }
        }
        self.sweep();
        self.note_zombies(report.zombies);
    }

    fn note_zombies(&mut self, zombies: Vec<ProcessId>) {
        let current: BTreeSet<ProcessId> = zombies
            .into_iter()
            .filter(|id| {
                !self
                    .tracked
                    .get(&id.pid)
                    .is_some_and(|e| e.owned.is_some() && e.id() == *id)
            })
            .collect();
        for id in current.difference(&self.unowned_zombies) {
            tracing::warn!(
                pid = id.pid,
                "unowned zombie child; its owner must wait for it"
            );
            self.emit(Event::UnownedZombie { id: *id });
        }
        self.unowned_zombies = current;
    }

    /// The recorded parent died: start the orphan action.
    fn orphaned(&mut self, pid: i32) {
        let Some(entry) = self.tracked.get_mut(&pid) else {
            return;
        };
        let (id, parent, action) = (entry.id(), entry.parent, entry.action);
        entry.state = ProcessState::Orphaned;
        entry.since = Instant::now();
        entry
            .span
            .in_scope(|| tracing::info!(parent = %parent, ?action, "orphaned"));
        self.counters.orphans_found += 1;
        self.emit(Event::Orphaned { id, parent, action });
        match action {
            OrphanAction::Notify => {}
            OrphanAction::Kill => self.send_kill(pid),
            OrphanAction::Terminate => self.send_term(pid),
        }
    }

    /// Sends a signal; `false` when the process turned out to be gone (or
    /// the signal failed, which is reported and ends the escalation).
    fn deliver(&mut self, pid: i32, signal: Signal) -> bool {
        let Some(entry) = self.tracked.get(&pid) else {
            return false;
        };
        let id = entry.id();
        match self.os.signal(&entry.handle, signal) {
            Ok(()) => {
                entry
                    .span
                    .in_scope(|| tracing::info!(signal = %signal, "signalled"));
                true
            }
            Err(error) if os::is_gone(&error) => {
                self.settle_exit(pid);
                false
            }
            Err(error) => {
                let kind = if os::is_permission(&error) {
                    ErrorKind::PermissionDenied
                } else {
                    ErrorKind::Signal
                };
                self.error_event(
                    Some(id),
                    kind,
                    format!("could not send {signal} to {id}: {error}"),
                );
                false
            }
        }
    }

    fn send_term(&mut self, pid: i32) {
        let Some(signal) = self.tracked.get(&pid).map(|e| e.signal) else {
            return;
        };
        if !self.deliver(pid, signal) {
            return;
        }
        let Some(entry) = self.tracked.get(&pid) else {
            return;
        };
        let (id, grace) = (entry.id(), entry.grace);
        self.emit(Event::Signalled { id, signal });
        if grace.is_zero() {
            self.send_kill(pid);
            return;
        }
        let now = Instant::now();
        self.set_state(pid, ProcessState::Terminating, now);
        self.arm(
            pid,
            Escalation::Terminating {
                kill_at: now + grace,
                step: FIRST_RECHECK,
            },
            now,
        );
    }

    fn send_kill(&mut self, pid: i32) {
        if !self.deliver(pid, Signal::KILL) {
            return;
        }
        let Some((id, requested)) = self.tracked.get(&pid).map(|e| (e.id(), e.stop_requested))
        else {
            return;
        };
        if !requested {
            self.counters.orphans_killed += 1;
        }
        self.emit(Event::Killed { id });
        let now = Instant::now();
        self.set_state(pid, ProcessState::Killing, now);
        self.arm(
            pid,
            Escalation::Killing {
                give_up_at: now + self.config.kill_timeout,
                step: FIRST_RECHECK,
            },
            now,
        );
        // An owned child may already be reapable.
        self.reap_tracked(pid);
    }

    fn set_state(&mut self, pid: i32, state: ProcessState, now: Instant) {
        if let Some(entry) = self.tracked.get_mut(&pid) {
            entry.state = state;
            entry.since = now;
        }
    }

    /// Schedules the next wake-up of an escalation: the next re-check or its
    /// deadline, whichever is sooner.
    fn arm(&mut self, pid: i32, escalation: Escalation, now: Instant) {
        let Some(entry) = self.tracked.get_mut(&pid) else {
            return;
        };
        let (deadline, step) = match escalation {
            Escalation::Terminating { kill_at, step } => (kill_at, step),
            Escalation::Killing { give_up_at, step } => (give_up_at, step),
        };
        let wake = deadline.min(now + step);
        if let Some((_, key)) = entry.escalation.take() {
            self.deadlines.remove(&key);
        }
        let key = self.deadlines.insert_at(entry.id(), wake);
        entry.escalation = Some((escalation, key));
    }

    fn on_deadline(&mut self, id: ProcessId) {
        let Some(entry) = self.tracked.get_mut(&id.pid).filter(|e| e.id() == id) else {
            return;
        };
        // The queue already dropped the expired key.
        let Some((escalation, _)) = entry.escalation.take() else {
            return;
        };
        let entry = &self.tracked[&id.pid];
        if !self.is_running(entry) {
            self.settle_exit(id.pid);
            return;
        }
        let now = Instant::now();
        match escalation {
            Escalation::Terminating { kill_at, .. } if now >= kill_at => self.send_kill(id.pid),
            Escalation::Terminating { kill_at, step } => {
                let step = (step * 2).min(MAX_RECHECK);
                self.arm(id.pid, Escalation::Terminating { kill_at, step }, now);
            }
            Escalation::Killing { give_up_at, .. } if now >= give_up_at => {
                self.set_state(id.pid, ProcessState::Unkillable, now);
                let timeout = self.config.kill_timeout;
                self.error_event(
                    Some(id),
                    ErrorKind::Unkillable,
                    format!("{id} still exists {timeout:?} after SIGKILL"),
                );
            }
            Escalation::Killing { give_up_at, step } => {
                let step = (step * 2).min(MAX_RECHECK);
                self.arm(id.pid, Escalation::Killing { give_up_at, step }, now);
            }
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
                action: entry.action,
            })
            .collect();
        tracked.sort_by_key(|t| t.id);
        Status {
            enabled: self.config.enabled,
            running: self.config.enabled && !self.cancel.is_cancelled(),
            pid: self.my_pid,
            check_interval: self.config.check_interval,
            grace: self.config.grace,
            reap_policy: self.config.reap_policy,
            subreaper: self.subreaper,
            pidfd_supported: self.pidfd_fallbacks == 0,
            tracked_count: tracked.len(),
            tracked,
            counters: self.counters.clone(),
            last_scan: self.last_scan,
            unowned_zombies: self.unowned_zombies.iter().copied().collect(),
        }
    }

    /// Applies the shutdown policy, then stops the other tasks.
    async fn shut_down(&mut self) {
        self.cancel.cancel();
        if self.config.shutdown == ShutdownPolicy::TerminateOwned {
            self.terminate_owned().await;
        }
        tracing::debug!(tracked = self.tracked.len(), "monitor stopped");
    }

    /// Signal, grace, `SIGKILL`, bounded wait, for every owned process.
    async fn terminate_owned(&mut self) {
        let owned: Vec<(i32, Signal, Duration)> = self
            .tracked
            .iter()
            .filter(|(_, e)| e.owned.is_some())
            .map(|(pid, e)| (*pid, e.signal, e.grace))
            .collect();
        let grace = owned.iter().map(|(_, _, g)| *g).max().unwrap_or_default();
        for (pid, signal, _) in &owned {
            self.deliver(*pid, *signal);
        }
        let pids: Vec<i32> = owned.iter().map(|(pid, _, _)| *pid).collect();
        if !self.wait_reaped(&pids, Instant::now() + grace).await {
            for pid in &pids {
                self.deliver(*pid, Signal::KILL);
            }
            let deadline = Instant::now() + self.config.kill_timeout;
            self.wait_reaped(&pids, deadline).await;
        }
    }

    /// Reaps until none of `pids` is tracked any more, or the deadline.
    async fn wait_reaped(&mut self, pids: &[i32], deadline: Instant) -> bool {
        loop {
            self.sweep();
            if pids.iter().all(|pid| !self.tracked.contains_key(pid)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(SHUTDOWN_POLL.min(deadline - Instant::now())).await;
        }
    }
}

/// Reaps one owned process: through its `Child` when the caller handed one
/// over, else through its pidfd.
fn reap(
    os: &dyn Os,
    handle: &ProcHandle,
    ownership: &mut Ownership,
) -> std::io::Result<Option<ExitStatus>> {
    match ownership.child.as_mut() {
        Some(child) => child.try_wait(),
        None => os.reap(handle),
    }
}
