//! [`OwnedChild`]: a child the monitor owns, handled as a
//! `tokio::process::Child` is.

use std::io;

use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};

use crate::actor::Control;
use crate::{DropAction, Error, ExitStatus, ProcessId, Tracked};

/// A child the monitor owns (started with [`crate::MonitorHandle::spawn`]
/// or handed over with [`crate::MonitorHandle::track_child`]), used like a
/// `tokio::process::Child`: [`wait`](Self::wait),
/// [`try_wait`](Self::try_wait), [`start_kill`](Self::start_kill),
/// [`kill`](Self::kill), [`id`](Self::id), and the piped stdio as tokio
/// types in [`stdin`](Self::stdin), [`stdout`](Self::stdout) and
/// [`stderr`](Self::stderr). The monitor reaps the child; this value
/// receives its exit status.
///
/// What differs from tokio, because the monitor owns a *unit* (the child
/// and everything it starts):
///
/// - [`kill`](Self::kill) and [`start_kill`](Self::start_kill) `SIGKILL`
///   the whole unit, and [`terminate`](Self::terminate) ends it gracefully
///   (the unit's signal, its grace period, then `SIGKILL`); `kill` and
///   `terminate` return once the unit is empty, with the child's status.
/// - [`process_id`](Self::process_id) gives the child's identity, which
///   stays valid after the exit, where [`id`](Self::id) turns `None` as
///   tokio's does.
///
/// # Cancellation
///
/// [`wait`](Self::wait) is cancel-safe: under `tokio::time::timeout` or in
/// `tokio::select!`, a wait that is cancelled loses nothing, and the next
/// call picks up where it left. Once received, the status is kept: every
/// later `wait` or `try_wait` returns it again. `kill` and `terminate`
/// may be cancelled too: the request has gone to the monitor by then and
/// is carried out; calling again is harmless.
///
/// # Drop
///
/// Dropping an `OwnedChild` does not stop the child by default, like
/// tokio's `Child` without `kill_on_drop`: the child runs on, the monitor
/// still reaps it when it exits (and reports the exit in its events), and
/// the monitor's shutdown policy applies to its unit. A drop guard
/// ([`crate::SpawnOptions::terminate_on_drop`] or
/// [`crate::SpawnOptions::kill_on_drop`], or
/// [`set_on_drop`](Self::set_on_drop)) makes a drop before the exit
/// status was received end the whole unit instead. The drop never blocks:
/// it queues the request for the monitor and returns.
///
/// An `OwnedChild` does not keep the monitor running: once the monitor has
/// stopped, `wait` answers [`Error::MonitorGone`] (unless the status had
/// arrived), and a shutdown policy of `leave` leaves the child running.
#[derive(Debug)]
pub struct OwnedChild {
    tracked: Tracked,
    exit: Exit,
    /// Requests to the monitor about this child's unit; unbounded so that
    /// `start_kill` and `Drop` can send without blocking (see
    /// `actor/control.rs`).
    control: mpsc::UnboundedSender<Control>,
    on_drop: Option<DropAction>,
    /// The writing end of the child's stdin, if its command piped it
    /// (`Stdio::piped()`). Take it (`child.stdin.take()`) to write; drop it
    /// to close the child's stdin.
    pub stdin: Option<ChildStdin>,
    /// The reading end of the child's stdout, if its command piped it.
    pub stdout: Option<ChildStdout>,
    /// The reading end of the child's stderr, if its command piped it.
    pub stderr: Option<ChildStderr>,
}

/// Where the exit status stands.
#[derive(Debug)]
enum Exit {
    /// Not received yet; the monitor sends it when it reaps the child.
    Pending(oneshot::Receiver<ExitStatus>),
    /// Received, kept for every later call.
    Exited(ExitStatus),
    /// It will never come; the error says why.
    Lost(LostReason),
}

#[derive(Debug, Clone, Copy)]
enum LostReason {
    /// The monitor stopped first.
    MonitorGone,
    /// The monitor runs, but its reap of the child failed (someone else
    /// reaped it): the `Error` event said so.
    ReapFailed,
}

/// A spawned child's pipe ends, as tokio types.
pub(crate) type Pipes = (Option<ChildStdin>, Option<ChildStdout>, Option<ChildStderr>);

/// Registers a spawned child's std pipe ends with the current runtime's
/// reactor.
pub(crate) fn tokio_pipes(
    (stdin, stdout, stderr): (
        Option<std::process::ChildStdin>,
        Option<std::process::ChildStdout>,
        Option<std::process::ChildStderr>,
    ),
) -> io::Result<Pipes> {
    Ok((
        stdin.map(ChildStdin::from_std).transpose()?,
        stdout.map(ChildStdout::from_std).transpose()?,
        stderr.map(ChildStderr::from_std).transpose()?,
    ))
}

impl OwnedChild {
    pub(crate) fn new(
        tracked: Tracked,
        exit: oneshot::Receiver<ExitStatus>,
        control: mpsc::UnboundedSender<Control>,
    ) -> Self {
        Self {
            tracked,
            exit: Exit::Pending(exit),
            control,
            on_drop: None,
            stdin: None,
            stdout: None,
            stderr: None,
        }
    }

    /// Keeps the pipe ends of a spawned child for the caller.
    pub(crate) fn with_pipes(mut self, (stdin, stdout, stderr): Pipes) -> Self {
        (self.stdin, self.stdout, self.stderr) = (stdin, stdout, stderr);
        self
    }

    /// Arms the drop guard the spawn asked for.
    pub(crate) fn with_drop_action(mut self, on_drop: Option<DropAction>) -> Self {
        self.on_drop = on_drop;
        self
    }

    /// What was recorded when the child was handed over.
    pub fn tracked(&self) -> &Tracked {
        &self.tracked
    }

    /// The child's identity (pid and start time). Unlike [`Self::id`], it
    /// stays usable after the exit: events and status name the child by it,
    /// and a control call made with it after the pid was reused by another
    /// process fails with [`Error::Stale`] instead of reaching that one.
    pub fn process_id(&self) -> ProcessId {
        self.tracked.id
    }

    /// The child's pid, as `tokio::process::Child::id` gives it: `None`
    /// once this `OwnedChild` has received the exit status (the pid may
    /// have been reused since). See [`Self::process_id`].
    pub fn id(&self) -> Option<u32> {
        match self.exit {
            Exit::Exited(_) => None,
            Exit::Pending(_) | Exit::Lost(_) => u32::try_from(self.tracked.id.pid).ok(),
        }
    }

    /// The drop guard in force: what dropping this value before the exit
    /// status was received does to the child's unit (`None`: nothing).
    pub fn on_drop(&self) -> Option<DropAction> {
        self.on_drop
    }

    /// Arms, changes or (with `None`) disarms the drop guard; see
    /// [`crate::SpawnOptions::on_drop`]. Useful for a child handed over
    /// with [`crate::MonitorHandle::track_child`], which takes no
    /// `SpawnOptions`.
    pub fn set_on_drop(&mut self, on_drop: Option<DropAction>) {
        self.on_drop = on_drop;
    }

    /// Waits until the monitor has reaped the child and returns its exit
    /// status.
    ///
    /// Cancel-safe (see the type's docs): a `wait` dropped by a timeout
    /// can be retried, and once received the status is returned by every
    /// later call. Fails with [`Error::MonitorGone`] if the monitor stopped
    /// before the child exited, and with [`Error::Os`] (`waitpid`,
    /// `ECHILD`) if the monitor could not reap it because something else
    /// in this process reaped it first.
    pub async fn wait(&mut self) -> Result<ExitStatus, Error> {
        let received = match &mut self.exit {
            Exit::Exited(status) => return Ok(*status),
            Exit::Lost(reason) => return Err(lost_error(*reason, self.tracked.id)),
            // Polling `&mut Receiver` leaves it intact when cancelled.
            Exit::Pending(receiver) => receiver.await.ok(),
        };
        self.settle(received)
    }

    /// The exit status if the monitor has reaped the child by now,
    /// `Ok(None)` if it still runs; never waits. As tokio's, it returns the
    /// status again on every later call.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        let received = match &mut self.exit {
            Exit::Exited(status) => return Ok(Some(*status)),
            Exit::Lost(reason) => return Err(lost_error(*reason, self.tracked.id)),
            Exit::Pending(receiver) => match receiver.try_recv() {
                Ok(status) => Some(status),
                Err(oneshot::error::TryRecvError::Empty) => return Ok(None),
                Err(oneshot::error::TryRecvError::Closed) => None,
            },
        };
        self.settle(received).map(Some)
    }

    /// [`Self::wait`] for plain threads. Inside a `multi_thread` Tokio
    /// runtime it blocks through `block_in_place`; inside a
    /// `current_thread` one it fails with [`Error::InsideRuntime`] instead
    /// of blocking the runtime (await [`Self::wait`] there).
    pub fn wait_blocking(&mut self) -> Result<ExitStatus, Error> {
        crate::blocking::block("OwnedChild::wait_blocking", "OwnedChild::wait", || {
            let received =
                match std::mem::replace(&mut self.exit, Exit::Lost(LostReason::MonitorGone)) {
                    Exit::Pending(receiver) => receiver.blocking_recv().ok(),
                    settled => {
                        self.exit = settled;
                        return match &self.exit {
                            Exit::Exited(status) => Ok(*status),
                            Exit::Lost(reason) => Err(lost_error(*reason, self.tracked.id)),
                            Exit::Pending(_) => Err(Error::MonitorGone),
                        };
                    }
                };
            self.settle(received)
        })
    }

    /// Asks the monitor to `SIGKILL` the child's whole unit, and returns
    /// without waiting for it to take effect (as tokio's `start_kill`).
    /// Await [`Self::wait`] afterwards for the status, or call
    /// [`Self::kill`] instead. A child that has exited is no error (its
    /// unit's remaining members, if any, are killed); fails only with
    /// [`Error::MonitorGone`] while the status is still to come.
    pub fn start_kill(&mut self) -> Result<(), Error> {
        self.request(true, None)
    }

    /// `SIGKILL` to the child's whole unit, then waits until the unit is
    /// empty; returns the child's exit status. (tokio's `kill` returns
    /// `()`; the status is what [`Self::wait`] would return.)
    ///
    /// A unit with a member stuck in the kernel (state `D`) past
    /// `SIGKILL` only ends when that member does; bound the call with
    /// `tokio::time::timeout` if that matters.
    pub async fn kill(&mut self) -> Result<ExitStatus, Error> {
        self.stop(true).await
    }

    /// Terminates the child's whole unit the way an orphan is terminated:
    /// the unit's signal (`SIGTERM` by default), its grace period, then
    /// `SIGKILL`; waits until the unit is empty and returns the child's
    /// exit status.
    pub async fn terminate(&mut self) -> Result<ExitStatus, Error> {
        self.stop(false).await
    }

    async fn stop(&mut self, kill: bool) -> Result<ExitStatus, Error> {
        let (ended, unit_over) = oneshot::channel();
        self.request(kill, Some(ended))?;
        // Otherwise the unit is over, or the monitor let go of it (an
        // untrack, or a shutdown, which `wait` reports).
        if let Ok(Err(error)) = unit_over.await {
            return Err(error);
        }
        self.wait().await
    }

    fn request(
        &mut self,
        kill: bool,
        ended: Option<oneshot::Sender<Result<(), Error>>>,
    ) -> Result<(), Error> {
        let request = Control::Stop {
            id: self.tracked.id,
            kill,
            ended,
        };
        match self.control.send(request) {
            Ok(()) => Ok(()),
            // The monitor is gone, and nothing is left to stop of a child
            // whose status came: no error then, as with tokio.
            Err(_) if matches!(self.exit, Exit::Exited(_)) => Ok(()),
            Err(_) => Err(Error::MonitorGone),
        }
    }

    /// Keeps what the exit channel said: the status, or why none will come.
    fn settle(&mut self, received: Option<ExitStatus>) -> Result<ExitStatus, Error> {
        match received {
            Some(status) => {
                self.exit = Exit::Exited(status);
                Ok(status)
            }
            None => {
                // The actor drops its end of the control channel before its
                // state (see `Actor::run`): with the channel still open, the
                // monitor runs, and the status itself was lost.
                let reason = if self.control.is_closed() {
                    LostReason::MonitorGone
                } else {
                    LostReason::ReapFailed
                };
                self.exit = Exit::Lost(reason);
                Err(lost_error(reason, self.tracked.id))
            }
        }
    }
}

/// Why no status will come, as an error.
fn lost_error(reason: LostReason, id: ProcessId) -> Error {
    match reason {
        LostReason::MonitorGone => Error::MonitorGone,
        LostReason::ReapFailed => Error::Os {
            syscall: "waitpid",
            pid: id.pid,
            source: io::Error::from(nix::errno::Errno::ECHILD),
        },
    }
}

impl Drop for OwnedChild {
    fn drop(&mut self) {
        let Some(action) = self.on_drop else {
            return;
        };
        if !matches!(self.exit, Exit::Pending(_)) {
            return;
        }
        tracing::debug!(
            pid = self.tracked.id.pid,
            ?action,
            "owned child dropped unwaited: ending its unit"
        );
        // A monitor that is gone has applied its shutdown policy already;
        // nothing is left to ask.
        let _ = self.control.send(Control::Stop {
            id: self.tracked.id,
            kill: action == DropAction::Kill,
            ended: None,
        });
    }
}
