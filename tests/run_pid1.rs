//! pidguard as PID 1 of a fresh PID namespace (`unshare --fork --pid
//! --mount-proc`, which needs root, as CI has): it reaps every orphan of
//! the namespace, and SIGTERM (which PID 1 only receives when it has a
//! handler) reaches CMD and ends both with CMD's status.
//!
//! `unshare` waits for its child (pidguard) and exits with its status, so
//! the test reads pidguard's exit code from `unshare`'s.

mod common;
mod runner;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, Procs, SOON, wait_until_blocking};
use runner::{Run, fixture};

/// `unshare --fork --pid --mount-proc --kill-child <argv...>`: the
/// namespace's PID 1 is `argv`, and it is SIGKILLed (ending the whole
/// namespace) if `unshare` dies, so the guard's SIGKILL cleans everything.
fn in_new_namespace(argv: &[&str]) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["--fork", "--pid", "--mount-proc", "--kill-child"])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The orphan fixture as CMD of pidguard as PID 1: every orphan is reaped.
#[test]
fn as_pid_1_every_orphan_is_reaped() {
    let script = fixture("orphans.sh").display().to_string();
    let mut procs = Procs::new();
    let run = Run::start(
        &mut procs,
        &mut in_new_namespace(&[
            runner::PIDGUARD,
            "run",
            "--",
            "sh",
            &script,
            "100",
            "2000",
            "20",
        ]),
    );
    let finished = run.finish(&mut procs, Duration::from_secs(30));
    assert_eq!(finished.code(), 0, "{finished:?}");
    assert_eq!(finished.stdout.last().map(String::as_str), Some("gone 100"));
    assert!(
        finished.stdout.iter().any(|l| l == "parent 1"),
        "CMD's parent (pidguard) is not PID 1: {finished:?}"
    );
}

/// The negative control: the same fixture in a namespace whose PID 1
/// (`sleep`, started by `exec`) never reaps. The orphans stay zombies and
/// the fixture's check fails, so the check above can fail too.
#[test]
fn a_pid_1_that_does_not_reap_leaves_zombies() {
    let script = fixture("orphans.sh").display().to_string();
    let shell = format!("sh {script} 100 2000 3 & exec sleep 60");
    let mut procs = Procs::new();
    let mut run = Run::start(&mut procs, &mut in_new_namespace(&["sh", "-c", &shell]));
    let line = run.expect_line(Duration::from_secs(30), "left ...", |l| {
        l.starts_with("left ") || l.starts_with("gone ")
    });
    // "left N zombies=Z": an orphan whose sleep ends before its shell
    // exits may be reaped by that shell, so N is not always 100.
    assert!(line.starts_with("left "), "{line}");
    let zombies: u32 = line
        .rsplit_once('=')
        .and_then(|(_, n)| n.parse().ok())
        .expect("a zombie count");
    assert!(zombies > 0, "{line}");
    // Dropping the guard SIGKILLs unshare, and --kill-child ends the
    // namespace's PID 1 and with it every process in it.
}

/// The pid of the only child of `parent`, pinned (by a pidfd opened before
/// the check that it is `parent`'s child).
fn only_child(procs: &mut Procs, parent: &Proc) -> Proc {
    let mut children = Vec::new();
    wait_until_blocking(SOON, "unshare has started its child", || {
        children = std::fs::read_dir(format!("/proc/{}/task", parent.pid))
            .map(|tasks| {
                tasks
                    .flatten()
                    .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
                    .flat_map(|l| {
                        l.split_ascii_whitespace()
                            .filter_map(|p| p.parse::<i32>().ok())
                            .collect::<Vec<_>>()
                    })
                    .collect()
            })
            .unwrap_or_default();
        !children.is_empty()
    });
    assert_eq!(children.len(), 1, "{children:?}");
    procs.pin_child_of(children[0], parent)
}

/// SIGTERM to pidguard as PID 1 reaches CMD, and CMD's status ends both:
/// a CMD that traps it exits 25 (its own code), one that does not dies of
/// it (143).
#[test]
fn as_pid_1_sigterm_ends_the_command_with_its_status() {
    let script = fixture("signals.sh").display().to_string();
    let cases: [(&[&str], i32); 2] = [
        (&["sh", &script], 25),
        (&["sh", "-c", "echo ready; exec sleep 60"], 143),
    ];
    for (cmd, code) in cases {
        let mut argv = vec![runner::PIDGUARD, "run", "--"];
        argv.extend_from_slice(cmd);
        let mut procs = Procs::new();
        let mut run = Run::start(&mut procs, &mut in_new_namespace(&argv));
        run.expect_line(SOON, "ready", |l| l.starts_with("ready"));
        let unshare = run.proc.clone();
        let pidguard = only_child(&mut procs, &unshare);
        runner::signal_pinned(&pidguard, rustix::process::Signal::TERM);
        let finished = run.finish(&mut procs, SOON);
        assert_eq!(finished.code(), code, "{cmd:?}: {finished:?}");
    }
}

/// A burst of 1,000 orphans exiting together is fully reaped by pidguard
/// as PID 1.
#[test]
fn as_pid_1_a_burst_of_a_thousand_is_fully_reaped() {
    let script = fixture("burst.sh").display().to_string();
    let mut procs = Procs::new();
    let run = Run::start(
        &mut procs,
        &mut in_new_namespace(&[runner::PIDGUARD, "run", "--", "sh", &script, "1000", "20"]),
    );
    let finished = run.finish(&mut procs, Duration::from_secs(60));
    assert_eq!(finished.code(), 0, "{finished:?}");
    assert_eq!(
        finished.stdout.last().map(String::as_str),
        Some("gone 1000")
    );
}
