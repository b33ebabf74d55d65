//! `ReapPolicy::AllChildren`, in its own test binary because it reaps every
//! child of the process (its tests take turns for the same reason).
//!
//! It shows both sides of the policy: every exited child is reaped (none is
//! left a zombie), and a `std::process::Child` spawned next to it loses its
//! exit status. The second half is the negative control for the no-theft
//! test in `reaping.rs`, which runs with the default policy: it proves that
//! check can fail.

mod common;

use std::time::Duration;

use common::{Procs, SOON, exit_on_eof};
use monitor_core::{Event, Monitor, ReapPolicy};

/// Two monitors with this policy in one process would reap each other's
/// children, so the tests in this binary take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Twenty children whose `Child` values nobody waits for are all reaped,
/// and a child someone else waits for gets `ECHILD`: the policy steals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_child_is_reaped_and_other_waiters_lose_their_status() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut procs = Procs::new();
    let builder = Monitor::builder()
        .reap_policy(ReapPolicy::AllChildren)
        .check_interval(Duration::from_secs(60));
    let (monitor, _handle, mut log) = common::spawn_monitor(builder).await;

    // Each child exits when its stdin closes, so it is pinned before the
    // monitor can reap it. The guard's `Child` values are never waited.
    let mut quick = Vec::new();
    let mut cues = Vec::new();
    for _ in 0..20 {
        let spawned = procs.spawn(&mut exit_on_eof(0));
        quick.push(spawned.proc);
        cues.push(spawned.stdin);
    }
    drop(cues);
    for proc in &quick {
        log.wait_for(
            SOON,
            "Reaped",
            |e| matches!(e, Event::Reaped { pid, status } if *pid == proc.pid && status.success()),
        )
        .await;
        assert!(proc.is_reaped(), "{} is still a zombie", proc.pid);
    }

    // The other side: a child this code waits for itself. It too exits
    // only when its stdin closes, so it is pinned before it can be reaped.
    let spawned = procs.spawn(&mut exit_on_eof(4));
    drop(spawned.stdin);
    let victim = spawned.proc;
    log.wait_for(
        SOON,
        "Reaped",
        |e| matches!(e, Event::Reaped { pid, .. } if *pid == victim.pid),
    )
    .await;
    let stolen = procs
        .child_mut(&victim)
        .wait()
        .expect_err("its status was taken by the monitor");
    assert_eq!(
        stolen.raw_os_error(),
        Some(nix::errno::Errno::ECHILD as i32)
    );
    monitor.shutdown().await;
}

/// Children spawned through the monitor are owned before any sweep runs, so
/// even this policy hands each one its own exit status: 50 children that
/// exit at once with distinct codes each report theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_children_keep_their_status_under_this_policy() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let builder = Monitor::builder()
        .reap_policy(ReapPolicy::AllChildren)
        .check_interval(Duration::from_secs(60));
    let (monitor, handle, _log) = common::spawn_monitor(builder).await;
    let mut children = Vec::new();
    for code in 0..50 {
        let mut command = std::process::Command::new("sh");
        command.args(["-c", &format!("exit {code}")]);
        children.push((code, handle.spawn(command).await.expect("sh starts")));
    }
    for (code, mut child) in children {
        let status = tokio::time::timeout(SOON, child.wait())
            .await
            .expect("reaped in time")
            .expect("monitor running");
        assert_eq!(status, monitor_core::ExitStatus::Exited(code));
    }
    monitor.shutdown().await;
}
