//! The cheap, cloneable front door to a running monitor.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::actor::Command;
use crate::blocking::block;
use crate::{
    ChildProcess, DrainReport, Error, Event, ExitInfo, OrphanTarget, OwnedChild, ProcessId,
    ProcessRef, SpawnCommand, SpawnOptions, Status, TrackChildError, TrackOptions, Tracked,
};

/// Talks to a running monitor. `Clone + Send + Sync`; holds only the
/// command sender, so it is as cheap to clone as an `mpsc::Sender`.
///
/// Every method fails with [`Error::MonitorGone`] once the monitor has shut
/// down; none panics or hangs.
///
/// The control calls ([`terminate`](Self::terminate),
/// [`kill`](Self::kill), [`stop`](Self::stop), [`untrack`](Self::untrack))
/// take `impl Into<`[`ProcessRef`]`>`: a [`crate::ProcessId`] (checked
/// against the process tracked under its pid, [`Error::Stale`] when that
/// process is gone) or a bare `i32` pid.
///
/// The `*_blocking` variants are for plain threads. They never panic:
/// inside a `multi_thread` Tokio runtime they block through
/// `tokio::task::block_in_place`, and inside a `current_thread` runtime
/// they fail with [`Error::InsideRuntime`] (use the async ones there).
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

    /// A request from a plain thread; `call` and `instead` name the
    /// blocking method and its async form, for [`Error::InsideRuntime`].
    fn request_blocking<T>(
        &self,
        (call, instead): (&'static str, &'static str),
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        block(call, instead, || {
            let (reply, response) = oneshot::channel();
            self.commands
                .blocking_send(make(reply))
                .map_err(|_| Error::MonitorGone)?;
            response.blocking_recv().map_err(|_| Error::MonitorGone)
        })
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

    /// Starts `command` (a `std::process::Command` or a
    /// `tokio::process::Command`, see [`SpawnCommand`]) as a child the
    /// monitor owns from the first instant: no sweep, not even
    /// `ReapPolicy::AllChildren`, can reap it before it is registered.
    /// Handle it through the returned [`OwnedChild`] as a
    /// `tokio::process::Child`: its exit status, its piped stdio (as tokio
    /// types, registered with the monitor's runtime), `kill`. A program
    /// that cannot be started is [`Error::Spawn`], with the OS error.
    pub async fn spawn(&self, command: impl Into<SpawnCommand>) -> Result<OwnedChild, Error> {
        self.spawn_with(command, SpawnOptions::default()).await
    }

    /// [`MonitorHandle::spawn`] with options: how the child is tracked, its
    /// drop guard ([`SpawnOptions::on_drop`]), and the signal it gets when
    /// this process dies (`PR_SET_PDEATHSIG`, armed from one long-lived
    /// spawner thread, so it fires when the process dies, not when the
    /// calling thread ends).
    pub async fn spawn_with(
        &self,
        command: impl Into<SpawnCommand>,
        options: SpawnOptions,
    ) -> Result<OwnedChild, Error> {
        let (command, options) = spawn_parts(command.into(), options);
        self.request(|reply| Command::Spawn {
            command,
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
    pub async fn terminate(&self, process: impl Into<ProcessRef>) -> Result<Tracked, Error> {
        let process = process.into();
        self.request(|reply| Command::Stop {
            process,
            kill: false,
            target: None,
            reply,
        })
        .await?
    }

    /// Sends `SIGKILL` to a tracked process now, cutting short any grace
    /// period it is in; for a unit's root, to its whole unit, as
    /// [`MonitorHandle::terminate`].
    pub async fn kill(&self, process: impl Into<ProcessRef>) -> Result<Tracked, Error> {
        let process = process.into();
        self.request(|reply| Command::Stop {
            process,
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
    pub async fn stop(
        &self,
        process: impl Into<ProcessRef>,
        kill: bool,
        target: OrphanTarget,
    ) -> Result<Tracked, Error> {
        let process = process.into();
        self.request(|reply| Command::Stop {
            process,
            kill,
            target: Some(target),
            reply,
        })
        .await?
    }

    /// Stops tracking a process (a unit's root: the whole unit); a pending
    /// termination is cancelled.
    pub async fn untrack(&self, process: impl Into<ProcessRef>) -> Result<Tracked, Error> {
        let process = process.into();
        self.request(|reply| Command::Untrack { process, reply })
            .await?
    }

    /// A snapshot of the monitor.
    pub async fn status(&self) -> Result<Status, Error> {
        self.request(|reply| Command::Status { reply }).await
    }

    /// A new receiver of every event from now on: a
    /// `tokio::sync::broadcast::Receiver<Event>`.
    ///
    /// It holds up to [`crate::Config::event_capacity`] events not yet
    /// received. A subscriber that falls further behind never slows the
    /// monitor: its oldest events are dropped, and its next `recv()`
    /// returns `Err(RecvError::Lagged(n))` with the number it missed, then
    /// carries on from the oldest event still held. After a lag, read
    /// [`MonitorHandle::status`] to learn the current state. `recv()`
    /// returns `Err(RecvError::Closed)` once the monitor has stopped and
    /// every held event was received.
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
    /// track (nor saw end lately), [`Error::Stale`] when the pid
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
    /// process that identity, [`Error::Stale`] when the pid now
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
        let names = (
            "MonitorHandle::track_with_blocking",
            "MonitorHandle::track_with",
        );
        self.request_blocking(names, |reply| Command::Track {
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
        let mut child = Some(child.into());
        let result = block(
            "MonitorHandle::track_child_with_blocking",
            "MonitorHandle::track_child_with",
            || {
                let Some(child) = child.take() else {
                    return Ok(Err(gone_with_nothing()));
                };
                let (command, response) = track_child_command(child, options);
                if let Err(mpsc::error::SendError(command)) = self.commands.blocking_send(command) {
                    return Ok(Err(gone_with(command)));
                }
                Ok(response
                    .blocking_recv()
                    .unwrap_or_else(|_| Err(gone_with_nothing())))
            },
        );
        // Refused before it could block: the child goes back to the caller.
        result.unwrap_or_else(|error| Err(TrackChildError::new(error, child.take())))
    }

    /// [`MonitorHandle::spawn_with`] for plain threads.
    pub fn spawn_with_blocking(
        &self,
        command: impl Into<SpawnCommand>,
        options: SpawnOptions,
    ) -> Result<OwnedChild, Error> {
        let (command, options) = spawn_parts(command.into(), options);
        let names = (
            "MonitorHandle::spawn_with_blocking",
            "MonitorHandle::spawn_with",
        );
        self.request_blocking(names, |reply| Command::Spawn {
            command,
            options,
            reply,
        })?
    }

    /// [`MonitorHandle::terminate`] for plain threads.
    pub fn terminate_blocking(&self, process: impl Into<ProcessRef>) -> Result<Tracked, Error> {
        let process = process.into();
        let names = (
            "MonitorHandle::terminate_blocking",
            "MonitorHandle::terminate",
        );
        self.request_blocking(names, |reply| Command::Stop {
            process,
            kill: false,
            target: None,
            reply,
        })?
    }

    /// [`MonitorHandle::kill`] for plain threads.
    pub fn kill_blocking(&self, process: impl Into<ProcessRef>) -> Result<Tracked, Error> {
        let process = process.into();
        let names = ("MonitorHandle::kill_blocking", "MonitorHandle::kill");
        self.request_blocking(names, |reply| Command::Stop {
            process,
            kill: true,
            target: None,
            reply,
        })?
    }

    /// [`MonitorHandle::stop`] for plain threads.
    pub fn stop_blocking(
        &self,
        process: impl Into<ProcessRef>,
        kill: bool,
        target: OrphanTarget,
    ) -> Result<Tracked, Error> {
        let process = process.into();
        let names = ("MonitorHandle::stop_blocking", "MonitorHandle::stop");
        self.request_blocking(names, |reply| Command::Stop {
            process,
            kill,
            target: Some(target),
            reply,
        })?
    }

    /// [`MonitorHandle::untrack`] for plain threads.
    pub fn untrack_blocking(&self, process: impl Into<ProcessRef>) -> Result<Tracked, Error> {
        let process = process.into();
        let names = ("MonitorHandle::untrack_blocking", "MonitorHandle::untrack");
        self.request_blocking(names, |reply| Command::Untrack { process, reply })?
    }

    /// [`MonitorHandle::status`] for plain threads.
    pub fn status_blocking(&self) -> Result<Status, Error> {
        let names = ("MonitorHandle::status_blocking", "MonitorHandle::status");
        self.request_blocking(names, |reply| Command::Status { reply })
    }

    /// [`MonitorHandle::subscribe`] for plain threads.
    pub fn subscribe_blocking(&self) -> Result<broadcast::Receiver<Event>, Error> {
        let names = (
            "MonitorHandle::subscribe_blocking",
            "MonitorHandle::subscribe",
        );
        self.request_blocking(names, |reply| Command::Subscribe { reply })
    }

    /// [`MonitorHandle::wait_for`] for plain threads.
    pub fn wait_for_blocking(&self, id: ProcessId) -> Result<ExitInfo, Error> {
        let names = (
            "MonitorHandle::wait_for_blocking",
            "MonitorHandle::wait_for",
        );
        self.request_blocking(names, |reply| Command::WaitFor { id, reply })?
    }

    /// [`MonitorHandle::drain`] for plain threads.
    pub fn drain_blocking(&self, timeout: Duration) -> Result<DrainReport, Error> {
        let names = ("MonitorHandle::drain_blocking", "MonitorHandle::drain");
        self.request_blocking(names, |reply| Command::Drain { timeout, reply })
    }

    /// [`MonitorHandle::shutdown`] for plain threads.
    pub fn shutdown_blocking(&self) -> Result<(), Error> {
        let names = (
            "MonitorHandle::shutdown_blocking",
            "MonitorHandle::shutdown",
        );
        match self.request_blocking(names, |reply| Command::Shutdown { reply }) {
            Ok(()) | Err(Error::MonitorGone) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

/// The std command to run, and the options with the drop guard a tokio
/// command asked for (`kill_on_drop`), unless the options set one.
fn spawn_parts(
    command: SpawnCommand,
    mut options: SpawnOptions,
) -> (Box<std::process::Command>, SpawnOptions) {
    if options.on_drop.is_none() {
        options.on_drop = command.on_drop;
    }
    (Box::new(command.command), options)
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
