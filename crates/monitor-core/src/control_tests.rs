//! Paused-time tests of an owned child's requests about its unit:
//! `terminate` follows the unit's grace period to the millisecond and
//! returns only once the unit is empty; the drop guard of a handed-over
//! child kills its whole unit at once.

use crate::fake::{FakeChild, FakeProc, MY_PID};
use crate::harness::{CHILD, GRACE, Harness, config, secs};
use crate::{ChildProcess, DropAction, Event, ExitStatus, Signal};

const MEMBER: i32 = 300;

fn stubborn(ppid: i32, start_time: u64) -> FakeProc {
    FakeProc {
        start_time,
        ppid,
        ignores_term: true,
        ..FakeProc::default()
    }
}

/// An owned child (ignoring `SIGTERM`) with a member (ignoring it too).
async fn family(h: &Harness) -> crate::OwnedChild {
    let id = h.os.spawn_with(CHILD, stubborn(MY_PID, 7));
    h.os.spawn_with(MEMBER, stubborn(CHILD, 8));
    h.handle
        .track_child(ChildProcess::Fake(FakeChild::new(&h.os, id)))
        .await
        .expect("track the child")
}

#[tokio::test(start_paused = true)]
async fn terminate_follows_the_grace_period_and_returns_with_the_unit() {
    let h = Harness::start(config()).await;
    let mut owned = family(&h).await;
    let status = tokio::time::timeout(secs(120.0), owned.terminate())
        .await
        .expect("within two minutes")
        .expect("the monitor runs");
    assert_eq!(
        status,
        ExitStatus::Signaled {
            signal: 9,
            core_dumped: false
        }
    );
    // The member is not the monitor's child: without a pidfd (the fake
    // has none) its death shows at the first re-check after SIGKILL, 5 ms
    // on; the unit ends then, and `terminate` returns.
    assert_eq!(
        h.elapsed(),
        GRACE + secs(0.005),
        "returned when the unit ended"
    );
    let mut sent = h.sent();
    sent.sort_by_key(|(at, pid, signal)| (*at, *pid, signal.as_raw()));
    assert_eq!(
        sent,
        [
            (secs(0.0), CHILD, Signal::TERM),
            (secs(0.0), MEMBER, Signal::TERM),
            (GRACE, CHILD, Signal::KILL),
            (GRACE, MEMBER, Signal::KILL),
        ]
    );
    assert!(!h.os.is_alive(MEMBER), "the member outlived terminate()");
}

#[tokio::test(start_paused = true)]
async fn the_drop_guard_of_a_handed_over_child_kills_its_unit() {
    let mut h = Harness::start(config()).await;
    let mut owned = family(&h).await;
    owned.set_on_drop(Some(DropAction::Kill));
    let id = owned.process_id();
    drop(owned);
    for pid in [CHILD, MEMBER] {
        let (at, _) = h
            .next(|e| matches!(e, Event::Killed { id } if id.pid == pid))
            .await;
        assert_eq!(at, secs(0.0), "{pid} was killed later");
    }
    h.next(|e| matches!(e, Event::UnitEnded { root, .. } if *root == id))
        .await;
    assert!(!h.os.is_alive(CHILD) && !h.os.is_alive(MEMBER));
}
