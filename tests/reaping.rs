//! Reaping with real processes on real time: children handed over with
//! `track_child` are reaped on SIGCHLD (not at the next scan) and their
//! exit status is handed back; children the monitor does not own keep their
//! own exit statuses (no theft); exited tracked processes are auto-untracked
//! and, when they belong to the application, left for it to reap.

#![allow(clippy::unwrap_used)]
#![allow(clippy::print_stderr)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    EventLog, Proc, Procs, SOON, exit_on_eof, wait_for_more_scans, wait_for_status, wait_until,
};
use monitor_core::{Event, ExitStatus, Monitor, MonitorHandle, OwnedChild, ShutdownPolicy};

/// A monitor whose scan never runs again after the immediate first tick, so
/// only SIGCHLD can reap; returned once that first scan is done.
async fn sigchld_only_monitor() -> Monitor {
    let monitor = Monitor::builder()
        .check_interval(Duration::from_secs(60))
        .spawn()
        .unwrap();
    wait_for_status(&monitor.handle(), SOON, "the first scan", |s| {
        s.counters.scans >= 1
    })
    .await;
    monitor
}

/// Checks that `proc` left no zombie: `/proc/<pid>` is gone or names a
/// process with another start time, and its pidfd says it was reaped.
fn assert_no_zombie(proc: &Proc) {
    assert!(proc.is_reaped(), "{} was not reaped", proc.pid);
    let now = common::read_stat(proc.pid);
    assert!(
        now.is_none_or(|s| s.start_time != proc.start_time),
        "/proc/{} still shows the same process: {now:?}",
        proc.pid
    );
}

/// Closes a child's stdin (its cue to exit), waits for the monitor to hand
/// back its status (the 60 s scan cannot have reaped it), and reports how
/// long that took.
async fn release_and_wait<T>(kind: &str, stdin: T, mut owned: OwnedChild) -> ExitStatus {
    let released = Instant::now();
    drop(stdin);
    let status = tokio::time::timeout(SOON, owned.wait())
        .await
        .expect("the owned child was not reaped within 10 s (60 s scan interval)")
        .unwrap();
    eprintln!(
        "{kind} child: exit to OwnedChild::wait in {:?}",
        released.elapsed()
    );
    status
}

/// After the child is reaped: the events say so and no scan did it.
async fn assert_reaped_by_sigchld(
    handle: &MonitorHandle,
    log: &mut EventLog,
    proc: &Proc,
    code: i32,
) {
    let id = proc.id();
    log.wait_for(SOON, "Reaped", |e| {
        matches!(e, Event::Reaped { pid, status } if *pid == id.pid && *status == ExitStatus::Exited(code))
    })
    .await;
    log.wait_for(SOON, "Exited", |e| {
        matches!(e, Event::Exited { id: i, status: Some(ExitStatus::Exited(c)) } if *i == id && *c == code)
    })
    .await;
    let status = handle.status().await.unwrap();
    // At most the scan at start (it runs on the blocking pool and may
    // still be in flight).
    assert!(
        status.counters.scans <= 1,
        "a scan ran; SIGCHLD alone should have reaped"
    );
    assert_eq!(status.tracked_count, 0, "{status:#?}");
    assert!(status.counters.reaped >= 1);
}

/// A `std::process::Child` handed over with `track_child` is reaped within
/// milliseconds of exiting (SIGCHLD, with a 60 s scan interval), its exit
/// code comes back through `OwnedChild::wait`, and no zombie is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn std_child_is_reaped_on_sigchld() {
    common::init_tracing();
    let mut procs = Procs::new();
    let monitor = sigchld_only_monitor().await;
    let handle = monitor.handle();
    let mut log = EventLog::subscribe(&handle).await;

    let spawned = procs.spawn(&mut exit_on_eof(7));
    let proc = spawned.proc.clone();
    let owned = handle.track_child(procs.take_child(&proc)).await.unwrap();
    assert_eq!(owned.process_id(), proc.id());
    assert!(owned.tracked().owned);

    let status = release_and_wait("std", spawned.stdin, owned).await;
    assert_eq!(status, ExitStatus::Exited(7));
    assert_no_zombie(&proc);
    assert_reaped_by_sigchld(&handle, &mut log, &proc, 7).await;
    monitor.shutdown().await;
}

/// The same for a `tokio::process::Child`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_child_is_reaped_on_sigchld() {
    common::init_tracing();
    let mut procs = Procs::new();
    let monitor = sigchld_only_monitor().await;
    let handle = monitor.handle();
    let mut log = EventLog::subscribe(&handle).await;

    let (proc, mut child) = procs.spawn_tokio(&mut tokio::process::Command::from(exit_on_eof(7)));
    let stdin = child.stdin.take().expect("piped stdin");
    let owned = handle.track_child(child).await.unwrap();
    assert_eq!(owned.process_id(), proc.id());

    let status = release_and_wait("tokio", stdin, owned).await;
    assert_eq!(status, ExitStatus::Exited(7));
    assert_no_zombie(&proc);
    assert_reaped_by_sigchld(&handle, &mut log, &proc, 7).await;
    monitor.shutdown().await;
}

/// An owned child killed by a signal reports `Signaled { signal: 9 }`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_killed_by_a_signal_reports_the_signal() {
    common::init_tracing();
    let mut procs = Procs::new();
    let monitor = sigchld_only_monitor().await;
    let handle = monitor.handle();

    let proc = procs.sleep("300");
    let mut owned = handle.track_child(procs.take_child(&proc)).await.unwrap();
    proc.kill();
    let status = tokio::time::timeout(SOON, owned.wait())
        .await
        .expect("the killed child was not reaped within 10 s")
        .unwrap();
    assert_eq!(
        status,
        ExitStatus::Signaled {
            signal: 9,
            core_dumped: false
        }
    );
    assert_eq!(status.signal(), Some(9));
    assert_no_zombie(&proc);
    monitor.shutdown().await;
}

/// No theft: while the monitor sweeps its owned set on every SIGCHLD (and
/// scans every 50 ms), a `tokio::process::Child` and a `std::process::Child`
/// that it does not own, exiting at the same moment as an owned one, still
/// get their own exit statuses (3 and 4). The std child's zombie is left in
/// place across two scans and reported as an unowned zombie, not reaped.
/// Twenty rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_the_monitor_does_not_own_keep_their_exit_status() {
    let mut procs = Procs::new();
    let builder = Monitor::builder().check_interval(Duration::from_millis(50));
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;

    for round in 0..20 {
        let sh = |code: i32| {
            let mut command = Command::new("sh");
            command
                .args(["-c", &format!("sleep 0.02; exit {code}")])
                .stdin(Stdio::null());
            command
        };
        let owned_proc = procs.spawn(&mut sh(5)).proc;
        let (tokio_proc, mut tokio_child) =
            procs.spawn_tokio(&mut tokio::process::Command::from(sh(3)));
        let std_proc = procs.spawn(&mut sh(4)).proc;
        let mut owned = handle
            .track_child(procs.take_child(&owned_proc))
            .await
            .unwrap();

        let (owned_status, tokio_status) = tokio::time::timeout(SOON, async {
            tokio::join!(owned.wait(), tokio_child.wait())
        })
        .await
        .unwrap_or_else(|_| panic!("round {round}: a wait hung"));
        assert_eq!(
            owned_status.unwrap(),
            ExitStatus::Exited(5),
            "round {round}"
        );
        let tokio_status = tokio_status
            .unwrap_or_else(|e| panic!("round {round}: tokio child lost its status: {e}"));
        assert_eq!(tokio_status.code(), Some(3), "round {round}: tokio child");

        // Let the std child sit as a zombie through SIGCHLD sweeps and scans.
        wait_until(SOON, "the std child has exited", || std_proc.is_dead()).await;
        wait_for_more_scans(&handle, 2, SOON).await;
        assert!(
            !std_proc.is_reaped(),
            "round {round}: someone reaped the std child behind its owner's back"
        );
        let std_id = std_proc.id();
        log.wait_for(
            SOON,
            "UnownedZombie",
            |e| matches!(e, Event::UnownedZombie { id } if *id == std_id),
        )
        .await;
        let std_status = procs
            .child_mut(&std_proc)
            .wait()
            .unwrap_or_else(|e| panic!("round {round}: std child lost its status: {e}"));
        assert_eq!(std_status.code(), Some(4), "round {round}: std child");
        assert_no_zombie(&owned_proc);
        assert_no_zombie(&tokio_proc);
    }
    let status = handle.status().await.unwrap();
    assert_eq!(
        status.counters.reaped, 20,
        "the monitor reaped more than it owns"
    );
    log.assert_none("reap errors", |e| matches!(e, Event::Error { .. }));
    monitor.shutdown().await;
}

/// A tracked grandchild that exits on its own (`sleep 0.3`, its parent shell
/// alive) is reported Exited (no status: not ours to reap) and untracked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exited_grandchild_is_untracked() {
    let mut procs = Procs::new();
    let builder = Monitor::builder().check_interval(Duration::from_millis(50));
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;

    let shell = procs.spawn_shell("sleep 0.3 & echo $!; wait; exec sleep 300", 1);
    let sleep = shell.kid().clone();
    let id = handle.track(sleep.pid).await.unwrap().id;
    assert_eq!(handle.status().await.unwrap().tracked_count, 1);

    let (_, exited) = log
        .wait_for(
            SOON,
            "Exited",
            |e| matches!(e, Event::Exited { id: i, .. } if *i == id),
        )
        .await;
    assert_eq!(exited, Event::Exited { id, status: None });
    assert!(sleep.is_dead());
    let status = handle.status().await.unwrap();
    assert_eq!(status.tracked_count, 0, "{status:#?}");
    assert!(status.tracked.iter().all(|t| t.id != id));
    assert!(status.counters.exited >= 1);
    log.assert_none("orphan handling of a process whose parent lives", |e| {
        matches!(e, Event::Orphaned { .. } | Event::Signalled { .. }) && e.id() == Some(id)
    });
    assert!(
        shell.proc.is_running(),
        "the parent shell should still be there"
    );
    monitor.shutdown().await;
}

/// A child of the application tracked by pid (not handed over) belongs to
/// the application: when it exits the monitor reports Exited with no status
/// and does not reap it, so the application's own `wait` gets exit code 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_child_tracked_by_pid_is_left_for_its_owner_to_reap() {
    let mut procs = Procs::new();
    let builder = Monitor::builder().check_interval(Duration::from_millis(50));
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;

    let spawned = procs.spawn(&mut exit_on_eof(6));
    let proc = spawned.proc.clone();
    let tracked = handle.track(proc.pid).await.unwrap();
    assert!(!tracked.owned, "tracking by pid must not take ownership");
    assert_eq!(tracked.parent.pid, common::my_pid());

    drop(spawned.stdin);
    let id = proc.id();
    let (_, exited) = log
        .wait_for(
            SOON,
            "Exited",
            |e| matches!(e, Event::Exited { id: i, .. } if *i == id),
        )
        .await;
    assert_eq!(exited, Event::Exited { id, status: None });
    wait_for_more_scans(&handle, 2, SOON).await;
    assert!(
        !proc.is_reaped(),
        "the monitor reaped a child that belongs to the application"
    );
    log.assert_none(
        "Reaped for a child the monitor does not own",
        |e| matches!(e, Event::Reaped { pid, .. } if *pid == id.pid),
    );
    let status = procs.child_mut(&proc).wait().expect("our own wait works");
    assert_eq!(status.code(), Some(6));
    assert_eq!(handle.status().await.unwrap().tracked_count, 0);
    monitor.shutdown().await;
}

/// With `ShutdownPolicy::TerminateUnits` (the default, named here), shutdown
/// terminates and reaps the owned children (a well-behaved one ends on SIGTERM, one that ignores it
/// gets SIGKILL after the grace period; their `OwnedChild::wait`s get those
/// statuses) and leaves a process that is only watched running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_terminates_owned_children_and_leaves_watched_ones() {
    common::init_tracing();
    let mut procs = Procs::new();
    let monitor = Monitor::builder()
        .check_interval(Duration::from_millis(50))
        .grace(Duration::from_millis(300))
        .shutdown(ShutdownPolicy::TerminateUnits)
        .spawn()
        .unwrap();
    let handle = monitor.handle();

    let polite = procs.sleep("300");
    let mut polite_owned = handle.track_child(procs.take_child(&polite)).await.unwrap();
    let stubborn = procs
        .spawn(
            Command::new("sh")
                .args(["-c", "trap '' TERM; exec sleep 300"])
                .stdin(Stdio::null()),
        )
        .proc;
    // The trap must be set before shutdown sends SIGTERM: wait for the exec.
    wait_until(SOON, "the stubborn shell execs sleep", || {
        std::fs::read_to_string(format!("/proc/{}/comm", stubborn.pid))
            .is_ok_and(|comm| comm.trim() == "sleep")
    })
    .await;
    let mut stubborn_owned = handle
        .track_child(procs.take_child(&stubborn))
        .await
        .unwrap();
    let shell = procs.spawn_shell("sleep 300 & echo $!; wait", 1);
    let watched = shell.kid().clone();
    handle.track(watched.pid).await.unwrap();

    let polite_waiter = tokio::spawn(async move { polite_owned.wait().await });
    let stubborn_waiter = tokio::spawn(async move { stubborn_owned.wait().await });
    tokio::time::timeout(SOON, monitor.shutdown())
        .await
        .expect("shutdown hung");
    for (waiter, signal) in [(polite_waiter, 15), (stubborn_waiter, 9)] {
        let status = tokio::time::timeout(SOON, waiter)
            .await
            .expect("OwnedChild::wait hung after shutdown")
            .unwrap()
            .expect("the owned child's status");
        assert_eq!(
            status,
            ExitStatus::Signaled {
                signal,
                core_dumped: false
            }
        );
    }
    assert_no_zombie(&polite);
    assert_no_zombie(&stubborn);
    assert!(
        watched.is_running(),
        "shutdown harmed a process it does not own"
    );
}

/// With `ShutdownPolicy::Leave`, an owned child keeps running after
/// shutdown and its `OwnedChild::wait` reports `MonitorGone`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_leave_leaves_owned_children_running() {
    common::init_tracing();
    let mut procs = Procs::new();
    let monitor = Monitor::builder()
        .shutdown(ShutdownPolicy::Leave)
        .spawn()
        .unwrap();
    let child = procs.sleep("300");
    let mut owned = monitor
        .handle()
        .track_child(procs.take_child(&child))
        .await
        .unwrap();
    tokio::time::timeout(SOON, monitor.shutdown())
        .await
        .expect("shutdown hung");
    let result = tokio::time::timeout(SOON, owned.wait())
        .await
        .expect("OwnedChild::wait hung after shutdown");
    assert!(
        matches!(result, Err(monitor_core::Error::MonitorGone)),
        "{result:?}"
    );
    assert!(child.is_running(), "shutdown with `leave` harmed its child");
}
