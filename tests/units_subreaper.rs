//! Units in a subreaper, with real processes. Its own test binary: the
//! monitor is a subreaper here (process-wide), so members reparented to
//! this process when their parent dies are adopted and reaped by the
//! monitor, "no zombie left" can be checked in this process's own children
//! lists, and a unit that adopts orphans gets back what escaped its scan.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Procs, SOON, wait_for_status, wait_until};
use monitor_core::{Containment, Monitor};

const MEMBERS: usize = 1000;

/// The root forks 1,000 `sleep`s that ignore SIGTERM (so SIGKILL must
/// follow), says so, and waits. Under `scan` containment and under a
/// cgroup (the default, where the monitor may write one; the kill is then
/// freeze and `cgroup.kill`), `terminate` ends all 1,001 processes, none
/// is left running or as a zombie, and no cgroup directory is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_member_unit_ends_with_nothing_left() {
    for containment in [Containment::Scan, Containment::Cgroup] {
        thousand_member_unit(containment).await;
    }
}

async fn thousand_member_unit(containment: Containment) {
    let mut procs = Procs::new();
    let (monitor, handle, _log) = common::spawn_monitor(
        Monitor::builder()
            .containment(containment)
            .subreaper(true)
            .grace(Duration::from_millis(500)),
    )
    .await;
    let script = format!(
        "trap '' TERM; i=0; while [ $i -lt {MEMBERS} ]; do sleep 300 & i=$((i+1)); done; echo ready; wait"
    );
    let mut command = Command::new("sh");
    command
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut root = handle.spawn(command).await.expect("spawn the root");
    let root_proc = procs.pin(root.process_id().pid);
    let got = handle.status().await.expect("status").units[0].containment;
    if got != containment {
        let why = format!(
            "{containment} containment is not available here (the unit got {got}; a cgroup needs a cgroup v2 subtree the monitor may write, e.g. root)"
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: {why}");
        }
        monitor.shutdown().await;
        return;
    }
    let ready = common::lines_of(root.stdout.take().expect("piped"), 1).await;
    assert_eq!(ready, ["ready"], "the root forked its members");
    let status = wait_for_status(&handle, SOON, "1,000 members are found", |s| {
        s.units.first().is_some_and(|u| u.members == MEMBERS + 1)
    })
    .await;
    // Under a cgroup the leaf's list is the membership (members get an
    // entry of their own only when the unit looks at them): read it.
    let pids: Vec<i32> = if containment == Containment::Cgroup {
        leaf_pids()
    } else {
        status
            .tracked
            .iter()
            .filter(|t| t.descendant_of.is_some())
            .map(|t| t.id.pid)
            .collect()
    };
    let members: Vec<common::Proc> = pids
        .into_iter()
        .filter(|pid| *pid != root_proc.pid)
        .map(|pid| procs.pin(pid))
        .collect();
    assert_eq!(members.len(), MEMBERS);

    handle.terminate(root_proc.pid).await.expect("terminate");
    wait_until(SOON, "every member is gone", || {
        root_proc.is_reaped() && members.iter().all(common::Proc::is_reaped)
    })
    .await;
    wait_for_status(&handle, SOON, "the unit is over", |s| {
        s.units.is_empty() && s.tracked_count == 0
    })
    .await;
    // Reaped, not only dead: none lingers as a zombie child of this process
    // (other tests of this binary may have children of their own).
    let children = common::children_of(common::my_pid());
    assert!(
        !children
            .iter()
            .any(|pid| *pid == root_proc.pid || members.iter().any(|m| m.pid == *pid)),
        "a zombie or a leftover of the unit is still a child of this process"
    );
    monitor.shutdown().await;
    let left = common::cgroup_dirs_of(std::process::id());
    assert!(left.is_empty(), "cgroup directories left behind: {left:?}");
}

/// Every process in the cgroup leaves of this process's monitors.
fn leaf_pids() -> Vec<i32> {
    let mut pids = Vec::new();
    for subtree in common::cgroup_dirs_of(std::process::id()) {
        for leaf in std::fs::read_dir(&subtree)
            .expect("read the subtree")
            .flatten()
        {
            if let Ok(procs) = std::fs::read_to_string(leaf.path().join("cgroup.procs")) {
                pids.extend(procs.lines().map(|pid| pid.parse::<i32>().expect("a pid")));
            }
        }
    }
    pids
}

/// The root's child starts a setsid grandchild and exits at once: a double
/// fork completed between two unit scans, which `scan` containment cannot
/// see. Reparented to this subreaper, the grandchild joins the unit that
/// adopts orphans, and ends with it; the negative control (no adoption)
/// leaves it running, outside every unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopting_unit_gets_back_a_double_forked_grandchild() {
    for adopt in [true, false] {
        let mut procs = Procs::new();
        let (monitor, handle, _log) = common::spawn_monitor(
            Monitor::builder()
                .containment(Containment::Scan)
                .subreaper(true),
        )
        .await;
        let mut command = Command::new("sh");
        command
            .args(["-c", "(setsid sleep 300 & echo $!); read x"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let options = monitor_core::SpawnOptions::new().adopt_orphans(adopt);
        let mut root = handle.spawn_with(command, options).await.expect("spawn");
        let _stdin = root.stdin.take();
        let root_proc = procs.pin(root.process_id().pid);
        let pid = common::pids_of(root.stdout.take().expect("piped"), 1).await[0];
        let grandchild = procs.pin(pid);
        wait_until(SOON, "the grandchild is reparented here", || {
            grandchild
                .stat()
                .is_some_and(|stat| stat.ppid == common::my_pid())
        })
        .await;
        if adopt {
            wait_for_status(&handle, SOON, "the orphan joins the unit", |s| {
                s.tracked
                    .iter()
                    .any(|t| t.id == grandchild.id() && t.descendant_of == Some(root_proc.id()))
            })
            .await;
        } else {
            // Two unit scans after the reparenting it is still nobody's.
            let base = handle.status().await.expect("status").counters.unit_scans;
            wait_for_status(&handle, SOON, "two more unit scans", |s| {
                s.counters.unit_scans >= base + 2
            })
            .await;
        }
        handle.terminate(root_proc.pid).await.expect("terminate");
        wait_until(SOON, "the root is gone", || root_proc.is_reaped()).await;
        if adopt {
            wait_until(SOON, "the adopted grandchild is gone", || {
                grandchild.is_reaped()
            })
            .await;
        } else {
            assert!(grandchild.is_running(), "the control was not left alone");
            assert!(
                handle
                    .status()
                    .await
                    .expect("status")
                    .tracked
                    .iter()
                    .all(|t| t.id != grandchild.id())
            );
        }
        monitor.shutdown().await;
    }
}
