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
//! - `signals`: listening for signals and forwarding them.
//! - `supervise`: the run itself, from spawn to exit code.
//! - `leftovers`: terminating what CMD left behind.
//! - `job_control`: stopping with CMD when it is stopped from the terminal.
//! - `exit_code`, `logging`: the small pieces (the `/proc` reads are the
//!   crate's `procfs`, shared with the daemon).

mod args;
mod caller;
mod command;
pub(crate) mod exit_code;
mod job_control;
mod leftovers;
mod logging;
mod signals;
mod supervise;

pub(crate) use args::RunArgs;

/// Runs `pidguard run` to completion and returns the exit code; an `Err`
/// is pidguard's own failure (exit code [`exit_code::OWN_FAILURE`]).
pub(crate) fn main(args: RunArgs) -> anyhow::Result<u8> {
    use anyhow::Context as _;

    // Before any thread exists: every thread inherits the mask from here.
    let caller = caller::CallerSignals::take().context("reading the caller's signal setup")?;
    logging::init(args.verbose);
    tracing::debug!(?caller, "caller's signal setup, restored for CMD");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(supervise::run(&args, caller))
}
