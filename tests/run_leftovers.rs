//! Leftovers: the descendants still alive when CMD exits get SIGTERM, then
//! SIGKILL after `--grace`, and pidguard exits as soon as the last one is
//! gone (not at a fixed time). `--grace 0` kills at once, a second SIGTERM
//! cuts the grace short, and `--leave-orphans` leaves them running.
//!
//! Each fixture prints its leftovers' pids and waits for its stdin to
//! close before CMD exits, so the test pins every leftover (by pidfd)
//! while it is certainly the process the fixture started.

mod common;
mod runner;

use std::process::Stdio;
use std::time::Duration;

use common::{Proc, Procs, SOON, wait_until_blocking};
use runner::{Finished, Run, pidguard_run, sh_fixture};

/// Starts `pidguard run <options> -- sh leftovers.sh <mode...>`, pins the
/// `expected` leftovers it reports, then lets CMD exit.
fn start(procs: &mut Procs, options: &[&str], mode: &[&str], expected: usize) -> (Run, Vec<Proc>) {
    let mut command = pidguard_run(options, &sh_fixture("leftovers.sh", mode));
    command.stdin(Stdio::piped());
    let mut run = Run::start(procs, &mut command);
    let mut leftovers = Vec::new();
    let mut seen = Vec::new();
    while leftovers.len() < expected {
        let line = run.expect_line(SOON, "leftover <pid>", |l| {
            l.starts_with("leftover ") && !seen.contains(&l.to_owned())
        });
        seen.push(line.clone());
        let pid = line["leftover ".len()..].trim().parse().expect("a pid");
        leftovers.push(procs.pin(pid));
    }
    (run, leftovers)
}

/// Lets CMD exit (its stdin closes).
fn release(run: &mut Run) {
    drop(run.stdin.take());
}

/// The stderr lines that say `what` about `pid` (from `-v` logs).
fn log_lines<'a>(finished: &'a Finished, pid: i32, what: &str) -> Vec<&'a str> {
    finished
        .stderr
        .lines()
        .filter(|l| l.contains(what) && l.contains(&format!("pid={pid} ")))
        .collect()
}

/// A leftover that ignores SIGTERM is SIGKILLed once the grace period is
/// over, and pidguard exits right after it: well before its own give-up
/// bound (grace + 5 s), with the leftover reaped.
#[test]
fn stubborn_leftover_is_killed_after_the_grace_period() {
    let mut procs = Procs::new();
    let (mut run, leftovers) = start(&mut procs, &["-vv", "--grace", "1s"], &["stubborn"], 1);
    let stubborn = &leftovers[0];
    release(&mut run);
    let finished = run.finish(&mut procs, SOON);
    assert_eq!(finished.code(), 0, "{finished:?}");
    assert!(
        stubborn.is_reaped(),
        "the stubborn leftover survived: {finished:?}"
    );
    assert!(
        finished.elapsed >= Duration::from_secs(1),
        "killed before the grace period ended: {finished:?}"
    );
    assert!(
        finished.elapsed < Duration::from_secs(6),
        "pidguard ran into its give-up bound instead of ending with the leftover: {finished:?}"
    );
    let signalled = log_lines(&finished, stubborn.pid, "leftover signalled");
    assert!(
        signalled[0].contains("SIGTERM") && signalled[1].contains("SIGKILL"),
        "{signalled:?}"
    );
    let reaped = log_lines(&finished, stubborn.pid, "reaped");
    assert!(
        reaped.iter().any(|l| l.contains("killed by SIGKILL")),
        "{finished:?}"
    );
}

/// Leftovers that die of SIGTERM end the run at once: with a 60 s grace
/// period, pidguard still exits within the test's 10 s deadline (it waits
/// for the leftovers, not for the clock), and every one is reaped.
#[test]
fn well_behaved_leftovers_end_the_run_without_waiting_for_the_grace() {
    let mut procs = Procs::new();
    let (mut run, leftovers) = start(&mut procs, &["-v", "--grace", "60s"], &["calm", "20"], 20);
    release(&mut run);
    let finished = run.finish(&mut procs, SOON);
    assert_eq!(finished.code(), 0, "{finished:?}");
    for leftover in &leftovers {
        assert!(
            leftover.is_reaped(),
            "{} is left: {finished:?}",
            leftover.pid
        );
        assert_eq!(
            log_lines(&finished, leftover.pid, "leftover signalled").len(),
            1,
            "{} got other than one SIGTERM: {}",
            leftover.pid,
            finished.stderr
        );
    }
}

/// A two-level tree of stubborn leftovers: both levels get SIGTERM before
/// either gets SIGKILL, so the whole tree takes one grace period, not one
/// per level.
#[test]
fn a_tree_of_leftovers_is_signalled_at_once() {
    let mut procs = Procs::new();
    let (mut run, leftovers) = start(&mut procs, &["-v", "--grace", "500ms"], &["tree"], 2);
    release(&mut run);
    let finished = run.finish(&mut procs, SOON);
    assert_eq!(finished.code(), 0, "{finished:?}");
    let signals: Vec<&str> = finished
        .stderr
        .lines()
        .filter(|l| l.contains("leftover signalled"))
        .collect();
    let first_kill = signals
        .iter()
        .position(|l| l.contains("SIGKILL"))
        .unwrap_or_else(|| panic!("nothing was SIGKILLed: {}", finished.stderr));
    for leftover in &leftovers {
        assert!(
            leftover.is_reaped(),
            "{} is left: {finished:?}",
            leftover.pid
        );
        let term = signals
            .iter()
            .position(|l| l.contains("SIGTERM") && l.contains(&format!("pid={} ", leftover.pid)))
            .unwrap_or_else(|| panic!("{} never got SIGTERM: {}", leftover.pid, finished.stderr));
        assert!(term < first_kill, "{signals:#?}");
    }
}

/// A child a leftover starts after pidguard's first walk of the tree (here:
/// in its SIGTERM trap) is found when that leftover dies and comes to
/// pidguard (the look at its children after a `Reaped` event), and is
/// terminated in turn; without that look pidguard would wait out its
/// bound and exit with the child still running.
#[test]
fn a_child_started_during_the_grace_period_is_found_when_its_parent_dies() {
    let mut procs = Procs::new();
    let (mut run, leftovers) = start(&mut procs, &["-v", "--grace", "300ms"], &["late"], 1);
    release(&mut run);
    let line = run.expect_line(SOON, "late <pid>", |l| l.starts_with("late "));
    let late = procs.pin(line["late ".len()..].trim().parse().expect("a pid"));
    let finished = run.finish(&mut procs, SOON);
    assert_eq!(finished.code(), 0, "{finished:?}");
    assert!(leftovers[0].is_reaped(), "{finished:?}");
    assert!(late.is_reaped(), "the late child is left: {finished:?}");
    // SIGKILLed on its own, or with the whole unit by its cgroup (where
    // pidguard may make one: as root).
    let signalled = log_lines(&finished, late.pid, "leftover signalled");
    assert!(
        signalled.iter().any(|l| l.contains("SIGKILL"))
            || finished.stderr.contains("the unit's cgroup was killed"),
        "{}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("giving up"),
        "ran into the bound: {}",
        finished.stderr
    );
}

/// `--grace 0`: a leftover that ignores SIGTERM is SIGKILLed at once, and
/// never sent SIGTERM first.
#[test]
fn grace_zero_kills_at_once() {
    let mut procs = Procs::new();
    let (mut run, leftovers) = start(&mut procs, &["-v", "--grace", "0"], &["stubborn"], 1);
    release(&mut run);
    let finished = run.finish(&mut procs, SOON);
    assert_eq!(finished.code(), 0, "{finished:?}");
    assert!(leftovers[0].is_reaped(), "{finished:?}");
    let signalled = log_lines(&finished, leftovers[0].pid, "leftover signalled");
    assert_eq!(signalled.len(), 1, "{signalled:?}");
    assert!(signalled[0].contains("SIGKILL"), "{signalled:?}");
}

/// A SIGTERM or SIGINT to pidguard during the grace period skips to
/// SIGKILL: with a 60 s grace period the leftover (which survives SIGTERM,
/// and says so) is gone within the test's deadline.
#[test]
fn sigterm_or_sigint_during_the_grace_period_kills_at_once() {
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let mut procs = Procs::new();
        let (mut run, leftovers) = start(&mut procs, &["-v", "--grace", "60s"], &["reporting"], 1);
        release(&mut run);
        // The leftover got pidguard's SIGTERM and carries on: the grace runs.
        run.expect_line(SOON, "leftover got TERM", |l| l == "leftover got TERM");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.proc.pid), signal)
            .expect("signal pidguard (our unreaped child)");
        let finished = run.finish(&mut procs, SOON);
        assert_eq!(finished.code(), 0, "{signal}: {finished:?}");
        assert!(leftovers[0].is_reaped(), "{signal}: {finished:?}");
        assert!(
            finished.stderr.contains("skipping the grace period"),
            "{signal}: {}",
            finished.stderr
        );
    }
}

/// `--leave-orphans`: pidguard exits with CMD and the leftovers keep
/// running (tini's behaviour); the guard kills them afterwards.
#[test]
fn leave_orphans_leaves_them_running() {
    let mut procs = Procs::new();
    let (mut run, leftovers) = start(&mut procs, &["--leave-orphans"], &["calm", "3"], 3);
    release(&mut run);
    let finished = run.finish(&mut procs, SOON);
    assert_eq!(finished.code(), 0, "{finished:?}");
    for leftover in &leftovers {
        assert!(
            leftover.is_running(),
            "{} was ended: {finished:?}",
            leftover.pid
        );
        leftover.kill();
    }
    wait_until_blocking(SOON, "the leftovers die of SIGKILL", || {
        leftovers.iter().all(Proc::is_dead)
    });
}
