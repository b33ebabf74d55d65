//! Units with real processes: what a tracked process starts is part of it.
//!
//! The job runner of the units issue: workers spawned through the monitor
//! each start two children. `shutdown()` with the default policy, and
//! `terminate(worker)`, leave nothing of them alive; untracking a unit's
//! root untracks every member, and nothing is signalled for it afterwards.
//! Every process a test starts or finds is pinned in a [`Procs`] guard, so
//! it is killed even when the test fails.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, Procs, SOON, wait_for_status, wait_until};
use monitor_core::{Containment, Event, Monitor, MonitorHandle, OwnedChild};

/// A worker: starts two children, prints their pids, waits for them.
const WORKER: &str = "sleep 300 & echo $!; sleep 300 & echo $!; wait";

/// A worker spawned through the monitor, and its two children, all pinned.
struct Worker {
    proc: Proc,
    children: Vec<Proc>,
    /// Kept so that the waiter is not dropped (the monitor still owns it).
    _owned: OwnedChild,
}

async fn spawn_worker(handle: &MonitorHandle, procs: &mut Procs) -> Worker {
    let mut command = Command::new("sh");
    command
        .args(["-c", WORKER])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut owned = handle.spawn(command).await.expect("spawn a worker");
    let proc = procs.pin(owned.process_id().pid);
    let pids = common::pids_of(owned.stdout.take().expect("piped stdout"), 2).await;
    let children = pids
        .into_iter()
        .map(|pid| procs.pin_child_of(pid, &proc))
        .collect();
    Worker {
        proc,
        children,
        _owned: owned,
    }
}

fn all_dead(workers: &[Worker]) -> bool {
    workers
        .iter()
        .all(|w| w.proc.is_dead() && w.children.iter().all(Proc::is_dead))
}

/// Five workers of two children each: the default shutdown ends all
/// fifteen processes, the children included, although they were forked
/// after the spawn and the check interval is the default 60 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_by_default_leaves_nothing_of_a_job_runner() {
    common::init_tracing();
    let mut procs = Procs::new();
    let monitor = Monitor::builder()
        .grace(Duration::from_secs(2))
        .spawn()
        .expect("monitor");
    let handle = monitor.handle();
    let mut workers = Vec::new();
    for _ in 0..5 {
        workers.push(spawn_worker(&handle, &mut procs).await);
    }
    let status = handle.status().await.expect("status");
    assert_eq!(status.units.len(), 5);
    // Cgroups where the test may make them (root), scanning elsewhere.
    assert!(
        status
            .units
            .iter()
            .all(|u| u.owned && u.containment != Containment::None)
    );
    tokio::time::timeout(SOON, monitor.shutdown())
        .await
        .expect("shutdown hung");
    wait_until(SOON, "every worker and child is gone", || {
        all_dead(&workers)
    })
    .await;
}

/// `terminate(worker)` ends that worker's unit, its children included, and
/// nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_ends_a_worker_and_its_children() {
    common::init_tracing();
    let mut procs = Procs::new();
    let (monitor, handle, _log) = common::spawn_monitor(Monitor::builder()).await;
    let first = spawn_worker(&handle, &mut procs).await;
    let second = spawn_worker(&handle, &mut procs).await;
    handle
        .terminate(first.proc.pid)
        .await
        .expect("terminate the first worker");
    wait_until(SOON, "the first worker and its children are gone", || {
        all_dead(std::slice::from_ref(&first))
    })
    .await;
    assert!(
        second.proc.is_running() && second.children.iter().all(Proc::is_running),
        "terminate reached another unit"
    );
    monitor.shutdown().await;
}

/// Untracking a unit's root untracks its members; when the root's parent
/// dies afterwards, nothing is signalled on the unit's account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untracking_a_root_untracks_its_members_for_good() {
    common::init_tracing();
    let mut procs = Procs::new();
    let (monitor, handle, mut log) =
        common::spawn_monitor(Monitor::builder().check_interval(common::FAST_SCAN)).await;
    // The parent (killed below), the root, and the root's two children.
    // The root's own output goes nowhere: the only line read is its pid.
    let parent = procs.spawn_shell(&format!("sh -c '{WORKER}' >/dev/null & echo $!; wait"), 1);
    let root = parent.kid().clone();
    handle.track(root.pid).await.expect("track the root");
    let status = wait_for_status(&handle, SOON, "the root's children are members", |s| {
        s.units.first().is_some_and(|u| u.members == 3)
    })
    .await;
    let members: Vec<Proc> = status
        .tracked
        .iter()
        .filter(|t| t.descendant_of.is_some())
        .map(|t| procs.pin(t.id.pid))
        .collect();
    handle.untrack(root.pid).await.expect("untrack the root");
    let status = handle.status().await.expect("status");
    assert_eq!(status.tracked_count, 0, "{:?}", status.tracked);
    assert!(status.units.is_empty());

    parent.proc.kill();
    wait_until(SOON, "the root is reparented", || {
        root.stat().is_some_and(|stat| stat.ppid != parent.proc.pid)
    })
    .await;
    // Two scans after the reparenting: the scan would have seen an orphan.
    common::wait_for_more_scans(&handle, 2, SOON).await;
    assert!(root.is_running() && members.iter().all(Proc::is_running));
    log.assert_none("a signal for an untracked unit", |e| {
        matches!(
            e,
            Event::Signalled { .. } | Event::Killed { .. } | Event::Orphaned { .. }
        )
    });
    monitor.shutdown().await;
}

/// The root of the escape tests: it forks `C`, which calls nothing but
/// starts `G` in a session of its own (`setsid`), prints `G`'s pid, and
/// waits for it. `G` has left `C`'s session and process group, so only
/// parentage ties it to the unit.
const ESCAPE_ROOT: &str = "(setsid sleep 300 & echo $!; wait) & wait";

/// How the escape test's root is made a unit's root.
#[derive(Debug, Clone, Copy)]
enum RootKind {
    /// Spawned through the monitor.
    Spawned,
    /// Started by somebody else (a grandchild of the test) and tracked.
    Tracked,
}

/// Starts the escape fixture; returns the root and the setsid grandchild,
/// both pinned.
async fn escape_fixture(
    handle: &MonitorHandle,
    procs: &mut Procs,
    kind: RootKind,
    tree: bool,
) -> (Proc, Proc, Option<OwnedChild>) {
    let options = monitor_core::TrackOptions::new().tree(tree);
    match kind {
        RootKind::Spawned => {
            let mut command = Command::new("sh");
            command
                .args(["-c", ESCAPE_ROOT])
                .stdin(Stdio::null())
                .stdout(Stdio::piped());
            let spawn = monitor_core::SpawnOptions::new().track(options);
            let mut owned = handle.spawn_with(command, spawn).await.expect("spawn");
            let root = procs.pin(owned.process_id().pid);
            let pids = common::pids_of(owned.stdout.take().expect("piped"), 1).await;
            let grandchild = procs.pin(pids[0]);
            (root, grandchild, Some(owned))
        }
        RootKind::Tracked => {
            let mut command = Command::new("sh");
            command
                .args(["-c", &format!("sh -c '{ESCAPE_ROOT}' & echo $!; wait")])
                .stdin(Stdio::null())
                .stdout(Stdio::piped());
            let mut outer = procs.spawn(&mut command);
            let pids = read_pids(outer.stdout.take().expect("piped"), 2).await;
            // Which line is which does not depend on timing: the root is
            // the outer shell's child.
            let (root, grandchild) =
                if common::read_stat(pids[0]).is_some_and(|stat| stat.ppid == outer.proc.pid) {
                    (pids[0], pids[1])
                } else {
                    (pids[1], pids[0])
                };
            let root = procs.pin_child_of(root, &outer.proc);
            let grandchild = procs.pin(grandchild);
            handle
                .track_with(root.pid, options)
                .await
                .expect("track the root");
            (root, grandchild, None)
        }
    }
}

async fn read_pids(stdout: std::process::ChildStdout, count: usize) -> Vec<i32> {
    tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(count)
            .map(|line| line.expect("read").trim().parse::<i32>().expect("a pid"))
            .collect::<Vec<_>>()
    })
    .await
    .expect("read the fixture's pids")
}

/// Under `scan` containment (the fallback without cgroups or fork events),
/// a setsid grandchild whose parent still lives is a member within the
/// unit cadence (1 s), with the 60 s check interval, and ends with the
/// unit; for a spawned root and for a tracked non-child root alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setsid_grandchild_is_found_by_the_unit_scan_and_ends_with_the_unit() {
    for kind in [RootKind::Spawned, RootKind::Tracked] {
        let mut procs = Procs::new();
        let (monitor, handle, _log) =
            common::spawn_monitor(Monitor::builder().containment(Containment::Scan)).await;
        let (root, grandchild, _owned) = escape_fixture(&handle, &mut procs, kind, true).await;
        wait_for_status(&handle, SOON, "the setsid grandchild is a member", |s| {
            s.tracked
                .iter()
                .any(|t| t.id == grandchild.id() && t.descendant_of == Some(root.id()))
        })
        .await;
        handle
            .terminate(root.pid)
            .await
            .expect("terminate the unit");
        wait_until(SOON, "the root and the grandchild are gone", || {
            root.is_dead() && grandchild.is_dead()
        })
        .await;
        assert_eq!(
            handle.status().await.expect("status").scan_only,
            0,
            "{kind:?}"
        );
        monitor.shutdown().await;
    }
}

/// The negative control: with containment off (`tree(false)`), the same
/// grandchild is never a member and survives the root's termination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_containment_the_setsid_grandchild_survives() {
    for kind in [RootKind::Spawned, RootKind::Tracked] {
        let mut procs = Procs::new();
        let (monitor, handle, mut log) = common::spawn_monitor(Monitor::builder()).await;
        let (root, grandchild, _owned) = escape_fixture(&handle, &mut procs, kind, false).await;
        let status = handle.status().await.expect("status");
        assert_eq!(status.units[0].containment, Containment::None);
        let case = format!("{kind:?}");
        common::terminate_root_alone(&handle, &mut log, &root, &grandchild, &case).await;
        monitor.shutdown().await;
    }
}
