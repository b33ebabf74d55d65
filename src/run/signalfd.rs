//! How pidguard receives signals: it blocks every catchable signal except
//! SIGCHLD and reads them, with their sender, from a signalfd registered
//! with the Tokio reactor.
//!
//! Blocking rather than handling is what keeps every signal from killing
//! pidguard or being lost:
//!
//! - A blocked signal is never acted on by its default action, so SIGIO,
//!   SIGSTKFLT, SIGXCPU or SIGRTMAX sent to pidguard wait in the queue until
//!   they are read, like SIGTERM, and the stops (SIGTSTP, SIGTTIN, SIGTTOU)
//!   do not stop pidguard by themselves.
//! - A blocked signal is queued even when its disposition is "ignore": the
//!   SIGPIPE that the Rust runtime ignores still reaches pidguard when it is
//!   sent from outside (and is told apart from pidguard's own, below).
//! - Real-time signals stay queued one by one, as the kernel keeps them.
//! - A real fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS raised by
//!   the CPU or the kernel for pidguard's own code) cannot be blocked: the
//!   kernel unblocks it, resets it to the default action and delivers it,
//!   so pidguard still crashes (stack overflows included, though without
//!   Rust's "has overflowed its stack" line: its handler never runs).
//!   `abort()` unblocks SIGABRT itself before raising it.
//!
//! SIGCHLD stays unblocked: the monitor's Tokio listener reaps on it.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// One signal read from the signalfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// The signal number.
    pub(crate) number: i32,
    /// `si_code`: <= 0 when a process sent it (`SI_USER` from `kill`,
    /// `SI_QUEUE`, `SI_TKILL`), > 0 when the kernel did.
    pub(crate) code: i32,
    /// `si_pid`: the sender's pid in pidguard's namespace, 0 when the
    /// kernel or a process outside the namespace sent it.
    pub(crate) sender: i32,
}

/// The highest signal number (`SIGRTMAX` in the kernel's numbering).
pub(crate) const MAX: i32 = 64;

/// `SIGRTMIN` as pidguard names it (`RTMIN+3` on the command line, in logs
/// and in `docs/run.md`): 34, the GNU C library's. The kernel's real-time
/// signals start at 32 and each C library keeps the first few for itself
/// (glibc two, musl three), so `libc::SIGRTMIN()` is 34 in the dynamic
/// build and 35 in the static (musl) one; a fixed number keeps `RTMIN+3`
/// the same signal in both, the one glibc programs, most of an image's,
/// mean by it.
pub(crate) const RTMIN: i32 = 34;

/// The signals pidguard blocks and reads, as the kernel's mask (bit N-1 for
/// signal N): every signal from 1 to 64 except SIGKILL and SIGSTOP (they
/// cannot be caught) and SIGCHLD (the monitor's). The C library's own two
/// (32 and 33, which its `sigaddset` and `pthread_sigmask` refuse) are in
/// it too: nobody sends them inside pidguard (it never cancels a thread
/// and never changes its ids), so one that arrives came from outside.
pub(crate) fn received_mask() -> u64 {
    (1..=MAX)
        .filter(|n| ![libc::SIGKILL, libc::SIGSTOP, libc::SIGCHLD].contains(n))
        .fold(0, |mask, n| mask | bit(n))
}

/// Signal `number`'s bit in a kernel mask.
pub(crate) fn bit(number: i32) -> u64 {
    1 << (number - 1)
}

/// Whether pidguard reads `number` (and may therefore rewrite it).
pub(crate) fn is_received(number: i32) -> bool {
    (1..=MAX).contains(&number) && received_mask() & bit(number) != 0
}

/// Sets this thread's signal mask to `mask` and returns the one it had
/// (`rt_sigprocmask` itself: the C library's wrapper drops 32 and 33).
/// Async-signal-safe: one system call.
pub(crate) fn set_mask(mask: u64) -> io::Result<u64> {
    let mut old: u64 = 0;
    // SAFETY: both pointers are valid for 8 bytes, the kernel's mask size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &mask as *const u64,
            &mut old as *mut u64,
            std::mem::size_of::<u64>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// The signalfd for [`received_mask`], non-blocking and close-on-exec (CMD
/// must not inherit it), registered with the current Tokio reactor. The
/// signals must already be blocked in every thread.
pub(crate) struct SignalFd {
    fd: AsyncFd<OwnedFd>,
}

impl SignalFd {
    /// Opens the signalfd.
    pub(crate) fn open() -> io::Result<Self> {
        let mask = received_mask();
        // SAFETY: the mask is valid for 8 bytes, the kernel's mask size;
        // -1 asks for a new descriptor. (The system call itself, as
        // `set_mask` explains.)
        let raw = unsafe {
            libc::syscall(
                libc::SYS_signalfd4,
                -1,
                &mask as *const u64,
                std::mem::size_of::<u64>(),
                libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
            )
        };
        let Ok(raw) = i32::try_from(raw) else {
            return Err(io::Error::other("signalfd4 returned no descriptor"));
        };
        if raw < 0 {
            return Err(io::Error::other(format!(
                "signalfd: {}",
                io::Error::last_os_error()
            )));
        }
        // SAFETY: `signalfd4` just returned this descriptor; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the `AsyncFd` owns the descriptor, so it stays open (and
        // keeps its number) for as long as it is registered.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|error| error.into_parts().1)?;
        Ok(Self { fd })
    }

    /// Waits for the next signals and returns them, oldest first (the
    /// kernel hands out the lowest-numbered pending signal first).
    pub(crate) async fn next(&self) -> io::Result<Vec<Received>> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| read_some(fd.get_ref().as_raw_fd())) {
                Ok(Ok(received)) if !received.is_empty() => return Ok(received),
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Err(error),
                // Not ready after all: `try_io` cleared the readiness.
                Err(_would_block) => {}
            }
        }
    }
}

/// Reads as many queued signals as fit in one buffer.
fn read_some(fd: i32) -> io::Result<Vec<Received>> {
    const BATCH: usize = 16;
    let mut infos = [MaybeUninit::<libc::signalfd_siginfo>::uninit(); BATCH];
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: the buffer is valid for BATCH records; the kernel writes
    // whole records only.
    let read = unsafe { libc::read(fd, infos.as_mut_ptr().cast(), size * BATCH) };
    let Ok(read) = usize::try_from(read) else {
        return Err(io::Error::last_os_error());
    };
    Ok(infos[..read / size]
        .iter()
        .map(|info| {
            // SAFETY: the first `read / size` records were written whole.
            let info = unsafe { info.assume_init_ref() };
            Received {
                number: i32::try_from(info.ssi_signo).unwrap_or(0),
                code: info.ssi_code,
                sender: i32::try_from(info.ssi_pid).unwrap_or(0),
            }
        })
        .collect())
}

/// Ends pidguard by `number` with its default action, as if it had never
/// been blocked: the kernel raised a fault signal about pidguard's own
/// execution (`si_code` > 0) without forcing it through the block.
pub(crate) fn die_of(number: i32) -> ! {
    // SAFETY: resets one disposition and raises the signal in this thread;
    // neither call touches Rust state.
    unsafe {
        libc::signal(number, libc::SIG_DFL);
    }
    if let Ok(mask) = set_mask(0) {
        let _ = set_mask(mask & !bit(number));
    }
    // SAFETY: as above.
    unsafe {
        libc::raise(number);
    }
    // Every fault signal's default action ends the process; if it did not
    // (a tracer swallowed it), leave anyway rather than run on.
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_holds_every_catchable_signal_but_sigchld() {
        for number in [
            libc::SIGHUP,
            libc::SIGSEGV,
            libc::SIGPIPE,
            libc::SIGSTKFLT,
            libc::SIGTSTP,
            libc::SIGIO,
            libc::SIGSYS,
            32,
            33,
            libc::SIGRTMIN(),
            libc::SIGRTMAX(),
        ] {
            assert!(is_received(number), "{number}");
        }
        for number in [libc::SIGKILL, libc::SIGSTOP, libc::SIGCHLD, 0, 65] {
            assert!(!is_received(number), "{number}");
        }
        assert_eq!(bit(1), 1);
        assert_eq!(bit(64), 1 << 63);
    }

    /// Which fault the re-run child commits, after blocking what pidguard
    /// blocks.
    const FAULT: &str = "PIDGUARD_TEST_FAULT";

    #[inline(never)]
    #[allow(unconditional_recursion)]
    fn recurse(depth: u64) -> u64 {
        let frame = std::hint::black_box([depth; 64]);
        recurse(frame[0] + 1) + frame[1]
    }

    /// With every signal pidguard reads blocked, a real fault still kills
    /// (the kernel forces it through the block with the default action): a
    /// bad write, a stack overflow, an `abort()`. Each runs in a re-run of
    /// this test binary, since the mask is per process.
    #[test]
    fn real_faults_still_kill_with_every_signal_blocked() {
        if let Some(fault) = std::env::var_os(FAULT) {
            set_mask(received_mask()).expect("block the signals");
            match fault.to_str() {
                // SAFETY: none; the invalid write is the fault under test.
                Some("write") => unsafe { std::ptr::dangling_mut::<u64>().write_volatile(1) },
                Some("overflow") => {
                    std::hint::black_box(recurse(0));
                }
                _ => std::process::abort(),
            }
            return;
        }
        use std::os::unix::process::ExitStatusExt as _;
        for (fault, signal) in [
            ("write", libc::SIGSEGV),
            ("overflow", libc::SIGSEGV),
            ("abort", libc::SIGABRT),
        ] {
            let output = std::process::Command::new(std::env::current_exe().expect("own path"))
                .args([
                    "--exact",
                    "run::signalfd::tests::real_faults_still_kill_with_every_signal_blocked",
                    "--nocapture",
                ])
                .env(FAULT, fault)
                .output()
                .expect("re-run the test binary");
            assert_eq!(output.status.signal(), Some(signal), "{fault}: {output:?}");
        }
    }
}
