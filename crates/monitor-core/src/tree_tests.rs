//! Paused-time tests of descendant trees and orphan targets over the fake
//! process table: who is found when, and who is signalled at which instant.

use crate::fake::FakeProc;
use crate::harness::{CHILD, Harness, PARENT, config, is_orphaned, secs, stubborn};
use crate::{ErrorKind, Event, OrphanTarget, Signal, TrackOptions};

const GRANDCHILD: i32 = 300;
const GREAT_GRANDCHILD: i32 = 301;

/// Parent 200 → child 201 → grandchild 300 → great-grandchild 301, all
/// ignoring SIGTERM; the child tracked with `options`.
async fn family(options: TrackOptions) -> Harness {
    let h = Harness::start(config()).await;
    h.os.spawn(PARENT, 1);
    for (pid, ppid) in [
        (CHILD, PARENT),
        (GRANDCHILD, CHILD),
        (GREAT_GRANDCHILD, GRANDCHILD),
    ] {
        h.os.spawn_with(
            pid,
            FakeProc {
                start_time: pid as u64,
                ppid,
                ..stubborn()
            },
        );
    }
    h.handle.track_with(CHILD, options).await.expect("track");
    h
}

fn tracked_descendants(status: &crate::Status) -> Vec<(i32, i32, Option<i32>)> {
    status
        .tracked
        .iter()
        .filter(|t| t.descendant_of.is_some())
        .map(|t| (t.id.pid, t.parent.pid, t.descendant_of.map(|r| r.pid)))
        .collect()
}

/// Tracking with `tree` finds the whole tree at once, each descendant with
/// its real parent; a child forked later is found at the next scan.
#[tokio::test(start_paused = true)]
async fn a_tree_is_found_on_track_and_its_new_children_at_the_next_scan() {
    let mut h = family(TrackOptions::new().tree(true)).await;
    let status = h.handle.status().await.expect("status");
    assert_eq!(
        tracked_descendants(&status),
        vec![
            (GRANDCHILD, CHILD, Some(CHILD)),
            (GREAT_GRANDCHILD, GRANDCHILD, Some(CHILD))
        ]
    );
    assert!(status.tracked.iter().all(|t| t.tree));

    h.sleep_until(secs(30.0)).await;
    let late = h.os.spawn(302, GREAT_GRANDCHILD);
    let (at, _) = h
        .next(|e| matches!(e, Event::Tracked { id, .. } if *id == late))
        .await;
    assert_eq!(at, secs(60.0), "found by the first scan after the fork");
    let status = h.handle.status().await.expect("status");
    assert!(tracked_descendants(&status).contains(&(302, GREAT_GRANDCHILD, Some(CHILD))));
}

/// Target `tree`: when the child is orphaned, it and every descendant get
/// SIGTERM at the same instant, and SIGKILL one grace period later.
#[tokio::test(start_paused = true)]
async fn an_orphaned_tree_is_terminated_together() {
    let mut h = family(TrackOptions::new().tree(true).target(OrphanTarget::Tree)).await;
    h.sleep_until(secs(90.0)).await;
    h.os.kill_parent(PARENT);
    let (at, _) = h.next(is_orphaned).await;
    assert_eq!(at, secs(120.0));
    h.sleep_until(secs(130.0)).await;
    let mut sent = h.sent();
    sent.sort_by_key(|(at, pid, signal)| (*at, *pid, signal.as_raw()));
    let expect =
        |at: f64, signal| [CHILD, GRANDCHILD, GREAT_GRANDCHILD].map(|pid| (secs(at), pid, signal));
    let mut wanted = expect(120.0, Signal::TERM).to_vec();
    wanted.extend(expect(125.0, Signal::KILL));
    assert_eq!(sent, wanted);
    assert!(
        ![CHILD, GRANDCHILD, GREAT_GRANDCHILD]
            .iter()
            .any(|pid| h.os.is_alive(*pid))
    );
}

/// Target `tree` without following the tree: the descendants are found
/// when the orphan action starts, so they are caught all the same.
#[tokio::test(start_paused = true)]
async fn the_tree_target_finds_descendants_when_it_acts() {
    let mut h = family(TrackOptions::new().target(OrphanTarget::Tree)).await;
    let status = h.handle.status().await.expect("status");
    assert_eq!(
        status.tracked_count, 1,
        "nothing followed before the action"
    );
    h.os.kill_parent(PARENT);
    h.next(is_orphaned).await;
    h.sleep_until(secs(70.0)).await;
    let killed: Vec<i32> = h
        .sent()
        .into_iter()
        .filter(|(_, _, signal)| *signal == Signal::KILL)
        .map(|(_, pid, _)| pid)
        .collect();
    assert_eq!(killed.len(), 3, "{killed:?}");
    assert!(
        ![GRANDCHILD, GREAT_GRANDCHILD]
            .iter()
            .any(|pid| h.os.is_alive(*pid))
    );
}

/// Target `process` with the tree followed: each generation is orphaned by
/// its own parent's death. Without pidfds (the fake has none) that takes
/// one scan per generation; the real monitor's parent watch makes each
/// step immediate.
#[tokio::test(start_paused = true)]
async fn followed_descendants_are_orphaned_by_their_own_parents_death() {
    let mut h = family(
        TrackOptions::new()
            .tree(true)
            .action(crate::OrphanAction::Kill),
    )
    .await;
    h.os.kill_parent(PARENT);
    let mut orphaned = Vec::new();
    for _ in 0..3 {
        let (at, event) = h.next(is_orphaned).await;
        let Event::Orphaned { id, .. } = event else {
            unreachable!("filtered")
        };
        orphaned.push((at, id.pid));
    }
    assert_eq!(
        orphaned,
        vec![
            (secs(60.0), CHILD),
            (secs(120.0), GRANDCHILD),
            (secs(180.0), GREAT_GRANDCHILD)
        ]
    );
}

/// Target `group`: the orphan's process group is signalled (each member
/// tracked and pinned first), a process in another group is not, and the
/// monitor's own group is refused with an error event.
#[tokio::test(start_paused = true)]
async fn the_group_target_reaches_its_group_and_never_the_monitors() {
    let mut h = Harness::start(config()).await;
    h.os.spawn(PARENT, 1);
    let leader = |ppid| FakeProc {
        start_time: 1,
        ppid,
        ..FakeProc::default()
    };
    h.os.spawn_with(CHILD, leader(PARENT));
    h.os.spawn_with(
        310,
        FakeProc {
            pgrp: CHILD,
            ..leader(1)
        },
    );
    h.os.spawn_with(
        311,
        FakeProc {
            pgrp: CHILD,
            ..leader(310)
        },
    );
    h.os.spawn_with(
        312,
        FakeProc {
            pgrp: 999,
            ..leader(CHILD)
        },
    );
    // In the monitor's own group (the fake monitor is pid 100).
    h.os.spawn_with(
        400,
        FakeProc {
            pgrp: crate::fake::MY_PID,
            ..leader(PARENT)
        },
    );
    h.os.spawn_with(
        401,
        FakeProc {
            pgrp: crate::fake::MY_PID,
            ..leader(1)
        },
    );
    let group = TrackOptions::new().target(OrphanTarget::Group);
    h.handle
        .track_with(CHILD, group.clone())
        .await
        .expect("track");
    h.handle.track_with(400, group).await.expect("track");
    h.os.kill_parent(PARENT);
    let (_, refusal) = h
        .next(|e| {
            matches!(
                e,
                Event::Error {
                    kind: ErrorKind::Signal,
                    ..
                }
            )
        })
        .await;
    let Event::Error { id, .. } = refusal else {
        unreachable!("filtered")
    };
    assert_eq!(id.map(|id| id.pid), Some(400));
    h.sleep_until(secs(61.0)).await;
    let mut signalled: Vec<i32> = h.sent().into_iter().map(|(_, pid, _)| pid).collect();
    signalled.sort_unstable();
    assert_eq!(signalled, vec![CHILD, 310, 311, 400]);
    assert!(h.os.is_alive(312) && h.os.is_alive(401));
}
