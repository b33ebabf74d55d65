//! Paused-time tests of a tracked process that turns out to be another
//! user's right before a signal (a `setuid` helper): it leaves the
//! monitor unsignalled, and leaves nothing behind. Both were found by the
//! model-based test (`model_tests.rs`).

use crate::fake::{FakeChild, FakeProc, MY_PID};
use crate::harness::{CHILD, Harness, PARENT, config, secs};
use crate::{ChildProcess, Event, ExitStatus, OrphanAction, OrphanTarget, TrackOptions};

const USER: u32 = 1000;
const OTHER: u32 = 1001;
const MEMBER: i32 = 300;

/// Fails the test if `future` takes more than two minutes of virtual time
/// (the paused clock would otherwise run on for ever).
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(secs(120.0), future)
        .await
        .expect("within two minutes")
}

fn users(ppid: i32, start_time: u64) -> FakeProc {
    FakeProc {
        start_time,
        ppid,
        uid: USER,
        ..FakeProc::default()
    }
}

/// An owned child that became another user's is refused a signal and
/// leaves its unit, but it is still the monitor's child: the monitor
/// reaps it when it exits and its `wait` gets the status (before the fix
/// the ownership was dropped with the entry: `wait` failed at once with
/// `MonitorGone` while the monitor ran, and the child was never reaped).
#[tokio::test(start_paused = true)]
async fn an_owned_child_refused_a_signal_is_still_reaped_with_its_status() {
    let mut h = Harness::start(config()).await;
    let id = h.os.spawn_with(CHILD, users(MY_PID, 7));
    let mut owned = h
        .handle
        .track_child_with(
            ChildProcess::Fake(FakeChild::new(&h.os, id)),
            TrackOptions::new().owner(USER),
        )
        .await
        .expect("the user's own child");
    let waiting = tokio::spawn(async move { owned.wait().await });
    h.os.set_uid(CHILD, OTHER);
    h.handle.terminate(CHILD).await.expect("tracked until now");
    within(h.next(|e| matches!(e, Event::Refused { id: refused, .. } if *refused == id))).await;
    assert!(h.sent().is_empty(), "{:?}", h.sent());
    assert_eq!(h.handle.status().await.expect("status").tracked_count, 0);
    h.sleep_until(secs(3.0)).await;
    assert!(h.os.is_running(CHILD), "refused, so never signalled");
    assert!(
        !waiting.is_finished(),
        "the wait ended while the child runs"
    );
    h.os.exit_with(CHILD, ExitStatus::Exited(3));
    let (_, reaped) = within(h.next(|e| matches!(e, Event::Reaped { .. }))).await;
    assert_eq!(
        reaped,
        Event::Reaped {
            pid: CHILD,
            status: ExitStatus::Exited(3)
        }
    );
    let status = within(waiting).await.expect("the wait task");
    assert_eq!(
        status.expect("the status reaches its waiter"),
        ExitStatus::Exited(3)
    );
    assert!(!h.os.is_alive(CHILD), "reaped, no zombie left");
}

/// A unit's root that became another user's is refused when its orphan
/// action comes; its unit ends as if it had exited: the user's own
/// members get the action (before the fix they stayed tracked in a unit
/// with no root, and were never acted on).
#[tokio::test(start_paused = true)]
async fn a_refused_root_ends_its_unit_and_its_members_get_the_action() {
    let mut h = Harness::start(config()).await;
    h.os.spawn_with(PARENT, users(1, 1));
    let root = h.os.spawn_with(CHILD, users(PARENT, 2));
    let member = h.os.spawn_with(MEMBER, users(CHILD, 3));
    h.handle
        .track_with(
            CHILD,
            TrackOptions::new()
                .owner(USER)
                .target(OrphanTarget::Process)
                .action(OrphanAction::Kill),
        )
        .await
        .expect("the user's own process");
    h.os.set_uid(CHILD, OTHER);
    h.os.kill_parent(PARENT);
    let (at, orphaned) =
        within(h.next(|e| matches!(e, Event::Orphaned { id, .. } if *id == member))).await;
    assert_eq!(
        orphaned,
        Event::Orphaned {
            id: member,
            parent: root,
            action: OrphanAction::Kill
        }
    );
    assert_eq!(at, secs(60.0), "at the scan that found the root orphaned");
    h.sleep_until(secs(61.0)).await;
    let signalled: Vec<i32> = h.sent().into_iter().map(|(_, pid, _)| pid).collect();
    assert_eq!(signalled, vec![MEMBER], "never the other user's root");
    assert!(h.os.is_running(CHILD), "the other user's root runs on");
    assert_eq!(
        h.os.exit_status(MEMBER),
        Some(ExitStatus::Signaled {
            signal: 9,
            core_dumped: false
        })
    );
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.tracked_count, 0, "{:?}", status.tracked);
    assert!(status.units.is_empty(), "{:?}", status.units);
}

/// A root refused while its unit keeps members (action `notify`) still
/// names that unit: tracking the same process again is refused until the
/// unit is untracked through its pid (before the fix the new unit
/// replaced the old one, and its members stayed tracked with no unit,
/// beyond the reach of any untrack).
#[tokio::test(start_paused = true)]
async fn a_refused_roots_unit_is_not_replaced_while_it_holds_members() {
    let mut h = Harness::start(config()).await;
    h.os.spawn_with(PARENT, users(1, 1));
    h.os.spawn_with(CHILD, users(PARENT, 2));
    h.os.spawn_with(MEMBER, users(CHILD, 3));
    h.handle
        .track_with(
            CHILD,
            TrackOptions::new().owner(USER).action(OrphanAction::Notify),
        )
        .await
        .expect("the user's own process");
    h.os.set_uid(CHILD, OTHER);
    h.handle
        .stop(CHILD, false, OrphanTarget::Process)
        .await
        .expect("tracked until now");
    within(h.next(|e| matches!(e, Event::Refused { .. }))).await;
    let again = TrackOptions::new().owner(OTHER);
    let refused = h
        .handle
        .track_with(CHILD, again.clone())
        .await
        .expect_err("its old unit still holds a member");
    assert!(
        matches!(refused, crate::Error::AlreadyTracked { id } if id.pid == CHILD),
        "{refused}"
    );
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.units.len(), 1);
    assert_eq!(status.units[0].members, 1, "the member, still in its unit");
    h.handle
        .untrack(CHILD)
        .await
        .expect("the unit, by its root's pid");
    assert_eq!(h.handle.status().await.expect("status").tracked_count, 0);
    h.handle
        .track_with(CHILD, again)
        .await
        .expect("a new unit once the old one is over");
    assert!(h.sent().is_empty(), "{:?}", h.sent());
}
