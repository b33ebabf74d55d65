//! Control by identity: what a control call's [`ProcessRef`] names, the
//! requests an [`crate::OwnedChild`] sends about its own unit (stop,
//! kill, the drop guard), and the callers waiting for a unit to end.

use tokio::sync::{mpsc, oneshot};

use super::Actor;
use crate::{Error, OrphanTarget, ProcessId, ProcessRef, Signal, Tracked};

/// A request from an [`crate::OwnedChild`]. It travels on a channel of its
/// own, unbounded, so an `OwnedChild` can send it from synchronous code
/// (`start_kill`, its `Drop`) without ever blocking or losing it to a full
/// queue; there is at most one in flight per call, and each is small.
#[derive(Debug)]
pub(crate) enum Control {
    /// Stop the unit whose root is `id` (with `kill`, `SIGKILL` at once);
    /// `ended`, if given, answers once the unit is over.
    Stop {
        id: ProcessId,
        kill: bool,
        ended: Option<oneshot::Sender<Result<(), Error>>>,
    },
}

/// Both ends of the control channel: the actor keeps the sender to hand
/// to each [`crate::OwnedChild`] it makes, and takes the receiver into its
/// run loop.
#[derive(Debug)]
pub(super) struct ControlChannel {
    pub(super) sender: mpsc::UnboundedSender<Control>,
    pub(super) receiver: Option<mpsc::UnboundedReceiver<Control>>,
}

impl ControlChannel {
    pub(super) fn new() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            sender,
            receiver: Some(receiver),
        }
    }
}

/// What a [`ProcessRef`] resolved to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Resolved {
    /// A tracked process (by a bare pid: whatever is tracked under it, if
    /// anything).
    Pid(i32),
    /// A unit whose root has exited while members remain.
    Unit(ProcessId),
}

impl Actor {
    /// Checks a control call's process the way `track` checks a pid, and,
    /// for an identity, that it still names the process tracked under its
    /// pid (or a unit whose root it was).
    pub(super) fn resolve(&self, process: ProcessRef) -> Result<Resolved, Error> {
        let pid = process.pid();
        self.check_pid(pid)?;
        let ProcessRef::Id(id) = process else {
            return Ok(Resolved::Pid(pid));
        };
        let tracked = self.tracked.get(&pid).map(super::Entry::id);
        if tracked == Some(id) {
            return Ok(Resolved::Pid(pid));
        }
        if self.units.get(&id).is_some_and(|unit| !unit.root_running) {
            return Ok(Resolved::Unit(id));
        }
        if let Some(now) = tracked {
            return Err(Error::Stale { id, now: Some(now) });
        }
        match self.os.stat_pid(pid) {
            Some(info) if info.start_time != id.start_time => Err(Error::Stale {
                id,
                now: Some(ProcessId::new(pid, info.start_time)),
            }),
            Some(info) if !info.exited => Err(Error::NotTracked { pid }),
            // Gone, or a zombie waiting for its parent: it has exited.
            _ => Err(Error::Stale { id, now: None }),
        }
    }

    /// `MonitorHandle::terminate`, `kill` and `stop`.
    pub(super) fn stop_ref(
        &mut self,
        process: ProcessRef,
        kill: bool,
        target: Option<OrphanTarget>,
    ) -> Result<Tracked, Error> {
        match self.resolve(process)? {
            Resolved::Pid(pid) => self.stop(pid, kill, target),
            Resolved::Unit(root) => self.stop_unit(root, kill),
        }
    }

    /// `MonitorHandle::untrack`.
    pub(super) fn untrack_ref(&mut self, process: ProcessRef) -> Result<Tracked, Error> {
        match self.resolve(process)? {
            Resolved::Pid(pid) => self.untrack(pid),
            Resolved::Unit(root) => self.untrack_unit(root),
        }
    }

    /// A request from an `OwnedChild`.
    pub(super) fn on_control(&mut self, control: Control) {
        let Control::Stop { id, kill, ended } = control;
        match (self.stop_owned(id, kill), ended) {
            (Ok(Some(root)), Some(ended)) => {
                self.unit_waiters.entry(root).or_default().push(ended);
            }
            (Ok(_), Some(ended)) => {
                // The caller may have stopped waiting; nothing to undo.
                let _ = ended.send(Ok(()));
            }
            (Err(error), Some(ended)) => {
                let _ = ended.send(Err(error));
            }
            (Err(error), None) => {
                tracing::warn!(pid = id.pid, %error, kill, "an owned child's stop request failed");
            }
            (Ok(_), None) => {}
        }
    }

    /// Stops the unit of an owned child that `id` names. Returns its root
    /// while the unit is still there to be waited for; `None` when nothing
    /// is left of it (it ended, or the child was untracked: then the child
    /// itself, still owned, gets `SIGKILL`, since no escalation is left to
    /// run for it).
    fn stop_owned(&mut self, id: ProcessId, kill: bool) -> Result<Option<ProcessId>, Error> {
        let root = match self.resolve(ProcessRef::Id(id)) {
            Ok(Resolved::Pid(pid)) => {
                let root = self.tracked.get(&pid).map_or(id, super::Entry::root);
                self.stop(pid, kill, None)?;
                root
            }
            Ok(Resolved::Unit(root)) => {
                self.stop_unit(root, kill)?;
                root
            }
            Err(Error::Stale { .. } | Error::NotTracked { .. }) => {
                self.kill_released(id);
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        // The stop may have ended the unit at once (a child that had
        // already exited is reaped on the spot).
        Ok(self.units.contains_key(&root).then_some(root))
    }

    /// `SIGKILL` to an owned child that was untracked and is still to be
    /// reaped, if `id` is one.
    fn kill_released(&mut self, id: ProcessId) {
        let Some(released) = self
            .released
            .iter()
            .find(|released| released.handle.id == id && !released.foster)
        else {
            return;
        };
        match self.os.signal(&released.handle, Signal::KILL) {
            Ok(()) => tracing::info!(pid = id.pid, "untracked owned child killed on request"),
            Err(error) if crate::os::is_gone(&error) => {}
            Err(error) => {
                tracing::warn!(pid = id.pid, %error, "could not kill an untracked owned child");
            }
        }
    }

    /// The unit of `root` is over (or left the monitor): whoever waits for
    /// its end hears so.
    pub(super) fn unit_over(&mut self, root: ProcessId) {
        for waiter in self.unit_waiters.remove(&root).unwrap_or_default() {
            let _ = waiter.send(Ok(()));
        }
    }
}
