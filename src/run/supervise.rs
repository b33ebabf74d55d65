//! One run: start the monitor and the signal listeners, spawn CMD, forward
//! signals until it exits, clean up its leftovers, and report its status.

use anyhow::Context as _;
use monitor_core::{
    Config, Error, Monitor, OrphanAction, ReapPolicy, ShutdownPolicy, SpawnOptions, TrackOptions,
};

use super::args::RunArgs;
use super::caller::{self, CallerSignals};
use super::job_control::{self, StopWatch};
use super::leftovers::{self, Cleanup, Outcome};
use super::signal_spec::Rewrites;
use super::signals::{self, Target};
use super::{command, exit_code};

/// Events the cleanup may fall behind by before it sees `Lagged`. Lagging
/// is harmless there (it asks for the unit's status), but the missed
/// events' log lines are lost; the slots are allocated up front.
const EVENT_CAPACITY: usize = 4096;

/// Runs CMD under the monitor and returns pidguard's exit code. `pending`
/// is a signal to handle first (the parent-death signal, when the parent
/// died before it could be armed).
pub(crate) async fn run(
    args: &RunArgs,
    caller: CallerSignals,
    pending: Option<i32>,
) -> anyhow::Result<u8> {
    let as_init = rustix::process::getpid().as_raw_nonzero().get() == 1;
    // PID 1 gets every orphan of its namespace already; anywhere else
    // pidguard becomes a subreaper so CMD's orphans come to it, not to init.
    let mut config = Config::default();
    config.reap_policy = ReapPolicy::AllChildren;
    config.subreaper = !as_init;
    config.grace = args.grace;
    config.kill_timeout = leftovers::KILL_WAIT;
    config.event_capacity = EVENT_CAPACITY;
    // CMD is the root of a unit: when it exits, the monitor terminates
    // what the unit still holds (`leftovers.rs` waits for that). With
    // `--leave-orphans` it is a unit of one, and the monitor's shutdown
    // leaves the rest running.
    config.shutdown = ShutdownPolicy::Leave;
    let monitor = Monitor::spawn(config).context("starting the monitor")?;
    let handle = monitor.handle();
    // Listening before CMD starts: nothing sent meanwhile is lost.
    let rewrites = Rewrites::new(&args.rewrite);
    let mut received = signals::listen(rewrites, pending).context("reading signals")?;
    let foreground = caller::owns_terminal_foreground();
    tracing::debug!(as_init, foreground, "starting");
    let mut stops = StopWatch::new(foreground && !as_init).context("watching for stops")?;

    let cmd = command::build(&args.command, caller, foreground);
    // Whatever CMD starts is its unit's, orphans reparented to pidguard
    // included; `--grace 0` kills without a SIGTERM first.
    let action = if args.grace.is_zero() {
        OrphanAction::Kill
    } else {
        OrphanAction::Terminate
    };
    let unit = TrackOptions::new().tree(!args.leave_orphans).action(action);
    let spawn = SpawnOptions::new()
        .track(unit)
        .adopt_orphans(!args.leave_orphans);
    // Subscribed before CMD starts, so the cleanup sees everything the
    // monitor does to CMD's unit once CMD has exited; until then the events
    // are dropped as they come.
    let mut events = handle.subscribe().await.context("subscribing to events")?;
    let mut child = match handle.spawn_with(cmd, spawn).await {
        Ok(child) => child,
        Err(Error::Spawn { program, source }) => {
            tracing::error!(program, error = %source, "cannot run the command");
            monitor.shutdown().await;
            return Ok(exit_code::of_spawn_error(&source));
        }
        Err(other) => return Err(other).context("starting the command"),
    };
    let cmd_id = child.process_id();
    let name = args.command[0].to_string_lossy();
    tracing::info!(pid = cmd_id.pid, %name, "command started");
    let target = Target::for_command(cmd_id, args.signal_group);
    // CMD has its own working directory now; pidguard must not pin CMD's
    // (it would keep a file system from being unmounted). Nothing pidguard
    // does from here on uses a relative path.
    if let Err(error) = std::env::set_current_dir("/") {
        tracing::warn!(%error, "chdir(\"/\") failed; keeping the working directory");
    }

    let exited = child.wait();
    tokio::pin!(exited);
    let status = loop {
        tokio::select! {
            // CMD's exit first: the monitor hands over its status before it
            // emits anything about the rest of its unit, in the same step,
            // so no event about the leftovers is dropped below.
            biased;
            status = &mut exited => break status.context("waiting for the command")?,
            _ = events.recv() => {}
            Some(number) = received.recv() => {
                target.send(number);
                // As dumb-init does: CMD stopped, pidguard stops too, and a
                // SIGCONT continues both. PID 1 cannot stop itself.
                if signals::is_stop(number) && !as_init {
                    tracing::info!(signal = signals::name(number), "stopping with the command");
                    job_control::stop_until_continued(cmd_id, &target, foreground);
                }
            }
            () = stops.changed() => stops.follow(cmd_id, &target),
        }
    };
    tracing::info!(pid = cmd_id.pid, %name, %status, "command exited");
    if foreground {
        // Take the terminal back, so a Ctrl-C during the cleanup reaches
        // pidguard (and skips the grace period) rather than a leftover.
        caller::take_terminal_foreground();
    }

    if args.leave_orphans {
        tracing::info!("leaving the command's descendants running");
    } else {
        if let Outcome::GaveUp(left) = Cleanup::new(handle.clone(), cmd_id, args.grace)
            .run(&mut events, &mut received)
            .await
        {
            tracing::warn!(?left, "exiting with leftovers that would not die");
        }
    }
    monitor.shutdown().await;
    Ok(exit_code::remapped(status, &args.remap_exit))
}
