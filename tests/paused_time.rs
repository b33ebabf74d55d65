//! A user's code tested on paused time through `monitor_core::testing`
//! (the `test-util` feature): a job runner that gives each worker a
//! deadline and terminates the worker's unit when it overruns, checked
//! to the exact virtual instant. No real process is started here (paused
//! time cannot drive one; see the `testing` module docs).

use std::process::Command;
use std::time::Duration;

use monitor_core::testing::{FakeOs, FakeProgram, MONITOR_PID, spawn_fake_monitor};
use monitor_core::{Error, ExitInfo, ExitStatus, Monitor, MonitorHandle, Signal};
use tokio::time::{Instant, timeout};

/// The code under test, as a user writes it: run a worker; past its
/// deadline, terminate its unit (signal, grace period, `SIGKILL`) and wait
/// for its end again.
async fn run_job(
    handle: &MonitorHandle,
    program: &str,
    deadline: Duration,
) -> Result<ExitInfo, Error> {
    let worker = handle.spawn(Command::new(program)).await?;
    match timeout(deadline, handle.wait_for(worker.process_id())).await {
        Ok(end) => end,
        Err(_overrun) => {
            handle.terminate(worker.process_id()).await?;
            handle.wait_for(worker.process_id()).await
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn killed() -> Option<ExitStatus> {
    Some(ExitStatus::Signaled {
        signal: Signal::KILL.as_raw(),
        core_dumped: false,
    })
}

/// The signals sent, as (time since `start`, pid, signal).
fn sent(os: &FakeOs, start: Instant) -> Vec<(Duration, i32, Signal)> {
    os.signals()
        .iter()
        .map(|sent| (sent.at - start, sent.id.pid, sent.signal))
        .collect()
}

/// One run of the overrun scenario on its own paused runtime: SIGTERM at
/// 30 s, SIGKILL at 35 s, the job's end at 35 s with the status SIGKILL.
fn overrun_once() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a paused runtime");
    runtime.block_on(async {
        let (monitor, os) =
            spawn_fake_monitor(Monitor::builder().grace(secs(5))).expect("fake monitor");
        os.program("worker", FakeProgram::new().ignores_term());
        let start = Instant::now();
        let end = run_job(&monitor.handle(), "worker", secs(30))
            .await
            .expect("the job ends");
        assert_eq!(start.elapsed(), secs(35));
        assert_eq!(end.status, killed());
        assert_eq!(
            sent(&os, start),
            vec![
                (secs(30), end.id.pid, Signal::TERM),
                (secs(35), end.id.pid, Signal::KILL)
            ]
        );
        monitor.shutdown().await;
    });
}

/// "A worker that overruns its 30 s deadline gets SIGTERM at 30 s and
/// SIGKILL at 35 s", exactly, in ten fresh runs out of ten.
#[test]
fn an_overrunning_worker_gets_sigterm_at_30_s_and_sigkill_at_35_s_ten_times_out_of_ten() {
    for _ in 0..10 {
        overrun_once();
    }
}

/// A worker that finishes inside its deadline is never signalled; its exit
/// status comes back at the instant it exits.
#[tokio::test(start_paused = true)]
async fn a_worker_that_finishes_in_time_is_left_alone() {
    let (monitor, os) = spawn_fake_monitor(Monitor::builder()).expect("fake monitor");
    os.program(
        "worker",
        FakeProgram::new().exits_after(secs(12), ExitStatus::Exited(0)),
    );
    let start = Instant::now();
    let end = run_job(&monitor.handle(), "/opt/jobs/worker", secs(30))
        .await
        .expect("the job ends");
    assert_eq!(start.elapsed(), secs(12));
    assert_eq!(end.status, Some(ExitStatus::Exited(0)));
    assert!(os.signals().is_empty());
    monitor.shutdown().await;
}

/// The worker's children are its unit: an overrun terminates them with it,
/// at the same instant, and a drain at the end finds nothing left.
#[tokio::test(start_paused = true)]
async fn an_overrun_ends_the_workers_children_too() {
    let (monitor, os) =
        spawn_fake_monitor(Monitor::builder().grace(secs(5))).expect("fake monitor");
    let handle = monitor.handle();
    os.program(
        "worker",
        FakeProgram::new()
            .ignores_term()
            .child(FakeProgram::new())
            .child(FakeProgram::new().ignores_term()),
    );
    let start = Instant::now();
    let end = run_job(&handle, "worker", secs(30))
        .await
        .expect("the job ends");
    let kids = sent(&os, start)
        .iter()
        .filter(|(_, pid, _)| *pid != end.id.pid)
        .map(|(_, pid, _)| *pid)
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(kids.len(), 2, "both children were signalled");
    let mut signals = sent(&os, start);
    signals.sort_by_key(|(at, pid, signal)| (*at, *pid, signal.as_raw()));
    let (calm, stubborn) = (*kids.first().expect("two"), *kids.last().expect("two"));
    assert_eq!(
        signals,
        vec![
            (secs(30), end.id.pid, Signal::TERM),
            (secs(30), calm, Signal::TERM),
            (secs(30), stubborn, Signal::TERM),
            (secs(35), end.id.pid, Signal::KILL),
            (secs(35), stubborn, Signal::KILL),
        ]
    );
    assert!(!os.is_running(calm) && !os.is_running(stubborn));
    // The worker's end is in; its children's may still be on their way to
    // the monitor (the fake has no pidfds): the drain collects them.
    let report = handle.drain(secs(60)).await.expect("drain");
    assert!(report.is_complete(), "{report:?}");
    assert!(
        report.ended.iter().all(|end| kids.contains(&end.id.pid)),
        "{report:?}"
    );
    let status = handle.status().await.expect("status");
    assert_eq!(status.tracked_count, 0);
    assert!(os.children(MONITOR_PID).is_empty(), "all reaped");
    monitor.shutdown().await;
}

/// A program nobody registered fails to spawn as a missing program does.
#[tokio::test(start_paused = true)]
async fn an_unknown_program_is_a_missing_program() {
    let (monitor, _os) = spawn_fake_monitor(Monitor::builder()).expect("fake monitor");
    let error = monitor
        .handle()
        .spawn(Command::new("nonesuch"))
        .await
        .expect_err("no such program");
    assert!(
        matches!(&error, Error::Spawn { program, source }
            if program == "nonesuch" && source.kind() == std::io::ErrorKind::NotFound),
        "{error:?}"
    );
    monitor.shutdown().await;
}

/// Outside a runtime there is nothing to run the monitor on: an error,
/// not a panic.
#[test]
fn outside_a_runtime_is_an_error() {
    assert!(matches!(
        spawn_fake_monitor(Monitor::builder()),
        Err(Error::NoRuntime)
    ));
}
