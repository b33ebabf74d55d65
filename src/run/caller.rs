//! What the caller set up for pidguard, recorded before pidguard changes
//! anything, so CMD can be given the same: the signal mask, the ignored
//! signals, and whether pidguard owns the terminal's foreground.
//!
//! pidguard itself needs a different setup: every catchable signal but
//! SIGCHLD blocked, to be read from a signalfd (see `signalfd.rs`), and
//! SIGCHLD unblocked (a blocked SIGCHLD would stop the reaping). Blocked
//! SIGTTOU and SIGTTIN also count as ignored for the terminal, so pidguard
//! can hand the terminal to CMD and write its logs while CMD owns the
//! foreground. CMD must not inherit any of that: a mask and ignored signals
//! survive exec (handlers reset to the default), so
//! [`CallerSignals::restore_in_child`] puts the caller's back.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;

use super::signalfd;

/// The caller's signal mask and ignored signals.
#[derive(Clone, Copy)]
pub(crate) struct CallerSignals {
    /// The kernel's mask (bit N-1 for signal N).
    mask: u64,
    ignored: libc::sigset_t,
}

impl std::fmt::Debug for CallerSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerSignals")
            .field(
                "blocked",
                &all_signals()
                    .filter(|&n| self.mask & signalfd::bit(n) != 0)
                    .collect::<Vec<_>>(),
            )
            .field("ignored", &members(&self.ignored))
            .finish()
    }
}

/// Every signal number Linux has (1 to `SIGRTMAX`).
fn all_signals() -> std::ops::RangeInclusive<i32> {
    1..=libc::SIGRTMAX()
}

fn members(set: &libc::sigset_t) -> Vec<i32> {
    // SAFETY: `sigismember` only reads the set, which is initialised.
    all_signals()
        .filter(|&signal| unsafe { libc::sigismember(set, signal) } == 1)
        .collect()
}

fn empty_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigemptyset` initialises the whole set; it cannot fail for a
    // valid pointer.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

impl CallerSignals {
    /// Records the caller's mask and ignored signals, then blocks every
    /// signal pidguard reads from its signalfd (all but SIGCHLD). Must run
    /// on the main thread before any other thread exists (threads inherit
    /// the mask).
    pub(crate) fn take() -> io::Result<Self> {
        let mask = signalfd::set_mask(signalfd::received_mask())?;
        let mut ignored = empty_set();
        for signal in all_signals() {
            // The Rust runtime ignored SIGPIPE before `main`, so the caller's
            // setting is lost; CMD gets the default, which std also restores.
            if signal == libc::SIGPIPE || signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut action = MaybeUninit::<libc::sigaction>::zeroed();
            // SAFETY: a null new action only reads the current one into
            // `action`, which is valid for writes.
            let rc = unsafe { libc::sigaction(signal, std::ptr::null(), action.as_mut_ptr()) };
            // Numbers reserved by the C library answer EINVAL: skip them.
            if rc == 0 {
                // SAFETY: `sigaction` succeeded and filled `action` in.
                let action = unsafe { action.assume_init() };
                if action.sa_sigaction == libc::SIG_IGN {
                    // SAFETY: `ignored` is initialised; `signal` is valid.
                    unsafe { libc::sigaddset(&mut ignored, signal) };
                }
            }
        }
        Ok(Self { mask, ignored })
    }

    /// In the forked child, between fork and exec: the caller's ignored
    /// signals back to "ignore" (a handler pidguard installed in their place
    /// would be reset to the default at exec), then the caller's mask. Only
    /// async-signal-safe calls.
    pub(crate) fn restore_in_child(&self) -> io::Result<()> {
        for signal in all_signals() {
            // SAFETY: async-signal-safe; both calls only read or set a
            // plain disposition.
            unsafe {
                if libc::sigismember(&self.ignored, signal) == 1
                    && libc::signal(signal, libc::SIG_IGN) == libc::SIG_ERR
                {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        signalfd::set_mask(self.mask).map(drop)
    }
}

/// Whether pidguard's stdin is a terminal whose foreground process group is
/// pidguard's own: only then may CMD take the foreground. (A pidguard started
/// in the background must not steal the terminal from the shell.)
pub(crate) fn owns_terminal_foreground() -> bool {
    let stdin = stdin();
    rustix::termios::isatty(stdin)
        && own_group()
            .is_some_and(|own| rustix::termios::tcgetpgrp(stdin).is_ok_and(|group| group == own))
}

/// This process's group, `None` when it lies outside this pid namespace
/// (PID 1 of a new namespace reads 0; rustix's `getpgrp` would panic on
/// that). Async-signal-safe: one system call.
fn own_group() -> Option<rustix::process::Pid> {
    rustix::process::Pid::from_raw(nix::unistd::getpgrp().as_raw())
}

/// Makes the caller's process group the terminal's foreground group (CMD
/// calls it for itself, pidguard to take the terminal back). Best effort:
/// a terminal that went away leaves nothing to hand over.
pub(crate) fn take_terminal_foreground() {
    if let Some(own) = own_group() {
        let _ = rustix::termios::tcsetpgrp(stdin(), own);
    }
}

/// Makes process group `group` the terminal's foreground group (pidguard
/// hands the terminal back to CMD's group). Best effort, as above.
pub(crate) fn give_terminal_foreground(group: i32) {
    if let Some(group) = rustix::process::Pid::from_raw(group) {
        let _ = rustix::termios::tcsetpgrp(stdin(), group);
    }
}

fn stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process (pidguard never
    // closes it), and a closed fd only makes the calls fail with EBADF.
    unsafe { BorrowedFd::borrow_raw(libc::STDIN_FILENO) }
}
