//! Descendant trees with real processes.
//!
//! A tracked child forks two grandchildren, one of which calls `setsid`
//! (leaving the child's session and process group, so a group-based
//! cleanup would miss it). With the tree followed, both are tracked with
//! the child as their recorded parent; when the child is killed, both are
//! orphans and are terminated: nothing is left alive.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::{Procs, SOON, wait_for_status, wait_until};
use monitor_core::{Containment, Event, Monitor, OrphanTarget, TrackOptions};

/// Forks a plain and a `setsid` grandchild once a line arrives on stdin
/// (so the test decides whether they exist before or after the track),
/// prints their pids, then waits.
const FAMILY: &str = "read go; sleep 300 & echo $!; setsid sleep 300 & echo $!; wait";

async fn grandchildren_die_with_the_tree(fork_after_track: bool) {
    let mut procs = Procs::new();
    // A quick scan, so a fork after the track is found by the next one;
    // scan containment, so that is what this tests (fork events have
    // their own tests in units_fork_events.rs).
    let builder = Monitor::builder()
        .check_interval(Duration::from_millis(100))
        .unit_scan_interval(Duration::from_millis(100))
        .containment(Containment::Scan)
        .grace(Duration::from_secs(5));
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", FAMILY])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = procs.spawn(&mut command);
    let mut go = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let track = TrackOptions::new().tree(true);
    if fork_after_track {
        handle
            .track_with(child.proc.pid, track.clone())
            .await
            .expect("track");
    }
    writeln!(go, "go").expect("start the forks");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut grandchildren = Vec::new();
    for _ in 0..2 {
        let line = lines.next().expect("a pid line").expect("read");
        let pid = line.trim().parse().expect("a pid");
        grandchildren.push(procs.pin_child_of(pid, &child.proc));
    }
    let escaped = grandchildren[1].clone();
    wait_until(SOON, "the second grandchild has called setsid", || {
        common::read_stat(escaped.pid).is_some_and(|stat| stat.pgrp == escaped.pid)
    })
    .await;
    if !fork_after_track {
        handle
            .track_with(child.proc.pid, track)
            .await
            .expect("track");
    }
    let wanted: Vec<_> = grandchildren.iter().map(|g| g.id()).collect();
    let status = wait_for_status(&handle, SOON, "both grandchildren are tracked", |s| {
        wanted
            .iter()
            .all(|id| s.tracked.iter().any(|t| t.id == *id))
    })
    .await;
    for id in &wanted {
        let entry = status
            .tracked
            .iter()
            .find(|t| t.id == *id)
            .expect("tracked");
        assert_eq!(
            entry.parent,
            child.proc.id(),
            "recorded with its real parent"
        );
        assert_eq!(entry.descendant_of, Some(child.proc.id()));
    }
    procs.kill_and_reap(&child.proc);
    for grandchild in &grandchildren {
        wait_until(SOON, "the grandchild dies", || grandchild.is_dead()).await;
        log.wait_for(
            SOON,
            "Exited",
            |e| matches!(e, Event::Exited { id, .. } if *id == grandchild.id()),
        )
        .await;
    }
    drop(go);
    monitor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchildren_forked_before_the_track_die_with_the_tree() {
    grandchildren_die_with_the_tree(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchildren_forked_after_the_track_are_found_and_die_with_the_tree() {
    grandchildren_die_with_the_tree(true).await;
}

/// The group target without the tree: the parent leads its own process
/// group; of its two children, the plain one shares that group and the
/// `setsid` one has left it. The plain one, tracked with the group target,
/// is orphaned when the parent is killed: it is terminated, and the one
/// that left the group survives. This is the escape the tree mode closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_target_misses_a_child_that_called_setsid() {
    let mut procs = Procs::new();
    let builder = Monitor::builder()
        .check_interval(Duration::from_secs(60))
        .grace(Duration::from_secs(5));
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;
    let mut command = std::process::Command::new("sh");
    command
        .args([
            "-c",
            "sleep 300 & echo $!; setsid sleep 300 & echo $!; wait",
        ])
        .process_group(0)
        .stdout(std::process::Stdio::piped());
    let mut parent = procs.spawn(&mut command);
    let stdout = parent.stdout.take().expect("piped");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut kids = Vec::new();
    for _ in 0..2 {
        let line = lines.next().expect("a pid line").expect("read");
        kids.push(procs.pin_child_of(line.trim().parse().expect("a pid"), &parent.proc));
    }
    let (plain, escaped) = (&kids[0], &kids[1]);
    wait_until(SOON, "the second child has called setsid", || {
        common::read_stat(escaped.pid).is_some_and(|stat| stat.pgrp == escaped.pid)
    })
    .await;
    handle
        .track_with(plain.pid, TrackOptions::new().target(OrphanTarget::Group))
        .await
        .expect("track");

    procs.kill_and_reap(&parent.proc);
    wait_until(SOON, "the plain child dies", || plain.is_dead()).await;
    log.wait_for(
        SOON,
        "Exited",
        |e| matches!(e, Event::Exited { id, .. } if *id == plain.id()),
    )
    .await;
    assert!(
        escaped.is_running(),
        "the setsid child left the group and escaped"
    );
    let status = handle.status().await.expect("status");
    assert!(!status.tracked.iter().any(|t| t.id == escaped.id()));
    monitor.shutdown().await;
}

/// With a 60 s scan, a child forked after the track is found when another
/// member of the tree exits (the monitor looks at the rest of the tree
/// then), and is cleaned up when its own parent dies. Under scan
/// containment, which this is about, with unit scans too rare to be what
/// finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_in_the_tree_finds_children_forked_since() {
    let mut procs = Procs::new();
    let builder = Monitor::builder()
        .check_interval(Duration::from_secs(60))
        .unit_scan_interval(Duration::from_secs(3600))
        .containment(Containment::Scan)
        .grace(Duration::from_secs(5));
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;
    // The root starts two members: a shell that forks a sleep when told
    // to, and a plain sleep whose death is the trigger.
    // A background job's stdin is /dev/null, so the forker reads the
    // root's stdin through fd 3.
    let script = "exec 3<&0; sh -c 'read go <&3; sleep 300 & echo $!; wait' & echo $!; sleep 300 & echo $!; wait";
    // The scan at start runs on the blocking pool; let it finish first, so
    // a later scan would show in the counter.
    let first = wait_for_status(&handle, SOON, "the first scan completes", |s| {
        s.counters.scans >= 1
    })
    .await;
    let mut root = procs.spawn_shell(script, 2);
    let (forker, trigger) = (root.kids[0].clone(), root.kids[1].clone());
    handle
        .track_with(root.proc.pid, TrackOptions::new().tree(true))
        .await
        .expect("track");
    let status = handle.status().await.expect("status");
    assert_eq!(status.tracked_count, 3, "the root and its two children");

    // One line on the root's stdin makes the forker fork.
    writeln!(root.stdin.as_mut().expect("piped"), "go").expect("tell it to fork");
    let mut forked = None;
    wait_until(SOON, "the forker forks", || {
        forked = common::children_of(forker.pid).first().copied();
        forked.is_some()
    })
    .await;
    let late = procs.pin_child_of(forked.expect("waited for"), &forker);
    trigger.kill();
    let status = wait_for_status(&handle, SOON, "the late child is tracked", |s| {
        s.tracked.iter().any(|t| t.id == late.id())
    })
    .await;
    assert_eq!(
        status.counters.scans, first.counters.scans,
        "found without a scan"
    );

    forker.kill();
    wait_until(SOON, "the late child dies with its parent", || {
        late.is_dead()
    })
    .await;
    log.wait_for(
        SOON,
        "Exited",
        |e| matches!(e, Event::Exited { id, .. } if *id == late.id()),
    )
    .await;
    monitor.shutdown().await;
}
