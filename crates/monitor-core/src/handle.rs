//! The cheap, cloneable front door to a running monitor.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::actor::Command;
use crate::{
    ChildProcess, DrainReport, Error, Event, ExitInfo, OrphanTarget, OwnedChild, ProcessId,
    SpawnOptions, Status, TrackChildError, TrackOptions, Tracked,
};

/// Talks to a running monitor. `Clone + Send + Sync`; holds only the
/// command sender, so it is as cheap to clone as an `mpsc::Sender`.
///
/// Every method fails with [`Error::MonitorGone`] once the monitor has shut
/// down; none panics or hangs. The `*_blocking` variants are for plain
/// threads and panic when called inside an async context (use the async
/// ones there).
#[derive(Debug, Clone)]
pub struct MonitorHandle {
    commands: mpsc::Sender<Command>,
}

impl MonitorHandle {
    pub(crate) fn new(commands: mpsc::Sender<Command>) -> Self {
        Self { commands }
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| Error::MonitorGone)?;
        response.await.map_err(|_| Error::MonitorGone)
    }

    fn request_blocking<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        let (reply, response) = oneshot::channel();
        self.commands
            .blocking_send(make(reply))
            .map_err(|_| Error::MonitorGone)?;
        response.blocking_recv().map_err(|_| Error::MonitorGone)
    }

    /// Tracks `pid` with the monitor's defaults: when its parent (as it is
    /// now) dies, the orphan action runs.
    pub async fn track(&self, pid: i32) -> Result<Tracked, Error> {
        self.track_with(pid, TrackOptions::default()).await
    }

    /// Tracks `pid` with per-process options.
    pub async fn track_with(&self, pid: i32, options: TrackOptions) -> Result<Tracked, Error> {
        self.request(|reply| Command::Track {
            pid,
            options,
            reply,
        })
        .await?
    }

    /// Hands a child over to the monitor, which from now on reaps it and
    /// reports its exit status through the returned [`OwnedChild`]. Its
    /// parent is this process, so it is never orphaned while the monitor
    /// runs; untracking it stops nothing but orphan handling. On failure the
    /// child comes back inside the error.
    pub async fn track_child(
        &self,
        child: impl Into<ChildProcess>,
    ) -> Result<OwnedChild, TrackChildError> {
        self.track_child_with(child, TrackOptions::default()).await
    }

    /// [`MonitorHandle::track_child`] with options (e.g. a named parent).
    pub async fn track_child_with(
        &self,
        child: impl Into<ChildProcess>,
        options: TrackOptions,
    ) -> Result<OwnedChild, TrackChildError> {
        let (command, response) = track_child_command(child.into(), options);
        if let Err(mpsc::error::SendError(command)) = self.commands.send(command).await {
            return Err(gone_with(command));
        }
        response.await.unwrap_or_else(|_| Err(gone_with_nothing()))
    }

    /// Starts `command` as a child the monitor owns from the first instant:
    /// no sweep, not even `ReapPolicy::AllChildren`, can reap it before it
    /// is registered. Await its exit status on the returned [`OwnedChild`],
    /// which also holds the pipe ends the command asked for.
    pub async fn spawn(&self, command: std::process::Command) -> Result<OwnedChild, Error> {
        self.spawn_with(command, SpawnOptions::default()).await
    }

    /// [`MonitorHandle::spawn`] with options: how the child is tracked, and
    /// the signal it gets when this process dies (`PR_SET_PDEATHSIG`, armed
    /// from one long-lived spawner thread, so it fires when the process dies,
    /// not when the calling thread ends).
    pub async fn spawn_with(
        &self,
        command: std::process::Command,
        options: SpawnOptions,
    ) -> Result<OwnedChild, Error> {
        self.request(|reply| Command::Spawn {
            command: Box::new(command),
            options,
            reply,
        })
        .await?
    }

    /// Starts termination of a tracked process now, as if it had been
    /// orphaned with the `terminate` action: its signal, its grace period,
    /// then `SIGKILL`. For a unit's root, the whole unit is terminated
    /// (every member, found again first); for a member, the member alone.
    /// [`MonitorHandle::stop`] names another target. A process already
    /// terminating is left as it is.
    pub async fn terminate(&self, pid: i32) -> Result<Tracked, Error> {
        self.request(|reply| Command::Stop {
            pid,
            kill: false,
            target: None,
            reply,
        })
        .await?
    }

    /// Sends `SIGKILL` to a tracked process now, cutting short any grace
    /// period it is in; for a unit's root, to its whole unit, as
    /// [`MonitorHandle::terminate`].
    pub async fn kill(&self, pid: i32) -> Result<Tracked, Error> {
        self.request(|reply| Command::Stop {
            pid,
            kill: true,
            target: None,
            reply,
        })
        .await?
    }

    /// [`MonitorHandle::terminate`] (or, with `kill`, [`MonitorHandle::kill`])
    /// of what `target` reaches: [`OrphanTarget::Process`] the process
    /// alone, [`OrphanTarget::Tree`] its unit (a member: its descendants),
    /// [`OrphanTarget::Group`] its process group's members that its unit's
    /// owner may signal.
    pub async fn stop(&self, pid: i32, kill: bool, target: OrphanTarget) -> Result<Tracked, Error> {
        self.request(|reply| Command::Stop {
            pid,
            kill,
            target: Some(target),
            reply,
        })
        .await?
    }

    /// Stops tracking `pid`; a pending termination is cancelled.
    pub async fn untrack(&self, pid: i32) -> Result<Tracked, Error> {
        self.request(|reply| Command::Untrack { pid, reply })
            .await?
    }

    /// A snapshot of the monitor.
    pub async fn status(&self) -> Result<Status, Error> {
        self.request(|reply| Command::Status { reply }).await
    }

    /// A new receiver of every event from now on: a
    /// [`tokio::sync::broadcast::Receiver`]. It keeps up to
    /// [`crate::Config::event_capacity`] unread events; a subscriber that
    /// falls further behind gets `RecvError::Lagged(n)` (the monitor never
    /// waits for it), and `RecvError::Closed` once the monitor has stopped.
    /// [`MonitorHandle::subscribe_unit`] gives one unit's events alone.
    pub async fn subscribe(&self) -> Result<broadcast::Receiver<Event>, Error> {
        self.request(|reply| Command::Subscribe { reply }).await
    }

    /// Waits until the tracked process `id` ends, and says how: with its
    /// exit status where the monitor reaped it (a child it spawned, was
    /// handed or adopted), without one otherwise.
    ///
    /// Cancel-safe: dropping the future (a `tokio::time::timeout` that
    /// elapsed) changes nothing, and the wait can be started again. A
    /// process that ended a moment ago (the monitor remembers its last
    /// 1,024 ends) is answered at once.
    ///
    /// # Errors
    ///
    /// At once: [`Error::NotTracked`] for a process the monitor does not
    /// track (nor saw end lately), [`Error::IdentityMismatch`] when the pid
    /// now names another process than `id`. Later:
    /// [`Error::Untracked`] when it is untracked before it ends,
    /// [`Error::MonitorGone`] when the monitor stops first (with
    /// [`crate::ShutdownPolicy::Leave`]).
    pub async fn wait_for(&self, id: ProcessId) -> Result<ExitInfo, Error> {
        self.request(|reply| Command::WaitFor { id, reply }).await?
    }

    /// Terminates every unit the monitor holds, and waits until none is
    /// left or `timeout` has passed.
    ///
    /// Each process gets its unit's termination signal, then `SIGKILL`
    /// after its grace period, as [`MonitorHandle::terminate`] does; the
    /// units end together, in about one grace period. Drained are the units
    /// of processes the monitor spawned or was handed *and* those of
    /// processes it only tracks (`track`): a drain is an explicit request
    /// to end what the monitor holds, and a process to keep is untracked
    /// first. Units started after the drain began are not part of it.
    ///
    /// Unlike [`MonitorHandle::shutdown`], the monitor keeps running. The
    /// report names what ended and what was still alive when the drain
    /// stopped waiting; past the timeout, the escalation goes on (a
    /// process in its grace period still gets its `SIGKILL`).
    pub async fn drain(&self, timeout: Duration) -> Result<DrainReport, Error> {
        self.request(|reply| Command::Drain { timeout, reply })
            .await
    }

    /// A receiver of the events of one unit: the unit whose root is `root`
    /// (a member's identity names its unit too).
    ///
    /// It is a [`tokio::sync::broadcast::Receiver`], like
    /// [`MonitorHandle::subscribe`]'s, that gets only this unit's events
    /// from now on: those about its root and its members (tracked, signalled,
    /// killed, reaped, exited, ...), [`Event::Refused`] for processes kept
    /// out of it, and [`Event::UnitEnded`] last (also when the unit is
    /// untracked, after its `Untracked` events). After that, `recv` returns
    /// `RecvError::Closed`, as it does when the monitor stops. It keeps up
    /// to 256 unread events; a subscriber that falls further behind gets
    /// `RecvError::Lagged`.
    ///
    /// # Errors
    ///
    /// [`Error::NotTracked`] when no unit has that root and no tracked
    /// process that identity, [`Error::IdentityMismatch`] when the pid now
    /// names another process.
    pub async fn subscribe_unit(
        &self,
        root: ProcessId,
    ) -> Result<broadcast::Receiver<Event>, Error> {
        self.request(|reply| Command::SubscribeUnit { id: root, reply })
            .await?
    }

    /// Stops the monitor after applying its shutdown policy. Succeeds also
    /// when it had already stopped.
    pub async fn shutdown(&self) -> Result<(), Error> {
        match self.request(|reply| Command::Shutdown { reply }).await {
            Ok(()) | Err(Error::MonitorGone) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Whether the monitor has stopped taking commands.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    /// [`MonitorHandle::track`] for plain threads.
    pub fn track_blocking(&self, pid: i32) -> Result<Tracked, Error> {
        self.track_with_blocking(pid, TrackOptions::default())
    }

    /// [`MonitorHandle::track_with`] for plain threads.
    pub fn track_with_blocking(&self, pid: i32, options: TrackOptions) -> Result<Tracked, Error> {
        self.request_blocking(|reply| Command::Track {
            pid,
            options,
            reply,
        })?
    }

    /// [`MonitorHandle::track_child`] for plain threads.
    pub fn track_child_blocking(
        &self,
        child: impl Into<ChildProcess>,
    ) -> Result<OwnedChild, TrackChildError> {
        self.track_child_with_blocking(child, TrackOptions::default())
    }

    /// [`MonitorHandle::track_child_with`] for plain threads.
    pub fn track_child_with_blocking(
        &self,
        child: impl Into<ChildProcess>,
        options: TrackOptions,
    ) -> Result<OwnedChild, TrackChildError> {
        let (command, response) = track_child_command(child.into(), options);
        if let Err(mpsc::error::SendError(command)) = self.commands.blocking_send(command) {
            return Err(gone_with(command));
        }
        response
            .blocking_recv()
            .unwrap_or_else(|_| Err(gone_with_nothing()))
    }

    /// [`MonitorHandle::spawn_with`] for plain threads.
    pub fn spawn_with_blocking(
        &self,
        command: std::process::Command,
        options: SpawnOptions,
    ) -> Result<OwnedChild, Error> {
        self.request_blocking(|reply| Command::Spawn {
            command: Box::new(command),
            options,
            reply,
        })?
    }

    /// [`MonitorHandle::terminate`] for plain threads.
    pub fn terminate_blocking(&self, pid: i32) -> Result<Tracked, Error> {
        self.request_blocking(|reply| Command::Stop {
            pid,
            kill: false,
            target: None,
            reply,
        })?
    }

    /// [`MonitorHandle::kill`] for plain threads.
    pub fn kill_blocking(&self, pid: i32) -> Result<Tracked, Error> {
        self.request_blocking(|reply| Command::Stop {
            pid,
            kill: true,
            target: None,
            reply,
        })?
    }

    /// [`MonitorHandle::untrack`] for plain threads.
    pub fn untrack_blocking(&self, pid: i32) -> Result<Tracked, Error> {
        self.request_blocking(|reply| Command::Untrack { pid, reply })?
    }

    /// [`MonitorHandle::status`] for plain threads.
    pub fn status_blocking(&self) -> Result<Status, Error> {
        self.request_blocking(|reply| Command::Status { reply })
    }

    /// [`MonitorHandle::subscribe`] for plain threads.
    pub fn subscribe_blocking(&self) -> Result<broadcast::Receiver<Event>, Error> {
        self.request_blocking(|reply| Command::Subscribe { reply })
    }

    /// [`MonitorHandle::wait_for`] for plain threads.
    pub fn wait_for_blocking(&self, id: ProcessId) -> Result<ExitInfo, Error> {
        self.request_blocking(|reply| Command::WaitFor { id, reply })?
    }

    /// [`MonitorHandle::drain`] for plain threads.
    pub fn drain_blocking(&self, timeout: Duration) -> Result<DrainReport, Error> {
        self.request_blocking(|reply| Command::Drain { timeout, reply })
    }

    /// [`MonitorHandle::shutdown`] for plain threads.
    pub fn shutdown_blocking(&self) -> Result<(), Error> {
        match self.request_blocking(|reply| Command::Shutdown { reply }) {
            Ok(()) | Err(Error::MonitorGone) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

type TrackChildReply = oneshot::Receiver<Result<OwnedChild, TrackChildError>>;

fn track_child_command(child: ChildProcess, options: TrackOptions) -> (Command, TrackChildReply) {
    let (reply, response) = oneshot::channel();
    let command = Command::TrackChild {
        child,
        options,
        reply,
    };
    (command, response)
}

/// The monitor stopped while it held the child: nothing to hand back.
fn gone_with_nothing() -> TrackChildError {
    TrackChildError::new(Error::MonitorGone, None)
}

/// The monitor is gone before it took the child: hand the child back.
fn gone_with(command: Command) -> TrackChildError {
    let child = match command {
        Command::TrackChild { child, .. } => Some(child),
        _ => None,
    };
    TrackChildError::new(Error::MonitorGone, child)
}
