//! The service's front door: the commands it takes and the cloneable
//! handle that sends them.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::{OwnedEvent, TrackDefaults};
use crate::daemon::access::Peer;
use crate::daemon::limits::Limits;
use crate::protocol::{
    DaemonCounters, ErrorBody, ErrorKind, Registration, StatusReport, TrackRequest, Untracked,
};

pub(super) type Reply<T> = oneshot::Sender<Result<T, ErrorBody>>;

pub(super) enum Command {
    Track {
        peer: Peer,
        request: TrackRequest,
        reply: Reply<Registration>,
    },
    Untrack {
        peer: Peer,
        pid: i32,
        reply: Reply<Untracked>,
    },
    Status {
        peer: Peer,
        reply: Reply<StatusReport>,
    },
    Restore {
        registrations: Vec<Registration>,
        reply: oneshot::Sender<()>,
    },
    Reload {
        defaults: TrackDefaults,
        limits: Limits,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    Health {
        reply: Reply<Health>,
    },
    Metrics {
        reply: Reply<Metrics>,
    },
    /// Test-only (debug builds): the actor stops answering, for the
    /// watchdog test (`daemon/test_wedge.rs`).
    #[cfg(debug_assertions)]
    Wedge,
}

/// What `/metrics` shows: the monitor's status and the daemon's counters.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    /// The monitor's status.
    pub(crate) monitor: monitor_core::Status,
    /// The daemon's counters.
    pub(crate) daemon: DaemonCounters,
}

/// What the watchdog learns from a service that answers: it and the
/// monitor behind it are alive, and how much they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Health {
    /// Registrations held.
    pub(crate) registrations: usize,
    /// Processes the monitor tracks (registrations and their units'
    /// members).
    pub(crate) tracked: usize,
}

/// The front door to the service actor. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct ServiceHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Arc<OwnedEvent>>,
}

fn gone() -> ErrorBody {
    ErrorBody::new(ErrorKind::Internal, "the daemon is shutting down")
}

impl ServiceHandle {
    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ErrorBody> {
        let (reply, response) = oneshot::channel();
        self.commands.send(make(reply)).await.map_err(|_| gone())?;
        response.await.map_err(|_| gone())?
    }

    /// Registers a process for `peer`.
    pub(crate) async fn track(
        &self,
        peer: Peer,
        request: TrackRequest,
    ) -> Result<Registration, ErrorBody> {
        self.request(|reply| Command::Track {
            peer,
            request,
            reply,
        })
        .await
    }

    /// Drops `peer`'s registration of `pid`.
    pub(crate) async fn untrack(&self, peer: Peer, pid: i32) -> Result<Untracked, ErrorBody> {
        self.request(|reply| Command::Untrack { peer, pid, reply })
            .await
    }

    /// What `peer` may see.
    pub(crate) async fn status(&self, peer: Peer) -> Result<StatusReport, ErrorBody> {
        self.request(|reply| Command::Status { peer, reply }).await
    }

    /// Re-tracks registrations read from the state file; returns when done.
    pub(crate) async fn restore(&self, registrations: Vec<Registration>) {
        let (reply, done) = oneshot::channel();
        if self
            .commands
            .send(Command::Restore {
                registrations,
                reply,
            })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// New defaults and quotas for later track requests (config reload).
    pub(crate) async fn reload(&self, defaults: TrackDefaults, limits: Limits) {
        // A service that is gone has no later requests to apply them to.
        let _ = self
            .commands
            .send(Command::Reload { defaults, limits })
            .await;
    }

    /// Writes the state one last time and stops the actor, even while
    /// other handles (stuck connections) still exist.
    pub(crate) async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// Asks the service, and through it the monitor's actor, whether they
    /// answer (the watchdog's probe).
    pub(crate) async fn health(&self) -> Result<Health, ErrorBody> {
        self.request(|reply| Command::Health { reply }).await
    }

    /// The monitor's status and the daemon's counters, for `/metrics`.
    pub(crate) async fn metrics(&self) -> Result<Metrics, ErrorBody> {
        self.request(|reply| Command::Metrics { reply }).await
    }

    /// Test-only (debug builds): wedges the actor for good.
    #[cfg(debug_assertions)]
    pub(crate) async fn wedge(&self) {
        let _ = self.commands.send(Command::Wedge).await;
    }

    /// A receiver of every event from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<OwnedEvent>> {
        self.events.subscribe()
    }
}

impl ServiceHandle {
    pub(super) fn new(
        commands: mpsc::Sender<Command>,
        events: broadcast::Sender<Arc<OwnedEvent>>,
    ) -> Self {
        Self { commands, events }
    }
}
