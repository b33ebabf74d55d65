//! Ending a leaf's processes against the real kernel: fork storms ended
//! by freeze and kill (both methods), and the uid rule. Without root and
//! a cgroup v2 hierarchy these skip; under `CI=true` they fail instead.

// Timings are printed for the report; they are never asserted.
#![allow(clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::tests::{SOON, sh};
use super::*;
use crate::requires::{self, ChildGuard, Pinned, wait_until};

/// Fifty processes that left the tree at once (a double fork each) fork
/// as fast as they can, and so does the root. Freeze and kill ends them
/// all, with either method, and leaves an empty, removable leaf.
async fn fork_storm_is_ended(method: KillMethod) {
    let Some(subtree) = requires::cgroup() else {
        return;
    };
    if method == KillMethod::CgroupKill && !subtree.features().kill {
        requires::or_skip("cgroup.kill (Linux 5.14)", Err::<(), _>("no cgroup.kill"));
        return;
    }
    let mut leaf = subtree.create_leaf().expect("create a leaf");
    let mut command = sh(
        "i=0; while [ $i -lt 50 ]; do ( while :; do (:); done & ); i=$((i+1)); done; \
         echo ready; while :; do (:); done",
    );
    command.stdout(Stdio::piped());
    leaf.prepare_spawn(&mut command).expect("prepare");
    let mut root = ChildGuard(command.spawn().expect("spawn the storm"));
    // Once the root says so, the fifty forkers exist (each was forked
    // before its subshell exited): 51 long-lived processes at least.
    let mut line = String::new();
    BufReader::new(root.0.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("the storm is up");
    assert_eq!(line, "ready\n");
    let before = leaf.procs().expect("procs").len();
    let started = Instant::now();
    let report = leaf
        .kill_all_with(method, 0, SOON)
        .await
        .expect("kill the leaf");
    let took = started.elapsed();
    eprintln!("{method:?}: {before} processes listed before the kill; {report:?} in {took:?}");
    assert!(report.empty, "{report:?}");
    assert_eq!(report.method, method);
    assert!(report.refused.is_empty());
    assert!(report.frozen || !subtree.features().freeze, "{report:?}");
    if method == KillMethod::Pidfds {
        assert!(report.signalled >= 51, "{report:?}");
    }
    assert!(leaf.procs().expect("procs").is_empty());
    assert!(!leaf.events().expect("events").frozen, "thawed afterwards");
    root.0.wait().expect("reap the root");
    let path = leaf.path().to_owned();
    leaf.remove().expect("remove the emptied leaf");
    assert!(!path.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_storm_is_ended_by_freeze_and_cgroup_kill() {
    fork_storm_is_ended(KillMethod::CgroupKill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_storm_is_ended_by_freeze_and_pidfd_kills() {
    fork_storm_is_ended(KillMethod::Pidfds).await;
}

/// A unit owned by uid 65534 holds one of its processes and one of
/// root's: the kill ends the first, never signals the second, names it,
/// and thaws it. This also moves a running process into a leaf.
#[tokio::test]
async fn a_member_of_another_uid_is_never_signalled() {
    let Some(subtree) = requires::cgroup() else {
        return;
    };
    let leaf = subtree.create_leaf().expect("create a leaf");
    let mut roots = Command::new("sleep");
    roots.arg("30");
    leaf.prepare_spawn(&mut roots).expect("prepare");
    let mut roots = ChildGuard(roots.spawn().expect("root's sleep"));
    let nobodys = ChildGuard(
        Command::new("sleep")
            .arg("30")
            .uid(65534)
            .gid(65534)
            .spawn()
            .expect("nobody's sleep"),
    );
    let nobody_pid = nobodys.0.id() as i32;
    let pinned = Pinned::new(nobody_pid);
    leaf.move_process(pinned.fd.as_fd(), nobody_pid)
        .expect("move nobody's sleep into the leaf");
    assert_eq!(leaf.procs().expect("procs").len(), 2);

    let report = leaf.kill_all(65534, SOON).await.expect("kill");
    assert_eq!(report.method, KillMethod::Pidfds);
    assert_eq!(
        report.refused,
        vec![kill::Refused {
            pid: roots.0.id() as i32,
            uid: 0
        }]
    );
    assert!(!report.empty);
    wait_until(SOON, "nobody's sleep to die", || pinned.exited());
    assert!(
        roots.0.try_wait().expect("try_wait").is_none(),
        "root's sleep runs"
    );
    assert!(
        !leaf.events().expect("events").frozen,
        "and is not left frozen"
    );
}
