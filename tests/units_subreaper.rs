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

/// Under `scan` containment (the cgroup path has its own test in
/// `units_cgroup.rs`): the root forks 1,000 `sleep`s that ignore SIGTERM (so SIGKILL must
/// follow), says so, and waits. `terminate` ends all 1,001 processes, and
/// none is left running or as a zombie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_member_unit_ends_with_nothing_left() {
    let mut procs = Procs::new();
    let (monitor, handle, _log) = common::spawn_monitor(
        Monitor::builder()
            .containment(Containment::Scan)
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
    let ready = common::lines_of(root.stdout.take().expect("piped"), 1).await;
    assert_eq!(ready, ["ready"], "the root forked its members");
    let status = wait_for_status(&handle, SOON, "1,000 members are found", |s| {
        s.units.first().is_some_and(|u| u.members == MEMBERS + 1)
    })
    .await;
    let members: Vec<common::Proc> = status
        .tracked
        .iter()
        .filter(|t| t.descendant_of.is_some())
        .map(|t| procs.pin(t.id.pid))
        .collect();
    assert_eq!(members.len(), MEMBERS);

    handle.terminate(root_proc.pid).await.expect("terminate");
    wait_until(SOON, "every member is gone", || {
        root_proc.is_reaped() && members.iter().all(common::Proc::is_reaped)
    })
    .await;
    let status = handle.status().await.expect("status");
    assert!(status.units.is_empty() && status.tracked_count == 0);
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
