//! Compatibility: the blocking functions ported code uses (`start_monitor`,
//! `track_process`, `get_monitor`, `untrack_process`, `stop_monitor`) work
//! from plain threads with no runtime of their own; `MonitorHandle`'s
//! `*_blocking` methods work from a `std::thread`; the monitor runs on both
//! `multi_thread` and `current_thread` runtimes; and a stopped monitor's
//! handle answers `Error::MonitorGone` instead of hanging.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Procs, SOON, exit_on_eof, wait_until, wait_until_blocking};
use monitor_core::{
    Error, Event, ExitStatus, Monitor, TrackOptions, get_monitor, start_monitor, stop_monitor,
    track_process, untrack_process,
};
/// Bounds an async call: a stopped monitor must answer, never hang.
async fn timeout<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(SOON, future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {SOON:?}"))
}

/// The original tool's blocking API, from a plain `#[test]` with no async
/// runtime: start (a second start returns the running monitor), track a
/// real process, read status through `get_monitor()`, untrack, clean up an
/// orphan, stop; after stop `get_monitor()` is `None` and the old handle
/// says `MonitorGone`; `track_process` then starts a default monitor again.
/// All global-monitor steps live in this one test (the monitor is global).
#[test]
fn blocking_api_works_without_a_runtime() {
    common::init_tracing();
    let mut procs = Procs::new();
    assert!(get_monitor().is_none(), "no global monitor before start");

    let handle = start_monitor(Duration::from_millis(100), true).unwrap();
    let same = start_monitor(Duration::from_secs(5), true).unwrap();
    assert_eq!(
        same.status_blocking().unwrap().check_interval,
        Duration::from_millis(100),
        "a second start must return the running monitor"
    );

    let sleep = procs.sleep("300");
    let tracked = track_process(sleep.pid).unwrap();
    assert_eq!(tracked.id, sleep.id());
    let status = get_monitor().expect("running").status_blocking().unwrap();
    assert!(status.enabled && status.running);
    assert_eq!(status.pid, common::my_pid());
    assert_eq!(status.check_interval, Duration::from_millis(100));
    assert_eq!(status.tracked_count, 1);
    assert_eq!(status.tracked[0].id, sleep.id());
    let untracked = untrack_process(sleep.pid).unwrap();
    assert_eq!(untracked.id, sleep.id());
    assert_eq!(handle.status_blocking().unwrap().tracked_count, 0);
    assert!(matches!(
        untrack_process(sleep.pid),
        Err(Error::NotTracked { .. })
    ));

    // The original promise: the orphan of a crashed parent is cleaned up.
    let shell = procs.spawn_shell("sleep 300 & echo $!; wait", 1);
    let orphan = shell.kid().clone();
    track_process(orphan.pid).unwrap();
    procs.kill_and_reap(&shell.proc);
    wait_until_blocking(SOON, "the orphan is cleaned up", || orphan.is_dead());

    stop_monitor().unwrap();
    assert!(get_monitor().is_none(), "get_monitor() after stop");
    assert!(handle.is_closed());
    assert!(matches!(handle.status_blocking(), Err(Error::MonitorGone)));
    assert!(matches!(
        untrack_process(sleep.pid),
        Err(Error::MonitorGone)
    ));
    stop_monitor().expect("stopping twice is fine");
    assert!(
        sleep.is_running(),
        "stop must leave untracked processes alone"
    );

    // As in the original tool, tracking starts a monitor with the defaults.
    let late = procs.sleep("300");
    track_process(late.pid).unwrap();
    let status = get_monitor()
        .expect("track_process starts the monitor")
        .status_blocking()
        .unwrap();
    assert_eq!(status.check_interval, Duration::from_secs(60));
    assert_eq!(status.tracked_count, 1);
    stop_monitor().unwrap();
    assert!(get_monitor().is_none());
}

/// `MonitorHandle`'s `*_blocking` methods, called from a plain
/// `std::thread` while the monitor runs on a runtime elsewhere: track,
/// track with options, subscribe, status, untrack, hand over a child and
/// wait for its status, shut down; afterwards they answer `MonitorGone`.
#[test]
fn blocking_handle_methods_work_from_a_plain_thread() {
    common::init_tracing();
    let mut procs = Procs::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let monitor = {
        let _entered = runtime.enter();
        Monitor::builder()
            .check_interval(Duration::from_millis(50))
            .spawn()
            .unwrap()
    };
    let handle = monitor.handle();
    let first = procs.sleep("300");
    let second = procs.sleep("300");
    let spawned = procs.spawn(&mut exit_on_eof(9));
    let child = procs.take_child(&spawned.proc);
    let stdin = spawned.stdin;
    let (first_id, second_id) = (first.id(), second.id());

    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let thread_handle = handle.clone();
    std::thread::spawn(move || {
        let handle = thread_handle;
        let mut events = handle.subscribe_blocking().unwrap();
        assert_eq!(handle.track_blocking(first_id.pid).unwrap().id, first_id);
        let options = TrackOptions::new().grace(Duration::from_millis(300));
        let tracked = handle.track_with_blocking(second_id.pid, options).unwrap();
        assert_eq!(tracked.grace, Duration::from_millis(300));
        assert!(matches!(
            events.blocking_recv().unwrap(),
            Event::Tracked { id, .. } if id == first_id
        ));
        assert_eq!(handle.status_blocking().unwrap().tracked_count, 2);
        assert_eq!(handle.untrack_blocking(first_id.pid).unwrap().id, first_id);

        let mut owned = handle.track_child_blocking(child).unwrap();
        drop(stdin);
        assert_eq!(owned.wait_blocking().unwrap(), ExitStatus::Exited(9));

        handle.shutdown_blocking().unwrap();
        assert!(matches!(handle.status_blocking(), Err(Error::MonitorGone)));
        assert!(matches!(
            handle.track_blocking(first_id.pid),
            Err(Error::MonitorGone)
        ));
        assert!(matches!(
            handle.subscribe_blocking(),
            Err(Error::MonitorGone)
        ));
        handle
            .shutdown_blocking()
            .expect("a second shutdown is fine");
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(SOON)
        .expect("the blocking calls hung or panicked (see the thread's panic above)");
    runtime.block_on(timeout("Monitor::shutdown", monitor.shutdown()));
    assert!(first.is_running() && second.is_running());
    assert!(
        spawned.proc.is_reaped(),
        "the handed-over child was not reaped"
    );
}

/// Inside a `current_thread` runtime the `*_blocking` methods and
/// `OwnedChild::wait_blocking` answer `Error::InsideRuntime` naming the
/// async method (Tokio's blocking calls would panic), and nothing is lost:
/// the async forms then work, and the child's status is still delivered.
#[tokio::test(flavor = "current_thread")]
async fn blocking_methods_refuse_a_current_thread_runtime_instead_of_panicking() {
    let mut procs = Procs::new();
    let monitor = Monitor::builder().spawn().unwrap();
    let handle = monitor.handle();
    let sleep = procs.sleep("300");
    let refused = [
        handle.track_blocking(sleep.pid).map(|_| ()),
        handle.status_blocking().map(|_| ()),
        handle.kill_blocking(sleep.id()).map(|_| ()),
        handle.untrack_blocking(sleep.pid).map(|_| ()),
        handle.subscribe_blocking().map(|_| ()),
        handle.shutdown_blocking(),
    ];
    for result in refused {
        assert!(
            matches!(result, Err(Error::InsideRuntime { call, instead }) if call.ends_with("_blocking") && instead.starts_with("MonitorHandle::")),
            "{result:?}"
        );
    }
    // The child comes back with the refusal, untouched.
    let spawned = procs.spawn(&mut exit_on_eof(4));
    let refused = handle
        .track_child_blocking(procs.take_child(&spawned.proc))
        .expect_err("refused inside the runtime");
    assert!(matches!(refused.error(), Error::InsideRuntime { .. }));
    let child = refused.into_child().expect("the child is handed back");
    let mut owned = handle.track_child(child).await.unwrap();
    assert!(matches!(
        owned.wait_blocking(),
        Err(Error::InsideRuntime {
            call: "OwnedChild::wait_blocking",
            ..
        })
    ));
    drop(spawned.stdin);
    let status = timeout("OwnedChild::wait", owned.wait()).await.unwrap();
    assert_eq!(status, ExitStatus::Exited(4));
    assert_eq!(handle.status().await.unwrap().tracked_count, 0);
    timeout("Monitor::shutdown", monitor.shutdown()).await;
}

/// Inside a `multi_thread` runtime they work, even from a task on the one
/// worker thread that also runs the monitor (`block_in_place` hands the
/// monitor to another thread meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn blocking_methods_work_on_a_multi_thread_runtime_worker() {
    let mut procs = Procs::new();
    let monitor = Monitor::builder().spawn().unwrap();
    let handle = monitor.handle();
    let sleep = procs.sleep("300");
    let spawned = procs.spawn(&mut exit_on_eof(6));
    let child = procs.take_child(&spawned.proc);
    let stdin = spawned.stdin;
    let id = sleep.id();
    let worker = tokio::spawn(async move {
        assert_eq!(handle.track_blocking(id.pid).unwrap().id, id);
        assert_eq!(handle.status_blocking().unwrap().tracked_count, 1);
        assert_eq!(handle.untrack_blocking(id).unwrap().id, id);
        let mut owned = handle.track_child_blocking(child).unwrap();
        drop(stdin);
        owned.wait_blocking()
    });
    let status = timeout("the blocking calls on a worker", worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, ExitStatus::Exited(6));
    timeout("Monitor::shutdown", monitor.shutdown()).await;
}

/// Runs the monitor through its paces on the current runtime: tracking,
/// SIGCHLD reaping of an owned child, orphan cleanup, status; then
/// `shutdown()` and every handle call answers `MonitorGone` promptly.
async fn exercise_on_this_runtime() {
    common::init_tracing();
    let mut procs = Procs::new();
    let monitor = Monitor::builder()
        .check_interval(Duration::from_millis(50))
        .grace(Duration::from_millis(200))
        .spawn()
        .unwrap();
    let handle = monitor.handle();

    let sleep = procs.sleep("300");
    assert_eq!(handle.track(sleep.pid).await.unwrap().id, sleep.id());

    let spawned = procs.spawn(&mut exit_on_eof(7));
    let mut owned = handle
        .track_child(procs.take_child(&spawned.proc))
        .await
        .unwrap();
    drop(spawned.stdin);
    let status = timeout("OwnedChild::wait", owned.wait()).await.unwrap();
    assert_eq!(status, ExitStatus::Exited(7));

    let shell = procs.spawn_shell("sleep 300 & echo $!; wait", 1);
    let orphan = shell.kid().clone();
    handle.track(orphan.pid).await.unwrap();
    procs.kill_and_reap(&shell.proc);
    wait_until(SOON, "the orphan is cleaned up", || orphan.is_dead()).await;

    // The first scan starts at once; its report may still be on its way.
    let status =
        common::wait_for_status(&handle, SOON, "a scan has run", |s| s.counters.scans >= 1).await;
    assert!(status.running);
    assert!(status.tracked.iter().any(|t| t.id == sleep.id()));

    timeout("Monitor::shutdown", monitor.shutdown()).await;
    assert!(handle.is_closed());
    let tracked = timeout("track after shutdown", handle.track(sleep.pid)).await;
    assert!(matches!(tracked, Err(Error::MonitorGone)), "{tracked:?}");
    let status = timeout("status after shutdown", handle.status()).await;
    assert!(matches!(status, Err(Error::MonitorGone)), "{status:?}");
    let untracked = timeout("untrack after shutdown", handle.untrack(sleep.pid)).await;
    assert!(
        matches!(untracked, Err(Error::MonitorGone)),
        "{untracked:?}"
    );
    let subscribed = timeout("subscribe after shutdown", handle.subscribe()).await;
    assert!(
        matches!(subscribed, Err(Error::MonitorGone)),
        "{subscribed:?}"
    );
    timeout("shutdown after shutdown", handle.shutdown())
        .await
        .expect("a second shutdown is fine");
    assert!(
        sleep.is_running(),
        "the default shutdown policy leaves processes alone"
    );
}

/// The monitor works on a `multi_thread` runtime and stops cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_a_multi_thread_runtime() {
    exercise_on_this_runtime().await;
}

/// The monitor works on a `current_thread` runtime and stops cleanly.
#[tokio::test(flavor = "current_thread")]
async fn works_on_a_current_thread_runtime() {
    exercise_on_this_runtime().await;
}

/// Cancelling the monitor's token stops it; its handle then answers
/// `MonitorGone`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_token_stops_the_monitor() {
    let monitor = Monitor::builder().spawn().unwrap();
    let handle = monitor.handle();
    handle.status().await.unwrap();
    monitor.cancellation_token().cancel();
    timeout("join after cancel", monitor.join()).await;
    let status = timeout("status after cancel", handle.status()).await;
    assert!(matches!(status, Err(Error::MonitorGone)), "{status:?}");
}

/// The monitor stops on its own once every handle is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_stops_when_every_handle_is_dropped() {
    let monitor = Monitor::builder().spawn().unwrap();
    let handle = monitor.handle();
    handle.status().await.unwrap();
    drop(handle);
    timeout("join after the last handle was dropped", monitor.join()).await;
}
