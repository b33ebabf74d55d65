//! The `pidguard-client` crate against the real daemon: every request,
//! the event stream, a unit handed over with `track_unit` and ended when
//! its recorded parent dies, and an orphan of action `notify` left
//! running. The faults (timeouts, impostors, endless lines) are in
//! `client_faults.rs`; a crashing program in `crash.rs`.

use std::time::Duration;

use monitor_core::{Event, OrphanAction, OrphanTarget, ProcessId, Signal};
use pidguard_client::protocol::{ErrorKind, VERSION};
use pidguard_client::{Client, Error, Events, StreamItem, TrackOptions};

use crate::common::{Proc, Procs, SOON, my_pid, wait_until};
use crate::fixture::{Daemon, TempDir};

/// Reads events until `done` holds for those seen so far; panics naming
/// `what` (and what was seen) after [`SOON`].
pub(crate) async fn events_until(
    events: &mut Events,
    what: &str,
    mut done: impl FnMut(&[Event]) -> bool,
) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + SOON;
    let mut seen = Vec::new();
    while !done(&seen) {
        let item = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {SOON:?}; seen: {seen:#?}"))
            .expect("the event stream")
            .expect("the stream goes on");
        if let StreamItem::Event(event) = item {
            seen.push(event);
        }
    }
    seen
}

/// Whether `seen` holds an `orphaned` event for `id` with `action`.
fn orphaned(seen: &[Event], id: ProcessId, action: OrphanAction) -> bool {
    seen.iter().any(|event| {
        matches!(event, Event::Orphaned { id: orphan, action: done, .. } if *orphan == id && *done == action)
    })
}

#[tokio::test]
async fn every_request_round_trips_through_the_client() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let mut procs = Procs::new();
    let (a, b) = (procs.sleep("300"), procs.sleep("300"));
    let mut client = Client::connect(&daemon.socket).await.expect("connect");

    assert_eq!(client.ping().await.expect("ping").pid, daemon.pid());
    let version = client.version().await.expect("version");
    assert_eq!(version.protocol, VERSION);
    assert_eq!(version.daemon, env!("CARGO_PKG_VERSION"));

    let options = TrackOptions::new()
        .action(OrphanAction::Kill)
        .grace(Duration::from_millis(1500))
        .signal(Signal::INT)
        .tree(false)
        .target(OrphanTarget::Process);
    let registration = client.track(a.pid, options).await.expect("track");
    assert_eq!(registration.id, a.id());
    assert_eq!(registration.parent.pid, my_pid(), "the real parent");
    assert_eq!(registration.action, OrphanAction::Kill);
    assert_eq!(registration.grace, Duration::from_millis(1500));
    assert_eq!(registration.signal, Signal::INT);
    assert!(!registration.tree);
    assert_eq!(registration.target, OrphanTarget::Process);

    // A stale identity (the pid now names a process that started at
    // another tick) is refused by the daemon, and the error names the
    // daemon, its pid and the request.
    let stale = ProcessId::new(b.pid, b.start_time - 1);
    let error = client
        .track_process(stale, TrackOptions::new())
        .await
        .expect_err("a stale identity is refused");
    assert_eq!(error.refusal_kind(), Some(ErrorKind::Refused), "{error}");
    let text = error.to_string();
    assert!(
        text.contains(&daemon.socket.display().to_string())
            && text.contains(&format!("pid {}", daemon.pid()))
            && text.contains("`track`")
            && text.contains("reused"),
        "{text}"
    );
    let registration = client
        .track_process(b.id(), TrackOptions::new())
        .await
        .expect("the right identity is registered");
    assert_eq!(registration.id, b.id());
    assert!(registration.tree, "the daemon's default: a unit");

    let status = client.status().await.expect("status");
    assert_eq!(status.daemon_pid, daemon.pid());
    assert_eq!(status.tracked_count, 2);
    let mut ids: Vec<ProcessId> = status.tracked.iter().map(|t| t.registration.id).collect();
    ids.sort_unstable();
    let mut expected = vec![a.id(), b.id()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    assert_eq!(client.untrack(a.pid).await.expect("untrack").id, a.id());
    let error = client.untrack(a.pid).await.expect_err("no longer tracked");
    assert!(
        error
            .refusal()
            .is_some_and(|body| body.message.contains("not tracked")),
        "{error}"
    );
    assert!(a.is_running(), "untracking signals nothing");
    // Refusals leave the connection as it was.
    assert_eq!(client.ping().await.expect("ping").pid, daemon.pid());

    // A timeout of zero would wait forever: refused, by the setter and
    // at connect time alike.
    let error = client
        .set_timeout(Duration::ZERO)
        .expect_err("zero is refused");
    assert!(matches!(error, Error::InvalidTimeout { .. }), "{error:?}");
    assert!(error.to_string().contains("1ms"), "{error}");
    client
        .set_timeout(Duration::from_secs(3))
        .expect("3s is fine");
    assert_eq!(client.timeout(), Duration::from_secs(3));
    let error = Client::connect_with_timeout(&daemon.socket, Duration::from_secs(2 * 86_400))
        .await
        .expect_err("two days are refused");
    assert!(matches!(error, Error::InvalidTimeout { .. }), "{error:?}");
}

/// A unit handed over with `track_unit`: when its recorded parent dies,
/// the daemon ends the process and both its children, and the event
/// stream says so; an orphan with the action `notify` is only reported.
#[tokio::test]
async fn a_handed_over_unit_ends_with_its_parent_and_the_stream_says_so() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let mut events = Client::connect(&daemon.socket)
        .await
        .expect("connect")
        .events()
        .await
        .expect("events");
    let mut procs = Procs::new();
    // Stands in for the program that started the worker: its death
    // orphans the worker.
    let parent = procs.sleep("300");
    let worker = procs.spawn_shell("sleep 300 & echo $!; sleep 300 & echo $!; wait", 2);
    let watched = procs.sleep("300");

    let mut client = Client::connect(&daemon.socket).await.expect("connect");
    let unit = client
        .track_unit(
            worker.proc.id(),
            TrackOptions::new()
                .parent(parent.pid)
                .grace(Duration::from_secs(1)),
        )
        .await
        .expect("track_unit");
    assert_eq!((unit.id, unit.parent), (worker.proc.id(), parent.id()));
    assert!(unit.tree && unit.target == OrphanTarget::Tree, "{unit:?}");
    let notify = TrackOptions::new()
        .parent(parent.pid)
        .action(OrphanAction::Notify);
    client.track(watched.pid, notify).await.expect("track");
    events_until(&mut events, "tracked events", |seen| {
        [worker.proc.id(), watched.id()].iter().all(|id| {
            seen.iter()
                .any(|e| matches!(e, Event::Tracked { id: t, .. } if t == id))
        })
    })
    .await;

    procs.kill_and_reap(&parent);
    let seen = events_until(&mut events, "both orphans and the unit's end", |seen| {
        orphaned(seen, worker.proc.id(), OrphanAction::Terminate)
            && orphaned(seen, watched.id(), OrphanAction::Notify)
            && worker.kids.iter().all(|kid| {
                seen.iter()
                    .any(|e| matches!(e, Event::Signalled { id, .. } if *id == kid.id()))
            })
    })
    .await;
    let everything: Vec<&Proc> = worker.kids.iter().chain([&worker.proc]).collect();
    wait_until(SOON, "the worker and its children are ended", || {
        everything.iter().all(|p| p.is_dead())
    })
    .await;
    assert!(
        watched.is_running(),
        "notify only reports the orphan: {seen:#?}"
    );
}
