//! Subreaper adoption, in its own test binary because `PR_SET_CHILD_SUBREAPER`
//! is process-wide and one-way.
//!
//! A tracked grandchild whose parent dies is reparented to this process; the
//! monitor notices the adoption, runs the orphan action, reaps the process
//! through its pidfd, and reports its exit status. No zombie is left. The
//! scan interval is 60 s and no scan runs after the first: the parent's
//! pidfd is what wakes the monitor.

mod common;

use std::time::Duration;

use common::{Procs, SOON};
use monitor_core::{Event, ExitStatus, Monitor, Signal};

/// Subreaper on; the grandchild's parent is killed; the grandchild is
/// adopted, terminated, reaped through its pidfd, and its status reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_orphan_is_terminated_reaped_and_reported() {
    let mut procs = Procs::new();
    let builder = Monitor::builder()
        .subreaper(true)
        .check_interval(Duration::from_secs(60))
        .grace(Duration::from_secs(2));
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;
    assert!(handle.status().await.expect("status").subreaper);
    // The scan at start runs on the blocking pool; let it finish, so any
    // later scan would show in the counter.
    let first = common::wait_for_status(&handle, SOON, "the first scan completes", |s| {
        s.counters.scans >= 1
    })
    .await;

    let shell = procs.spawn_shell("sleep 300 & echo $!; wait", 1);
    let grandchild = shell.kid().clone();
    let tracked = handle.track(grandchild.pid).await.expect("track");
    assert!(!tracked.owned, "not ours at track time");
    assert_eq!(tracked.parent.pid, shell.proc.pid);

    procs.kill_and_reap(&shell.proc);

    let id = tracked.id;
    log.wait_for(SOON, "Adopted", |e| *e == Event::Adopted { id })
        .await;
    let term = Event::Signalled {
        id,
        signal: Signal::TERM,
    };
    log.wait_for(SOON, "Signalled", |e| *e == term).await;
    let killed_by_term = ExitStatus::Signaled {
        signal: Signal::TERM.as_raw(),
        core_dumped: false,
    };
    let reaped = Event::Reaped {
        pid: id.pid,
        status: killed_by_term,
    };
    log.wait_for(SOON, "Reaped", |e| *e == reaped).await;
    let exited = Event::Exited {
        id,
        status: Some(killed_by_term),
    };
    log.wait_for(SOON, "Exited", |e| *e == exited).await;

    assert!(
        grandchild.is_reaped(),
        "the adopted orphan is still a zombie"
    );
    let status = handle.status().await.expect("status");
    assert_eq!(
        status.counters.scans, first.counters.scans,
        "no scan ran after the one at start"
    );
    assert_eq!(status.tracked_count, 0);
    assert_eq!(status.counters.reaped, 1);
    assert!(
        status.unowned_zombies.is_empty(),
        "{:?}",
        status.unowned_zombies
    );
    monitor.shutdown().await;
}
