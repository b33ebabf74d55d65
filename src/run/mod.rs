//! `pidguard run`: supervise a command as its init.
//!
//! pidguard starts CMD as its child through a monitor that reaps every
//! child (`ReapPolicy::AllChildren`, SIGCHLD-driven), is a child subreaper
//! unless it is PID 1 (so orphaned descendants come to it either way),
//! forwards the signals it receives to CMD, and exits with CMD's status.
//! Once CMD has exited, the descendants still alive are terminated (SIGTERM,
//! the grace period, SIGKILL) and pidguard waits until none is left.
//! `docs/run.md` has the full behaviour and the reasons for it.
//!
//! # Layout
//!
//! - `args`: the command line.
//! - `caller`: the caller's signal setup, recorded and restored for CMD;
//!   the terminal's foreground.
//! - `command`: the `Command` for CMD.
//! - `signalfd`: blocking every catchable signal and reading it, with its
//!   sender, from a signalfd.
//! - `signals`: judging, rewriting and forwarding what was received.
//! - `signal_spec`: signal names and `--rewrite` pairs on the command line.
//! - `supervise`: the run itself, from spawn to exit code.
//! - `leftovers`: terminating what CMD left behind.
//! - `job_control`: stopping with CMD when it is stopped from the terminal.
//! - `logging`, `json_lines`: pidguard's own log lines (text or JSON).
//! - `exit_code`: the exit code (the `/proc` reads are the `procfs`
//!   crate).

mod args;
mod caller;
mod command;
pub(crate) mod exit_code;
mod job_control;
mod json_lines;
mod leftovers;
mod logging;
mod signal_spec;
mod signalfd;
mod signals;
mod supervise;

pub(crate) use args::RunArgs;

/// Runs `pidguard run` to completion and returns the exit code; an `Err`
/// is pidguard's own failure (exit code [`exit_code::OWN_FAILURE`]).
pub(crate) fn main(args: RunArgs) -> anyhow::Result<u8> {
    use anyhow::Context as _;

    let parent = rustix::process::getppid();
    // Before any thread exists: every thread inherits the mask from here.
    let caller = caller::CallerSignals::take().context("reading the caller's signal setup")?;
    logging::init(args.verbose, args.log_format, args.color);
    tracing::debug!(?caller, "caller's signal setup, restored for CMD");
    // Armed after the signals are blocked, so it is queued, not acted on.
    let pending = match args.parent_death_signal {
        Some(number) => arm_parent_death_signal(number, parent)
            .with_context(|| format!("prctl(PR_SET_PDEATHSIG, {number})"))?,
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(supervise::run(&args, caller, pending))
}

/// Has the kernel send pidguard `number` when its parent dies. The parent
/// may have died before this: then `getppid()` already names another
/// process, and the signal is handled as if it had come (returned for the
/// supervisor to handle first, or raised when pidguard cannot read it,
/// like SIGKILL). As PID 1 of a namespace the parent is outside it
/// (`getppid()` is 0 before and after), so only the kernel's signal counts.
fn arm_parent_death_signal(
    number: i32,
    parent: Option<rustix::process::Pid>,
) -> std::io::Result<Option<i32>> {
    let signal = libc::c_ulong::try_from(number)
        .map_err(|_| std::io::Error::other(format!("{number} is not a signal")))?;
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if rustix::process::getppid() == parent {
        return Ok(None);
    }
    tracing::info!(signal = signals::name(number), "the parent is already gone");
    if signalfd::is_received(number) {
        return Ok(Some(number));
    }
    // SIGKILL or SIGSTOP (or SIGCHLD): what the kernel's would have done.
    signals::send_to_self(number);
    Ok(None)
}
