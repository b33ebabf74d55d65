//! Paused-time tests of units contained by fork events, over the fake
//! process table and a scripted event source: who becomes a member at
//! which instant, who is refused, what a lost or failed source does, and
//! that the source is opened once, only when a unit wants it.
//!
//! The script's clock is in made-up nanoseconds, and its "start ticks"
//! are the same numbers, so a fake process's `start_time` compares with
//! its fork event's time directly.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::actor::Mechanisms;
use crate::connector::{EventSource, Exit, Fork, OpenEvents, Opened, ProcEvent};
use crate::fake::FakeProc;
use crate::harness::{CHILD, Harness, PARENT, config, secs, stubborn};
use crate::sys_error::SysError;
use crate::{Config, Containment, ErrorKind, Event, ProcessId, Signal, TrackOptions};

/// The clock when the test starts: the root is pinned at this time.
const T0: u64 = 1_000;

/// The test's side of the scripted source.
#[derive(Clone)]
struct Script {
    events: mpsc::UnboundedSender<Result<ProcEvent, SysError>>,
    /// The source's clock (`now_ns`).
    clock: Arc<AtomicU64>,
    /// While set, events are only read by a drain (`try_event`), never by
    /// the actor's loop: what the actor learns then, a drain gave it.
    hold: Arc<AtomicBool>,
    /// How many times the source was opened.
    opened: Arc<AtomicUsize>,
}

impl Script {
    fn send(&self, event: ProcEvent) {
        self.events.send(Ok(event)).expect("the source is open");
    }

    /// `parent` forks `child` at `at`.
    fn fork(&self, parent: i32, child: i32, at: u64) {
        self.send(ProcEvent::Fork(Fork {
            parent_pid: parent,
            parent_tgid: parent,
            child_pid: child,
            child_tgid: child,
            timestamp_ns: at,
        }));
    }

    /// `pid` (a child of `parent`) exits at `at`.
    fn exit(&self, pid: i32, parent: i32, at: u64) {
        self.send(ProcEvent::Exit(Exit {
            pid,
            tgid: pid,
            exit_code: 0,
            exit_signal: 17,
            parent_tgid: parent,
            timestamp_ns: at,
        }));
    }
}

/// The source the actor reads.
struct Scripted {
    events: mpsc::UnboundedReceiver<Result<ProcEvent, SysError>>,
    clock: Arc<AtomicU64>,
    hold: Arc<AtomicBool>,
}

impl EventSource for Scripted {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<ProcEvent, SysError>> {
        if self.hold.load(Ordering::SeqCst) {
            return Poll::Pending;
        }
        match self.events.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(event),
            // The test dropped its side: nothing more will come.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    fn try_event(&mut self) -> Option<Result<ProcEvent, SysError>> {
        self.events.try_recv().ok()
    }

    fn now_ns(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    fn start_ticks(&self, timestamp_ns: u64) -> u64 {
        timestamp_ns
    }
}

/// An opener of the scripted source, counting its calls; `refuse` makes
/// every open fail as an unprivileged one does.
fn scripted(refuse: bool) -> (OpenEvents, Script) {
    let (tx, rx) = mpsc::unbounded_channel();
    let script = Script {
        events: tx,
        clock: Arc::new(AtomicU64::new(T0)),
        hold: Arc::new(AtomicBool::new(false)),
        opened: Arc::new(AtomicUsize::new(0)),
    };
    let source = Scripted {
        events: rx,
        clock: Arc::clone(&script.clock),
        hold: Arc::clone(&script.hold),
    };
    let opened = Arc::clone(&script.opened);
    let open: OpenEvents = Box::new(move || {
        opened.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let result: Opened = if refuse {
                Err(SysError::call(
                    "bind to the process connector group (needs CAP_NET_ADMIN)",
                    io::Error::from_raw_os_error(rustix::io::Errno::PERM.raw_os_error()),
                ))
            } else {
                Ok(Box::new(source))
            };
            result
        })
    });
    (open, script)
}

/// No scan can find a member in these tests: checks every 60 s, unit
/// scans every hour.
fn quiet() -> Config {
    Config {
        unit_scan_interval: Duration::from_secs(3600),
        ..config()
    }
}

/// A monitor whose units follow the script; the root (pid 201, start
/// time 500, a child of 200) tracked with `options`, all processes
/// ignoring SIGTERM.
async fn tracked_root(config: Config, options: TrackOptions) -> (Harness, Script, ProcessId) {
    let (open, script) = scripted(false);
    let mechanisms = Mechanisms {
        fork_events: Some(open),
        ..Mechanisms::default()
    };
    let h = Harness::start_with(config, mechanisms).await;
    h.os.spawn(PARENT, 1);
    let root = h.os.spawn_with(
        CHILD,
        FakeProc {
            start_time: 500,
            ppid: PARENT,
            ..stubborn()
        },
    );
    h.handle.track_with(CHILD, options).await.expect("track");
    (h, script, root)
}

/// A process in the fake table, forked at `at` (its start time).
fn forked(h: &Harness, pid: i32, ppid: i32, at: u64) -> ProcessId {
    h.os.spawn_with(
        pid,
        FakeProc {
            start_time: at,
            ppid,
            ..stubborn()
        },
    )
}

/// The next event matching `wanted`, and when it came; a failure (not a
/// hang) when none comes within ten virtual minutes.
async fn next(h: &mut Harness, wanted: impl Fn(&Event) -> bool) -> (Duration, Event) {
    tokio::time::timeout(Duration::from_secs(600), h.next(wanted))
        .await
        .expect("the event within ten (virtual) minutes")
}

fn is_tracked(id: ProcessId) -> impl Fn(&Event) -> bool {
    move |event| matches!(event, Event::Tracked { id: tracked, .. } if *tracked == id)
}

/// A fork by the root makes a member at once, and so does a double fork
/// whose middle process exited (its child reparented to init) before the
/// actor read a single event: no scan runs (60 s checks, hourly unit
/// scans). The members end with the unit.
#[tokio::test(start_paused = true)]
async fn forks_make_members_at_once_even_through_a_parent_that_is_gone() {
    let (mut h, script, root) = tracked_root(quiet(), TrackOptions::new()).await;
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.units[0].containment, Containment::ForkEvents);
    assert_eq!(script.opened.load(Ordering::SeqCst), 1);

    h.sleep_until(secs(10.0)).await;
    let child = forked(&h, 300, CHILD, 2_000);
    script.fork(CHILD, 300, 2_000);
    let (at, _) = next(&mut h, is_tracked(child)).await;
    assert_eq!(at, secs(10.0), "a member the instant its fork is read");

    h.sleep_until(secs(20.0)).await;
    // 301 starts 302 and exits; 302 is reparented to init at once.
    forked(&h, 301, CHILD, 3_000);
    let grandchild = forked(&h, 302, 1, 3_100);
    h.os.exit(301);
    script.fork(CHILD, 301, 3_000);
    script.fork(301, 302, 3_100);
    script.exit(301, CHILD, 3_200);
    let (at, _) = next(&mut h, is_tracked(grandchild)).await;
    assert_eq!(at, secs(20.0));
    let status = h.handle.status().await.expect("status");
    let member = status
        .tracked
        .iter()
        .find(|t| t.id == grandchild)
        .expect("the grandchild is tracked");
    assert_eq!(member.descendant_of, Some(root));
    assert_eq!(member.containment, Containment::ForkEvents);
    assert_eq!(status.units[0].members, 3, "{:?}", status.units);
    assert_eq!(status.counters.unit_scans, 0);

    h.handle.terminate(CHILD).await.expect("terminate the unit");
    h.sleep_until(secs(30.0)).await;
    let mut term: Vec<(Duration, i32)> = h
        .sent()
        .into_iter()
        .filter(|(_, _, signal)| *signal == Signal::TERM)
        .map(|(at, pid, _)| (at, pid))
        .collect();
    term.sort_unstable();
    assert_eq!(
        term,
        vec![(secs(20.0), CHILD), (secs(20.0), 300), (secs(20.0), 302)]
    );
    assert!(![CHILD, 300, 302].iter().any(|pid| h.os.is_alive(*pid)));
}

/// A forked process of another user is refused (an event names it) and
/// leaves the lineage: what it forks is never followed. A later fork by
/// the root, read after those, is followed as usual.
#[tokio::test(start_paused = true)]
async fn a_refused_fork_is_not_followed_further() {
    let (open, script) = scripted(false);
    let mechanisms = Mechanisms {
        fork_events: Some(open),
        ..Mechanisms::default()
    };
    let mut h = Harness::start_with(quiet(), mechanisms).await;
    h.os.spawn(PARENT, 1);
    let user = |start_time, ppid, uid| FakeProc {
        start_time,
        ppid,
        uid,
        ..FakeProc::default()
    };
    h.os.spawn_with(CHILD, user(500, PARENT, 1000));
    h.handle
        .track_with(CHILD, TrackOptions::new().owner(1000))
        .await
        .expect("track");
    let foreign = h.os.spawn_with(300, user(2_000, CHILD, 0));
    let behind = h.os.spawn_with(301, user(2_100, 300, 1000));
    let later = h.os.spawn_with(302, user(2_200, CHILD, 1000));
    script.fork(CHILD, 300, 2_000);
    script.fork(300, 301, 2_100);
    script.fork(CHILD, 302, 2_200);
    let (_, refused) = next(&mut h, |e| matches!(e, Event::Refused { .. })).await;
    assert!(
        matches!(refused, Event::Refused { id, uid: 0, owner: 1000, .. } if id == foreign),
        "{refused:?}"
    );
    next(&mut h, is_tracked(later)).await;
    let status = h.handle.status().await.expect("status");
    let tracked: Vec<ProcessId> = status.tracked.iter().map(|t| t.id).collect();
    assert!(
        !tracked.contains(&foreign) && !tracked.contains(&behind),
        "{tracked:?}"
    );
    assert_eq!(
        status.counters.refused, 1,
        "the process behind it is never looked at"
    );
}

/// A fork event names a pid, not a process: one that started after the
/// event (it reused the pid), or that is the child of a living process
/// other than the forking member, is not the forked process and is not
/// taken. The fork after them, of the right process, is.
#[tokio::test(start_paused = true)]
async fn a_process_that_is_not_the_one_forked_is_never_a_member() {
    let (mut h, script, _) = tracked_root(quiet(), TrackOptions::new()).await;
    // Reused: the process forked at 2,000 is gone, 300 started at 2,500.
    let reused = forked(&h, 300, CHILD, 2_500);
    script.fork(CHILD, 300, 2_000);
    // Wrong parent: 301 is the child of 400, which lives and is no member.
    h.os.spawn(400, 1);
    let stranger = forked(&h, 301, 400, 2_600);
    script.fork(CHILD, 301, 2_600);
    let right = forked(&h, 302, CHILD, 2_700);
    script.fork(CHILD, 302, 2_700);
    next(&mut h, is_tracked(right)).await;
    let status = h.handle.status().await.expect("status");
    let tracked: Vec<ProcessId> = status.tracked.iter().map(|t| t.id).collect();
    assert!(!tracked.contains(&reused), "{tracked:?}");
    assert!(!tracked.contains(&stranger), "{tracked:?}");
    assert_eq!(status.units[0].members, 2);
    // What the wrong ones fork is not followed either.
    let behind = forked(&h, 303, 301, 2_800);
    script.fork(301, 303, 2_800);
    let marker = forked(&h, 304, CHILD, 2_900);
    script.fork(CHILD, 304, 2_900);
    next(&mut h, is_tracked(marker)).await;
    let status = h.handle.status().await.expect("status");
    assert!(!status.tracked.iter().any(|t| t.id == behind));
    assert!(h.sent().is_empty(), "nothing was signalled");
}

/// The unit scan ignores fork-events units (it ticks every second here
/// and finds nothing for them to read); a child forked while events were
/// lost is found the moment the overrun is read, by one look at the
/// children lists.
#[tokio::test(start_paused = true)]
async fn an_overrun_makes_the_units_read_their_children_lists() {
    let config = Config {
        unit_scan_interval: Duration::from_secs(1),
        ..config()
    };
    let (mut h, script, root) = tracked_root(config, TrackOptions::new()).await;
    // Its fork event was among the lost.
    let lost = forked(&h, 300, CHILD, 2_000);
    h.sleep_until(secs(10.0)).await;
    let status = h.handle.status().await.expect("status");
    assert!(!status.tracked.iter().any(|t| t.id == lost));
    assert_eq!(status.counters.unit_scans, 0, "no unit scan for this unit");

    script.send(ProcEvent::Overrun);
    let (at, _) = next(&mut h, is_tracked(lost)).await;
    assert_eq!(at, secs(10.0));
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.counters.fork_event_overruns, 1);
    let member = status
        .tracked
        .iter()
        .find(|t| t.id == lost)
        .expect("tracked");
    assert_eq!(member.descendant_of, Some(root));
}

/// Events still queued when a stop comes are read before it acts: a
/// double fork that completed before the actor read its events (the
/// middle process gone, the grandchild reparented, so no children list
/// leads to it) is stopped with the unit. Here the loop never reads an
/// event: only the stop's drain can have found the grandchild.
#[tokio::test(start_paused = true)]
async fn a_stop_reads_the_queued_events_first() {
    let (h, script, _) = tracked_root(quiet(), TrackOptions::new()).await;
    script.hold.store(true, Ordering::SeqCst);
    h.sleep_until(secs(5.0)).await;
    // 300 forked 301 and exited; 301 was reparented to init.
    let grandchild = forked(&h, 301, 1, 2_100);
    script.fork(CHILD, 300, 2_000);
    script.fork(300, 301, 2_100);
    script.exit(300, CHILD, 2_200);
    h.handle.terminate(CHILD).await.expect("terminate");
    let status = h.handle.status().await.expect("status");
    assert!(status.tracked.iter().any(|t| t.id == grandchild));
    assert!(
        h.sent()
            .contains(&(secs(5.0), grandchild.pid, Signal::TERM)),
        "{:?}",
        h.sent()
    );
}

/// The root exits right after a double fork, and its exit is handled
/// before the loop read the fork events: the last look drains them, so
/// the grandchild is a member when the unit ends, and is orphaned with it
/// (terminated), not left behind.
#[tokio::test(start_paused = true)]
async fn a_root_exiting_right_after_a_double_fork_takes_the_grandchild_along() {
    let (mut h, script, root) = tracked_root(quiet(), TrackOptions::new()).await;
    script.hold.store(true, Ordering::SeqCst);
    // 300 forked 301 and exited; 301 was reparented to init.
    let grandchild = forked(&h, 301, 1, 2_100);
    script.fork(CHILD, 300, 2_000);
    script.fork(300, 301, 2_100);
    script.exit(300, CHILD, 2_200);
    h.os.exit(CHILD);
    // Without a pidfd in the fake table, the check at 60 s sees the exit.
    let (at, _) = next(
        &mut h,
        |e| matches!(e, Event::Orphaned { id, parent, .. } if *id == grandchild && *parent == root),
    )
    .await;
    assert_eq!(at, secs(60.0));
    assert!(
        h.sent()
            .contains(&(secs(60.0), grandchild.pid, Signal::TERM))
    );
}

/// A source that fails for good is reported once; its units say `scan`
/// from then on and are scanned (a child forked afterwards is found by
/// the next unit scan).
#[tokio::test(start_paused = true)]
async fn a_failed_source_turns_its_units_to_scanning() {
    let config = Config {
        unit_scan_interval: Duration::from_secs(1),
        ..config()
    };
    let (mut h, script, _) = tracked_root(config, TrackOptions::new()).await;
    script
        .events
        .send(Err(SysError::call(
            "recvfrom(connector)",
            io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error()),
        )))
        .expect("open");
    let (_, error) = next(&mut h, |e| matches!(e, Event::Error { .. })).await;
    assert!(
        matches!(&error, Event::Error { kind: ErrorKind::Scan, message, .. } if message.contains("recvfrom(connector)")),
        "{error:?}"
    );
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.units[0].containment, Containment::Scan);
    assert!(
        status
            .tracked
            .iter()
            .all(|t| t.containment == Containment::Scan)
    );
    let at = h.elapsed();
    let late = forked(&h, 300, CHILD, 5_000);
    let (found, _) = next(&mut h, is_tracked(late)).await;
    assert!(found - at <= secs(1.0), "found by a unit scan: {found:?}");
}

/// The source is opened by the first unit that wants it and never for a
/// unit of one; a refused open is tried once, and the units fall back to
/// scanning.
#[tokio::test(start_paused = true)]
async fn the_source_is_opened_once_and_only_when_wanted() {
    let (open, script) = scripted(true);
    let mechanisms = Mechanisms {
        fork_events: Some(open),
        ..Mechanisms::default()
    };
    let h = Harness::start_with(quiet(), mechanisms).await;
    h.os.spawn(PARENT, 1);
    for pid in [201, 202, 203] {
        h.os.spawn(pid, PARENT);
    }
    h.handle
        .track_with(201, TrackOptions::new().tree(false))
        .await
        .expect("track a unit of one");
    assert_eq!(script.opened.load(Ordering::SeqCst), 0);
    h.handle.track(202).await.expect("track");
    h.handle.track(203).await.expect("track");
    assert_eq!(script.opened.load(Ordering::SeqCst), 1, "not retried");
    let status = h.handle.status().await.expect("status");
    let containments: Vec<Containment> = status.units.iter().map(|u| u.containment).collect();
    assert_eq!(
        containments,
        vec![Containment::None, Containment::Scan, Containment::Scan]
    );
}

/// The ceiling orders the mechanisms (`Monitor::spawn` offers a mechanism
/// only where the config's ceiling allows it), and the new one reads and
/// prints as `fork-events`.
#[test]
fn the_ceiling_orders_the_mechanisms() {
    assert!(!Containment::Scan.allows(Containment::ForkEvents));
    assert!(Containment::ForkEvents.allows(Containment::ForkEvents));
    assert!(Containment::ForkEvents.allows(Containment::Scan));
    assert!(!Containment::ForkEvents.allows(Containment::Cgroup));
    assert!(Containment::Cgroup.allows(Containment::ForkEvents));
    let config: Config = toml::from_str("containment = \"fork-events\"").expect("parses");
    assert_eq!(config.containment, Containment::ForkEvents);
    config.validate().expect("a valid ceiling");
    assert_eq!(Containment::ForkEvents.to_string(), "fork-events");
    assert_eq!(
        serde_json::to_value(Containment::ForkEvents).expect("serializes"),
        serde_json::json!("fork-events")
    );
}
