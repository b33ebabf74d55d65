//! Running the real `pidguard` binary in tests: [`Pidguard`] builds the
//! command line, [`Run`] is a started `pidguard run` whose stdout lines and
//! stderr are collected on helper threads, so a test waits for a line or
//! for the exit with a deadline and never hangs.
//!
//! The process is held by a [`common::Procs`] guard, so it is `SIGKILL`ed
//! (through a pidfd) and reaped even when the test fails. The fixtures'
//! own processes only ever sleep for bounded times, so nothing outlives a
//! failed test for long.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use crate::common::{Proc, Procs, SOON};

/// The binary under test.
pub(crate) const PIDGUARD: &str = env!("CARGO_BIN_EXE_pidguard");

/// A fixture script from `tests/fixtures`.
pub(crate) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `pidguard run <options> -- <cmd...>` with stdin null and stdout/stderr
/// piped.
pub(crate) fn pidguard_run<S: AsRef<OsStr>>(options: &[&str], cmd: &[S]) -> Command {
    let mut command = Command::new(PIDGUARD);
    command
        .arg("run")
        .args(options)
        .arg("--")
        .args(cmd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// `sh <fixture> <args...>` as a command line for [`pidguard_run`].
pub(crate) fn sh_fixture(name: &str, args: &[&str]) -> Vec<String> {
    let mut argv = vec!["sh".to_owned(), fixture(name).display().to_string()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv
}

/// A started process (usually `pidguard run`) with its output collected.
pub(crate) struct Run {
    /// The process, pinned by the guard.
    pub(crate) proc: Proc,
    /// Its stdin, if piped; dropping it closes it.
    pub(crate) stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stdout_seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: std::thread::JoinHandle<()>,
}

impl Run {
    /// Starts `command` under `procs`; its stdout and stderr must be piped.
    pub(crate) fn start(procs: &mut Procs, command: &mut Command) -> Self {
        let spawned = procs.spawn(command);
        let proc = spawned.proc;
        let stdin = spawned.stdin;
        let stdout = spawned.stdout.expect("stdout piped");
        let stderr = procs.child_mut(&proc).stderr.take().expect("stderr piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let collected = Arc::new(Mutex::new(String::new()));
        let into = Arc::clone(&collected);
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut text = into.lock().unwrap_or_else(PoisonError::into_inner);
                text.push_str(&line);
                text.push('\n');
            }
        });
        Self {
            proc,
            stdin,
            lines,
            stdout_seen: Vec::new(),
            stderr: collected,
            stderr_reader,
        }
    }

    /// Waits up to `timeout` for a stdout line for which `matches` holds
    /// (one seen earlier counts too, so lines may come in any order) and
    /// returns it; panics naming `what` (and the lines seen) otherwise.
    pub(crate) fn expect_line(
        &mut self,
        timeout: Duration,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        if let Some(line) = self.stdout_seen.iter().find(|line| matches(line)) {
            return line.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout_seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stdout line {what} within {timeout:?}; stdout so far: {:?}",
                    self.stdout_seen
                ),
            }
        }
    }

    /// Waits up to `timeout` for the process to exit; panics otherwise.
    /// Returns its status and everything it wrote to stdout and stderr.
    pub(crate) fn finish(mut self, procs: &mut Procs, timeout: Duration) -> Finished {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = procs.child_mut(&self.proc).try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                start.elapsed() < timeout,
                "pid {} did not exit within {timeout:?}; stdout: {:?}; stderr so far:\n{}",
                self.proc.pid,
                self.stdout_seen,
                self.stderr.lock().unwrap_or_else(PoisonError::into_inner)
            );
            std::thread::sleep(crate::common::POLL);
        };
        let elapsed = start.elapsed();
        // The writers are gone (or are leftovers that would keep a pipe
        // open: a bounded wait, then whatever arrived).
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.stdout_seen.push(line);
        }
        // Leftovers that inherited stderr may hold it open: wait for the
        // end of it only briefly.
        let until = Instant::now() + Duration::from_secs(1);
        while !self.stderr_reader.is_finished() && Instant::now() < until {
            std::thread::sleep(crate::common::POLL);
        }
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Finished {
            status,
            elapsed,
            stdout: self.stdout_seen,
            stderr,
        }
    }
}

/// Sends `signal` to a pinned process through a fresh pidfd, after checking
/// that the pid still names the pinned process (same start time).
pub(crate) fn signal_pinned(proc: &Proc, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(proc.pid).expect("positive pid");
    let pidfd =
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).expect("pidfd_open");
    let stat = crate::common::read_stat(proc.pid).expect("still there");
    assert_eq!(
        stat.start_time, proc.start_time,
        "pid {} was reused",
        proc.pid
    );
    rustix::process::pidfd_send_signal(&pidfd, signal).expect("pidfd_send_signal");
}

/// How a [`Run`] ended.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Its exit status.
    pub(crate) status: ExitStatus,
    /// From the call to [`Run::finish`] to the exit.
    pub(crate) elapsed: Duration,
    /// Its stdout, line by line.
    pub(crate) stdout: Vec<String>,
    /// Its stderr.
    pub(crate) stderr: String,
}

impl Finished {
    /// The exit code; panics (showing stderr) if it was killed instead.
    pub(crate) fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {self:?}"))
    }
}

/// Runs `command` to completion (within [`SOON`]) and returns how it ended.
pub(crate) fn run_to_end(command: &mut Command) -> Finished {
    let mut procs = Procs::new();
    Run::start(&mut procs, command).finish(&mut procs, SOON)
}

/// Sends signal `number` (any of 1..=64, real-time ones too) to a pinned
/// process through a fresh pidfd, after checking that the pid still names
/// it (same start time).
pub(crate) fn signal_number_pinned(proc: &Proc, number: i32) {
    let pid = rustix::process::Pid::from_raw(proc.pid).expect("positive pid");
    let pidfd =
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).expect("pidfd_open");
    let stat = crate::common::read_stat(proc.pid).expect("still there");
    assert_eq!(
        stat.start_time, proc.start_time,
        "pid {} was reused",
        proc.pid
    );
    use std::os::fd::AsRawFd as _;
    // SAFETY: a valid pidfd, a signal number and a null info pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            number,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "pidfd_send_signal({}, {number}): {}",
        proc.pid,
        std::io::Error::last_os_error()
    );
}

/// `unshare --fork --pid --mount-proc --kill-child <argv...>`: the
/// namespace's PID 1 is `argv`, and it is SIGKILLed (ending the whole
/// namespace) if `unshare` dies, so the guard's SIGKILL cleans everything.
pub(crate) fn in_new_namespace<S: AsRef<OsStr>>(argv: &[S]) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["--fork", "--pid", "--mount-proc", "--kill-child"])
        .args(argv)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Whether this test may make PID namespaces (root and `unshare`). Where it
/// cannot, the test is skipped with a message, except under `CI=true`,
/// where that is a failure.
#[allow(clippy::print_stderr)] // a skip must say so
pub(crate) fn pid_namespaces_or_skip(test: &str) -> bool {
    let works = Command::new("unshare")
        .args(["--fork", "--pid", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !works {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: cannot make a PID namespace (needs root and util-linux unshare)"
        );
        eprintln!("{test}: skipped: cannot make a PID namespace (needs root and unshare)");
    }
    works
}

/// The only child of `parent`, pinned (by a pidfd opened before the check
/// that it is `parent`'s child): pidguard under `unshare`.
pub(crate) fn only_child(procs: &mut crate::common::Procs, parent: &Proc) -> Proc {
    let mut children = Vec::new();
    crate::common::wait_until_blocking(SOON, "unshare has started its child", || {
        children = crate::common::children_of(parent.pid);
        !children.is_empty()
    });
    assert_eq!(children.len(), 1, "{children:?}");
    procs.pin_child_of(children[0], parent)
}
