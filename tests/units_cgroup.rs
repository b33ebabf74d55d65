//! Units contained by cgroups, with real processes: a spawned child starts
//! in a cgroup v2 leaf the monitor created, so nothing it forks can leave
//! its unit. These need a cgroup subtree the monitor may write (root here,
//! as on CI). Without one they skip, saying so; with `CI=true` that is a
//! failure. Every leaf and subtree is gone afterwards (checked), and every
//! process is pinned in a guard that kills it even when a test fails.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Procs, SOON, wait_for_status, wait_until};
use monitor_core::{Containment, Event, Monitor, MonitorHandle, OwnedChild};

/// The tests check that no directory of this process is left, so they run
/// one at a time (each monitor has a subtree of its own).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Spawns `sh -c script` (stdout piped) through the monitor and reads
/// `lines` lines from it. `None` (after saying why) where units cannot
/// have cgroups here; under `CI=true` that panics.
async fn spawn_in_cgroup(
    handle: &MonitorHandle,
    script: &str,
    lines: usize,
) -> Option<(OwnedChild, Vec<String>)> {
    let mut command = Command::new("sh");
    command
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut owned = handle.spawn(command).await.expect("spawn");
    let status = handle.status().await.expect("status");
    let containment = status.units.first().map(|unit| unit.containment);
    if containment != Some(Containment::Cgroup) {
        let why = format!(
            "cgroup containment is not available here (the unit got {containment:?}; it needs a cgroup v2 subtree the monitor may write, e.g. root)"
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: {why}");
        }
        return None;
    }
    let read = common::lines_of(owned.stdout.take().expect("piped"), lines).await;
    Some((owned, read))
}

/// The directories of this process's monitors in the cgroup tree.
fn our_cgroup_dirs() -> Vec<PathBuf> {
    common::cgroup_dirs_of(std::process::id())
}

/// The escape: the root's child starts a `setsid` grandchild and exits at
/// once, a double fork that no scan can follow. In a cgroup the grandchild
/// is a member at once (with the 60 s check interval and no scan in
/// between), ends with the unit, and the unit's end leaves no cgroup
/// directory behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_forked_grandchild_stays_in_its_cgroup_unit() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut procs = Procs::new();
    let (monitor, handle, mut log) = common::spawn_monitor(Monitor::builder()).await;
    let script = "(setsid sleep 300 & echo $!); echo ready; exec sleep 300";
    let Some((owned, lines)) = spawn_in_cgroup(&handle, script, 2).await else {
        return;
    };
    let root = procs.pin(owned.process_id().pid);
    let grandchild = procs.pin(lines[0].trim().parse().expect("a pid"));
    let status = handle.status().await.expect("status");
    assert_eq!(status.units[0].members, 2, "{:?}", status.units);
    assert_eq!(
        status.counters.unit_scans, 0,
        "found by the cgroup, not a scan"
    );
    assert!(
        status.units[0]
            .resources
            .is_some_and(|used| used.cpu_usec.is_some()),
        "{:?}",
        status.units[0]
    );
    handle
        .terminate(root.pid)
        .await
        .expect("terminate the unit");
    log.wait_for(
        SOON,
        "the unit's end",
        |e| matches!(e, Event::UnitEnded { root: ended, .. } if *ended == root.id()),
    )
    .await;
    wait_until(SOON, "the root and the grandchild are gone", || {
        root.is_dead() && grandchild.is_dead()
    })
    .await;
    monitor.shutdown().await;
    assert!(our_cgroup_dirs().is_empty(), "{:?}", our_cgroup_dirs());
}

/// A unit whose processes fork as fast as they can, double forks included,
/// is ended by the cgroup path (freeze, `cgroup.kill`): the unit ends,
/// nothing is left in it, and no directory is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_storm_is_ended_by_the_cgroup() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (monitor, handle, mut log) = common::spawn_monitor(
        Monitor::builder()
            .grace(Duration::from_millis(200))
            .kill_timeout(Duration::from_secs(5)),
    )
    .await;
    let script = "trap '' TERM; echo ready; while :; do (sleep 300 &); done";
    let Some((owned, _)) = spawn_in_cgroup(&handle, script, 1).await else {
        return;
    };
    let root = owned.process_id();
    wait_for_status(&handle, SOON, "the storm has forked 50 processes", |s| {
        s.units.first().is_some_and(|u| u.members >= 50)
    })
    .await;
    handle
        .terminate(root.pid)
        .await
        .expect("terminate the storm");
    log.wait_for(
        SOON,
        "the storm's unit ends",
        |e| matches!(e, Event::UnitEnded { root: ended, .. } if *ended == root),
    )
    .await;
    let status = handle.status().await.expect("status");
    assert!(status.units.is_empty(), "{:?}", status.units);
    monitor.shutdown().await;
    assert!(our_cgroup_dirs().is_empty(), "{:?}", our_cgroup_dirs());
}
