//! Paused-time tests of waiting over the fake process table: `wait_for`,
//! `drain` and `subscribe_unit`, at exact virtual instants.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::timeout;

use crate::fake::{FakeChild, FakeProc, MY_PID};
use crate::harness::{CHILD, Harness, PARENT, secs};
use crate::{ChildProcess, Error, Event, ExitInfo, ExitStatus, ProcessId, Signal};

const OWNED: i32 = 300;
const MEMBER: i32 = 202;

/// An owned child (a child of the fake monitor handed over), optionally
/// ignoring SIGTERM.
async fn owned_child(h: &Harness, ignores_term: bool) -> ProcessId {
    let id = h.os.spawn_with(
        OWNED,
        FakeProc {
            start_time: OWNED as u64,
            ppid: MY_PID,
            ignores_term,
            ..FakeProc::default()
        },
    );
    h.handle
        .track_child(ChildProcess::Fake(FakeChild::new(&h.os, id)))
        .await
        .expect("track_child");
    id
}

/// Parent 200 → tracked child 201 → member 202; both honour SIGTERM.
async fn unit_with_member(h: &Harness) -> (ProcessId, ProcessId) {
    h.os.spawn(PARENT, 1);
    let root = h.os.spawn(CHILD, PARENT);
    let member = h.os.spawn(MEMBER, CHILD);
    h.handle.track(CHILD).await.expect("track");
    (root, member)
}

fn killed() -> ExitStatus {
    ExitStatus::Signaled {
        signal: Signal::KILL.as_raw(),
        core_dumped: false,
    }
}

/// A wait given up under `timeout` changes nothing: the next one gets the
/// exit, at the very instant it happens, with the status the monitor reaped.
#[tokio::test(start_paused = true)]
async fn wait_for_can_be_retried_after_a_timeout_and_gets_the_status() {
    let h = Harness::default().await;
    let id = owned_child(&h, false).await;
    assert!(
        timeout(secs(10.0), h.handle.wait_for(id)).await.is_err(),
        "still running at 10 s"
    );
    let os = h.os.clone();
    let t0 = h.t0;
    tokio::spawn(async move {
        tokio::time::sleep_until(t0 + secs(20.0)).await;
        os.exit_with(OWNED, ExitStatus::Exited(3));
    });
    let end = h.handle.wait_for(id).await.expect("wait_for");
    assert_eq!(h.elapsed(), secs(20.0));
    assert_eq!(
        end,
        ExitInfo {
            id,
            status: Some(ExitStatus::Exited(3))
        }
    );
    // Asked again right after: the monitor remembers the end.
    assert_eq!(h.handle.wait_for(id).await.expect("remembered"), end);
}

/// A process the monitor does not reap ends without a status; one without
/// a pidfd watch (the fake has none) is seen by the next scan.
#[tokio::test(start_paused = true)]
async fn wait_for_a_process_somebody_else_reaps_has_no_status() {
    let h = Harness::default().await;
    let (root, _) = unit_with_member(&h).await;
    let os = h.os.clone();
    let t0 = h.t0;
    tokio::spawn(async move {
        tokio::time::sleep_until(t0 + secs(20.0)).await;
        os.exit(CHILD);
    });
    let end = h.handle.wait_for(root).await.expect("wait_for");
    assert_eq!(
        end,
        ExitInfo {
            id: root,
            status: None
        }
    );
    assert_eq!(h.elapsed(), secs(60.0), "the first check after the exit");
}

/// Errors come at once: a pid never tracked, and a pid that names another
/// process than the identity asked for. Untracking ends a wait with an
/// error that says so.
#[tokio::test(start_paused = true)]
async fn wait_for_errors_say_what_is_wrong() {
    let h = Harness::default().await;
    let (root, _) = unit_with_member(&h).await;
    let never = ProcessId::new(999, 1);
    assert!(matches!(
        h.handle.wait_for(never).await,
        Err(Error::NotTracked { pid: 999 })
    ));
    let stale = ProcessId::new(CHILD, 1);
    assert!(matches!(
        h.handle.wait_for(stale).await,
        Err(Error::Stale { id, now: Some(now) }) if id == stale && now.start_time == CHILD as u64
    ));
    let handle = h.handle.clone();
    let waiting = tokio::spawn(async move { handle.wait_for(root).await });
    // Let the wait reach the actor first.
    h.handle.status().await.expect("status");
    h.handle.untrack(CHILD).await.expect("untrack");
    let result = waiting.await.expect("joined");
    assert!(
        matches!(result, Err(Error::Untracked { id }) if id == root),
        "{result:?}"
    );
    assert_eq!(h.elapsed(), Duration::ZERO);
}

/// A drain terminates every unit, owned or only tracked, and returns when
/// the last is gone: the stubborn owned child gets SIGKILL exactly one grace
/// period (5 s) after SIGTERM. The monitor keeps running after it.
#[tokio::test(start_paused = true)]
async fn drain_ends_every_unit_and_returns_when_the_last_is_gone() {
    let h = Harness::default().await;
    let (root, member) = unit_with_member(&h).await;
    let owned = owned_child(&h, true).await;
    h.sleep_until(secs(10.0)).await;
    let report = h.handle.drain(secs(60.0)).await.expect("drain");
    assert_eq!(
        h.elapsed(),
        secs(15.0),
        "one grace period after the drain began"
    );
    assert!(report.is_complete(), "{report:?}");
    let mut ended: Vec<_> = report
        .ended
        .iter()
        .map(|end| (end.id, end.status))
        .collect();
    ended.sort_by_key(|(id, _)| *id);
    assert_eq!(
        ended,
        vec![(root, None), (member, None), (owned, Some(killed()))]
    );
    let mut sent = h.sent();
    sent.sort_by_key(|(at, pid, signal)| (*at, *pid, signal.as_raw()));
    assert_eq!(
        sent,
        vec![
            (secs(10.0), CHILD, Signal::TERM),
            (secs(10.0), MEMBER, Signal::TERM),
            (secs(10.0), OWNED, Signal::TERM),
            (secs(15.0), OWNED, Signal::KILL),
        ]
    );
    let status = h.handle.status().await.expect("still running");
    assert!(status.running);
    assert_eq!(status.tracked_count, 0);
    assert!(status.units.is_empty());
    h.os.spawn(400, PARENT);
    h.handle.track(400).await.expect("tracks after a drain");
}

/// A drain whose timeout is shorter than the grace period returns at its
/// timeout naming what is left; the escalation goes on and SIGKILL still
/// comes at the end of the grace period.
#[tokio::test(start_paused = true)]
async fn a_drain_that_times_out_reports_what_remains() {
    let h = Harness::default().await;
    let owned = owned_child(&h, true).await;
    let report = h.handle.drain(secs(2.0)).await.expect("drain");
    assert_eq!(h.elapsed(), secs(2.0));
    assert_eq!(report.remaining, vec![owned]);
    assert!(report.ended.is_empty());
    let end = h.handle.wait_for(owned).await.expect("wait_for");
    assert_eq!(h.elapsed(), secs(5.0));
    assert_eq!(end.status, Some(killed()));
    assert_eq!(
        h.sent(),
        vec![
            (secs(0.0), OWNED, Signal::TERM),
            (secs(5.0), OWNED, Signal::KILL)
        ]
    );
}

/// Nothing to drain: the report comes at once, empty.
#[tokio::test(start_paused = true)]
async fn draining_nothing_returns_at_once() {
    let h = Harness::default().await;
    let report = h.handle.drain(secs(30.0)).await.expect("drain");
    assert_eq!(h.elapsed(), Duration::ZERO);
    assert_eq!(report, crate::DrainReport::default());
}

/// Receives until the feed closes, noting when each event came.
async fn collect(
    h: &Harness,
    feed: &mut tokio::sync::broadcast::Receiver<Event>,
) -> Vec<(Duration, Event)> {
    let mut seen = Vec::new();
    loop {
        match feed.recv().await {
            Ok(event) => seen.push((h.elapsed(), event)),
            Err(RecvError::Closed) => return seen,
            Err(RecvError::Lagged(n)) => panic!("lagged by {n}"),
        }
    }
}

/// A unit's feed carries its root's and its members' events, a member
/// found after the subscription included, none of another unit's, ends
/// with `UnitEnded` and then closes.
#[tokio::test(start_paused = true)]
async fn a_unit_feed_has_only_its_units_events_and_ends_with_it() {
    let mut h = Harness::default().await;
    let (root, member) = unit_with_member(&h).await;
    let other = owned_child(&h, false).await;
    let mut feed = h.handle.subscribe_unit(root).await.expect("subscribe");
    // Through a member, the same unit.
    let mut by_member = h.handle.subscribe_unit(member).await.expect("by member");
    h.sleep_until(secs(0.5)).await;
    let late = h.os.spawn(203, CHILD);
    let found = Event::Tracked {
        id: late,
        parent: root,
        owned: false,
    };
    assert_eq!(
        h.next(|e| *e == found).await.0,
        secs(1.0),
        "found by the unit scan"
    );
    assert_eq!(feed.try_recv(), Ok(found.clone()), "and on the unit's feed");
    h.handle
        .terminate(OWNED)
        .await
        .expect("terminate the other unit");
    h.handle.terminate(CHILD).await.expect("terminate the unit");
    let seen: Vec<Event> = collect(&h, &mut feed)
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let through_member: Vec<Event> = collect(&h, &mut by_member)
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(through_member[0], found);
    assert_eq!(through_member[1..], seen[..]);
    assert!(
        matches!(seen.last(), Some(Event::UnitEnded { root: ended, .. }) if *ended == root),
        "{seen:#?}"
    );
    let ours = [root, member, late];
    for event in &seen {
        assert!(
            event.id().is_some_and(|id| ours.contains(&id)),
            "{event} is not about this unit"
        );
    }
    for id in ours {
        assert!(
            seen.contains(&Event::Signalled {
                id,
                signal: Signal::TERM
            }),
            "{id} signalled: {seen:#?}"
        );
        assert!(
            seen.iter()
                .any(|e| matches!(e, Event::Exited { id: exited, .. } if *exited == id)),
            "{id} exited: {seen:#?}"
        );
    }
    assert!(!seen.iter().any(|e| e.id() == Some(other)));
}

/// An untracked unit's feed ends with `UnitEnded` after its `Untracked`
/// events, then closes; a feed of a unit that does not exist is refused.
#[tokio::test(start_paused = true)]
async fn a_unit_feed_closes_when_the_unit_is_untracked() {
    let h = Harness::default().await;
    let (root, member) = unit_with_member(&h).await;
    let mut feed = h.handle.subscribe_unit(root).await.expect("subscribe");
    h.handle.untrack(CHILD).await.expect("untrack");
    let seen: Vec<Event> = collect(&h, &mut feed)
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(
        seen,
        vec![
            Event::Untracked { id: root },
            Event::Untracked { id: member },
            Event::UnitEnded {
                root,
                resources: None
            }
        ]
    );
    assert!(matches!(
        h.handle.subscribe_unit(root).await,
        Err(Error::NotTracked { pid: CHILD })
    ));
    assert!(matches!(
        h.handle.subscribe_unit(ProcessId::new(PARENT, 7)).await,
        Err(Error::NotTracked { pid: PARENT })
    ));
}

/// The remembered ends cost what the docs say: 1,024 of them, 32 bytes
/// each at most.
#[test]
fn a_remembered_end_is_32_bytes_at_most() {
    assert!(std::mem::size_of::<ExitInfo>() <= 32);
}
