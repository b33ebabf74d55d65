//! Units contained by fork events, with real processes: the kernel's
//! process connector makes each process a member forks a member at once,
//! so a double fork whose middle process exits at once cannot escape.
//! These need the connector (root in the initial user and pid
//! namespaces). Without it they skip, saying so; with `CI=true` that is a
//! failure. Every process is pinned in a guard that kills it even when a
//! test fails.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use common::{Proc, Procs, SOON, wait_for_status, wait_until};
use monitor_core::{
    Containment, Event, Monitor, MonitorBuilder, MonitorHandle, OwnedChild, SpawnOptions,
    TrackOptions,
};

/// The unit's root: once told to (a line on stdin), it forks a subshell
/// that starts a `setsid` grandchild in the background, prints its pid,
/// and exits at once, so the grandchild is reparented right away and no
/// children list ever leads to it. No sleep orders anything: the root
/// waits for the line, the test for the printed pid.
const ROOT: &str = "read go; (setsid sleep 300 & echo $!); exec sleep 300";

/// How a test's monitor is set up: no scan can find a member (checks every
/// 60 s, unit scans every hour), so whatever is found, fork events found.
fn quiet() -> MonitorBuilder {
    Monitor::builder()
        .check_interval(Duration::from_secs(60))
        .unit_scan_interval(Duration::from_secs(3600))
        .grace(Duration::from_secs(2))
}

/// How the root is made a unit's root.
#[derive(Debug, Clone, Copy)]
enum RootKind {
    /// Spawned through the monitor (cgroups off, so fork events apply).
    Spawned,
    /// Started by the test and handed over (`track_child`).
    Handed,
    /// Started by somebody else (a grandchild of the test) and tracked.
    Tracked,
}

impl RootKind {
    const ALL: [Self; 3] = [Self::Spawned, Self::Handed, Self::Tracked];

    /// The monitor for this kind: the default ceiling, except for a spawn,
    /// which would get a cgroup where one may be made.
    fn monitor(self) -> MonitorBuilder {
        match self {
            Self::Spawned => quiet().containment(Containment::ForkEvents),
            Self::Handed | Self::Tracked => quiet(),
        }
    }
}

/// A started fixture: the root, pinned; its stdin (the line that starts
/// the double fork) and its stdout (the grandchild's pid).
struct Fixture {
    root: Proc,
    go: ChildStdin,
    out: BufReader<ChildStdout>,
    /// Kept so the monitor's waiter is not dropped.
    _owned: Option<OwnedChild>,
}

impl Fixture {
    /// Tells the root to fork, and pins the grandchild it reports.
    async fn double_fork(mut self, procs: &mut Procs) -> (Self, Proc) {
        writeln!(self.go, "go").expect("tell the root to fork");
        let (out, line) = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            self.out.read_line(&mut line).expect("the grandchild's pid");
            (self.out, line)
        })
        .await
        .expect("read the grandchild's pid");
        self.out = out;
        let grandchild = procs.pin(line.trim().parse().expect("a pid"));
        (self, grandchild)
    }
}

/// Starts the root as `kind` says and makes it the root of a unit with
/// `tree`.
async fn start(handle: &MonitorHandle, procs: &mut Procs, kind: RootKind, tree: bool) -> Fixture {
    let options = TrackOptions::new().tree(tree);
    let mut command = Command::new("sh");
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    match kind {
        RootKind::Spawned => {
            command.args(["-c", ROOT]);
            let spawn = SpawnOptions::new().track(options);
            let mut owned = handle.spawn_with(command, spawn).await.expect("spawn");
            // The fixture reads and writes on plain threads: std pipes.
            let go = owned.stdin.take().expect("piped").into_owned_fd();
            let out = owned.stdout.take().expect("piped").into_owned_fd();
            Fixture {
                root: procs.pin(owned.process_id().pid),
                go: ChildStdin::from(go.expect("the stdin pipe")),
                out: BufReader::new(ChildStdout::from(out.expect("the stdout pipe"))),
                _owned: Some(owned),
            }
        }
        RootKind::Handed => {
            command.args(["-c", ROOT]);
            let mut spawned = procs.spawn(&mut command);
            let child = procs.take_child(&spawned.proc);
            let owned = handle
                .track_child_with(child, options)
                .await
                .expect("hand the root over");
            Fixture {
                root: spawned.proc,
                go: spawned.stdin.take().expect("piped"),
                out: BufReader::new(spawned.stdout.take().expect("piped")),
                _owned: Some(owned),
            }
        }
        RootKind::Tracked => {
            // A background job's stdin is /dev/null unless redirected: the
            // root reads the outer shell's stdin through fd 3.
            command.args([
                "-c",
                &format!("exec 3<&0; sh -c '{ROOT}' <&3 & echo $!; wait"),
            ]);
            let mut outer = procs.spawn(&mut command);
            let mut out = BufReader::new(outer.stdout.take().expect("piped"));
            let mut line = String::new();
            out.read_line(&mut line).expect("the root's pid");
            let root = procs.pin_child_of(line.trim().parse().expect("a pid"), &outer.proc);
            handle
                .track_with(root.pid, options)
                .await
                .expect("track the root");
            Fixture {
                root,
                go: outer.stdin.take().expect("piped"),
                out,
                _owned: None,
            }
        }
    }
}

/// Whether the unit got fork events; if not, the test skips saying why,
/// or fails under `CI=true`.
async fn has_fork_events(handle: &MonitorHandle, kind: RootKind) -> bool {
    let status = handle.status().await.expect("status");
    let containment = status.units.first().map(|unit| unit.containment);
    if containment == Some(Containment::ForkEvents) {
        return true;
    }
    let why = format!(
        "{kind:?}: fork events are not available here (the unit got {containment:?}; \
         they need the process connector: root in the initial user and pid namespaces)"
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipped: {why}");
    }
    false
}

/// The escape of the units issue, for a spawned root (cgroups off), a
/// handed-over one and a tracked non-child: the grandchild of a double
/// fork whose middle process exits at once is a member within the
/// deadline (no scan runs meanwhile: 60 s checks, hourly unit scans), and
/// ends with the unit when the root is terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_forked_setsid_grandchild_is_a_member_at_once_and_ends_with_the_unit() {
    for kind in RootKind::ALL {
        let mut procs = Procs::new();
        let (monitor, handle, mut log) = common::spawn_monitor(kind.monitor()).await;
        let fixture = start(&handle, &mut procs, kind, true).await;
        if !has_fork_events(&handle, kind).await {
            monitor.shutdown().await;
            return;
        }
        let (fixture, grandchild) = fixture.double_fork(&mut procs).await;
        let root = fixture.root.clone();
        let status = wait_for_status(&handle, SOON, "the grandchild is a member", |s| {
            s.tracked
                .iter()
                .any(|t| t.id == grandchild.id() && t.descendant_of == Some(root.id()))
        })
        .await;
        let member = status
            .tracked
            .iter()
            .find(|t| t.id == grandchild.id())
            .expect("tracked");
        assert_eq!(member.containment, Containment::ForkEvents, "{kind:?}");
        assert_eq!(status.counters.unit_scans, 0, "{kind:?}: not a unit scan");
        assert_eq!(status.counters.fork_event_overruns, 0, "{kind:?}");
        wait_until(SOON, "the grandchild has called setsid", || {
            grandchild
                .stat()
                .is_some_and(|stat| stat.pgrp == grandchild.pid)
        })
        .await;

        handle
            .terminate(root.pid)
            .await
            .expect("terminate the unit");
        wait_until(SOON, "the root and the grandchild are gone", || {
            root.is_dead() && grandchild.is_dead()
        })
        .await;
        log.wait_for(
            SOON,
            "the grandchild's exit",
            |e| matches!(e, Event::Exited { id, .. } if *id == grandchild.id()),
        )
        .await;
        monitor.shutdown().await;
    }
}

/// The negative control: without a tree (a unit of one), the same
/// grandchild is never a member and survives the root's termination (the
/// guard kills it afterwards); no socket is opened for such a unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_tree_the_grandchild_survives() {
    for kind in RootKind::ALL {
        let mut procs = Procs::new();
        let (monitor, handle, mut log) = common::spawn_monitor(kind.monitor()).await;
        let fixture = start(&handle, &mut procs, kind, false).await;
        let status = handle.status().await.expect("status");
        assert_eq!(status.units[0].containment, Containment::None);
        let (fixture, grandchild) = fixture.double_fork(&mut procs).await;
        let case = format!("{kind:?}");
        common::terminate_root_alone(&handle, &mut log, &fixture.root, &grandchild, &case).await;
        monitor.shutdown().await;
    }
}

/// `containment = "scan"` is a ceiling: a tracked process's unit scans
/// even where fork events are available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_ceiling_keeps_units_on_scanning() {
    let mut procs = Procs::new();
    let (monitor, handle, _log) =
        common::spawn_monitor(quiet().containment(Containment::Scan)).await;
    let sleeper = procs.sleep("300");
    handle.track(sleeper.pid).await.expect("track");
    let status = handle.status().await.expect("status");
    assert_eq!(status.units[0].containment, Containment::Scan);
    monitor.shutdown().await;
}
