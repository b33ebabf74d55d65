//! The owned spawn helper: children started through the monitor, optionally
//! with a parent-death signal.
//!
//! A spawn with a parent-death signal goes through one long-lived,
//! dedicated OS thread. The kernel sends `PR_SET_PDEATHSIG` when the
//! *thread* that forked the child exits, not the process: a child forked
//! from a short-lived thread (or from an idle `spawn_blocking` thread) would
//! be killed when that thread ends. The spawner thread lives as long as the
//! process, so the signal means "this process died", which is what a caller
//! asks for. A spawn without one forks right where it is asked for: which
//! thread forks does not matter then, and a thread started only to fork
//! would stay alive (holding memory) for the rest of the process, and still
//! be alive at exit.
//!
//! The actor waits for the spawner's answer before it handles anything else,
//! so the child is registered as owned before any sweep runs: not even
//! `ReapPolicy::AllChildren` can reap it first.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Mutex, PoisonError, mpsc};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::{Signal, TrackOptions};

/// What [`crate::MonitorHandle::spawn`] starts: a `std::process::Command`
/// or a `tokio::process::Command`, through `impl Into<SpawnCommand>`.
///
/// Everything a tokio `Command` holds is kept: program, arguments,
/// environment, working directory, stdio, `uid`/`gid`, `process_group`,
/// `pre_exec` hooks (all of which live in its inner std `Command`, see
/// `tokio::process::Command::as_std`), and its `kill_on_drop(true)`, which
/// becomes [`DropAction::Kill`] (see [`SpawnOptions::on_drop`]; an
/// `on_drop` set in the options wins). Nothing is lost.
#[derive(Debug)]
pub struct SpawnCommand {
    pub(crate) command: Command,
    pub(crate) on_drop: Option<DropAction>,
}

impl From<Command> for SpawnCommand {
    fn from(command: Command) -> Self {
        Self {
            command,
            on_drop: None,
        }
    }
}

impl From<tokio::process::Command> for SpawnCommand {
    fn from(command: tokio::process::Command) -> Self {
        let on_drop = command.get_kill_on_drop().then_some(DropAction::Kill);
        Self {
            command: command.into_std(),
            on_drop,
        }
    }
}

/// What dropping an [`crate::OwnedChild`] that was never waited for does
/// to the child's unit (see [`SpawnOptions::on_drop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropAction {
    /// Terminate the unit: its signal, its grace period, then `SIGKILL`
    /// (as [`crate::OwnedChild::terminate`]).
    Terminate,
    /// `SIGKILL` the whole unit at once (as [`crate::OwnedChild::kill`];
    /// what tokio's `kill_on_drop(true)` does to its one child).
    Kill,
}

/// How [`crate::MonitorHandle::spawn_with`] starts and tracks a child.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SpawnOptions {
    /// How the child is tracked (orphan action, grace, tree, ...).
    pub track: TrackOptions,
    /// The signal the child gets when this process dies
    /// (`PR_SET_PDEATHSIG`). `None`: the child outlives this process.
    pub parent_death_signal: Option<Signal>,
    /// Orphans reparented to this process (a subreaper, or init) join the
    /// child's unit: whatever escaped its containment comes back to it. For
    /// a supervisor whose one unit is everything it runs (`pidguard run`);
    /// one unit per monitor at most, and only with `tree`.
    pub adopt_orphans: bool,
    /// The drop guard: what dropping the [`crate::OwnedChild`] before its
    /// exit status was received does to the child's whole unit.
    ///
    /// The counterpart of tokio's `Command::kill_on_drop`, and like it off
    /// by default (`None`): dropping the `OwnedChild` then leaves the child
    /// running, and the monitor still reaps it when it exits (it owns it).
    /// With a guard, the drop asks the monitor to end the unit (without
    /// blocking: it only queues the request), the child's descendants
    /// included, which tokio's `kill_on_drop` does not reach. A
    /// `tokio::process::Command` with `kill_on_drop(true)` sets
    /// [`DropAction::Kill`] here unless this is set.
    pub on_drop: Option<DropAction>,
}

impl SpawnOptions {
    /// Options with every field at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tracks the child with these options.
    pub fn track(mut self, track: TrackOptions) -> Self {
        self.track = track;
        self
    }

    /// Sends `signal` to the child when this process dies.
    pub fn parent_death_signal(mut self, signal: Signal) -> Self {
        self.parent_death_signal = Some(signal);
        self
    }

    /// Makes orphans reparented to this process members of the child's
    /// unit (see [`SpawnOptions::adopt_orphans`]).
    pub fn adopt_orphans(mut self, adopt: bool) -> Self {
        self.adopt_orphans = adopt;
        self
    }

    /// Arms (or, with `false`, disarms) the drop guard that terminates the
    /// child's unit when its [`crate::OwnedChild`] is dropped unwaited
    /// ([`DropAction::Terminate`], see [`SpawnOptions::on_drop`]).
    pub fn terminate_on_drop(mut self, terminate: bool) -> Self {
        self.on_drop = terminate.then_some(DropAction::Terminate);
        self
    }

    /// Arms (or, with `false`, disarms) the drop guard that `SIGKILL`s the
    /// child's unit when its [`crate::OwnedChild`] is dropped unwaited
    /// ([`DropAction::Kill`]; tokio's `kill_on_drop`, for the whole unit).
    pub fn kill_on_drop(mut self, kill: bool) -> Self {
        self.on_drop = kill.then_some(DropAction::Kill);
        self
    }
}

/// One request to the spawner thread.
struct Job {
    command: Command,
    parent_death_signal: Option<Signal>,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// The spawner thread's queue, started on first use.
static SPAWNER: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);

fn spawner() -> io::Result<mpsc::Sender<Job>> {
    // A panic while holding the lock leaves a usable `Option` behind.
    let mut spawner = SPAWNER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(sender) = spawner.as_ref() {
        return Ok(sender.clone());
    }
    let (sender, jobs) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("pidguard-spawner".into())
        .spawn(move || {
            // The queue is never closed (the static holds a sender), so this
            // thread lives as long as the process, as the parent-death
            // signal requires.
            for job in jobs {
                let Job {
                    mut command,
                    parent_death_signal,
                    reply,
                } = job;
                if let Some(signal) = parent_death_signal {
                    set_parent_death_signal(&mut command, signal);
                }
                // The actor may have stopped waiting; the child is then
                // dropped unreaped, as a dropped `Child` always is.
                let _ = reply.send(command.spawn());
            }
        })?;
    *spawner = Some(sender.clone());
    Ok(sender)
}

/// Arms `PR_SET_PDEATHSIG` in the forked child, then checks that the parent
/// did not die before it was armed (the child would then have been
/// reparented already and would never get the signal).
fn set_parent_death_signal(command: &mut Command, signal: Signal) {
    let parent = nix::unistd::getpid();
    let signal = signal.to_nix();
    // SAFETY: the closure runs between fork and exec and makes only
    // async-signal-safe system calls (prctl, getppid); it allocates nothing,
    // and its error is built from a raw errno.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(signal).map_err(io::Error::from)?;
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from(nix::errno::Errno::ESRCH));
            }
            Ok(())
        });
    }
}

/// Spawns `command`: on the spawner thread with a parent-death signal, on
/// the calling task without one (fork and exec take about a millisecond,
/// which the actor waits for either way).
pub(crate) async fn spawn(
    mut command: Command,
    parent_death_signal: Option<Signal>,
) -> io::Result<Child> {
    if parent_death_signal.is_none() {
        return command.spawn();
    }
    let (reply, response) = oneshot::channel();
    spawner()?
        .send(Job {
            command,
            parent_death_signal,
            reply,
        })
        .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
    response
        .await
        .map_err(|_| io::Error::other("the spawner thread dropped the request"))?
}
