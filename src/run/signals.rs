//! Signals pidguard receives: read from the signalfd (see `signalfd.rs`),
//! judged by who sent them, rewritten (`--rewrite`), and passed on one
//! channel to the supervisor, which forwards them to CMD (through a pidfd)
//! or to CMD's process group.
//!
//! The signals are blocked and the signalfd exists before CMD is started,
//! so a signal that arrives while CMD is being spawned waits and is
//! forwarded once CMD runs. This also makes every signal work when
//! pidguard is PID 1 of a namespace, where a signal with the default
//! action is dropped.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use monitor_core::ProcessId;
use rustix::process::{Pid, PidfdFlags};
use tokio::sync::mpsc;

use super::signal_spec::Rewrites;
use super::signalfd::{self, Received, SignalFd};

/// The signals the CPU or the kernel raise for a fault in the code that
/// runs. Sent by a process (`kill`, `sigqueue`, `tgkill`), they are
/// ordinary signals and are forwarded; raised by the kernel about pidguard
/// itself (`si_code` > 0) they end pidguard with their default action.
const FAULTS: [i32; 7] = [
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGSEGV,
    libc::SIGSYS,
];

/// Signals the kernel sends a process about its own doings: a write to a
/// pipe without reader (SIGPIPE), past the file size limit (SIGXFSZ),
/// beyond the CPU limit (SIGXCPU). pidguard's own are not forwarded.
const ABOUT_SELF: [i32; 3] = [libc::SIGPIPE, libc::SIGXFSZ, libc::SIGXCPU];

/// What to do with a received signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Handle it (forward it to CMD, and whatever else it means).
    Handle(i32),
    /// pidguard caused it itself (a write to a closed pipe): drop it.
    Own,
    /// A fault in pidguard's own execution: die of it.
    Fault(i32),
}

/// Judges `received` by who sent it; `me` is pidguard's pid (1 as init).
pub(crate) fn judge(received: Received, me: i32) -> Verdict {
    let Received {
        number,
        code,
        sender,
    } = received;
    let from_kernel = code > 0;
    if FAULTS.contains(&number) && from_kernel {
        return Verdict::Fault(number);
    }
    if ABOUT_SELF.contains(&number) && (from_kernel || sender == me) {
        return Verdict::Own;
    }
    Verdict::Handle(number)
}

/// Whether pidguard stops itself after forwarding `number`: the job
/// control stops (and SIGSTOP, which a rewrite may produce).
pub(crate) fn is_stop(number: i32) -> bool {
    [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU, libc::SIGSTOP].contains(&number)
}

/// Opens the signalfd and starts the task that reads it. Each signal to be
/// handled comes out of the returned channel as its number, after the
/// rewrites; `first` (the parent-death signal, when the parent was already
/// gone) comes out first. The signals must already be blocked.
pub(crate) fn listen(rewrites: Rewrites, first: Option<i32>) -> io::Result<mpsc::Receiver<i32>> {
    let signals = SignalFd::open()?;
    let me = rustix::process::getpid().as_raw_nonzero().get();
    // Deep enough for a burst of distinct signals; when it is full the
    // reader waits, and the kernel keeps the signals queued meanwhile.
    let (sender, receiver) = mpsc::channel(64);
    if let Some(number) = first.and_then(|n| rewrites.apply(n)) {
        // The channel is new and empty: this cannot be full.
        let _ = sender.try_send(number);
    }
    tokio::spawn(async move {
        loop {
            let batch = match signals.next().await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, "reading the signalfd failed; signals are no longer forwarded");
                    return;
                }
            };
            for received in batch {
                let number = match judge(received, me) {
                    Verdict::Handle(number) => number,
                    // Not even logged: a log line written to a closed pipe
                    // raises the next SIGPIPE, and the one after that.
                    Verdict::Own => continue,
                    Verdict::Fault(number) => {
                        tracing::error!(
                            signal = name(number),
                            code = received.code,
                            "fault in pidguard"
                        );
                        signalfd::die_of(number);
                    }
                };
                tracing::debug!(
                    signal = name(number),
                    sender = received.sender,
                    code = received.code,
                    "received"
                );
                let Some(rewritten) = rewrites.apply(number) else {
                    tracing::debug!(signal = name(number), "dropped (--rewrite S:0)");
                    continue;
                };
                if sender.send(rewritten).await.is_err() {
                    return;
                }
            }
        }
    });
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
            .filter(|_| ProcessId::of(cmd.pid) == Some(cmd));
        Self::Process {
            pid: cmd.pid,
            pidfd,
        }
    }

    /// Sends `number` to the target. A target that is gone is not an error:
    /// CMD may exit at any moment.
    pub(crate) fn send(&self, number: i32) {
        let result = match self {
            Self::Process { pidfd: None, .. } => return,
            Self::Process {
                pidfd: Some(pidfd), ..
            } => pidfd_send_signal(pidfd, number),
            Self::Group(group) => kill(-group, number),
        };
        match result {
            Ok(()) => tracing::debug!(signal = name(number), target = %self, "forwarded"),
            Err(error) if error.raw_os_error() == Some(libc::ESRCH) => {
                tracing::debug!(signal = name(number), target = %self, "not forwarded: gone");
            }
            Err(error) => {
                tracing::warn!(signal = name(number), target = %self, %error, "forwarding failed")
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

// The senders are the system calls themselves, not rustix's: its `Signal`
// may not hold the two numbers the C library keeps for itself (32 and 33),
// which pidguard forwards like any other.

/// `pidfd_send_signal(pidfd, number, NULL, 0)`.
fn pidfd_send_signal(pidfd: &OwnedFd, number: i32) -> io::Result<()> {
    // SAFETY: a valid descriptor, a signal number and a null info pointer
    // (the kernel fills in the sender itself).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            number,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `kill(pid, number)`: a negative `pid` names a process group.
fn kill(pid: i32, number: i32) -> io::Result<()> {
    // SAFETY: plain arguments; the C library passes them to the kernel.
    if unsafe { libc::kill(pid, number) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `number` to pidguard itself (a parent-death signal that came too
/// early to be the kernel's).
pub(crate) fn send_to_self(number: i32) {
    if let Err(error) = kill(std::process::id() as i32, number) {
        tracing::warn!(signal = name(number), %error, "could not raise");
    }
}

/// The name of a signal for logs (`SIGTERM`, `SIGRTMIN+3`).
pub(crate) fn name(number: i32) -> String {
    match nix::sys::signal::Signal::try_from(number) {
        Ok(signal) => signal.as_str().to_owned(),
        Err(_) if number >= libc::SIGRTMIN() => format!("SIGRTMIN+{}", number - libc::SIGRTMIN()),
        Err(_) => number.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn got(number: i32, code: i32, sender: i32) -> Received {
        Received {
            number,
            code,
            sender,
        }
    }

    #[test]
    fn faults_from_outside_are_handled_and_real_ones_are_fatal() {
        const SI_USER: i32 = 0;
        const SI_QUEUE: i32 = -1;
        const SI_TKILL: i32 = -6;
        const SEGV_MAPERR: i32 = 1;
        for number in FAULTS {
            for code in [SI_USER, SI_QUEUE, SI_TKILL] {
                assert_eq!(judge(got(number, code, 77), 10), Verdict::Handle(number));
            }
            assert_eq!(
                judge(got(number, SEGV_MAPERR, 0), 10),
                Verdict::Fault(number)
            );
        }
    }

    #[test]
    fn own_pipe_and_limit_signals_are_dropped_and_sent_ones_forwarded() {
        const SI_USER: i32 = 0;
        const SI_KERNEL: i32 = 0x80;
        for number in ABOUT_SELF {
            assert_eq!(judge(got(number, SI_USER, 10), 10), Verdict::Own);
            assert_eq!(judge(got(number, SI_KERNEL, 0), 10), Verdict::Own);
            assert_eq!(judge(got(number, SI_USER, 77), 10), Verdict::Handle(number));
            // From a process outside pidguard's pid namespace.
            assert_eq!(judge(got(number, SI_USER, 0), 10), Verdict::Handle(number));
        }
        // The terminal's SIGHUP and SIGWINCH come from the kernel.
        assert_eq!(
            judge(got(libc::SIGHUP, SI_KERNEL, 0), 10),
            Verdict::Handle(libc::SIGHUP)
        );
    }

    #[test]
    fn signals_are_named_for_logs() {
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
        assert_eq!(name(libc::SIGRTMIN() + 3), "SIGRTMIN+3");
        assert_eq!(name(libc::SIGSTKFLT), "SIGSTKFLT");
    }
}
