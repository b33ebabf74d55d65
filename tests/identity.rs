//! Process identity with real processes: a tracked process is its (pid,
//! start time) pinned by a pidfd, so a pid reused by a new process (forced
//! through `/proc/sys/kernel/ns_last_pid`, which needs root as in CI) is
//! never mistaken for the tracked one; the recorded parent is an identity
//! too, whether it is the real parent or one the caller named.

#![allow(clippy::unwrap_used)]
#![allow(clippy::print_stderr)]

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{Proc, Procs, SOON, wait_for_more_scans, wait_for_status, wait_until};
use monitor_core::{Error, Event, Monitor, TrackOptions};

/// Serializes the tests that steer pid allocation.
static NS_LAST_PID: Mutex<()> = Mutex::new(());

/// Spawns `sleep 30` until it gets exactly `target` as its pid, steering the
/// kernel through `ns_last_pid`. Panics if that file cannot be written (CI
/// runs as root; this test must not silently skip) or after 100 attempts.
fn spawn_sleep_at_pid(procs: &mut Procs, target: i32) -> Proc {
    let _lock = NS_LAST_PID.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..100 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (target - 1).to_string()).unwrap_or_else(
            |e| {
                panic!(
                    "cannot write /proc/sys/kernel/ns_last_pid ({e}); this test forces pid reuse \
                     and needs root (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), as CI has"
                )
            },
        );
        let proc = procs.sleep("30");
        if proc.pid == target {
            return proc;
        }
        // Something else took the pid first; this one is not needed.
        procs.kill_and_reap(&proc);
    }
    panic!("could not get pid {target} reused in 100 attempts");
}

/// A tracked process with a named parent is killed and reaped behind the
/// monitor's back, and a new `sleep` is forced onto the same pid (often with
/// the same start time too). Killing the named parent then must not make
/// the monitor signal the new process: after two more scans it still runs,
/// there is no Orphaned, Signalled or Killed event for that pid, and the
/// stale entry is reported Exited and untracked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_pid_is_never_signalled() {
    let mut procs = Procs::new();
    let builder = Monitor::builder()
        .check_interval(Duration::from_millis(300))
        .grace(Duration::from_millis(200));
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;

    let helper = procs.sleep("300");
    // Right after a scan, so the stale entry is likely still tracked when
    // the pid is reused (an event-driven exit watcher may remove it sooner;
    // that is fine too). Everything up to the reuse is quick, so the new
    // process often gets the victim's start time (10 ms ticks) as well.
    wait_for_more_scans(&handle, 1, SOON).await;
    let victim = procs.sleep("300");
    let tracked = handle
        .track_with(victim.pid, TrackOptions::new().parent(helper.pid))
        .await
        .unwrap();
    assert_eq!(tracked.id, victim.id());
    assert_eq!(
        tracked.parent,
        helper.id(),
        "the named parent is recorded by identity"
    );
    procs.kill_and_reap(&victim);
    let reused = spawn_sleep_at_pid(&mut procs, victim.pid);
    let stale_tracked = handle
        .status()
        .await
        .unwrap()
        .tracked
        .iter()
        .any(|t| t.id == victim.id());
    eprintln!(
        "pid {} reused: start time {} -> {} ({}); stale entry still tracked at reuse: {stale_tracked}",
        victim.pid,
        victim.start_time,
        reused.start_time,
        if reused.start_time == victim.start_time {
            "same identity pair"
        } else {
            "different start time"
        }
    );

    procs.kill_and_reap(&helper);
    wait_for_more_scans(&handle, 2, SOON).await;
    assert!(
        reused.is_running(),
        "the process that reused pid {} was harmed",
        victim.pid
    );
    let pid = victim.pid;
    log.assert_none("orphan handling aimed at the reused pid", |e| {
        matches!(
            e,
            Event::Orphaned { .. } | Event::Signalled { .. } | Event::Killed { .. }
        ) && e.pid() == Some(pid)
    });
    log.wait_for(
        SOON,
        "Exited for the stale entry",
        |e| matches!(e, Event::Exited { id, status: None } if *id == victim.id()),
    )
    .await;
    let status = handle.status().await.unwrap();
    assert_eq!(status.tracked_count, 0, "{status:#?}");
    assert_eq!(status.counters.orphans_found, 0);
    monitor.shutdown().await;
    assert!(reused.is_running());
    procs.kill_and_reap(&reused);
}

/// Tracking a pid again after its tracked process died and the pid was
/// reused (before any scan noticed) tracks the new process instead of
/// failing with `AlreadyTracked`; the status lists the pid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_pid_can_be_tracked_again() {
    common::init_tracing();
    let mut procs = Procs::new();
    let monitor = Monitor::builder()
        .check_interval(Duration::from_secs(60))
        .spawn()
        .unwrap();
    let handle = monitor.handle();
    wait_for_status(&handle, SOON, "the first scan", |s| s.counters.scans >= 1).await;

    let victim = procs.sleep("300");
    handle.track(victim.pid).await.unwrap();
    procs.kill_and_reap(&victim);
    let reused = spawn_sleep_at_pid(&mut procs, victim.pid);
    let tracked = handle
        .track(reused.pid)
        .await
        .expect("a dead entry must not block tracking the pid's new process");
    assert_eq!(tracked.id, reused.id());
    let status = handle.status().await.unwrap();
    assert_eq!(status.tracked_count, 1, "{status:#?}");
    // At most the scan at start (it runs on the blocking pool and may
    // still be in flight).
    assert!(status.counters.scans <= 1, "no scan should have helped");
    monitor.shutdown().await;
    procs.kill_and_reap(&reused);
}

/// Control by an identity whose pid was reused: the victim is tracked,
/// killed and reaped, and, a clock tick later (so the pair differs), a new
/// process is forced onto its pid and tracked. A `kill` or `untrack` naming
/// the victim's identity is then `Error::Stale` naming the new holder, and
/// the new process is neither signalled nor untracked; a bare pid would
/// have reached it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_by_a_reused_pids_old_identity_is_stale() {
    common::init_tracing();
    let mut procs = Procs::new();
    let (monitor, handle, mut log) =
        common::spawn_monitor(Monitor::builder().check_interval(Duration::from_secs(60))).await;
    let victim = procs.sleep("300");
    handle.track(victim.pid).await.unwrap();
    procs.kill_and_reap(&victim);
    log.wait_for(
        SOON,
        "the victim's exit",
        |e| matches!(e, Event::Exited { id, .. } if *id == victim.id()),
    )
    .await;
    // Start times count clock ticks since boot, as /proc/uptime does (in
    // hundredths of a second); two ticks on, a new process's differs.
    let ticks = procfs::ticks_per_second() as f64;
    wait_until(SOON, "two clock ticks have passed", || {
        let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
        let seconds: f64 = uptime
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        seconds * ticks >= (victim.start_time + 2) as f64
    })
    .await;
    let reused = spawn_sleep_at_pid(&mut procs, victim.pid);
    assert_ne!(reused.id(), victim.id());
    handle.track(reused.pid).await.unwrap();

    for result in [
        handle.kill(victim.id()).await,
        handle.untrack(victim.id()).await,
    ] {
        assert!(
            matches!(result, Err(Error::Stale { id, now: Some(now) }) if id == victim.id() && now == reused.id()),
            "{result:?}"
        );
    }
    let status = handle.status().await.unwrap();
    assert!(status.tracked.iter().any(|t| t.id == reused.id()));
    assert!(reused.is_running(), "the pid's new process was harmed");
    log.assert_none("a signal for the reused pid", |e| {
        matches!(e, Event::Signalled { .. } | Event::Killed { .. }) && e.pid() == Some(victim.pid)
    });
    monitor.shutdown().await;
    procs.kill_and_reap(&reused);
}

/// A named parent's death orphans the process even though its real parent
/// (the test process) lives: Orphaned names the helper, SIGTERM follows,
/// and the process dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn death_of_a_named_parent_orphans_the_process() {
    let mut procs = Procs::new();
    let (monitor, handle, mut log) = common::fast_monitor(Duration::from_millis(500)).await;

    let helper = procs.sleep("300");
    let worker = procs.sleep("300");
    let id = handle
        .track_with(worker.pid, TrackOptions::new().parent(helper.pid))
        .await
        .unwrap()
        .id;
    wait_for_more_scans(&handle, 2, SOON).await;
    assert!(worker.is_running(), "orphaned while the named parent lives");

    procs.kill_and_reap(&helper);
    let (_, orphaned) = log
        .wait_for(
            SOON,
            "Orphaned",
            |e| matches!(e, Event::Orphaned { id: i, .. } if *i == id),
        )
        .await;
    assert!(matches!(orphaned, Event::Orphaned { parent, .. } if parent == helper.id()));
    log.wait_for(
        SOON,
        "Signalled",
        |e| matches!(e, Event::Signalled { id: i, .. } if *i == id),
    )
    .await;
    wait_until(SOON, "the worker is dead", || worker.is_dead()).await;
    log.wait_for(
        SOON,
        "Exited",
        |e| matches!(e, Event::Exited { id: i, .. } if *i == id),
    )
    .await;
    monitor.shutdown().await;
}

/// A parent named by identity that is already gone makes the process an
/// orphan at the next scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_identity_already_gone_is_an_orphan_at_once() {
    let mut procs = Procs::new();
    let (monitor, handle, mut log) = common::fast_monitor(Duration::from_millis(500)).await;

    let gone = procs.sleep("300");
    procs.kill_and_reap(&gone);
    let worker = procs.sleep("300");
    let id = handle
        .track_with(worker.pid, TrackOptions::new().parent_identity(gone.id()))
        .await
        .unwrap()
        .id;
    log.wait_for(
        SOON,
        "Orphaned",
        |e| matches!(e, Event::Orphaned { id: i, parent, .. } if *i == id && *parent == gone.id()),
    )
    .await;
    wait_until(SOON, "the worker is dead", || worker.is_dead()).await;
    monitor.shutdown().await;
}
