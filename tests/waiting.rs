//! Waiting, with real processes: `wait_for` under `tokio::time::timeout`
//! (retried after it elapsed), `drain` of every unit (children of spawned
//! workers included) with the monitor running on afterwards, a drain that
//! times out, and one unit's own event stream.
//!
//! Every process is pinned in a guard that kills it even when a test
//! fails.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, Procs, SOON, children_of, exit_on_eof, wait_until};
use monitor_core::{
    Containment, Error, Event, ExitStatus, Monitor, MonitorHandle, ProcessId, Signal, TrackOptions,
};
use tokio::sync::broadcast::error::RecvError;

/// A worker as a job runner starts one: a shell with two children of its
/// own, spawned through the monitor. Returns the shell and its two
/// children, pinned, once both exist.
async fn worker(handle: &MonitorHandle, procs: &mut Procs) -> (Proc, Vec<Proc>) {
    let mut command = Command::new("sh");
    command
        .args(["-c", "sleep 30 & sleep 30 & wait"])
        .stdin(Stdio::null());
    let owned = handle.spawn(command).await.expect("spawn a worker");
    let shell = procs.pin(owned.process_id().pid);
    wait_until(SOON, "the worker's two children exist", || {
        children_of(shell.pid).len() == 2
    })
    .await;
    let kids = children_of(shell.pid)
        .into_iter()
        .map(|pid| procs.pin_child_of(pid, &shell))
        .collect();
    (shell, kids)
}

/// `wait_for` under a timeout that elapses loses nothing: the same wait
/// started again gets the exit status of the spawned child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_under_a_timeout_can_be_retried() {
    let mut procs = Procs::new();
    let (monitor, handle, _log) = common::fast_monitor(Duration::from_secs(5)).await;
    let mut owned = handle.spawn(exit_on_eof(7)).await.expect("spawn");
    let id = owned.process_id();
    procs.pin(id.pid);
    let stdin = owned.stdin.take().expect("stdin piped");
    let first = tokio::time::timeout(Duration::from_millis(100), handle.wait_for(id)).await;
    assert!(first.is_err(), "it waits for its stdin to close: {first:?}");
    drop(stdin);
    let end = tokio::time::timeout(SOON, handle.wait_for(id))
        .await
        .expect("the exit comes")
        .expect("wait_for");
    assert_eq!((end.id, end.status), (id, Some(ExitStatus::Exited(7))));
    // Right after, it is still known how it ended.
    assert_eq!(handle.wait_for(id).await.expect("remembered"), end);
    monitor.shutdown().await;
}

/// `wait_for` a process the monitor only tracks: its end comes without a
/// status (its parent reaps it). A pid never tracked, and a stale identity,
/// are errors at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_a_tracked_process_and_the_errors() {
    let mut procs = Procs::new();
    let (monitor, handle, _log) = common::fast_monitor(Duration::from_secs(5)).await;
    let sleeper = procs.sleep("30");
    let tracked = handle.track(sleeper.pid).await.expect("track");
    let stale = ProcessId::new(sleeper.pid, tracked.id.start_time + 1);
    assert!(matches!(
        handle.wait_for(stale).await,
        Err(Error::Stale { id, now: Some(now) }) if id == stale && now == tracked.id
    ));
    let waiting = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.wait_for(tracked.id).await })
    };
    procs.kill_and_reap(&sleeper);
    let end = tokio::time::timeout(SOON, waiting)
        .await
        .expect("the end comes")
        .expect("joined")
        .expect("wait_for");
    assert_eq!((end.id, end.status), (tracked.id, None));
    let never = ProcessId::new(sleeper.pid, 1);
    assert!(matches!(
        handle.wait_for(never).await,
        Err(Error::NotTracked { .. })
    ));
    monitor.shutdown().await;
}

/// A drain ends every unit: three spawned workers with their children, and
/// a process the monitor only tracks that ignores SIGTERM (SIGKILL after
/// its 300 ms grace). Nothing is left, the report names every end, and the
/// monitor keeps running: it spawns again afterwards. With the default
/// containment (a cgroup per unit where the monitor may make one, as root).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_ends_every_unit_and_the_monitor_runs_on() {
    drain_everything(Containment::Cgroup).await;
}

/// [`drain_ends_every_unit_and_the_monitor_runs_on`] with units found by
/// scanning, as for an unprivileged user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_ends_every_unit_contained_by_scanning() {
    drain_everything(Containment::Scan).await;
}

async fn drain_everything(containment: Containment) {
    let mut procs = Procs::new();
    let (monitor, handle, _log) = common::spawn_monitor(
        Monitor::builder()
            .check_interval(common::FAST_SCAN)
            .grace(Duration::from_millis(300))
            .containment(containment),
    )
    .await;
    let mut all = Vec::new();
    for _ in 0..3 {
        let (shell, kids) = worker(&handle, &mut procs).await;
        all.push(shell);
        all.extend(kids);
    }
    let stubborn = procs.spawn_shell("(trap '' TERM; exec sleep 30) & echo $!; wait", 1);
    let stubborn = stubborn.kids[0].clone();
    handle
        .track_with(stubborn.pid, TrackOptions::new().tree(false))
        .await
        .expect("track");
    all.push(stubborn.clone());

    let report = handle.drain(SOON).await.expect("drain");
    assert!(report.is_complete(), "{report:?}");
    for proc in &all {
        assert!(proc.is_dead(), "{} survived the drain", proc.pid);
        assert!(
            report.ended.iter().any(|end| end.id == proc.id()),
            "{} missing from {report:?}",
            proc.pid
        );
    }
    let stubborn_end = report
        .ended
        .iter()
        .find(|end| end.id == stubborn.id())
        .expect("reported");
    assert_eq!(stubborn_end.status, None, "tracked, not owned");
    let status = handle.status().await.expect("status");
    assert!(status.running);
    assert_eq!(status.tracked_count, 0, "{:?}", status.tracked);

    let (shell, _) = worker(&handle, &mut procs).await;
    assert!(shell.is_running(), "the monitor spawns after a drain");
    monitor.shutdown().await;
    wait_until(SOON, "shutdown ended the last worker", || shell.is_dead()).await;
}

/// A drain whose timeout is shorter than the grace period stops waiting
/// and names what is left; the SIGKILL still comes when the grace period
/// ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_times_out_names_what_is_left() {
    let mut procs = Procs::new();
    let (monitor, handle, mut log) = common::fast_monitor(Duration::from_secs(2)).await;
    let mut command = Command::new("sh");
    command.args(["-c", "trap '' TERM; echo ready; while :; do sleep 1; done"]);
    command.stdout(Stdio::piped()).stdin(Stdio::null());
    let mut owned = handle.spawn(command).await.expect("spawn");
    let shell = procs.pin(owned.process_id().pid);
    // The trap is set once it speaks.
    let ready = common::lines_of(owned.stdout.take().expect("piped"), 1).await;
    assert_eq!(ready, ["ready"]);

    let report = handle
        .drain(Duration::from_millis(200))
        .await
        .expect("drain");
    assert!(!report.is_complete());
    assert!(report.remaining.contains(&shell.id()), "{report:?}");
    assert!(shell.is_running(), "still in its grace period");
    log.wait_for(
        SOON,
        "SIGKILL after the grace period",
        |e| matches!(e, Event::Killed { id } if *id == shell.id()),
    )
    .await;
    let end = tokio::time::timeout(SOON, handle.wait_for(shell.id()))
        .await
        .expect("the end comes")
        .expect("wait_for");
    assert_eq!(
        end.status,
        Some(ExitStatus::Signaled {
            signal: Signal::KILL.as_raw(),
            core_dumped: false
        })
    );
    monitor.shutdown().await;
}

/// One unit's stream: only its events (its shell's and children's), none
/// of another unit's, `UnitEnded` last, then closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_stream_carries_only_that_unit() {
    let mut procs = Procs::new();
    let (monitor, handle, _log) = common::spawn_monitor(
        Monitor::builder()
            .check_interval(common::FAST_SCAN)
            .grace(Duration::from_secs(5)),
    )
    .await;
    let (shell, kids) = worker(&handle, &mut procs).await;
    let (other, _) = worker(&handle, &mut procs).await;
    let mut events = handle.subscribe_unit(shell.id()).await.expect("subscribe");
    handle.terminate(other.pid).await.expect("terminate other");
    handle.terminate(shell.pid).await.expect("terminate");
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(SOON, events.recv()).await {
            Ok(Ok(event)) => seen.push(event),
            Ok(Err(RecvError::Closed)) => break,
            Ok(Err(RecvError::Lagged(n))) => panic!("lagged by {n}"),
            Err(_) => panic!("the stream did not end; so far: {seen:#?}"),
        }
    }
    assert!(
        matches!(seen.last(), Some(Event::UnitEnded { root, .. }) if *root == shell.id()),
        "{seen:#?}"
    );
    let ours: Vec<ProcessId> = std::iter::once(&shell).chain(&kids).map(Proc::id).collect();
    for event in &seen {
        let about = match event {
            Event::Reaped { pid, .. } => ours.iter().find(|id| id.pid == *pid).copied(),
            other => other.id(),
        };
        assert!(
            about.is_some_and(|id| ours.contains(&id)),
            "{event} is not about this unit"
        );
    }
    for id in &ours {
        assert!(
            seen.iter()
                .any(|e| matches!(e, Event::Exited { id: ended, .. } if ended == id)),
            "no exit of {id}: {seen:#?}"
        );
    }
    monitor.shutdown().await;
}
