//! A job runner on `monitor-core`: workers with deadlines, and nothing
//! left behind.
//!
//! Each round runs five jobs at once. A job's worker is a shell that
//! starts two children of its own (`sh -c 'sleep N & sleep N & wait'`),
//! spawned through the monitor, so the shell and everything it starts
//! are one unit. The runner waits for each worker under
//! `tokio::time::timeout`; when a job overruns its deadline, the runner
//! terminates the worker's unit (SIGTERM to the shell and its children,
//! SIGKILL after the grace period) and waits again: the wait is
//! cancel-safe, so giving up on it loses nothing. A job is over when its
//! unit's event stream ends, children included.
//!
//! On Ctrl-C, or after the last round, the runner drains the monitor
//! (whatever still runs is terminated, and the report says what ended and
//! what was left) and shuts it down.
//!
//! `cargo run --example job_runner` runs rounds until Ctrl-C;
//! `cargo run --example job_runner -- --once` runs one round and exits 0
//! (`tests/job_runner.rs` runs it under a subreaper and checks that no
//! process is left, the workers' children included).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use monitor_core::{Error, Event, Monitor, MonitorHandle};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio::time::timeout;

/// The jobs of a round: how long each worker's children sleep, and the
/// job's deadline. Two overrun theirs.
const JOBS: [(&str, Duration); 5] = [
    ("0.2", Duration::from_secs(2)),
    ("0.5", Duration::from_secs(2)),
    ("30", Duration::from_secs(1)),
    ("0.8", Duration::from_secs(2)),
    ("30", Duration::from_millis(1500)),
];

/// How long the drain at the end may take: one grace period, and the
/// bounded wait after SIGKILL, with room to spare.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a job waits for its unit's end once its worker is gone.
const UNIT_END_TIMEOUT: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--once") => true,
        Some(other) => return Err(format!("unknown argument {other:?}; try --once").into()),
    };
    // Shutdown terminates every unit the monitor spawned (the default
    // policy), so nothing started here outlives the runner.
    let monitor = Monitor::builder().grace(Duration::from_secs(2)).spawn()?;
    let handle = monitor.handle();
    if !once {
        say("running rounds of jobs; Ctrl-C drains and exits".to_owned());
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut round = 1;
    loop {
        let mut jobs = JoinSet::new();
        for (number, (sleep, deadline)) in JOBS.into_iter().enumerate() {
            jobs.spawn(run_job(handle.clone(), number + 1, sleep, deadline));
        }
        let interrupted = tokio::select! {
            result = &mut ctrl_c => {
                result?;
                true
            }
            () = report_round(&mut jobs) => false,
        };
        // Dropping the set aborts the jobs still waiting; the drain below
        // ends their workers.
        drop(jobs);
        if interrupted {
            say("interrupted".to_owned());
            break;
        }
        if once {
            break;
        }
        round += 1;
        say(format!("round {round}"));
    }
    let report = handle.drain(DRAIN_TIMEOUT).await?;
    say(format!(
        "drained: {} processes ended, {} left",
        report.ended.len(),
        report.remaining.len()
    ));
    monitor.shutdown().await;
    if report.is_complete() {
        Ok(())
    } else {
        Err(format!("still running after the drain: {:?}", report.remaining).into())
    }
}

/// Prints each job's outcome as it finishes.
async fn report_round(jobs: &mut JoinSet<Result<String, Error>>) {
    while let Some(joined) = jobs.join_next().await {
        match joined {
            Ok(Ok(outcome)) => say(outcome),
            Ok(Err(error)) => say(format!("a job failed: {error}")),
            Err(error) => say(format!("a job task failed: {error}")),
        }
    }
}

/// Runs one job: its worker, its deadline, its unit's end.
async fn run_job(
    handle: MonitorHandle,
    number: usize,
    sleep: &str,
    deadline: Duration,
) -> Result<String, Error> {
    let started = Instant::now();
    let mut command = Command::new("sh");
    command
        .args(["-c", &format!("sleep {sleep} & sleep {sleep} & wait")])
        .stdin(Stdio::null());
    let mut worker = handle.spawn(command).await?;
    let id = worker.process_id();
    let mut unit = handle.subscribe_unit(id).await?;
    // `wait` is cancel-safe: the timeout drops the wait, not the child.
    let (status, overran) = match timeout(deadline, worker.wait()).await {
        Ok(status) => (status?, false),
        // The whole unit, the shell and both children: SIGTERM, the grace
        // period, SIGKILL; it returns once the unit is empty.
        Err(_elapsed) => (worker.terminate().await?, true),
    };
    // The worker is gone; the job is over when its unit is.
    let mut signalled = 0;
    let unit_ended = timeout(UNIT_END_TIMEOUT, async {
        loop {
            match unit.recv().await {
                Ok(Event::Signalled { .. }) => signalled += 1,
                Ok(Event::UnitEnded { .. }) | Err(RecvError::Closed) => return,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
            }
        }
    })
    .await
    .is_ok();
    let took = started.elapsed().as_secs_f64();
    let what = if overran {
        format!(
            "overran its {deadline:?} deadline; its unit was terminated ({signalled} processes signalled): {status}"
        )
    } else {
        format!("finished: {status}")
    };
    let unit = if unit_ended {
        ""
    } else {
        "; its unit is still ending"
    };
    Ok(format!(
        "job {number}: worker {} {what} after {took:.2} s{unit}",
        id.pid
    ))
}

#[allow(clippy::print_stdout)] // An example's job is to show what happens.
fn say(line: String) {
    println!("{line}");
}
