//! The service actor: owns the registrations, talks to the monitor, keeps
//! the state file in step, and fans the monitor's events
//! out to clients with the uid they belong to.
//!
//! One task owns everything, so a registration and the monitor's view of
//! it never disagree: a track is answered only after the monitor tracks
//! the process and the state file holds it. Requests that arrive while a
//! state write is in progress queue up and share the next write (group
//! commit), so a burst of registrations costs one fsync, not one each.
//!
//! # Layout
//!
//! - `mod.rs`: the actor's state, its loop, and the request handlers.
//! - `handle`: the commands and the cloneable [`ServiceHandle`].
//! - `events`: monitor events, reconciling after a lag.
//! - `commit`: the state write and the replies that wait for it.
//! - `registry`: the registrations, their quotas, tracking saved ones again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use monitor_core::{
    Error as MonitorError, Event, MonitorHandle, OrphanAction, ProcessId, Signal, TrackOptions,
};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

mod commit;
mod events;
mod handle;
mod registry;

pub(crate) use handle::{Health, Metrics, ServiceHandle};

use super::access::{self, Peer};
use super::limits::Limits;
use super::memory::Shrinkage;
use super::stats::DaemonStats;
use super::store::Store;
use crate::protocol::{
    ErrorBody, ErrorKind, Registration, RegistrationStatus, RegistrationUnit, StatusReport,
    TrackRequest, Untracked,
};
use commit::Pending;
use handle::Command;

/// An event for clients, with the uid of the registration it concerns
/// (`None`: no registration, root only).
#[derive(Debug, Clone)]
pub(crate) struct OwnedEvent {
    /// Who may see it (besides root).
    pub(crate) uid: Option<u32>,
    /// The event.
    pub(crate) event: Event,
}

/// Defaults for track requests that leave a field out; reloadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrackDefaults {
    /// Orphan action.
    pub(crate) action: OrphanAction,
    /// Grace period.
    pub(crate) grace: Duration,
    /// Termination signal.
    pub(crate) signal: Signal,
}

impl From<&monitor_core::Config> for TrackDefaults {
    fn from(config: &monitor_core::Config) -> Self {
        Self {
            action: config.orphan_action,
            grace: config.grace,
            signal: config.term_signal,
        }
    }
}

/// Commands handled between two state writes at most. Each emits at most
/// a few monitor events, so a batch stays far below the event buffer.
const BATCH: usize = 64;

/// Starts the service actor. It ends (after a final state write) on
/// [`ServiceHandle::shutdown`] or when every handle is dropped.
pub(crate) async fn start(
    monitor: MonitorHandle,
    store: Arc<Store>,
    defaults: TrackDefaults,
    limits: Limits,
    check_interval: Duration,
    stats: Arc<DaemonStats>,
) -> anyhow::Result<(ServiceHandle, JoinHandle<()>)> {
    // Subscribe before anything is tracked, so no event is missed.
    let monitor_events = monitor.subscribe().await?;
    let (commands_tx, commands) = mpsc::channel(256);
    let (events, _) = broadcast::channel(1024);
    let service = Service {
        monitor,
        store,
        defaults,
        limits,
        check_interval,
        registrations: BTreeMap::new(),
        per_uid: HashMap::new(),
        shrinkage: Shrinkage::default(),
        events: events.clone(),
        untracked_owners: HashMap::new(),
        dirty: false,
        pending: Vec::new(),
        stats,
        admin_uid: rustix::process::geteuid().as_raw(),
    };
    let task = tokio::spawn(service.run(commands, monitor_events));
    Ok((ServiceHandle::new(commands_tx, events), task))
}

struct Service {
    monitor: MonitorHandle,
    /// The state file.
    store: Arc<Store>,
    defaults: TrackDefaults,
    /// The registration quotas (the other limits are the connections').
    limits: Limits,
    check_interval: Duration,
    /// Every registration, by pid.
    registrations: BTreeMap<i32, Registration>,
    /// How many registrations each uid holds, for the quotas.
    per_uid: HashMap<u32, usize>,
    /// When enough registrations ended to give memory back.
    shrinkage: Shrinkage,
    /// The fan-out to connections streaming events.
    events: broadcast::Sender<Arc<OwnedEvent>>,
    /// Owners of registrations dropped on request whose `Untracked` event
    /// has not arrived yet, so the event still reaches its owner.
    untracked_owners: HashMap<ProcessId, u32>,
    /// The registrations changed since the last state write.
    dirty: bool,
    /// Replies waiting for the next state write.
    pending: Vec<Pending>,
    /// The daemon's counters (state writes, missed events are counted
    /// here; the rest by the connections).
    stats: Arc<DaemonStats>,
    /// The daemon's own uid: with root, the uid that may see the
    /// monitor's status and the counters (it owns the daemon anyway).
    admin_uid: u32,
}

impl Service {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut monitor_events: broadcast::Receiver<Event>,
    ) {
        loop {
            // Events first, and all that are waiting: a long run of
            // commands must not let the monitor's event buffer overflow.
            tokio::select! {
                biased;
                event = monitor_events.recv() => {
                    let mut next = Some(event);
                    while let Some(event) = next.take() {
                        match event {
                            Ok(event) => self.on_event(event),
                            Err(broadcast::error::RecvError::Lagged(missed)) => {
                                self.stats.events_missed(missed);
                                tracing::warn!(missed, "missed monitor events; reconciling with its status");
                                self.reconcile().await;
                            }
                            Err(broadcast::error::RecvError::Closed) => {
                                tracing::error!("the monitor stopped");
                                self.stop().await;
                                return;
                            }
                        }
                        next = match monitor_events.try_recv() {
                            Ok(event) => Some(Ok(event)),
                            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                                Some(Err(broadcast::error::RecvError::Lagged(missed)))
                            }
                            Err(_) => None,
                        };
                    }
                }
                command = commands.recv() => {
                    let Some(first) = command else { break };
                    // What is already queued shares this round's write, up
                    // to a bound that keeps events flowing in between.
                    let mut next = Some(first);
                    let mut handled = 0;
                    while let Some(command) = next.take() {
                        if let Command::Shutdown { reply } = command {
                            self.stop().await;
                            let _ = reply.send(());
                            return;
                        }
                        self.handle(command).await;
                        handled += 1;
                        if handled < BATCH {
                            next = commands.try_recv().ok();
                        }
                    }
                }
            }
            self.flush().await;
        }
        self.stop().await;
    }

    /// The last state write.
    async fn stop(&mut self) {
        self.flush().await;
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Track {
                peer,
                request,
                reply,
            } => match self.track(peer, request).await {
                Ok(registration) => self.pending.push(Pending::Track(reply, registration)),
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            },
            Command::Untrack { peer, pid, reply } => match self.untrack(peer, pid).await {
                Ok((untracked, removed)) => {
                    self.pending
                        .push(Pending::Untrack(reply, untracked, removed));
                }
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            },
            Command::Status { peer, reply } => {
                // The caller may have gone; nothing to do then.
                let _ = reply.send(self.status(peer).await);
            }
            Command::Restore {
                registrations,
                reply,
            } => {
                self.restore(registrations).await;
                let _ = reply.send(());
            }
            // Handled by the loop, which must stop after it.
            Command::Shutdown { reply } => {
                let _ = reply.send(());
            }
            Command::Metrics { reply } => {
                let status = self.monitor.status().await.map_err(refusal);
                let _ = reply.send(status.map(|monitor| Metrics {
                    monitor,
                    daemon: self.stats.snapshot(self.registrations.len()),
                }));
            }
            Command::Health { reply } => {
                let tracked = self.monitor.status().await.map_err(refusal);
                let _ = reply.send(tracked.map(|status| Health {
                    registrations: self.registrations.len(),
                    tracked: status.tracked_count,
                }));
            }
            #[cfg(debug_assertions)]
            Command::Wedge => {
                tracing::warn!("test wedge: the service actor stops answering");
                std::future::pending::<()>().await;
            }
            Command::Reload { defaults, limits } => {
                tracing::info!(action = %defaults.action, grace = ?defaults.grace, signal = %defaults.signal, "new track defaults");
                self.defaults = defaults;
                self.limits = limits;
            }
        }
    }

    async fn track(
        &mut self,
        peer: Peer,
        request: TrackRequest,
    ) -> Result<Registration, ErrorBody> {
        let pid = request.pid;
        if !peer.is_root() {
            self.check_quota(peer)?;
            match access::owner(pid) {
                Ok(owner) if owner == peer.uid => {}
                Ok(owner) => {
                    tracing::warn!(peer_uid = peer.uid, peer_pid = ?peer.pid, pid, owner, "refused: track of another user's process");
                    return Err(ErrorBody::new(
                        ErrorKind::PermissionDenied,
                        format!(
                            "process {pid} belongs to uid {owner}; uid {} may track only its own processes",
                            peer.uid
                        ),
                    ));
                }
                Err(_) => {
                    return Err(ErrorBody::new(
                        ErrorKind::Refused,
                        format!("no process with pid {pid}"),
                    ));
                }
            }
        }
        // The registrant owns the unit: the monitor never makes another
        // user's process a member of it, nor signals one for it.
        let mut options = TrackOptions::new()
            .owner(peer.uid)
            .action(request.action.unwrap_or(self.defaults.action))
            .grace(request.grace.unwrap_or(self.defaults.grace))
            .signal(request.signal.unwrap_or(self.defaults.signal));
        if let Some(parent) = request.parent {
            options = options.parent(parent);
        }
        // The caller's idea of the process: a pid reused since it learned
        // it is refused by the monitor (identity mismatch).
        if let Some(start_time) = request.start_time {
            options = options.start_time(start_time);
        }
        if let Some(tree) = request.tree {
            options = options.tree(tree);
        }
        if let Some(target) = request.target {
            options = options.target(target);
        }
        let tracked = self
            .monitor
            .track_with(pid, options)
            .await
            .map_err(|error| {
                tracing::info!(peer_uid = peer.uid, peer_pid = ?peer.pid, pid, %error, "track refused by the monitor");
                refusal(error)
            })?;
        if !peer.is_root() && !access::still_owned_by(tracked.id, peer.uid) {
            // The pid changed hands between the check and the track.
            let _ = self.monitor.untrack(tracked.id).await;
            tracing::warn!(
                peer_uid = peer.uid,
                pid,
                "refused: the pid changed owner while it was tracked"
            );
            return Err(ErrorBody::new(
                ErrorKind::PermissionDenied,
                format!("process {pid} is not owned by uid {}", peer.uid),
            ));
        }
        let registration = Registration {
            id: tracked.id,
            parent: tracked.parent,
            uid: peer.uid,
            action: tracked.action,
            grace: tracked.grace,
            signal: tracked.signal,
            tree: tracked.tree,
            target: tracked.target,
        };
        tracing::info!(id = %registration.id, parent = %registration.parent, uid = peer.uid, action = %registration.action, "registered");
        self.insert(registration.clone());
        Ok(registration)
    }

    async fn untrack(
        &mut self,
        peer: Peer,
        pid: i32,
    ) -> Result<(Untracked, Registration), ErrorBody> {
        let Some(registration) = self.registrations.get(&pid) else {
            return Err(ErrorBody::new(
                ErrorKind::Refused,
                format!("pid {pid} is not tracked"),
            ));
        };
        if !peer.may_see(registration.uid) {
            tracing::warn!(peer_uid = peer.uid, peer_pid = ?peer.pid, pid, owner = registration.uid, "refused: untrack of another user's registration");
            return Err(ErrorBody::new(
                ErrorKind::PermissionDenied,
                format!(
                    "pid {pid} was registered by uid {}; uid {} may untrack only its own registrations",
                    registration.uid, peer.uid
                ),
            ));
        }
        let (id, owner) = (registration.id, registration.uid);
        // By identity: should the pid name another tracked process by now,
        // that one is left alone.
        match self.monitor.untrack(id).await {
            // Its `Untracked` event is on the way.
            Ok(_) => {
                self.untracked_owners.insert(id, owner);
            }
            // Not tracked any more: it exited a moment ago; drop ours too.
            Err(MonitorError::NotTracked { .. } | MonitorError::Stale { .. }) => {}
            Err(error) => return Err(refusal(error)),
        }
        let removed = self.remove(pid).ok_or_else(|| {
            ErrorBody::new(
                ErrorKind::Internal,
                format!("pid {pid} vanished while it was untracked"),
            )
        })?;
        tracing::info!(id = %id, uid = peer.uid, "unregistered");
        Ok((Untracked { id }, removed))
    }

    async fn status(&mut self, peer: Peer) -> Result<StatusReport, ErrorBody> {
        let monitor = self.monitor.status().await.map_err(refusal)?;
        let states: HashMap<ProcessId, _> =
            monitor.tracked.iter().map(|t| (t.id, t.state)).collect();
        let units: HashMap<ProcessId, RegistrationUnit> = monitor
            .units
            .iter()
            .map(|unit| {
                let summary = RegistrationUnit {
                    containment: unit.containment,
                    members: unit.members,
                };
                (unit.root, summary)
            })
            .collect();
        let tracked: Vec<RegistrationStatus> = self
            .registrations
            .values()
            .filter(|r| peer.may_see(r.uid))
            .map(|r| RegistrationStatus {
                registration: r.clone(),
                state: states.get(&r.id).copied(),
                unit: units.get(&r.id).copied(),
            })
            .collect();
        let admin = peer.is_root() || peer.uid == self.admin_uid;
        Ok(StatusReport {
            daemon_pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
            daemon_version: env!("CARGO_PKG_VERSION").to_owned(),
            peer_uid: peer.uid,
            check_interval: self.check_interval,
            tracked_count: tracked.len(),
            tracked,
            monitor: admin.then_some(monitor),
            daemon: admin.then(|| self.stats.snapshot(self.registrations.len())),
        })
    }
}

/// The monitor's refusal as a protocol error.
fn refusal(error: MonitorError) -> ErrorBody {
    let kind = match error {
        MonitorError::PermissionDenied { .. } => ErrorKind::PermissionDenied,
        MonitorError::MonitorGone => ErrorKind::Internal,
        _ => ErrorKind::Refused,
    };
    ErrorBody::new(kind, error.to_string())
}
