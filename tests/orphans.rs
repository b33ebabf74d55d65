//! Orphan handling with real processes on real time: a tracked process
//! whose recorded parent dies is terminated (SIGTERM, grace, SIGKILL), one
//! whose parent lives is left alone (the original "ppid != my pid" rule
//! would kill it), escalations honour the grace period, and many stubborn
//! orphans finish in about one grace period, not one each.

#![allow(clippy::unwrap_used)]
#![allow(clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use common::{Procs, SOON, wait_for_more_scans, wait_for_status, wait_until};
use monitor_core::{Event, Monitor, OrphanAction, ProcessState, Signal, TrackOptions};

/// A sleep that ignores SIGTERM, started in the background by the shell.
/// The shell ignores it before the fork, so the sleep ignores it from its
/// first instant (ignored dispositions survive fork and exec); a subshell
/// that set the trap itself could still be caught by a fast SIGTERM.
const STUBBORN: &str = "trap '' TERM; sleep 300 & echo $!; wait";

/// A tracked grandchild whose parent shell is killed is orphaned, gets the
/// termination signal, and dies of it (no SIGKILL needed); it is then
/// auto-untracked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchild_of_a_killed_parent_is_terminated() {
    let mut procs = Procs::new();
    let (monitor, handle, mut log) = common::fast_monitor(Duration::from_millis(500)).await;

    let shell = procs.spawn_shell("sleep 300 & echo $!; wait", 1);
    let sleep = shell.kid().clone();
    let tracked = handle.track(sleep.pid).await.unwrap();
    assert_eq!(tracked.id, sleep.id());
    assert_eq!(
        tracked.parent,
        shell.proc.id(),
        "the recorded parent is the shell"
    );
    assert!(!tracked.owned, "a grandchild is not ours to reap");

    procs.kill_and_reap(&shell.proc);
    let id = sleep.id();
    let (_, orphaned) = log
        .wait_for(
            SOON,
            "Orphaned",
            |e| matches!(e, Event::Orphaned { id: i, .. } if *i == id),
        )
        .await;
    assert_eq!(
        orphaned,
        Event::Orphaned {
            id,
            parent: shell.proc.id(),
            action: OrphanAction::Terminate
        }
    );
    let (_, signalled) = log
        .wait_for(
            SOON,
            "Signalled",
            |e| matches!(e, Event::Signalled { id: i, .. } if *i == id),
        )
        .await;
    assert_eq!(
        signalled,
        Event::Signalled {
            id,
            signal: Signal::TERM
        }
    );
    wait_until(SOON, "the orphaned sleep is dead", || sleep.is_dead()).await;
    log.wait_for(
        SOON,
        "Exited",
        |e| matches!(e, Event::Exited { id: i, .. } if *i == id),
    )
    .await;
    log.assert_none(
        "SIGKILL for a process that dies of SIGTERM",
        |e| matches!(e, Event::Killed { id: i } if *i == id),
    );
    let status = handle.status().await.unwrap();
    assert_eq!(status.tracked_count, 0, "{status:#?}");
    assert_eq!(status.counters.orphans_found, 1);
    assert_eq!(status.counters.orphans_terminated, 1);
    assert_eq!(status.counters.orphans_killed, 0);
    monitor.shutdown().await;
}

/// A tracked grandchild whose parent is alive is not an orphan, although
/// its parent is not the monitor's process: after several scans there is
/// no Orphaned or Signalled event for it and it still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchild_with_a_living_parent_is_left_alone() {
    let mut procs = Procs::new();
    let (monitor, handle, mut log) = common::fast_monitor(Duration::from_millis(200)).await;

    let shell = procs.spawn_shell("sleep 300 & echo $!; wait", 1);
    let sleep = shell.kid().clone();
    assert_ne!(
        common::read_stat(sleep.pid).unwrap().ppid,
        common::my_pid(),
        "the fixture must be a grandchild"
    );
    let tracked = handle.track(sleep.pid).await.unwrap();
    assert_eq!(tracked.parent, shell.proc.id());

    let status = wait_for_more_scans(&handle, 3, SOON).await;
    let id = sleep.id();
    log.assert_none("orphan handling of a process whose parent lives", |e| {
        matches!(
            e,
            Event::Orphaned { .. } | Event::Signalled { .. } | Event::Killed { .. }
        ) && e.id() == Some(id)
    });
    assert!(sleep.is_running(), "the grandchild was harmed");
    let entry = status
        .tracked
        .iter()
        .find(|t| t.id == id)
        .expect("still tracked");
    assert_eq!(entry.state, ProcessState::Running);
    assert_eq!(status.counters.orphans_found, 0);
    monitor.shutdown().await;
}

/// An orphan that ignores SIGTERM is SIGKILLed once the grace period has
/// passed, never earlier: Orphaned, Signalled, Killed in that order, with
/// at least the grace between the signal and the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ignoring_orphan_is_killed_after_the_grace_period() {
    let grace = Duration::from_millis(500);
    let mut procs = Procs::new();
    let (monitor, handle, mut log) = common::fast_monitor(grace).await;

    let shell = procs.spawn_shell(STUBBORN, 1);
    let sleep = shell.kid().clone();
    let id = handle.track(sleep.pid).await.unwrap().id;

    // Taken before the kill, so SIGKILL cannot come sooner than a grace
    // period after it (the orphan is signalled before the shell is reaped).
    let parent_died = Instant::now();
    procs.kill_and_reap(&shell.proc);
    let (orphaned_at, _) = log
        .wait_for(
            SOON,
            "Orphaned",
            |e| matches!(e, Event::Orphaned { id: i, .. } if *i == id),
        )
        .await;
    let (signalled_at, _) = log
        .wait_for(
            SOON,
            "Signalled",
            |e| matches!(e, Event::Signalled { id: i, .. } if *i == id),
        )
        .await;
    let (killed_at, _) = log
        .wait_for(
            SOON,
            "Killed",
            |e| matches!(e, Event::Killed { id: i } if *i == id),
        )
        .await;
    wait_until(SOON, "the stubborn orphan is dead", || sleep.is_dead()).await;
    log.wait_for(
        SOON,
        "Exited",
        |e| matches!(e, Event::Exited { id: i, .. } if *i == id),
    )
    .await;

    assert!(orphaned_at <= signalled_at && signalled_at <= killed_at);
    // Sound bound: SIGKILL cannot come before parent death + grace.
    let since_parent = killed_at - parent_died;
    assert!(
        since_parent >= grace,
        "Killed {since_parent:?} after the parent died, less than the grace {grace:?}"
    );
    // The log's timestamps lag emission by scheduling noise only.
    let since_signal = killed_at - signalled_at;
    let noise = Duration::from_millis(50);
    assert!(
        since_signal + noise >= grace,
        "Killed only {since_signal:?} after Signalled; grace is {grace:?}"
    );
    eprintln!(
        "stubborn orphan: orphaned after {:?}, SIGKILL {since_signal:?} after SIGTERM",
        orphaned_at - parent_died
    );
    let status = handle.status().await.unwrap();
    assert_eq!(status.counters.orphans_killed, 1);
    assert_eq!(status.tracked_count, 0);
    monitor.shutdown().await;
}

/// Fifty SIGTERM-ignoring orphans of one parent are escalated concurrently:
/// with a 1 s grace all are dead in about one grace period (well under the
/// 50 s a serial escalation would take), and none before the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_stubborn_orphans_take_about_one_grace_period() {
    const N: usize = 50;
    let grace = Duration::from_secs(1);
    let mut procs = Procs::new();
    let builder = Monitor::builder()
        .check_interval(Duration::from_millis(100))
        .grace(grace);
    let (monitor, handle, mut log) = common::spawn_monitor(builder).await;

    let script = format!("trap '' TERM; for i in $(seq {N}); do sleep 300 & echo $!; done; wait");
    let shell = procs.spawn_shell(&script, N);
    for kid in &shell.kids {
        handle.track(kid.pid).await.unwrap();
    }
    assert_eq!(handle.status().await.unwrap().tracked_count, N);

    // Taken before the kill: the orphans are signalled within a
    // millisecond of it, before the shell is even reaped, so this is the
    // sound lower bound for their SIGKILL.
    let parent_died = Instant::now();
    procs.kill_and_reap(&shell.proc);
    wait_until(Duration::from_secs(15), "all 50 orphans are dead", || {
        shell.kids.iter().all(common::Proc::is_dead)
    })
    .await;
    let elapsed = parent_died.elapsed();
    eprintln!(
        "{N} stubborn orphans with a {grace:?} grace: all dead {elapsed:?} after their parent"
    );
    assert!(
        elapsed >= grace,
        "orphans ignoring SIGTERM died {elapsed:?} after their parent, before the grace {grace:?}"
    );

    for kid in &shell.kids {
        let id = kid.id();
        let (killed_at, _) = log
            .wait_for(
                SOON,
                "Killed",
                |e| matches!(e, Event::Killed { id: i } if *i == id),
            )
            .await;
        assert!(
            killed_at - parent_died >= grace,
            "{id} killed before the grace"
        );
    }
    let status = wait_for_status(&handle, SOON, "every orphan untracked", |s| {
        s.tracked_count == 0
    })
    .await;
    assert_eq!(status.counters.orphans_found, N as u64);
    assert_eq!(status.counters.orphans_killed, N as u64);
    monitor.shutdown().await;
}

/// The `notify` action only reports: the orphan gets an Orphaned event and
/// the Orphaned state, and is neither signalled nor killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_action_reports_and_leaves_the_orphan_running() {
    let mut procs = Procs::new();
    let (monitor, handle, mut log) = common::fast_monitor(Duration::from_millis(200)).await;

    let shell = procs.spawn_shell("sleep 300 & echo $!; wait", 1);
    let sleep = shell.kid().clone();
    let id = handle
        .track_with(sleep.pid, TrackOptions::new().action(OrphanAction::Notify))
        .await
        .unwrap()
        .id;
    procs.kill_and_reap(&shell.proc);
    log.wait_for(
        SOON,
        "Orphaned",
        |e| matches!(e, Event::Orphaned { id: i, action: OrphanAction::Notify, .. } if *i == id),
    )
    .await;
    let status = wait_for_more_scans(&handle, 3, SOON).await;
    assert!(sleep.is_running(), "a notify-only orphan was harmed");
    log.assert_none("signals for a notify-only orphan", |e| {
        matches!(e, Event::Signalled { .. } | Event::Killed { .. }) && e.id() == Some(id)
    });
    let entry = status
        .tracked
        .iter()
        .find(|t| t.id == id)
        .expect("still tracked");
    assert_eq!(entry.state, ProcessState::Orphaned);
    // Orphaned is reported once, not on every scan.
    assert_eq!(
        log.matching(|e| matches!(e, Event::Orphaned { id: i, .. } if *i == id))
            .len(),
        1
    );
    monitor.shutdown().await;
}

/// A per-track grace and signal override the monitor's defaults: an orphan
/// tracked with `SIGINT` and a 300 ms grace under a 60 s default grace gets
/// SIGINT, and (ignoring it) SIGKILL well before the default grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_track_signal_overrides_the_default() {
    let mut procs = Procs::new();
    let (monitor, handle, mut log) = common::fast_monitor(Duration::from_secs(60)).await;

    // The shell ignores SIGINT before the fork, so the sleep ignores it from
    // its first instant (a non-interactive shell also makes its background
    // jobs ignore SIGINT, but only after the fork, which a fast SIGINT can
    // beat).
    let shell = procs.spawn_shell("trap '' INT; sleep 300 & echo $!; wait", 1);
    let sleep = shell.kid().clone();
    let options = TrackOptions::new()
        .signal(Signal::INT)
        .grace(Duration::from_millis(300));
    let tracked = handle.track_with(sleep.pid, options).await.unwrap();
    assert_eq!(tracked.signal, Signal::INT);
    assert_eq!(tracked.grace, Duration::from_millis(300));
    let id = tracked.id;
    procs.kill_and_reap(&shell.proc);
    // The sleep ignores SIGINT, so the SIGKILL must come after the
    // per-track 300 ms, not the default 60 s.
    let (_, signalled) = log
        .wait_for(
            SOON,
            "Signalled",
            |e| matches!(e, Event::Signalled { id: i, .. } if *i == id),
        )
        .await;
    assert_eq!(
        signalled,
        Event::Signalled {
            id,
            signal: Signal::INT
        }
    );
    log.wait_for(
        SOON,
        "Killed",
        |e| matches!(e, Event::Killed { id: i } if *i == id),
    )
    .await;
    wait_until(SOON, "the orphan is dead", || sleep.is_dead()).await;
    monitor.shutdown().await;
}
