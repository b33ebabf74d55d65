//! Control calls (`terminate`, `kill`, `stop`, `untrack`, their blocking
//! forms) by identity, and validation that is the same everywhere:
//!
//! - a `ProcessId` whose process is gone, or whose pid is tracked as
//!   another process, is `Error::Stale`, and nothing is signalled;
//! - pid 0, negative pids, pid 1 and the monitor's own pid get the same
//!   error from every call that takes a pid, `track` included;
//! - `SIGKILL` as the grace signal is refused per process as the config
//!   refuses it, with the same reason, and a spawn asking for it is
//!   refused too.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Procs, SOON};
use monitor_core::{
    Config, Error, Event, Monitor, MonitorHandle, OrphanAction, OrphanTarget, ProcessId, Signal,
    SpawnOptions, TrackOptions,
};

async fn monitor() -> (Monitor, MonitorHandle, common::EventLog) {
    common::fast_monitor(Duration::from_secs(60)).await
}

/// The errors every control call gives for `process`.
async fn control_errors(handle: &MonitorHandle, process: ProcessId) -> Vec<(&'static str, Error)> {
    let calls = [
        ("terminate", handle.terminate(process).await),
        ("kill", handle.kill(process).await),
        ("stop", handle.stop(process, true, OrphanTarget::Tree).await),
        ("untrack", handle.untrack(process).await),
    ];
    calls
        .into_iter()
        .map(|(call, result)| (call, result.expect_err(call)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_by_a_stale_identity_is_an_error_and_signals_nothing() {
    let (monitor, handle, mut log) = monitor().await;
    let mut procs = Procs::new();

    // Its process has exited: the identity names nothing now.
    let gone = procs.sleep("300");
    handle.track(gone.pid).await.unwrap();
    procs.kill_and_reap(&gone);
    log.wait_for(
        SOON,
        "the exit is noticed",
        |e| matches!(e, Event::Exited { id, .. } if *id == gone.id()),
    )
    .await;
    for (call, error) in control_errors(&handle, gone.id()).await {
        // The pid may have been reused meanwhile by a stranger; the
        // identity is stale either way.
        assert!(
            matches!(error, Error::Stale { id, now } if id == gone.id() && now.is_none_or(|now| now != gone.id())),
            "{call}: {error:?}"
        );
        assert!(error.to_string().contains("is gone"), "{call}: {error}");
    }

    // The pid is tracked, as another process than the identity says: the
    // start time differs. The tracked process is left alone.
    let live = procs.sleep("300");
    handle.track(live.pid).await.unwrap();
    let other = ProcessId::new(live.pid, live.start_time + 1);
    for (call, error) in control_errors(&handle, other).await {
        assert!(
            matches!(error, Error::Stale { id, now: Some(now) } if id == other && now == live.id()),
            "{call}: {error:?}"
        );
    }
    let blocking = {
        let handle = handle.clone();
        tokio::task::spawn_blocking(move || handle.kill_blocking(other))
            .await
            .unwrap()
    };
    assert!(matches!(blocking, Err(Error::Stale { .. })), "{blocking:?}");
    assert!(
        live.is_running(),
        "a stale identity's call reached the process"
    );
    let status = handle.status().await.unwrap();
    assert!(status.tracked.iter().any(|t| t.id == live.id()));
    assert_eq!(status.counters.stops_requested, 0);

    // Its own identity works, and so does a bare pid.
    handle.kill(live.id()).await.expect("kill by identity");
    common::wait_until(SOON, "the process dies", || live.is_dead()).await;
    let untracked = procs.sleep("300");
    handle.track(untracked.pid).await.unwrap();
    assert_eq!(
        handle.untrack(untracked.pid).await.unwrap().id,
        untracked.id()
    );
    // Alive and named right, but not tracked (any more): not stale.
    let not_tracked = handle.terminate(untracked.id()).await;
    assert!(
        matches!(not_tracked, Err(Error::NotTracked { pid }) if pid == untracked.pid),
        "{not_tracked:?}"
    );
    monitor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_refuses_a_pid_as_track_does() {
    let (monitor, handle, _log) = monitor().await;
    let me = common::my_pid();
    for pid in [0, -1, i32::MIN, 1, me] {
        let track = handle.track(pid).await.expect_err("track");
        let calls = [
            ("terminate", handle.terminate(pid).await),
            ("kill", handle.kill(pid).await),
            ("stop", handle.stop(pid, false, OrphanTarget::Process).await),
            ("untrack", handle.untrack(pid).await),
            // An identity with such a pid is refused the same way.
            (
                "kill by identity",
                handle.kill(ProcessId::new(pid, 1)).await,
            ),
        ];
        for (call, result) in calls {
            let error = result.expect_err(call);
            assert_eq!(
                std::mem::discriminant(&error),
                std::mem::discriminant(&track),
                "pid {pid}: {call} says {error:?}, track says {track:?}"
            );
            assert_eq!(error.to_string(), track.to_string(), "pid {pid}: {call}");
        }
    }
    assert!(matches!(handle.kill(0).await, Err(Error::PidZero)));
    assert!(matches!(
        handle.untrack(-5).await,
        Err(Error::NegativePid { pid: -5 })
    ));
    monitor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_as_the_grace_signal_is_refused_per_process_as_in_the_config() {
    let mut config = Config::default();
    config.term_signal = Signal::KILL;
    let Err(Error::InvalidConfig {
        key: "term_signal",
        reason: config_reason,
    }) = config.validate()
    else {
        panic!("the config refuses SIGKILL as its grace signal");
    };

    let explicit = TrackOptions::new()
        .signal(Signal::KILL)
        .action(OrphanAction::Terminate);
    assert!(
        matches!(explicit.validate(), Err(Error::InvalidConfig { key: "signal", reason }) if reason == config_reason),
        "{:?}",
        explicit.validate()
    );

    let (monitor, handle, _log) = monitor().await;
    let mut procs = Procs::new();
    let sleep = procs.sleep("300");
    // The monitor's default action is `terminate`: refused, same reason.
    for options in [explicit, TrackOptions::new().signal(Signal::KILL)] {
        let refused = handle.track_with(sleep.pid, options).await;
        assert!(
            matches!(&refused, Err(Error::InvalidConfig { key: "signal", reason }) if *reason == config_reason),
            "{refused:?}"
        );
    }
    // A spawn that asks for it is refused (before the child is started).
    let mut command = std::process::Command::new("sleep");
    command.arg("300");
    let spawn = SpawnOptions::new().track(TrackOptions::new().signal(Signal::KILL));
    let refused = handle.spawn_with(command, spawn).await;
    assert!(
        matches!(refused, Err(Error::InvalidConfig { key: "signal", .. })),
        "{refused:?}"
    );
    let status = handle.status().await.unwrap();
    assert_eq!(status.tracked_count, 0, "{status:#?}");

    // With the `kill` action it means what it says, as in the config.
    let tracked = handle
        .track_with(
            sleep.pid,
            TrackOptions::new()
                .signal(Signal::KILL)
                .action(OrphanAction::Kill),
        )
        .await
        .expect("SIGKILL with the kill action");
    assert_eq!(tracked.signal, Signal::KILL);
    monitor.shutdown().await;
}
