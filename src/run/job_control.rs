//! Job control at a terminal: when CMD is stopped from the terminal
//! (Ctrl-Z sends SIGTSTP to CMD's foreground group, not to pidguard),
//! pidguard stops too, so the shell that started pidguard sees its job
//! stopped and gets the terminal back. When the shell continues pidguard
//! (`fg` or `bg`), pidguard continues CMD, and hands the terminal to CMD
//! again if it was continued in the foreground.
//!
//! Only when pidguard handed CMD the terminal's foreground (see
//! `caller::owns_terminal_foreground`) and is not PID 1 (PID 1 cannot be
//! stopped, and has no shell waiting for it).
//!
//! A SIGTSTP, SIGTTIN or SIGTTOU sent to pidguard itself takes the other
//! way round: the supervisor forwards it, then stops pidguard the same way
//! ([`stop_until_continued`]), terminal or not.

use std::io;

use monitor_core::ProcessId;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::caller;
use super::signals::Target;

/// Watches for CMD being stopped: a SIGCHLD listener of pidguard's own
/// (next to the monitor's), which must exist before CMD starts.
pub(crate) struct StopWatch {
    sigchld: Option<Signal>,
}

impl StopWatch {
    /// A watch when job control applies, an inert one otherwise.
    pub(crate) fn new(applies: bool) -> io::Result<Self> {
        let sigchld = if applies {
            Some(signal(SignalKind::child())?)
        } else {
            None
        };
        Ok(Self { sigchld })
    }

    /// Resolves at the next SIGCHLD; never when job control does not apply.
    pub(crate) async fn changed(&mut self) {
        match self.sigchld.as_mut() {
            Some(sigchld) => {
                if sigchld.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }

    /// After a SIGCHLD: if CMD is stopped, stop pidguard until the shell
    /// continues it, then continue CMD.
    pub(crate) fn follow(&self, cmd: ProcessId, target: &Target) {
        if self.sigchld.is_none() || !is_stopped(cmd) {
            return;
        }
        tracing::info!(pid = cmd.pid, "command stopped; stopping too");
        stop_until_continued(cmd, target, true);
    }
}

/// Whether `id` is stopped (state `T`, e.g. by SIGTSTP); a pid that names
/// another process now reads false.
fn is_stopped(id: ProcessId) -> bool {
    procfs::process::Process::new(id.pid)
        .and_then(|process| process.stat())
        .is_ok_and(|stat| stat.state == 'T' && stat.starttime == id.start_time)
}

/// Stops pidguard until a SIGCONT continues it, then continues CMD (or its
/// group). With `terminal` (pidguard handed CMD the foreground), it takes
/// the foreground back first, and hands it to CMD's group again when `fg`
/// gave it to pidguard.
pub(crate) fn stop_until_continued(cmd: ProcessId, target: &Target, terminal: bool) {
    if terminal {
        caller::take_terminal_foreground();
    }
    // The whole process stops here, before the call returns, and goes on
    // when SIGCONT comes (from the shell's `fg`/`bg`, or anyone's `kill`).
    let me = rustix::process::getpid();
    if let Err(error) = rustix::process::kill_process(me, rustix::process::Signal::STOP) {
        tracing::warn!(%error, "could not stop");
    }
    // `fg` gave the terminal to pidguard's group: hand it on to CMD before
    // CMD runs, or its first read would stop it again. After `bg` the shell
    // kept the terminal, and so does CMD's group.
    if terminal && caller::owns_terminal_foreground() {
        caller::give_terminal_foreground(cmd.pid);
    }
    tracing::info!(pid = cmd.pid, "continued; continuing the command");
    target.send(libc::SIGCONT);
}
