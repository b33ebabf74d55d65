//! Signals pidguard receives: one Tokio listener per forwarded signal, all
//! feeding one channel, and the forwarding to CMD (through a pidfd) or to
//! CMD's process group.
//!
//! The listeners exist before CMD is started, so a signal that arrives
//! while CMD is being spawned waits in the channel and is forwarded once CMD
//! runs. Installing them also makes SIGTERM and SIGINT work when pidguard is
//! PID 1 of a namespace, where a signal with the default action is dropped.

use std::io;
use std::os::fd::OwnedFd;

use monitor_core::ProcessId;
use rustix::process::{Pid, PidfdFlags, Signal};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// The classic signals pidguard forwards. The real-time signals (from
/// `SIGRTMIN`) are forwarded too. Not forwarded: SIGCHLD (pidguard's own),
/// SIGKILL and SIGSTOP (cannot be caught), the synchronous faults (SIGSEGV,
/// SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGSYS), SIGPIPE and the
/// resource limits SIGXCPU/SIGXFSZ (about pidguard itself), and the job
/// control stops SIGTSTP, SIGTTIN, SIGTTOU (the terminal sends them to CMD's
/// foreground group directly).
const CLASSIC: [i32; 13] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGALRM,
    libc::SIGURG,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGPWR,
];

/// Every signal number pidguard listens for and forwards.
pub(crate) fn forwarded() -> impl Iterator<Item = i32> {
    // Tokio's signal table stops one short of SIGRTMAX.
    CLASSIC
        .into_iter()
        .chain(libc::SIGRTMIN()..libc::SIGRTMAX())
}

/// Starts one listener task per forwarded signal; each received signal
/// comes out of the returned channel as its number.
pub(crate) fn listen() -> io::Result<mpsc::Receiver<i32>> {
    // Deep enough for a burst of distinct signals; a listener that finds it
    // full waits (Tokio keeps the signal pending meanwhile).
    let (sender, receiver) = mpsc::channel(64);
    for number in forwarded() {
        let mut stream = signal(SignalKind::from_raw(number))
            .map_err(|error| io::Error::new(error.kind(), format!("signal {number}: {error}")))?;
        let sender = sender.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if sender.send(number).await.is_err() {
                    break;
                }
            }
        });
    }
    Ok(receiver)
}

/// Where forwarded signals go.
#[derive(Debug)]
pub(crate) enum Target {
    /// CMD alone, through a pidfd opened for exactly CMD.
    Process {
        /// CMD's pid, for logs.
        pid: i32,
        /// The pidfd; `None` when CMD was gone before it could be opened.
        pidfd: Option<OwnedFd>,
    },
    /// CMD's process group (CMD leads it, so its id is CMD's pid).
    Group(i32),
}

impl Target {
    /// The target for CMD: its process group, or CMD itself pinned by a
    /// pidfd whose process is checked to have CMD's start time (if the
    /// monitor had already reaped CMD and the pid was reused, nothing is
    /// pinned and nothing is ever forwarded to the stranger).
    pub(crate) fn for_command(cmd: ProcessId, group: bool) -> Self {
        if group {
            return Self::Group(cmd.pid);
        }
        let pidfd = Pid::from_raw(cmd.pid)
            .and_then(|pid| rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok())
            .filter(|_| crate::procfs::start_time(cmd.pid) == Some(cmd.start_time));
        Self::Process {
            pid: cmd.pid,
            pidfd,
        }
    }

    /// Sends `number` to the target. A target that is gone is not an error:
    /// CMD may exit at any moment.
    pub(crate) fn send(&self, number: i32) {
        let Some(signal) = to_rustix(number) else {
            return;
        };
        let result = match self {
            Self::Process { pidfd: None, .. } => return,
            Self::Process {
                pidfd: Some(pidfd), ..
            } => rustix::process::pidfd_send_signal(pidfd, signal),
            Self::Group(group) => match Pid::from_raw(*group) {
                Some(group) => rustix::process::kill_process_group(group, signal),
                None => return,
            },
        };
        match result {
            Ok(()) => tracing::debug!(signal = number, target = %self, "forwarded"),
            Err(rustix::io::Errno::SRCH) => {
                tracing::debug!(signal = number, target = %self, "not forwarded: gone");
            }
            Err(error) => {
                tracing::warn!(signal = number, target = %self, %error, "forwarding failed")
            }
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Process { pid, .. } => write!(f, "process {pid}"),
            Self::Group(group) => write!(f, "process group {group}"),
        }
    }
}

/// A forwarded signal number as rustix's type.
fn to_rustix(number: i32) -> Option<Signal> {
    if let Some(signal) = Signal::from_named_raw(number) {
        return Some(signal);
    }
    if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&number) {
        // SAFETY: a real-time signal from the C library's own SIGRTMIN on,
        // which excludes the numbers it reserves for itself.
        return Some(unsafe { Signal::from_raw_unchecked(number) });
    }
    None
}

/// The name of a signal for logs (`SIGTERM`, `SIGRTMIN+3`).
pub(crate) fn name(number: i32) -> String {
    match monitor_core::Signal::try_from(number) {
        Ok(signal) => signal.name().to_owned(),
        Err(_) if number >= libc::SIGRTMIN() => format!("SIGRTMIN+{}", number - libc::SIGRTMIN()),
        Err(_) => number.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_signals_are_forwarded_and_sigchld_is_not() {
        let forwarded: Vec<i32> = forwarded().collect();
        for signal in [
            libc::SIGHUP,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGWINCH,
            libc::SIGCONT,
            libc::SIGRTMIN(),
        ] {
            assert!(forwarded.contains(&signal), "{}", name(signal));
            assert!(to_rustix(signal).is_some(), "{}", name(signal));
        }
        for signal in [libc::SIGCHLD, libc::SIGKILL, libc::SIGSTOP, libc::SIGPIPE] {
            assert!(!forwarded.contains(&signal), "{}", name(signal));
        }
    }

    #[test]
    fn signal_names_for_logs() {
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
        assert_eq!(name(libc::SIGRTMIN() + 3), "SIGRTMIN+3");
    }
}
