//! The process connector against the real kernel (root, initial
//! namespaces): a fork chain seen link by link, an overrun reported, and
//! clean refusals. Without those privileges these skip; under `CI=true`
//! they fail instead.

// Timings are printed for the report; they are never asserted.
#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::*;
use crate::lineage::{Change, Lineage};
use crate::requires::{self, ChildGuard, Pinned};

const SOON: Duration = Duration::from_secs(10);

/// Reads events until `pick` returns something, or panics naming `what`
/// after [`SOON`] in all (the machine's own forks keep coming, so a
/// deadline per event would never fire).
async fn find<T>(
    connector: &mut Connector,
    what: &str,
    mut pick: impl FnMut(ProcEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let event = tokio::time::timeout_at(deadline, connector.next_event())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {SOON:?}"))
            .expect("the socket works");
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

/// Takes every queued event off the socket (outside tokio's cooperative
/// budget, which would cut a long drain short) and counts them.
async fn drain(connector: &mut Connector) -> u32 {
    tokio::task::unconstrained(std::future::poll_fn(|cx| {
        let mut drained = 0;
        while let Poll::Ready(event) = connector.poll_event(cx) {
            event.expect("the socket works");
            drained += 1;
        }
        Poll::Ready(drained)
    }))
    .await
}

/// `/proc/<pid>/stat` fields: (session, start time in ticks).
fn session_and_start(pid: i32) -> (i32, u64) {
    let stat = procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .expect("stat of a live test process");
    (stat.session, stat.starttime)
}

/// The escape a unit must catch: a child forks a grandchild that calls
/// `setsid`, and exits at once. Fed in order into a lineage seeded with
/// the root, the events make both members, with the right parents, though
/// both parents are gone by the time they are read.
#[tokio::test]
async fn a_child_and_a_double_forked_setsid_grandchild_are_seen_with_their_parents() {
    let Some(mut connector) = requires::connector(Options::default()).await else {
        return;
    };
    let me = std::process::id() as i32;
    let mut root = ChildGuard(
        Command::new("sh")
            .args(["-c", "(setsid sh -c 'echo $$; exec sleep 30' &); exit 0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the double fork"),
    );
    let root_pid = root.0.id() as i32;
    // Inserted before any event is read, as the actor does after a spawn:
    // the root's own fork event comes later and must not unseat it.
    let mut lineage = Lineage::new();
    lineage
        .insert(1u8, root_pid, now_ns())
        .expect("a fresh lineage");
    let mut line = String::new();
    BufReader::new(root.0.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("the grandchild's pid");
    let grandchild = Pinned::new(line.trim().parse().expect("a pid"));
    assert!(root.0.wait().expect("the root exits").success());

    let mut forks = HashMap::new();
    let mut joined = Vec::new();
    find(
        &mut connector,
        "fork making the grandchild a member",
        |event| {
            if let ProcEvent::Fork(fork) = event {
                forks.insert(fork.child_pid, fork);
            }
            joined.extend(
                lineage
                    .apply(&event)
                    .into_iter()
                    .filter_map(|change| match change {
                        Change::Joined { pid, parent, .. } => Some((pid, parent)),
                        _ => None,
                    }),
            );
            lineage.unit_of(grandchild.pid).map(drop)
        },
    )
    .await;
    let root_fork = forks.get(&root_pid).expect("our fork of the root was seen");
    assert_eq!(
        (root_fork.parent_tgid, root_fork.child_tgid),
        (me, root_pid)
    );
    assert!(root_fork.is_process());
    let child = forks[&grandchild.pid].parent_tgid;
    assert_ne!(
        child, root_pid,
        "a double fork: the grandchild's parent is the child"
    );
    assert_eq!(forks[&child].parent_tgid, root_pid);
    assert_eq!(joined, vec![(child, root_pid), (grandchild.pid, child)]);

    let (session, start) = session_and_start(grandchild.pid);
    assert_eq!(
        session, grandchild.pid,
        "the grandchild leads its own session"
    );
    let event_tick = event_boot_ticks(forks[&grandchild.pid].timestamp_ns);
    assert!(
        start <= event_tick,
        "a forked process starts no later than its fork event: start {start}, event {event_tick}"
    );
    eprintln!(
        "grandchild start tick {start}, its fork event's tick {event_tick}; stats {:?}",
        connector.stats()
    );
}

/// Fork to event, and the cost of taking one event off the socket.
/// Printed for the report (run it with `--release --nocapture`); the
/// assertions are about correctness only.
#[tokio::test]
async fn fork_to_event_timings() {
    let Some(mut connector) = requires::connector(Options::default()).await else {
        return;
    };
    const RUNS: usize = 100;
    // Spawned children: from `spawn()` (which returns after the exec) to
    // the fork event in hand, and the start-time check on each.
    let mut spawn_to_event = Vec::new();
    let mut tick_lag = Vec::new();
    for _ in 0..RUNS {
        let before = now_ns();
        let mut child = ChildGuard(Command::new("true").spawn().expect("spawn true"));
        let pid = child.0.id() as i32;
        let fork = find(&mut connector, "fork of the child", |event| match event {
            ProcEvent::Fork(fork) if fork.child_pid == pid => Some(fork),
            _ => None,
        })
        .await;
        spawn_to_event.push(now_ns() - before);
        // A zombie's stat still reads: the child is not reaped yet.
        let (_, start) = session_and_start(pid);
        let event_tick = event_boot_ticks(fork.timestamp_ns);
        assert!(
            start <= event_tick,
            "start {start} after event {event_tick}"
        );
        tick_lag.push(event_tick - start);
        child.0.wait().expect("reap");
    }

    // Delivery: a shell forks while this task already waits on the socket;
    // from the kernel's stamp to the event in hand.
    let mut shell = ChildGuard(
        Command::new("sh")
            .args(["-c", "while read _; do /bin/true; done"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn the shell"),
    );
    let shell_pid = shell.0.id() as i32;
    let mut stdin = shell.0.stdin.take().expect("piped");
    let mut delivery = Vec::new();
    for _ in 0..RUNS {
        drain(&mut connector).await;
        std::io::Write::write_all(&mut stdin, b"\n").expect("wake the shell");
        let fork = find(&mut connector, "fork by the shell", |event| match event {
            ProcEvent::Fork(fork) if fork.parent_tgid == shell_pid => Some(fork),
            _ => None,
        })
        .await;
        delivery.push(now_ns().saturating_sub(fork.timestamp_ns));
    }
    drop(stdin);
    shell.0.wait().expect("the shell ends at EOF");

    // Let a burst queue up, then time taking it off the socket.
    for _ in 0..200 {
        Command::new("true").status().expect("run true");
    }
    let started = std::time::Instant::now();
    let drained = drain(&mut connector).await;
    let drain = started.elapsed();
    // Two events each (fork and exit: Linux 6.6 and later filter execs
    // out; an older kernel sends them too, and more were read).
    assert!(
        drained >= 400,
        "200 forks and exits queued, {drained} read; {:?}",
        connector.stats()
    );

    let pct = |v: &mut Vec<u64>, p: usize| {
        v.sort_unstable();
        v[(v.len() - 1) * p / 100]
    };
    eprintln!(
        "spawn() to its fork event in hand (us): p50 {} p90 {} max {}",
        pct(&mut spawn_to_event, 50) / 1000,
        pct(&mut spawn_to_event, 90) / 1000,
        pct(&mut spawn_to_event, 100) / 1000
    );
    eprintln!(
        "fork (kernel stamp) to event in hand, reader waiting (us): p50 {} p90 {} max {}",
        pct(&mut delivery, 50) / 1000,
        pct(&mut delivery, 90) / 1000,
        pct(&mut delivery, 100) / 1000
    );
    eprintln!(
        "event tick minus /proc start tick: max {} over {RUNS}",
        pct(&mut tick_lag, 100)
    );
    eprintln!(
        "drained {drained} queued events in {drain:?}: {} ns per event (recvfrom + parse); {:?}",
        drain.as_nanos() / u128::from(drained),
        connector.stats()
    );
}

/// What an event costs once it is off the socket: the parse and the
/// lineage's look-ups, over 100,000 forks and exits of other processes
/// (the machine's traffic) with 1,000 members in 10 units. Printed for
/// the report.
#[test]
fn parse_and_filter_cost() {
    const EVENTS: i32 = 100_000;
    let mut lineage = Lineage::new();
    for pid in 0..1000 {
        lineage
            .insert((pid % 10) as u8, 1_000_000 + pid, 0)
            .expect("fresh");
    }
    let datagrams: Vec<Vec<u8>> = (0..EVENTS)
        .map(|n| {
            let pid = 2 + n % 30_000;
            if n % 2 == 0 {
                wire::fork(pid, pid + 1, pid + 1)
            } else {
                wire::exit(pid + 1, pid + 1, pid)
            }
        })
        .collect();
    let started = std::time::Instant::now();
    let mut changed = 0;
    for datagram in &datagrams {
        let event = match wire::parse_at(datagram, 0).expect("valid").0 {
            Message::Fork(fork) => ProcEvent::Fork(fork),
            Message::Exit(exit) => ProcEvent::Exit(exit),
            other => panic!("unexpected {other:?}"),
        };
        changed += lineage.apply(&event).len();
    }
    let took = started.elapsed();
    assert_eq!(changed, 0, "no event was about a member");
    eprintln!(
        "parse + lineage filter: {} ns per event ({EVENTS} events in {took:?})",
        took.as_nanos() / EVENTS as u128
    );
}

/// An overrun is provoked by shrinking the receive buffer to the kernel's
/// minimum (a few events) and forking a hundred processes without
/// reading. It is reported as its own event, and the socket goes on
/// working: a later fork is still seen.
#[tokio::test]
async fn an_overrun_is_reported_and_the_socket_keeps_working() {
    let Some(mut connector) = requires::connector(Options::default()).await else {
        return;
    };
    connector.shrink_receive_buffer();
    for _ in 0..100 {
        Command::new("true").status().expect("run true");
    }
    find(&mut connector, "overrun", |event| {
        (event == ProcEvent::Overrun).then_some(())
    })
    .await;
    assert!(connector.stats().overruns >= 1);
    // Drain what is left, then a fresh fork must come through.
    drain(&mut connector).await;
    let mut child = ChildGuard(Command::new("true").spawn().expect("spawn"));
    let pid = child.0.id() as i32;
    find(
        &mut connector,
        "fork after the overrun",
        |event| match event {
            ProcEvent::Fork(fork) if fork.child_pid == pid => Some(()),
            _ => None,
        },
    )
    .await;
    child.0.wait().expect("reap");
}

/// Outside root the socket is refused with a cause, not left silent.
#[tokio::test]
async fn an_unprivileged_open_fails_naming_the_cause() {
    const ROLE: &str = "PIDGUARD_TEST_CONNECTOR_AS_NOBODY";
    if std::env::var_os(ROLE).is_some() {
        let started = std::time::Instant::now();
        let error = Connector::open(Options::default())
            .await
            .expect_err("nobody may not listen");
        // How long the actor would stall on it: printed, not asserted.
        eprintln!("as nobody: {error} (after {:?})", started.elapsed());
        assert!(error.is_unavailable(), "{error}");
        return;
    }
    if !requires::root("root, to re-run this test as nobody") {
        return;
    }
    let output = requires::rerun(
        "connector::tests::an_unprivileged_open_fails_naming_the_cause",
        ROLE,
        &[],
        Some(requires::NOBODY),
    );
    assert!(output.contains("as nobody: "), "{output}");
    for line in output.lines().filter(|line| line.contains("as nobody: ")) {
        eprintln!("{line}");
    }
}

/// In another pid namespace the kernel would ignore `LISTEN` (while
/// other listeners' events, with the wrong pids, still arrive): the open
/// fails at once, naming the namespace.
#[tokio::test]
async fn an_open_in_another_pid_namespace_fails_naming_it() {
    const ROLE: &str = "PIDGUARD_TEST_CONNECTOR_IN_PID_NS";
    if std::env::var_os(ROLE).is_some() {
        let started = std::time::Instant::now();
        let error = Connector::open(Options::default())
            .await
            .expect_err("not the initial pid namespace");
        eprintln!(
            "in a new pid namespace: {error} (after {:?})",
            started.elapsed()
        );
        assert!(
            error.to_string().contains("initial pid namespace"),
            "{error}"
        );
        assert!(error.is_unavailable(), "{error}");
        return;
    }
    if !requires::root("root, to re-run this test in a new pid namespace") {
        return;
    }
    let output = requires::rerun(
        "connector::tests::an_open_in_another_pid_namespace_fails_naming_it",
        ROLE,
        &["unshare", "--pid", "--fork"],
        None,
    );
    assert!(output.contains("in a new pid namespace: "), "{output}");
    for line in output
        .lines()
        .filter(|line| line.contains("in a new pid namespace: "))
    {
        eprintln!("{line}");
    }
}
