//! Bad input is refused with a distinct, specific error (never a panic, a
//! hang, or a signal to the wrong process), and the monitor keeps working
//! afterwards: invalid pids, processes that do not exist or already exited,
//! double tracking, untracking what is not tracked, a wrong start time, a
//! disabled monitor, and a monitor spawned without a runtime or with an
//! unworkable config.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Procs, SOON, wait_until};
use monitor_core::{ChildProcess, Error, Monitor, TrackOptions};

fn monitor() -> Monitor {
    Monitor::builder()
        .check_interval(Duration::from_millis(50))
        .grace(Duration::from_millis(200))
        .spawn()
        .unwrap()
}

/// Pids that name no single trackable process each get their own error
/// variant (0, -1, 1, our own pid, a pid above `pid_max`), and the monitor
/// still tracks a real process and answers status afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_pids_get_distinct_errors() {
    common::init_tracing();
    let mut procs = Procs::new();
    let monitor = monitor();
    let handle = monitor.handle();

    let zero = handle.track(0).await;
    assert!(matches!(zero, Err(Error::PidZero)), "{zero:?}");
    let negative = handle.track(-1).await;
    assert!(
        matches!(negative, Err(Error::NegativePid { pid: -1 })),
        "{negative:?}"
    );
    let very_negative = handle.track(i32::MIN).await;
    assert!(
        matches!(very_negative, Err(Error::NegativePid { pid: i32::MIN })),
        "{very_negative:?}"
    );
    let init = handle.track(1).await;
    assert!(matches!(init, Err(Error::InitProcess)), "{init:?}");
    let me = common::my_pid();
    let own = handle.track(me).await;
    assert!(
        matches!(own, Err(Error::OwnProcess { pid }) if pid == me),
        "{own:?}"
    );

    // Pids run from 1 to pid_max - 1, so neither of these can exist.
    let pid_max = common::pid_max();
    for missing in [pid_max, pid_max + 1] {
        let result = handle.track(missing).await;
        assert!(
            matches!(result, Err(Error::NoSuchProcess { pid }) if pid == missing),
            "{missing}: {result:?}"
        );
    }
    let dead = procs.sleep("300");
    procs.kill_and_reap(&dead);
    let result = handle.track(dead.pid).await;
    // The pid could have been reused meanwhile; only then may it succeed.
    if dead.is_reaped() && common::read_stat(dead.pid).is_none() {
        assert!(
            matches!(result, Err(Error::NoSuchProcess { pid }) if pid == dead.pid),
            "{result:?}"
        );
    }

    let status = handle.status().await.unwrap();
    assert_eq!(
        status.tracked_count, 0,
        "a refused track left an entry: {status:#?}"
    );
    let sleep = procs.sleep("300");
    let tracked = handle
        .track(sleep.pid)
        .await
        .expect("the monitor still works");
    assert_eq!(tracked.id, sleep.id());
    let status = handle.status().await.unwrap();
    assert!(status.running);
    assert_eq!(status.tracked_count, 1);
    assert_eq!(status.tracked[0].id, sleep.id());
    monitor.shutdown().await;
}

/// Misuse of tracked state: untracking an untracked pid, tracking the same
/// process twice, tracking a zombie, and a wrong expected start time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misuse_of_tracking_gets_distinct_errors() {
    common::init_tracing();
    let mut procs = Procs::new();
    let monitor = monitor();
    let handle = monitor.handle();

    let sleep = procs.sleep("300");
    let not_tracked = handle.untrack(sleep.pid).await;
    assert!(
        matches!(not_tracked, Err(Error::NotTracked { pid }) if pid == sleep.pid),
        "{not_tracked:?}"
    );

    handle.track(sleep.pid).await.unwrap();
    let twice = handle.track(sleep.pid).await;
    assert!(
        matches!(twice, Err(Error::AlreadyTracked { id }) if id == sleep.id()),
        "{twice:?}"
    );
    let untracked = handle.untrack(sleep.pid).await.unwrap();
    assert_eq!(untracked.id, sleep.id());
    let again = handle.untrack(sleep.pid).await;
    assert!(matches!(again, Err(Error::NotTracked { .. })), "{again:?}");

    let zombie = procs.spawn(std::process::Command::new("true").stdin(std::process::Stdio::null()));
    let zombie = zombie.proc;
    wait_until(SOON, "`true` is a zombie", || {
        common::read_stat(zombie.pid).is_some_and(|s| s.state == 'Z')
    })
    .await;
    let exited = handle.track(zombie.pid).await;
    assert!(
        matches!(exited, Err(Error::AlreadyExited { pid }) if pid == zombie.pid),
        "{exited:?}"
    );
    assert!(
        !zombie.is_reaped(),
        "tracking must not reap somebody's zombie"
    );
    let status = procs.child_mut(&zombie).wait().unwrap();
    assert!(status.success());

    let other = procs.sleep("300");
    let wrong = other.start_time + 1;
    let mismatch = handle
        .track_with(other.pid, TrackOptions::new().start_time(wrong))
        .await;
    assert!(
        matches!(
            mismatch,
            Err(Error::IdentityMismatch { pid, expected, actual })
                if pid == other.pid && expected == wrong && actual == other.start_time
        ),
        "{mismatch:?}"
    );
    let right = handle
        .track_with(other.pid, TrackOptions::new().start_time(other.start_time))
        .await
        .expect("the right start time is accepted");
    assert_eq!(right.id, other.id());

    // Named parents are checked like pids.
    let third = procs.sleep("300");
    let bad_parent = handle
        .track_with(third.pid, TrackOptions::new().parent(0))
        .await;
    assert!(
        matches!(bad_parent, Err(Error::InvalidParent { parent: 0, .. })),
        "{bad_parent:?}"
    );
    let own_parent = handle
        .track_with(third.pid, TrackOptions::new().parent(third.pid))
        .await;
    assert!(
        matches!(own_parent, Err(Error::InvalidParent { parent, .. }) if parent == third.pid),
        "{own_parent:?}"
    );
    let missing = common::pid_max() + 1;
    let no_parent = handle
        .track_with(third.pid, TrackOptions::new().parent(missing))
        .await;
    assert!(
        matches!(no_parent, Err(Error::NoSuchProcess { pid }) if pid == missing),
        "{no_parent:?}"
    );

    let status = handle.status().await.unwrap();
    assert_eq!(status.tracked_count, 1, "{status:#?}");
    assert_eq!(status.tracked[0].id, other.id());
    assert!(sleep.is_running() && other.is_running() && third.is_running());
    monitor.shutdown().await;
}

/// A child whose status was already collected cannot be handed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handing_over_an_already_waited_child_fails() {
    common::init_tracing();
    let mut procs = Procs::new();
    let monitor = monitor();
    let handle = monitor.handle();
    let (_, mut child) =
        procs.spawn_tokio(tokio::process::Command::new("true").stdin(std::process::Stdio::null()));
    tokio::time::timeout(SOON, child.wait())
        .await
        .unwrap()
        .unwrap();
    let result = handle.track_child(child).await;
    let error = result.expect_err("an already waited child is refused");
    assert!(
        matches!(error.error(), Error::ChildAlreadyReaped),
        "{error:?}"
    );
    assert!(matches!(error.into_child(), Some(ChildProcess::Tokio(_))));
    assert_eq!(handle.status().await.unwrap().tracked_count, 0);
    monitor.shutdown().await;
}

/// A disabled monitor answers status (`enabled: false, running: false`) and
/// refuses to track anything with `Error::Disabled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_monitor_refuses_to_track() {
    common::init_tracing();
    let mut procs = Procs::new();
    let monitor = Monitor::builder().enabled(false).spawn().unwrap();
    let handle = monitor.handle();
    let sleep = procs.sleep("300");

    let result = handle.track(sleep.pid).await;
    assert!(matches!(result, Err(Error::Disabled)), "{result:?}");
    let child = procs.sleep("300");
    let result = handle.track_child(procs.take_child(&child)).await;
    // The refused child comes back, still ours to wait for.
    let error = result.expect_err("a disabled monitor refuses the child");
    assert!(matches!(error.error(), Error::Disabled), "{error:?}");
    let Some(ChildProcess::Std(mut returned)) = error.into_child() else {
        panic!("the refused child was not handed back");
    };
    assert_eq!(returned.id() as i32, child.pid);
    assert_eq!(returned.try_wait().expect("still ours to wait for"), None);
    let status = handle.status().await.unwrap();
    assert!(!status.enabled);
    assert!(!status.running);
    assert_eq!(status.tracked_count, 0);
    assert!(sleep.is_running() && child.is_running());
    monitor.shutdown().await;
}

/// A monitor cannot start without a Tokio runtime: `Error::NoRuntime`.
#[test]
fn spawn_outside_a_runtime_fails() {
    let result = Monitor::builder().spawn();
    assert!(matches!(result, Err(Error::NoRuntime)), "{result:?}");
}

/// Config values that parse but cannot work are refused by key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unworkable_config_is_refused_by_key() {
    let zero = Monitor::builder().check_interval(Duration::ZERO).spawn();
    assert!(
        matches!(
            zero,
            Err(Error::InvalidConfig {
                key: "check_interval",
                ..
            })
        ),
        "{zero:?}"
    );
    let zero_kill = Monitor::builder().kill_timeout(Duration::ZERO).spawn();
    assert!(
        matches!(
            zero_kill,
            Err(Error::InvalidConfig {
                key: "kill_timeout",
                ..
            })
        ),
        "{zero_kill:?}"
    );
}

/// Durations past their range are refused by key and limit, in the config
/// and per track: a grace of three years would otherwise reach the
/// deadline queue and panic the actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_out_of_range_are_refused_by_key_and_limit() {
    const YEARS: Duration = Duration::from_secs(3 * 365 * 24 * 3600);
    let long_kill = Monitor::builder().kill_timeout(YEARS).spawn();
    assert!(
        matches!(
            long_kill,
            Err(Error::OutOfRange {
                key: "kill_timeout",
                ..
            })
        ),
        "{long_kill:?}"
    );
    let mut procs = Procs::new();
    let monitor = monitor();
    let handle = monitor.handle();
    let sleep = procs.sleep("300");
    let error = handle
        .track_with(sleep.pid, TrackOptions::new().grace(YEARS))
        .await
        .expect_err("a grace of three years");
    assert!(
        matches!(error, Error::OutOfRange { key: "grace", max, .. } if max == monitor_core::GRACE_RANGE.max),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("grace") && message.contains("1h"),
        "{message}"
    );
    assert_eq!(handle.status().await.unwrap().tracked_count, 0);
    monitor.shutdown().await;
}

/// A thread id names a thread, not a process: refused with an error that
/// says so (it would otherwise be tracked by scan only, with no pidfd).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_id_is_refused_as_a_thread() {
    let monitor = monitor();
    let handle = monitor.handle();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        tid_tx
            .send(rustix::thread::gettid().as_raw_nonzero().get())
            .unwrap();
        // Lives until the test has tried to track it.
        let _ = stop_rx.recv();
    });
    let tid = tid_rx.recv().unwrap();
    let me = common::my_pid();
    assert_ne!(tid, me, "a thread of its own");
    let result = handle.track(tid).await;
    drop(stop_tx);
    thread.join().unwrap();
    let error = result.expect_err("a thread id is not a process");
    assert!(
        matches!(error, Error::ThreadId { pid, tgid } if pid == tid && tgid == me),
        "{error:?}"
    );
    assert!(error.to_string().contains("thread"), "{error}");
    let status = handle.status().await.unwrap();
    assert_eq!(status.tracked_count, 0);
    assert!(
        status.pidfd_supported,
        "a refused thread leaves pidfds in use"
    );
    monitor.shutdown().await;
}
