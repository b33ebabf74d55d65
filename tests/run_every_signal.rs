//! Every catchable signal sent to pidguard, as an ordinary process and as
//! PID 1 of a fresh PID namespace, reaches CMD, and pidguard stays alive
//! until CMD exits, then exits with CMD's status. Before pidguard read its
//! signals from a signalfd, SIGSTKFLT, SIGIO, SIGXCPU, SIGXFSZ, SIGRTMAX,
//! 32, 33 and the fault signals sent with `kill` killed it (CMD ran on,
//! orphaned), a second SIGSEGV or SIGBUS too, and SIGPIPE was dropped.
//!
//! The job-control stops are checked apart: pidguard forwards them, then
//! stops itself, and SIGCONT continues both.

mod common;
mod runner;

use std::os::unix::process::CommandExt as _;
use std::process::Command;

use common::{Proc, Procs, SOON, wait_until_blocking};
use runner::{Run, in_new_namespace, only_child, pidguard_run, sh_fixture, signal_number_pinned};

/// The stops, checked by their own tests below.
const STOPS: [i32; 3] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

/// Every signal that can be caught, but SIGCHLD (pidguard's reaping) and
/// the stops.
fn catchable() -> Vec<i32> {
    (1..=64)
        .filter(|n| ![libc::SIGKILL, libc::SIGSTOP, libc::SIGCHLD].contains(n))
        .filter(|n| !STOPS.contains(n))
        .collect()
}

/// The C library's own two: a shell cannot trap them, so CMD is `sleep`,
/// which they kill, and pidguard must exit with 128 + N. (The test resets
/// them to the default for pidguard: the C library's `posix_spawn`, which
/// started this test, leaves them ignored, and CMD would inherit that.)
fn reserved(number: i32) -> bool {
    (32..=33).contains(&number)
}

/// Resets signals 32 and 33 to their default action in `command`'s child,
/// with the system call itself (the C library's `sigaction` refuses them).
fn default_reserved_signals(command: &mut Command) {
    // SAFETY: between fork and exec, two raw `rt_sigaction` calls with a
    // zeroed kernel action (SIG_DFL, no flags, empty mask): async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let action = [0u64; 4];
            for number in [32, 33] {
                let rc = libc::syscall(
                    libc::SYS_rt_sigaction,
                    number,
                    action.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8,
                );
                if rc != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// How pidguard is started for one signal.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Ordinary,
    Pid1,
}

/// Starts `pidguard run -- CMD` (under `unshare` for PID 1) and returns the
/// run and pidguard's pinned process, once CMD is ready.
fn start(procs: &mut Procs, mode: Mode, cmd: &[String]) -> (Run, Proc) {
    let mut argv = vec![
        runner::PIDGUARD.to_owned(),
        "run".into(),
        "--grace".into(),
        "100ms".into(),
        "--".into(),
    ];
    argv.extend(cmd.iter().cloned());
    let mut command = match mode {
        Mode::Ordinary => pidguard_run(&["--grace", "100ms"], &argv[5..]),
        Mode::Pid1 => in_new_namespace(&argv),
    };
    default_reserved_signals(&mut command);
    let mut run = Run::start(procs, &mut command);
    run.expect_line(SOON, "ready", |l| l.starts_with("ready"));
    let pidguard = match mode {
        Mode::Ordinary => run.proc.clone(),
        Mode::Pid1 => {
            let unshare = run.proc.clone();
            only_child(procs, &unshare)
        }
    };
    (run, pidguard)
}

/// Sends each catchable signal twice (a first SIGSEGV used to disarm the
/// second) and checks CMD got both and pidguard exited with CMD's code.
fn every_signal_reaches_the_command(mode: Mode) {
    for number in catchable() {
        let mut procs = Procs::new();
        if reserved(number) {
            let cmd = ["sh", "-c", "echo ready; exec sleep 60"].map(String::from);
            let (run, pidguard) = start(&mut procs, mode, &cmd);
            signal_number_pinned(&pidguard, number);
            let finished = run.finish(&mut procs, SOON);
            assert_eq!(
                finished.code(),
                128 + number,
                "{mode:?} {number}: {finished:?}"
            );
            continue;
        }
        let cmd = sh_fixture("catch.sh", &[&number.to_string(), "2"]);
        let (mut run, pidguard) = start(&mut procs, mode, &cmd);
        signal_number_pinned(&pidguard, number);
        let first = format!("got {number} 1");
        run.expect_line(SOON, &first, |l| l == first);
        assert!(pidguard.is_running(), "{mode:?} {number}: pidguard died");
        signal_number_pinned(&pidguard, number);
        let finished = run.finish(&mut procs, SOON);
        assert!(
            finished
                .stdout
                .iter()
                .any(|l| *l == format!("got {number} 2")),
            "{mode:?} {number}: {finished:?}"
        );
        assert_eq!(finished.code(), 42, "{mode:?} {number}: {finished:?}");
    }
}

#[test]
fn every_catchable_signal_reaches_the_command() {
    every_signal_reaches_the_command(Mode::Ordinary);
}

#[test]
fn every_catchable_signal_reaches_the_command_as_pid_1() {
    if runner::pid_namespaces_or_skip("every_catchable_signal_reaches_the_command_as_pid_1") {
        every_signal_reaches_the_command(Mode::Pid1);
    }
}

fn state(proc: &Proc) -> Option<char> {
    proc.stat().map(|s| s.state)
}

/// CMD is `sleep`, in a process group that is not orphaned (pidguard, its
/// parent, is in another group of the same session), so each stop stops
/// it. pidguard forwards the stop and stops itself, unless it is PID 1
/// (the kernel never stops a namespace's init); SIGCONT to pidguard then
/// continues both, and SIGTERM ends them with CMD's status.
fn stops_stop_both_and_cont_continues_both(mode: Mode) {
    for number in STOPS {
        let mut procs = Procs::new();
        let cmd = ["sh", "-c", "echo ready; exec sleep 60"].map(String::from);
        let (run, pidguard) = start(&mut procs, mode, &cmd);
        let children = common::children_of(pidguard.pid);
        assert_eq!(children.len(), 1, "{children:?}");
        let sleep = procs.pin_child_of(children[0], &pidguard);
        signal_number_pinned(&pidguard, number);
        wait_until_blocking(SOON, "CMD is stopped", || state(&sleep) == Some('T'));
        match mode {
            Mode::Ordinary => {
                wait_until_blocking(SOON, "pidguard is stopped", || {
                    state(&pidguard) == Some('T')
                });
            }
            Mode::Pid1 => assert_ne!(state(&pidguard), Some('T'), "PID 1 stopped"),
        }
        signal_number_pinned(&pidguard, libc::SIGCONT);
        wait_until_blocking(SOON, "both run again", || {
            state(&pidguard).is_some_and(|s| s != 'T') && state(&sleep).is_some_and(|s| s != 'T')
        });
        signal_number_pinned(&pidguard, libc::SIGTERM);
        let finished = run.finish(&mut procs, SOON);
        assert_eq!(finished.code(), 143, "{mode:?} {number}: {finished:?}");
    }
}

#[test]
fn stops_stop_pidguard_and_the_command_and_cont_continues_both() {
    stops_stop_both_and_cont_continues_both(Mode::Ordinary);
}

#[test]
fn stops_reach_the_command_as_pid_1_and_cont_continues_it() {
    if runner::pid_namespaces_or_skip("stops_reach_the_command_as_pid_1_and_cont_continues_it") {
        stops_stop_both_and_cont_continues_both(Mode::Pid1);
    }
}
