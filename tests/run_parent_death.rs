//! `-p/--parent-death-signal`: when pidguard's parent dies, the kernel
//! sends pidguard the signal, which is handled as if it had been sent:
//! forwarded to CMD, whose status ends pidguard. This test binary makes
//! itself a child subreaper (a process-wide setting, hence a binary of its
//! own), so the orphaned pidguard comes to it and its exit code is seen.

mod common;
mod runner;

use std::process::{Command, Stdio};

use common::{Procs, SOON};
use runner::Run;

/// `sh -c 'pidguard run <options> -- sh signals.sh & wait'` with `env`:
/// kills the shell (pidguard's parent) once CMD is ready, and returns what
/// pidguard then did: its exit code, or `None` if it was still running.
fn parent_dies(options: &str, env: Option<(&str, &str)>) -> Option<i32> {
    nix::sys::prctl::set_child_subreaper(true).expect("prctl(PR_SET_CHILD_SUBREAPER)");
    let script =
        format!("\"$0\" run --grace 100ms {options} -- sh \"$1\" & echo \"pidguard $!\"; wait",);
    let mut command = Command::new("sh");
    command
        .args(["-c", &script, runner::PIDGUARD])
        .arg(runner::fixture("signals.sh"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((name, value)) = env {
        command.env(name, value);
    }
    let mut procs = Procs::new();
    let mut run = Run::start(&mut procs, &mut command);
    let line = run.expect_line(SOON, "pidguard <pid>", |l| l.starts_with("pidguard "));
    let pid: i32 = line["pidguard ".len()..].parse().expect("a pid");
    let pidguard = procs.pin_child_of(pid, &run.proc);
    let ready = run.expect_line(SOON, "ready", |l| l.starts_with("ready "));
    // CMD, pinned: the guard kills it if pidguard does not end it.
    let cmd = procs.pin(ready["ready ".len()..].trim().parse().expect("a pid"));
    let shell = run.proc.clone();
    procs.kill_and_reap(&shell);
    // pidguard is now this process's child (we are its subreaper).
    let deadline = std::time::Instant::now() + SOON;
    loop {
        match nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pidguard.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        ) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => return Some(code),
            Ok(other) if std::time::Instant::now() > deadline => {
                panic!("pidguard: {other:?} after its parent died")
            }
            Ok(_) => {
                // Without -p, pidguard keeps running: that is the answer
                // once it has had ample time to act on a signal.
                if options.is_empty()
                    && env.is_none()
                    && std::time::Instant::now() > deadline - SOON / 2
                {
                    runner::signal_number_pinned(&pidguard, libc::SIGKILL);
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pidguard.pid), None);
                    // Killed, pidguard could not end CMD nor remove its
                    // cgroup (where it had one): do both here.
                    cmd.kill();
                    common::wait_until_blocking(SOON, "CMD is gone", || cmd.is_dead());
                    common::remove_cgroups_of(pidguard.pid.unsigned_abs());
                    return None;
                }
                std::thread::sleep(common::POLL);
            }
            Err(error) => panic!("waitpid({}): {error}", pidguard.pid),
        }
    }
}

#[test]
fn the_parent_death_signal_reaches_the_command() {
    // signals.sh exits 25 on SIGTERM and 20 on SIGUSR1.
    assert_eq!(parent_dies("-p TERM", None), Some(25));
    assert_eq!(
        parent_dies("", Some(("PIDGUARD_RUN_PARENT_DEATH_SIGNAL", "USR1"))),
        Some(20)
    );
    // The negative control: without it, pidguard runs on.
    assert_eq!(parent_dies("", None), None);
}
