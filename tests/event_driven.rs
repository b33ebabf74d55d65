//! Exits and orphans noticed through pidfd readiness, not by the scan.
//!
//! Every monitor here scans every 60 s, and its first scan runs at start;
//! each test asserts that no second scan ran, so whatever the monitor
//! noticed, it noticed through a pidfd waking the actor. The last test
//! shows what the scan then reads: between full scans, nothing a watch
//! covers.

mod common;

use std::time::Duration;

use common::{Procs, SOON, wait_until};
use monitor_core::{Event, Monitor, MonitorHandle, Signal};

const MINUTE: Duration = Duration::from_secs(60);

/// The number of scans so far, once the scan at start has completed (it
/// runs on the blocking pool and may still be in flight).
async fn scans(handle: &MonitorHandle) -> u64 {
    common::wait_for_status(handle, SOON, "the first scan completes", |s| {
        s.counters.scans >= 1
    })
    .await
    .counters
    .scans
}

/// The orphan's parent is SIGKILLed; the orphan gets SIGTERM and dies well
/// before any second scan could run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_gets_its_signal_without_waiting_for_the_tick() {
    let mut procs = Procs::new();
    let builder = Monitor::builder()
        .check_interval(MINUTE)
        .grace(Duration::from_secs(5));
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;
    let shell = procs.spawn_shell("sleep 300 & echo $!; wait", 1);
    let orphan = shell.kid().clone();
    let tracked = handle.track(orphan.pid).await.expect("track");
    assert!(tracked.exit_watch, "watched through its pidfd");
    let before = scans(&handle).await;

    procs.kill_and_reap(&shell.proc);
    let term = Event::Signalled {
        id: orphan.id(),
        signal: Signal::TERM,
    };
    let (after, _) = log.wait_for(SOON, "Signalled", |e| *e == term).await;
    wait_until(SOON, "the orphan dies", || orphan.is_dead()).await;
    log.wait_for(
        SOON,
        "Exited",
        |e| matches!(e, Event::Exited { id, .. } if *id == orphan.id()),
    )
    .await;
    assert_eq!(scans(&handle).await, before, "no scan ran: {after:?}");
    monitor.shutdown().await;
}

/// A tracked process that is not our child exits; the exit event and the
/// auto-untrack come without a scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exit_of_a_non_child_is_reported_without_waiting_for_the_tick() {
    let mut procs = Procs::new();
    let builder = Monitor::builder().check_interval(MINUTE);
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;
    let shell = procs.spawn_shell("sleep 300 & echo $!; wait", 1);
    let grandchild = shell.kid().clone();
    handle.track(grandchild.pid).await.expect("track");
    let before = scans(&handle).await;

    grandchild.kill();
    log.wait_for(
        SOON,
        "Exited",
        |e| matches!(e, Event::Exited { id, .. } if *id == grandchild.id()),
    )
    .await;
    let status = handle.status().await.expect("status");
    assert_eq!(status.tracked_count, 0, "auto-untracked");
    assert_eq!(status.counters.exited, 1);
    assert_eq!(status.counters.scans, before, "no scan ran");
    monitor.shutdown().await;
}

/// A SIGTERM-ignoring orphan: SIGKILL at the grace deadline, and its death
/// is noticed at once through its pidfd (no re-check polling).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stubborn_orphan_is_killed_at_the_deadline_and_its_exit_seen_at_once() {
    let mut procs = Procs::new();
    let builder = Monitor::builder()
        .check_interval(MINUTE)
        .grace(Duration::from_millis(300));
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;
    let shell = procs.spawn_shell("trap '' TERM; sleep 300 & echo $!; wait", 1);
    let orphan = shell.kid().clone();
    handle.track(orphan.pid).await.expect("track");
    let before = scans(&handle).await;

    procs.kill_and_reap(&shell.proc);
    let (signalled_at, _) = log
        .wait_for(
            SOON,
            "Signalled",
            |e| matches!(e, Event::Signalled { id, .. } if *id == orphan.id()),
        )
        .await;
    let (killed_at, _) = log
        .wait_for(
            SOON,
            "Killed",
            |e| matches!(e, Event::Killed { id } if *id == orphan.id()),
        )
        .await;
    // Both are arrival times at the log, which lag emission by scheduling
    // noise only.
    let noise = Duration::from_millis(50);
    assert!(
        killed_at - signalled_at + noise >= Duration::from_millis(300),
        "SIGKILL only after the grace period"
    );
    log.wait_for(
        SOON,
        "Exited",
        |e| matches!(e, Event::Exited { id, .. } if *id == orphan.id()),
    )
    .await;
    let status = handle.status().await.expect("status");
    assert_eq!(status.counters.orphans_killed, 1);
    assert_eq!(status.counters.scans, before, "no scan ran");
    monitor.shutdown().await;
}

/// Many tracked children of one parent share its watch: all are orphaned
/// when it dies, and the watch goes once the last of them is untracked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siblings_share_their_parents_watch() {
    let mut procs = Procs::new();
    let builder = Monitor::builder()
        .check_interval(MINUTE)
        .grace(Duration::from_secs(5));
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;
    let script = "for i in 1 2 3 4 5; do sleep 300 & echo $!; done; wait";
    let shell = procs.spawn_shell(script, 5);
    for kid in &shell.kids {
        handle.track(kid.pid).await.expect("track");
    }
    let before = scans(&handle).await;
    procs.kill_and_reap(&shell.proc);
    for kid in &shell.kids {
        log.wait_for(
            SOON,
            "Exited",
            |e| matches!(e, Event::Exited { id, .. } if *id == kid.id()),
        )
        .await;
        assert!(kid.is_dead());
    }
    let status = handle.status().await.expect("status");
    assert_eq!(status.counters.orphans_found, 5);
    assert_eq!(status.counters.scans, before, "no scan ran");
    monitor.shutdown().await;
}

/// Between full scans a check reads only what no watch covers: not a
/// root watched through its parent's pidfd, nor one whose parent is this
/// process, nor a unit member. A full scan reads all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_skip_watched_processes_and_full_scans_read_them() {
    let mut procs = Procs::new();
    let orphanable = procs.spawn_shell("sleep 300 & echo $!; wait", 1);
    // Its kid is found as a member of the shell's unit.
    let unit = procs.spawn_shell("sleep 300 & echo $!; wait", 1);
    let check = Duration::from_millis(20);

    // Checks every 20 ms; no full scan but the one at start.
    let builder = Monitor::builder()
        .check_interval(check)
        .full_scan_interval(Duration::from_secs(24 * 60 * 60));
    let (monitor, handle, _log) = common::spawn_monitor(builder).await;
    let watched = [orphanable.kid().pid, unit.proc.pid];
    for pid in watched {
        assert!(handle.track(pid).await.expect("track").exit_watch);
    }
    let tracked = common::wait_for_status(&handle, SOON, "the member is found", |s| {
        s.tracked_count == 3
    })
    .await;
    let status = common::wait_for_status(&handle, SOON, "three more checks", |s| {
        s.counters.scans >= tracked.counters.scans + 3
    })
    .await;
    let last = status.last_scan.expect("checks ran");
    assert_eq!(last.processes, 0, "a check read a watched process");
    assert_eq!(status.counters.full_scans, 1, "only the scan at start");
    assert_eq!(status.tracked_count, 3, "{status:?}");
    monitor.shutdown().await;

    // The same processes under a monitor whose every check is full.
    let builder = Monitor::builder()
        .check_interval(check)
        .full_scan_interval(check);
    let (monitor, handle, _log) = common::spawn_monitor(builder).await;
    for pid in watched {
        handle.track(pid).await.expect("track");
    }
    let tracked = common::wait_for_status(&handle, SOON, "the member is found", |s| {
        s.tracked_count == 3
    })
    .await;
    let status = common::wait_for_status(&handle, SOON, "a full scan of all three", |s| {
        s.counters.full_scans > tracked.counters.full_scans
            && s.last_scan.is_some_and(|last| last.processes == 3)
    })
    .await;
    assert_eq!(status.counters.full_scans, status.counters.scans);
    monitor.shutdown().await;
}
