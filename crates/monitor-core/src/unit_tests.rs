//! Paused-time tests of units and orphan targets over the fake process
//! table: who is found when, who may be a member, and who is signalled at
//! which instant.

use crate::fake::FakeProc;
use crate::harness::{CHILD, Harness, PARENT, config, is_orphaned, secs, stubborn};
use std::time::Duration;

use crate::{Containment, ErrorKind, Event, OrphanTarget, Signal, TrackOptions};

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

/// Tracking (units are the default) finds the whole tree at once, each
/// descendant with its real parent; a child forked later is found at the
/// next unit scan, one `unit_scan_interval` (1 s) later at most, not at the
/// 60 s check.
#[tokio::test(start_paused = true)]
async fn a_unit_is_found_on_track_and_its_new_members_within_the_unit_cadence() {
    let mut h = family(TrackOptions::new()).await;
    let status = h.handle.status().await.expect("status");
    assert_eq!(
        tracked_descendants(&status),
        vec![
            (GRANDCHILD, CHILD, Some(CHILD)),
            (GREAT_GRANDCHILD, GRANDCHILD, Some(CHILD))
        ]
    );
    assert!(status.tracked.iter().all(|t| t.tree));
    assert!(
        status
            .tracked
            .iter()
            .all(|t| t.containment == Containment::Scan)
    );
    assert_eq!(status.units.len(), 1);
    assert_eq!(status.units[0].members, 3, "{:?}", status.units);

    h.sleep_until(secs(30.5)).await;
    let late = h.os.spawn(302, GREAT_GRANDCHILD);
    let (at, _) = h
        .next(|e| matches!(e, Event::Tracked { id, .. } if *id == late))
        .await;
    assert_eq!(
        at,
        secs(31.0),
        "found by the first unit scan after the fork"
    );
    let status = h.handle.status().await.expect("status");
    assert!(tracked_descendants(&status).contains(&(302, GREAT_GRANDCHILD, Some(CHILD))));
    assert_eq!(status.units[0].members, 4);
}

/// Target `tree`: when the child is orphaned, it and every descendant get
/// SIGTERM at the same instant, and SIGKILL one grace period later.
#[tokio::test(start_paused = true)]
async fn an_orphaned_unit_is_terminated_together() {
    let mut h = family(TrackOptions::new()).await;
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

/// Target `tree` without following the tree (a unit of one): the
/// descendants are found when the orphan action starts, so they are caught
/// all the same.
#[tokio::test(start_paused = true)]
async fn the_tree_target_finds_descendants_when_it_acts() {
    let mut h = family(TrackOptions::new().tree(false)).await;
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

/// Target `process`: only the root is orphaned by its parent's death; the
/// rest of its unit is orphaned with the root the moment the root is gone,
/// all at once (not one generation per scan).
#[tokio::test(start_paused = true)]
async fn a_units_members_are_orphaned_with_its_root() {
    let mut h = family(
        TrackOptions::new()
            .target(OrphanTarget::Process)
            .action(crate::OrphanAction::Kill),
    )
    .await;
    h.os.kill_parent(PARENT);
    let mut orphaned = Vec::new();
    for _ in 0..3 {
        let (at, event) = h.next(is_orphaned).await;
        let Event::Orphaned { id, parent, .. } = event else {
            unreachable!("filtered")
        };
        orphaned.push((at, id.pid, parent.pid));
    }
    orphaned.sort_by_key(|(_, pid, _)| *pid);
    assert_eq!(orphaned[0], (secs(60.0), CHILD, PARENT));
    for (at, _, parent) in &orphaned[1..] {
        assert_eq!(*parent, CHILD, "orphaned with the unit's root");
        assert!(*at < secs(60.1), "orphaned at {at:?}, not a scan later");
    }
    h.sleep_until(secs(61.0)).await;
    assert!(
        ![CHILD, GRANDCHILD, GREAT_GRANDCHILD]
            .iter()
            .any(|pid| h.os.is_alive(*pid))
    );
}

/// A member whose own parent dies is not an orphan: it stays in its unit
/// (a double fork's grandchild belongs to the unit it was started in).
#[tokio::test(start_paused = true)]
async fn a_member_is_never_orphaned_by_its_own_parent() {
    let mut h = family(TrackOptions::new().action(crate::OrphanAction::Kill)).await;
    h.os.kill_parent(GRANDCHILD);
    h.sleep_until(secs(130.0)).await;
    assert!(h.sent().is_empty(), "{:?}", h.sent());
    let status = h.handle.status().await.expect("status");
    assert!(tracked_descendants(&status).contains(&(GREAT_GRANDCHILD, GRANDCHILD, Some(CHILD))));
    while let Ok(event) = h.events.try_recv() {
        assert!(!is_orphaned(&event), "{event}");
    }
    // The unit still ends together (the family ignores SIGTERM: SIGKILL
    // follows one grace period later).
    h.handle.terminate(CHILD).await.expect("terminate the unit");
    h.sleep_until(secs(136.0)).await;
    assert!(!h.os.is_alive(CHILD) && !h.os.is_alive(GREAT_GRANDCHILD));
}

/// Untracking a unit's root untracks every member; a later death of the
/// root's parent signals none of them. A member alone cannot be untracked.
#[tokio::test(start_paused = true)]
async fn untracking_the_root_ends_the_whole_unit() {
    let h = family(TrackOptions::new()).await;
    let refused = h.handle.untrack(GRANDCHILD).await.expect_err("a member");
    assert!(
        matches!(refused, crate::Error::UnitMember { pid: GRANDCHILD, root } if root.pid == CHILD),
        "{refused}"
    );
    h.handle.untrack(CHILD).await.expect("untrack the root");
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.tracked_count, 0, "{:?}", status.tracked);
    assert!(status.units.is_empty());
    h.os.kill_parent(PARENT);
    h.os.kill_parent(CHILD);
    h.sleep_until(secs(200.0)).await;
    assert!(h.sent().is_empty(), "{:?}", h.sent());
    assert_eq!(h.handle.status().await.expect("status").tracked_count, 0);
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
    let group = TrackOptions::new().tree(false).target(OrphanTarget::Group);
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

/// The uid of an unprivileged owner, and a process of root's.
const USER: u32 = 1000;
const ROOT: u32 = 0;

fn owned_by(uid: u32, ppid: i32, pgrp: i32) -> FakeProc {
    FakeProc {
        ppid,
        pgrp,
        uid,
        ..FakeProc::default()
    }
}

/// The authorization rule over the tree: a unit owned by an unprivileged
/// user never takes a process of another uid as a member (it is reported),
/// and its orphan action signals only the user's own processes.
#[tokio::test(start_paused = true)]
async fn another_users_descendants_are_never_members_nor_signalled() {
    let mut h = Harness::start(config()).await;
    h.os.spawn_with(PARENT, owned_by(USER, 1, 0));
    let root = h.os.spawn_with(CHILD, owned_by(USER, PARENT, 0));
    h.os.spawn_with(GRANDCHILD, owned_by(USER, CHILD, 0));
    let foreign = h.os.spawn_with(302, owned_by(ROOT, CHILD, 0));
    h.handle
        .track_with(CHILD, TrackOptions::new().owner(USER))
        .await
        .expect("the user's own process");
    let (_, refused) = h.next(|e| matches!(e, Event::Refused { .. })).await;
    assert_eq!(
        refused,
        Event::Refused {
            id: foreign,
            root,
            uid: ROOT,
            owner: USER
        }
    );
    let status = h.handle.status().await.expect("status");
    assert_eq!(
        tracked_descendants(&status),
        vec![(GRANDCHILD, CHILD, Some(CHILD))]
    );
    assert_eq!(status.counters.refused, 1);
    h.os.kill_parent(PARENT);
    h.sleep_until(secs(70.0)).await;
    let mut signalled: Vec<i32> = h.sent().into_iter().map(|(_, pid, _)| pid).collect();
    signalled.sort_unstable();
    signalled.dedup();
    assert_eq!(signalled, vec![CHILD, GRANDCHILD]);
    assert!(h.os.is_alive(302), "root's process was harmed");
}

/// The same rule over a process group, and again right before each signal:
/// a group member of another uid is refused (reported, never tracked), and
/// a member that became another uid after it was found is not signalled.
#[tokio::test(start_paused = true)]
async fn a_group_target_and_a_changed_uid_never_reach_another_user() {
    let mut h = Harness::start(config()).await;
    h.os.spawn_with(PARENT, owned_by(USER, 1, 0));
    h.os.spawn_with(CHILD, owned_by(USER, PARENT, 0));
    h.os.spawn_with(310, owned_by(ROOT, 1, CHILD));
    h.os.spawn_with(311, owned_by(USER, 1, CHILD));
    h.os.spawn_with(GRANDCHILD, owned_by(USER, CHILD, 0));
    h.handle
        .track_with(
            CHILD,
            TrackOptions::new().owner(USER).target(OrphanTarget::Group),
        )
        .await
        .expect("track");
    assert_eq!(
        tracked_descendants(&h.handle.status().await.expect("status")),
        vec![(GRANDCHILD, CHILD, Some(CHILD))]
    );
    // Found as the user's, then (a setuid helper, say) root's.
    h.os.set_uid(GRANDCHILD, ROOT);
    h.os.kill_parent(PARENT);
    let mut refused = Vec::new();
    while refused.len() < 2 {
        let (_, event) = h.next(|e| matches!(e, Event::Refused { .. })).await;
        if let Event::Refused { id, .. } = event {
            refused.push(id.pid);
        }
    }
    refused.sort_unstable();
    assert_eq!(refused, vec![GRANDCHILD, 310]);
    h.sleep_until(secs(70.0)).await;
    let mut signalled: Vec<i32> = h.sent().into_iter().map(|(_, pid, _)| pid).collect();
    signalled.sort_unstable();
    signalled.dedup();
    assert_eq!(signalled, vec![CHILD, 311]);
    assert!(h.os.is_alive(310) && h.os.is_alive(GRANDCHILD));
    let status = h.handle.status().await.expect("status");
    assert!(
        status
            .tracked
            .iter()
            .all(|t| ![310, GRANDCHILD].contains(&t.id.pid)),
        "another user's process stayed tracked: {:?}",
        status.tracked
    );
}

/// A root owner's unit takes every process, whatever its uid (root may
/// signal anything), and an unprivileged owner cannot even track another
/// user's process as a root.
#[tokio::test(start_paused = true)]
async fn root_owns_everything_and_a_user_only_their_own() {
    let h = Harness::start(config()).await;
    h.os.spawn_with(PARENT, owned_by(USER, 1, 0));
    h.os.spawn_with(CHILD, owned_by(USER, PARENT, 0));
    h.os.spawn_with(GRANDCHILD, owned_by(ROOT, CHILD, 0));
    let refused = h
        .handle
        .track_with(GRANDCHILD, TrackOptions::new().owner(USER))
        .await
        .expect_err("root's process for a user");
    assert!(
        matches!(
            refused,
            crate::Error::NotOwner {
                pid: GRANDCHILD,
                uid: ROOT,
                owner: USER
            }
        ),
        "{refused}"
    );
    h.handle
        .track(CHILD)
        .await
        .expect("root tracks a user's process");
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.units[0].owner, ROOT);
    assert_eq!(
        tracked_descendants(&status),
        vec![(GRANDCHILD, CHILD, Some(CHILD))]
    );
}

/// A unit of 1,000 stubborn members is terminated in one grace period:
/// every member gets SIGTERM in the same instant and SIGKILL exactly one
/// grace period later, not one member after another.
#[tokio::test(start_paused = true)]
async fn a_thousand_member_unit_is_terminated_in_one_grace_period() {
    let mut h = Harness::start(config()).await;
    h.os.spawn(PARENT, 1);
    h.os.spawn_with(
        CHILD,
        FakeProc {
            start_time: 1,
            ppid: PARENT,
            ..stubborn()
        },
    );
    let members: Vec<i32> = (1000..2000).collect();
    for &pid in &members {
        h.os.spawn_with(
            pid,
            FakeProc {
                start_time: 1,
                ppid: CHILD,
                ..stubborn()
            },
        );
    }
    h.handle.track(CHILD).await.expect("track");
    assert_eq!(
        h.handle.status().await.expect("status").units[0].members,
        1001
    );
    h.sleep_until(secs(30.0)).await;
    h.os.kill_parent(PARENT);
    h.next(is_orphaned).await;
    h.sleep_until(secs(70.0)).await;
    let sent = h.sent();
    let at = |signal| {
        let mut times: Vec<Duration> = sent
            .iter()
            .filter(|(_, _, s)| *s == signal)
            .map(|(at, _, _)| *at)
            .collect();
        times.dedup();
        (sent.iter().filter(|(_, _, s)| *s == signal).count(), times)
    };
    assert_eq!(at(Signal::TERM), (1001, vec![secs(60.0)]));
    assert_eq!(at(Signal::KILL), (1001, vec![secs(65.0)]));
    assert!(!members.iter().any(|pid| h.os.is_alive(*pid)));
}

/// A child the monitor owned and released at an untrack (it still reaps
/// it for its waiter) and then found again as a member, here through the
/// group target of another unit's stop: its waiter keeps its status. The
/// member's reap used to take the status, and the waiter got nothing.
/// (Found by the model test.)
#[tokio::test(start_paused = true)]
async fn a_released_child_found_again_as_a_member_keeps_its_waiter() {
    const OWNED: i32 = 500;
    const KID: i32 = 501;
    let h = Harness::start(config()).await;
    let me = crate::fake::MY_PID;
    let id = h.os.spawn_with(
        OWNED,
        FakeProc {
            start_time: 1,
            ppid: me,
            pgrp: OWNED,
            ..FakeProc::default()
        },
    );
    h.os.spawn_with(
        KID,
        FakeProc {
            start_time: 1,
            ppid: OWNED,
            pgrp: OWNED,
            ..FakeProc::default()
        },
    );
    let child = crate::ChildProcess::Fake(crate::fake::FakeChild::new(&h.os, id));
    let mut owned = h
        .handle
        .track_child_with(child, TrackOptions::new().tree(false))
        .await
        .expect("hand the child over");
    h.handle.untrack(OWNED).await.expect("untrack it");
    h.handle
        .track_with(KID, TrackOptions::new().tree(true))
        .await
        .expect("track its child");
    h.handle
        .stop(KID, false, OrphanTarget::Group)
        .await
        .expect("stop the group");
    let status = tokio::time::timeout(secs(30.0), owned.wait())
        .await
        .expect("the wait resolves")
        .expect("with the status");
    assert_eq!(status, h.os.exit_status(OWNED).expect("it ended"));
    assert_eq!(status.signal(), Some(Signal::TERM.as_raw()));
}
