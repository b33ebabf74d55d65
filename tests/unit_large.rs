//! A unit of 1,000 members, with real processes. Its own test binary: the
//! monitor is a subreaper here (process-wide), so the members, reparented
//! to this process when their parent dies, are adopted and reaped by the
//! monitor, and "no zombie left" can be checked in this process's own
//! children lists.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Procs, SOON, wait_for_status, wait_until};
use monitor_core::Monitor;

const MEMBERS: usize = 1000;

/// The root forks 1,000 `sleep`s that ignore SIGTERM (so SIGKILL must
/// follow), says so, and waits. `terminate` ends all 1,001 processes, and
/// none is left running or as a zombie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_member_unit_ends_with_nothing_left() {
    let mut procs = Procs::new();
    let (monitor, handle, _log) = common::spawn_monitor(
        Monitor::builder()
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
    let root_proc = procs.pin(root.id().pid);
    let stdout = root.take_stdout().expect("piped");
    tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "ready");
    })
    .await
    .expect("the root forked its members");
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
    assert!(
        common::children_of(common::my_pid()).is_empty(),
        "a zombie or a leftover is still a child of this process"
    );
    monitor.shutdown().await;
}
