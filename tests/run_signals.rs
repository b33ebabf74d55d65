//! Signals: what pidguard receives reaches CMD (or CMD's whole process
//! group with `--signal-group`), CMD starts with the caller's signal mask
//! and ignored signals rather than pidguard's, and CMD owns the terminal's
//! foreground when pidguard did.

mod common;
mod runner;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use common::{Procs, SOON};
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use runner::{Run, pidguard_run, sh_fixture};

/// Sends `signal` to a direct child of the test that has not been reaped
/// (its `Child` is held by the guard), so the pid cannot have been reused.
fn send(run: &Run, signal: Signal) {
    signal::kill(nix::unistd::Pid::from_raw(run.proc.pid), signal)
        .unwrap_or_else(|e| panic!("kill({}, {signal}): {e}", run.proc.pid));
}

/// Each signal sent to pidguard reaches CMD, which names it on stdout and
/// exits with 10 + its number; pidguard exits with that code. Each signal
/// is checked in its own run, so one forwarded by accident would be seen.
#[test]
fn received_signals_reach_the_command() {
    let signals = [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGQUIT,
        Signal::SIGWINCH,
        Signal::SIGCONT,
    ];
    for signal in signals {
        let mut procs = Procs::new();
        let mut run = Run::start(
            &mut procs,
            &mut pidguard_run(&["--grace", "100ms"], &sh_fixture("signals.sh", &[])),
        );
        run.expect_line(SOON, "ready", |line| line.starts_with("ready "));
        send(&run, signal);
        let name = signal.as_str().trim_start_matches("SIG");
        let finished = run.finish(&mut procs, SOON);
        assert_eq!(
            finished.stdout.last().map(String::as_str),
            Some(format!("got {name}").as_str()),
            "{finished:?}"
        );
        assert_eq!(finished.code(), 10 + signal as i32, "{finished:?}");
    }
}

/// With `--signal-group`, a grandchild in CMD's process group gets the
/// signal too; without it, only CMD does (the grandchild stays silent until
/// it is killed as a leftover): the negative control.
#[test]
fn signal_group_reaches_the_grandchild_too() {
    for group in [true, false] {
        let mut options = vec!["--grace", "300ms"];
        if group {
            options.push("--signal-group");
        }
        let mut procs = Procs::new();
        let mut run = Run::start(
            &mut procs,
            &mut pidguard_run(&options, &sh_fixture("group.sh", &[])),
        );
        run.expect_line(SOON, "child ready", |l| l == "child ready");
        run.expect_line(SOON, "grandchild ready", |l| l == "grandchild ready");
        send(&run, Signal::SIGUSR1);
        let finished = run.finish(&mut procs, SOON);
        assert_eq!(finished.code(), 0, "{finished:?}");
        assert!(
            finished.stdout.iter().any(|l| l == "child got USR1"),
            "{finished:?}"
        );
        let grandchild_got_it = finished.stdout.iter().any(|l| l == "grandchild got USR1");
        assert_eq!(
            grandchild_got_it, group,
            "signal_group={group}: {finished:?}"
        );
    }
}

/// The `SigBlk` and `SigIgn` masks of the process that runs
/// `grep ^Sig(Blk|Ign) /proc/self/status`, started by `command`.
fn masks(command: &mut Command) -> (u64, u64) {
    let finished = runner::run_to_end(command);
    assert_eq!(finished.code(), 0, "{finished:?}");
    let field = |name: &str| {
        let line = finished
            .stdout
            .iter()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {finished:?}"));
        u64::from_str_radix(line.trim(), 16).expect("hex mask")
    };
    (field("SigBlk:"), field("SigIgn:"))
}

/// The caller blocks SIGUSR2 and ignores SIGHUP: CMD starts with exactly
/// that, although pidguard itself unblocks everything, handles SIGHUP and
/// ignores SIGTTOU/SIGTTIN. The same command started directly shows the
/// caller's setup is really there (so the comparison means something).
#[test]
fn the_command_gets_the_callers_mask_and_ignored_signals() {
    let grep = ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"];
    let caller_setup = |command: &mut Command| {
        // SAFETY: only async-signal-safe calls (sigprocmask, sigaction).
        unsafe {
            command.pre_exec(|| {
                let mut blocked = SigSet::empty();
                blocked.add(Signal::SIGUSR2);
                signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None)?;
                signal::signal(Signal::SIGHUP, SigHandler::SigIgn)?;
                Ok(())
            });
        }
    };
    let mut direct = Command::new(grep[0]);
    direct
        .args(&grep[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    caller_setup(&mut direct);
    let mut supervised = pidguard_run(&[], &grep);
    caller_setup(&mut supervised);

    let bit = |signal: Signal| 1u64 << (signal as i32 - 1);
    let (blocked, ignored) = masks(&mut direct);
    assert_ne!(
        blocked & bit(Signal::SIGUSR2),
        0,
        "the caller setup did not apply"
    );
    assert_ne!(
        ignored & bit(Signal::SIGHUP),
        0,
        "the caller setup did not apply"
    );
    assert_eq!(
        ignored & bit(Signal::SIGTTOU),
        0,
        "SIGTTOU ignored from the start"
    );
    // Bit for bit: whatever else the test process had is passed on too.
    let (cmd_blocked, cmd_ignored) = masks(&mut supervised);
    assert_eq!(
        cmd_blocked, blocked,
        "mask: {cmd_blocked:#x} vs {blocked:#x}"
    );
    assert_eq!(
        cmd_ignored, ignored,
        "ignored: {cmd_ignored:#x} vs {ignored:#x}"
    );
}

/// Under a terminal (`script` gives it one), CMD leads its own process
/// group and that group is the terminal's foreground, so CMD can read from
/// the terminal; with stdin not a terminal, the foreground is left alone
/// (the negative control: the check tells the two apart).
#[test]
fn the_command_owns_the_terminal_foreground() {
    if Command::new("script").arg("--version").output().is_err() {
        panic!("util-linux `script` is needed to give the test a terminal");
    }
    for tty in [true, false] {
        let redirect = if tty { "" } else { " < /dev/null" };
        // CMD reports its group and the foreground group, then reads a line
        // from the terminal: a background CMD would be stopped by SIGTTIN.
        let inner = format!(
            "{} run -- sh {}{redirect}",
            runner::PIDGUARD,
            runner::fixture("tty.sh").display()
        );
        let mut command = Command::new("script");
        command
            .args(["-qec", &inner, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut procs = Procs::new();
        let mut run = Run::start(&mut procs, &mut command);
        let line = run.expect_line(SOON, "pgrp/tpgid", |l| l.contains("pgrp="));
        let (pgrp, tpgid) = parse_groups(&line);
        assert_eq!(pgrp == tpgid, tty, "tty={tty}: {line}");
        let mut stdin = run.stdin.take().expect("piped stdin");
        writeln!(stdin, "hello").expect("write to the terminal");
        if tty {
            run.expect_line(SOON, "read hello", |l| l.trim_end() == "read hello");
        }
        let finished = run.finish(&mut procs, SOON);
        assert_eq!(finished.code(), 0, "tty={tty}: {finished:?}");
    }
}

/// Ctrl-Z at the terminal stops CMD (its group is the foreground), and
/// pidguard stops with it, so the shell that started pidguard would see its
/// job stopped; SIGCONT to pidguard (what `fg` sends) continues both, and
/// CMD owns the terminal again (it reads the next line). Without this
/// pidguard would keep running with CMD stopped, and the wait for its
/// stopped state would time out.
#[test]
fn ctrl_z_stops_pidguard_with_the_command_and_fg_continues_both() {
    // `; exit $?` keeps a shell as pidguard's parent, standing in for the
    // interactive shell (`script` itself would stop along with a stopped
    // child of its own, and the test would lose the terminal).
    let inner = format!(
        "{} run -- sh {}; exit $?",
        runner::PIDGUARD,
        runner::fixture("stop.sh").display()
    );
    let mut command = Command::new("script");
    command
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut procs = Procs::new();
    let mut run = Run::start(&mut procs, &mut command);
    let line = run.expect_line(SOON, "pidguard <pid>", |l| l.starts_with("pidguard "));
    let pid = line["pidguard ".len()..].trim().parse().expect("a pid");
    let pidguard = procs.pin(pid);
    let state = |proc: &common::Proc| proc.stat().map(|s| s.state);
    let mut terminal = run.stdin.take().expect("piped stdin");
    writeln!(terminal, "one").expect("type a line");
    run.expect_line(SOON, "got one", |l| l.trim_end() == "got one");

    // Ctrl-Z: the terminal's suspend character.
    terminal.write_all(b"\x1a").expect("type Ctrl-Z");
    common::wait_until_blocking(SOON, "pidguard is stopped", || {
        state(&pidguard) == Some('T')
    });

    runner::signal_pinned(&pidguard, rustix::process::Signal::CONT);
    common::wait_until_blocking(SOON, "pidguard runs again", || {
        state(&pidguard).is_some_and(|s| s != 'T')
    });
    writeln!(terminal, "two").expect("type a line");
    run.expect_line(SOON, "got two", |l| l.trim_end() == "got two");

    // Ctrl-D: end of file for CMD's read loop.
    terminal.write_all(b"\x04").expect("type Ctrl-D");
    let finished = run.finish(&mut procs, SOON);
    assert_eq!(finished.code(), 0, "{finished:?}");
}

fn parse_groups(line: &str) -> (i32, i32) {
    let value = |key: &str| -> i32 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
    };
    (value("pgrp="), value("tpgid="))
}
