//! Paused-time tests of the monitor's logic over the fake process table:
//! exact timings of scans, orphan detection and escalation.
//!
//! The scanner runs its procfs work on the blocking pool, which holds the
//! paused clock still while it runs, so every observation below happens at
//! an exact virtual instant.

use std::time::Duration;

use crate::fake::FakeProc;
use crate::harness::{CHILD, Harness, PARENT, config, is_exit_of, is_orphaned, secs, stubborn};
use crate::{
    Config, Error, ErrorKind, Event, OrphanAction, ProcessId, ProcessState, Signal, TrackOptions,
};

/// The parent dies at 90 s; the scan at 120 s (the first tick after) finds
/// the orphan and SIGTERM goes out at that very instant, not before.
#[tokio::test(start_paused = true)]
async fn orphan_is_noticed_at_the_first_tick_after_its_parent_dies() {
    let (mut h, id) = Harness::with_tracked_child(config(), stubborn()).await;
    h.sleep_until(secs(90.0)).await;
    h.os.kill_parent(PARENT);
    let (at, event) = h.next(is_orphaned).await;
    assert_eq!(at, secs(120.0));
    assert_eq!(
        event,
        Event::Orphaned {
            id,
            parent: ProcessId::new(PARENT, PARENT as u64),
            action: OrphanAction::Terminate
        }
    );
    assert_eq!(h.sent()[0], (secs(120.0), CHILD, Signal::TERM));
}

/// SIGTERM at the tick, SIGKILL exactly `grace` later, then the exit.
#[tokio::test(start_paused = true)]
async fn sigkill_follows_sigterm_exactly_one_grace_later() {
    let (mut h, id) = Harness::with_tracked_child(config(), stubborn()).await;
    h.sleep_until(secs(90.0)).await;
    h.os.kill_parent(PARENT);
    let (at, _) = h.next(|e| matches!(e, Event::Killed { .. })).await;
    assert_eq!(at, secs(125.0));
    assert_eq!(
        h.sent(),
        vec![
            (secs(120.0), CHILD, Signal::TERM),
            (secs(125.0), CHILD, Signal::KILL)
        ]
    );
    let (gone_at, _) = h.next(is_exit_of(id)).await;
    assert!(
        gone_at > secs(125.0) && gone_at <= secs(125.3),
        "{gone_at:?}"
    );
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.tracked_count, 0);
    assert_eq!(status.counters.orphans_killed, 1);
    assert_eq!(status.counters.orphans_terminated, 0);
}

/// A process that exits 2 s into its grace period gets no SIGKILL.
#[tokio::test(start_paused = true)]
async fn no_sigkill_when_the_orphan_exits_in_time() {
    let (mut h, id) = Harness::with_tracked_child(config(), stubborn()).await;
    h.sleep_until(secs(90.0)).await;
    h.os.kill_parent(PARENT);
    h.sleep_until(secs(122.0)).await;
    h.os.exit(CHILD);
    let (gone_at, _) = h.next(is_exit_of(id)).await;
    // Noticed at the next re-check, well inside the grace period.
    assert!(
        gone_at > secs(122.0) && gone_at <= secs(122.25),
        "{gone_at:?}"
    );
    h.sleep_until(secs(200.0)).await;
    assert_eq!(h.sent(), vec![(secs(120.0), CHILD, Signal::TERM)]);
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.counters.orphans_terminated, 1);
    assert_eq!(status.counters.orphans_killed, 0);
}

/// The tracked pid is reused by a new process (new start time) whose
/// parent is init, so the old rule would call it an orphan: it is never
/// signalled, and the stale entry is dropped as exited.
#[tokio::test(start_paused = true)]
async fn a_reused_pid_is_never_signalled() {
    let (mut h, id) = Harness::with_tracked_child(config(), FakeProc::default()).await;
    h.sleep_until(secs(90.0)).await;
    h.os.exit(CHILD);
    let reused = h.os.spawn_with(
        CHILD,
        FakeProc {
            start_time: 9000,
            ppid: 1,
            ..FakeProc::default()
        },
    );
    h.os.kill_parent(PARENT);
    let (at, event) = h.next(is_exit_of(id)).await;
    assert_eq!(at, secs(120.0));
    assert_eq!(event, Event::Exited { id, status: None });
    h.sleep_until(secs(300.0)).await;
    assert_eq!(h.sent(), vec![]);
    assert!(h.os.is_alive(reused.pid));
    assert_eq!(
        h.handle
            .status()
            .await
            .expect("status")
            .counters
            .orphans_found,
        0
    );
}

/// Untracking during the grace period cancels the pending SIGKILL.
#[tokio::test(start_paused = true)]
async fn untrack_cancels_the_escalation() {
    let (mut h, id) = Harness::with_tracked_child(config(), stubborn()).await;
    h.sleep_until(secs(90.0)).await;
    h.os.kill_parent(PARENT);
    h.next(|e| matches!(e, Event::Signalled { .. })).await;
    h.sleep_until(secs(122.0)).await;
    let untracked = h.handle.untrack(CHILD).await.expect("untrack");
    assert_eq!(untracked.id, id);
    h.sleep_until(secs(300.0)).await;
    assert_eq!(h.sent(), vec![(secs(120.0), CHILD, Signal::TERM)]);
    assert!(h.os.is_alive(CHILD));
    assert!(matches!(
        h.handle.untrack(CHILD).await,
        Err(Error::NotTracked { pid: CHILD })
    ));
}

/// After the runtime stalls for 5.5 periods, one scan runs, not five, and
/// the next comes a full period after it (`MissedTickBehavior::Delay`).
#[tokio::test(start_paused = true)]
async fn a_stalled_tick_does_not_burst() {
    let period = Duration::from_secs(1);
    let h = Harness::start(Config {
        check_interval: period,
        ..Config::default()
    })
    .await;
    while h.handle.status().await.expect("status").counters.scans < 1 {
        tokio::task::yield_now().await;
    }
    assert_eq!(h.elapsed(), Duration::ZERO);
    tokio::time::advance(secs(5.5)).await;
    while h.handle.status().await.expect("status").counters.scans < 2 {
        tokio::task::yield_now().await;
    }
    h.sleep_until(secs(6.4)).await;
    assert_eq!(h.handle.status().await.expect("status").counters.scans, 2);
    h.sleep_until(secs(6.6)).await;
    assert_eq!(h.handle.status().await.expect("status").counters.scans, 3);
}

/// A disabled monitor answers status, refuses track, and never scans.
#[tokio::test(start_paused = true)]
async fn a_disabled_monitor_refuses_track_and_never_scans() {
    let h = Harness::start(Config {
        enabled: false,
        ..config()
    })
    .await;
    h.os.spawn(CHILD, PARENT);
    assert!(matches!(h.handle.track(CHILD).await, Err(Error::Disabled)));
    h.sleep_until(secs(600.0)).await;
    let status = h.handle.status().await.expect("status");
    assert!(!status.enabled);
    assert!(!status.running);
    assert_eq!(status.counters.scans, 0);
    assert_eq!(status.tracked_count, 0);
}

/// Fifty stubborn orphans of one parent are escalated together: every
/// SIGTERM at 120 s, every SIGKILL at 125 s.
#[tokio::test(start_paused = true)]
async fn fifty_orphans_take_one_grace_period() {
    let mut h = Harness::default().await;
    h.os.spawn(PARENT, 1);
    for pid in 1000..1050 {
        h.os.spawn_with(
            pid,
            FakeProc {
                start_time: 1,
                ppid: PARENT,
                ..stubborn()
            },
        );
        h.handle.track(pid).await.expect("track");
    }
    h.sleep_until(secs(90.0)).await;
    h.os.kill_parent(PARENT);
    for _ in 0..50 {
        h.next(|e| matches!(e, Event::Exited { .. })).await;
    }
    let sent = h.sent();
    assert_eq!(sent.len(), 100);
    for (at, _, signal) in sent {
        let expected = if signal == Signal::TERM { 120.0 } else { 125.0 };
        assert_eq!(at, secs(expected), "{signal}");
    }
}

/// `kill` sends SIGKILL at once; `notify` only reports.
#[tokio::test(start_paused = true)]
async fn kill_and_notify_actions() {
    let mut h = Harness::default().await;
    h.os.spawn(PARENT, 1);
    h.os.spawn(301, PARENT);
    h.os.spawn(302, PARENT);
    h.handle
        .track_with(301, TrackOptions::new().action(OrphanAction::Kill))
        .await
        .expect("track");
    h.handle
        .track_with(302, TrackOptions::new().action(OrphanAction::Notify))
        .await
        .expect("track");
    h.sleep_until(secs(30.0)).await;
    h.os.kill_parent(PARENT);
    h.next(|e| matches!(e, Event::Exited { id, .. } if id.pid == 301))
        .await;
    h.sleep_until(secs(200.0)).await;
    assert_eq!(h.sent(), vec![(secs(60.0), 301, Signal::KILL)]);
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.tracked_count, 1);
    assert_eq!(status.tracked[0].state, ProcessState::Orphaned);
    assert_eq!(status.tracked[0].since, secs(140.0));
    assert_eq!(status.counters.orphans_found, 2);
}

/// A zero grace period sends SIGKILL right after the termination signal,
/// and a per-track signal replaces SIGTERM.
#[tokio::test(start_paused = true)]
async fn zero_grace_and_custom_signal() {
    let mut h = Harness::default().await;
    h.os.spawn(PARENT, 1);
    h.os.spawn_with(
        CHILD,
        FakeProc {
            start_time: 1,
            ppid: PARENT,
            ..stubborn()
        },
    );
    let options = TrackOptions::new()
        .grace(Duration::ZERO)
        .signal(Signal::INT);
    h.handle.track_with(CHILD, options).await.expect("track");
    h.os.kill_parent(PARENT);
    h.next(|e| matches!(e, Event::Exited { .. })).await;
    assert_eq!(
        h.sent(),
        vec![
            (secs(60.0), CHILD, Signal::INT),
            (secs(60.0), CHILD, Signal::KILL)
        ]
    );
}

/// A named parent decides, not the real one: the real parent's death is
/// ignored, the named parent's death orphans the process.
#[tokio::test(start_paused = true)]
async fn a_named_parent_is_what_counts() {
    let mut h = Harness::default().await;
    h.os.spawn(PARENT, 1);
    let named = h.os.spawn(400, 1);
    h.os.spawn(CHILD, PARENT);
    let tracked = h
        .handle
        .track_with(CHILD, TrackOptions::new().parent_identity(named))
        .await
        .expect("track");
    assert_eq!(tracked.parent, named);
    h.os.kill_parent(PARENT);
    h.sleep_until(secs(150.0)).await;
    assert_eq!(h.sent(), vec![]);
    h.os.kill_parent(400);
    let (at, _) = h.next(is_orphaned).await;
    assert_eq!(at, secs(180.0));
}

/// A parent identity that is already gone at track time (e.g. restored
/// after a restart) makes the process an orphan at once, not at the next
/// scan.
#[tokio::test(start_paused = true)]
async fn a_parent_already_gone_orphans_at_once() {
    let mut h = Harness::default().await;
    h.os.spawn(CHILD, 1);
    h.sleep_until(secs(10.0)).await;
    h.handle
        .track_with(
            CHILD,
            TrackOptions::new().parent_identity(ProcessId::new(4242, 7)),
        )
        .await
        .expect("track");
    let (at, _) = h.next(is_orphaned).await;
    assert_eq!(at, secs(10.0));
}

/// EPERM from a signal is an event and a counter; the monitor goes on.
#[tokio::test(start_paused = true)]
async fn permission_denied_is_reported_and_survived() {
    let (mut h, id) = Harness::with_tracked_child(
        config(),
        FakeProc {
            signal_denied: true,
            ..FakeProc::default()
        },
    )
    .await;
    h.os.kill_parent(PARENT);
    let (_, event) = h.next(|e| matches!(e, Event::Error { .. })).await;
    let Event::Error {
        id: Some(err_id),
        kind,
        ..
    } = event
    else {
        panic!("expected an error event, got {event:?}");
    };
    assert_eq!((err_id, kind), (id, ErrorKind::PermissionDenied));
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.counters.permission_denied, 1);
    assert_eq!(status.counters.errors, 1);
    h.os.spawn(500, 1);
    h.handle.track(500).await.expect("still tracking");
}

/// A process that outlives SIGKILL by `kill_timeout` is reported as
/// unkillable and stays visible in status.
#[tokio::test(start_paused = true)]
async fn an_unkillable_process_is_reported() {
    let (mut h, id) = Harness::with_tracked_child(
        config(),
        FakeProc {
            ignores_term: true,
            ignores_kill: true,
            ..FakeProc::default()
        },
    )
    .await;
    h.os.kill_parent(PARENT);
    let (at, event) = h.next(|e| matches!(e, Event::Error { .. })).await;
    assert_eq!(at, secs(60.0 + 5.0 + 5.0));
    assert!(
        matches!(event, Event::Error { kind: ErrorKind::Unkillable, id: Some(e), .. } if e == id)
    );
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.tracked[0].state, ProcessState::Unkillable);
}

/// Shutdown through the handle ends the actor; every later call says so.
#[tokio::test(start_paused = true)]
async fn a_handle_outliving_its_monitor_errors() {
    let h = Harness::default().await;
    let handle = h.handle.clone();
    h.monitor.shutdown().await;
    assert!(matches!(handle.status().await, Err(Error::MonitorGone)));
    assert!(matches!(handle.track(CHILD).await, Err(Error::MonitorGone)));
    handle
        .shutdown()
        .await
        .expect("shutdown of a stopped monitor is fine");
}

/// A subscriber that never reads misses events (`Lagged`) while the actor
/// carries on: a hundred tracks later, commands are still answered at once.
#[tokio::test(start_paused = true)]
async fn a_lagging_subscriber_never_slows_the_actor() {
    let mut h = Harness::start(Config {
        event_capacity: 4,
        ..config()
    })
    .await;
    for pid in 1000..1100 {
        h.os.spawn(pid, PARENT);
        h.handle.track(pid).await.expect("track");
    }
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.tracked_count, 100);
    assert_eq!(
        h.elapsed(),
        Duration::ZERO,
        "nothing waited on the subscriber"
    );
    assert!(matches!(
        h.events.recv().await,
        Err(tokio::sync::broadcast::error::RecvError::Lagged(96))
    ));
}

/// The status report serializes to JSON with every field the original's
/// `get_status()` had, plus identities, states and counters.
#[tokio::test(start_paused = true)]
async fn status_serializes_to_json() {
    let (h, id) = Harness::with_tracked_child(config(), FakeProc::default()).await;
    let status = h.handle.status().await.expect("status");
    let json = serde_json::to_value(&status).expect("serializes");
    assert_eq!(json["enabled"], true);
    assert_eq!(json["running"], true);
    assert_eq!(json["tracked_count"], 1);
    assert_eq!(json["check_interval"], "1m");
    assert_eq!(json["pid"], crate::fake::MY_PID);
    assert_eq!(json["tracked"][0]["id"]["pid"], id.pid);
    assert_eq!(json["tracked"][0]["state"], "running");
    assert_eq!(json["counters"]["scans"], status.counters.scans);
    let back: crate::Status = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, status);
}
