//! What the kernel tests need, in one place: root, cgroup v2, the process
//! connector, another uid, another pid namespace.
//!
//! One rule for all of them: where a facility is missing, the test skips
//! and prints what was missing; with `CI=true` (CI runs as root, where
//! everything is available) a missing facility is a failure, never a
//! skip. And one guard for what they leave behind: [`TestSubtree`] kills
//! whatever is still in its leaves and removes every directory, also when
//! the test panics.

// A skip must reach the person running the tests.
#![allow(clippy::print_stderr)]

use std::fmt::Display;
use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cgroup::{Hierarchy, Subtree};
use crate::connector::{Connector, Options};

/// Whether this run is CI's (`CI=true`), where nothing may be skipped.
pub(crate) fn ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// `Some(value)`, or: under CI a panic naming what was missing; elsewhere
/// a printed skip and `None`.
pub(crate) fn or_skip<T>(what: &str, probe: Result<T, impl Display>) -> Option<T> {
    match probe {
        Ok(value) => Some(value),
        Err(why) => {
            if ci() {
                panic!("CI=true, but this test needs {what}, which is missing: {why}");
            }
            eprintln!("skipped: this test needs {what}, which is missing here: {why}");
            None
        }
    }
}

/// Whether this process runs as root (skipping, or failing under CI, if
/// not).
pub(crate) fn root(what: &str) -> bool {
    let euid = rustix::process::geteuid();
    or_skip(
        what,
        if euid.is_root() {
            Ok(())
        } else {
            Err(format!("root (running as uid {})", euid.as_raw()))
        },
    )
    .is_some()
}

/// A fresh cgroup subtree of our own, removed (with everything in it) on
/// drop.
pub(crate) fn cgroup() -> Option<TestSubtree> {
    let subtree = Hierarchy::discover().and_then(|hierarchy| hierarchy.create_subtree());
    or_skip("a writable cgroup v2 hierarchy (root)", subtree).map(|s| TestSubtree(Some(s)))
}

/// An open process connector socket.
pub(crate) async fn connector(options: Options) -> Option<Connector> {
    or_skip(
        "the process connector (root in the initial namespaces)",
        Connector::open(options).await,
    )
}

/// The current test (its full name, for `--exact`) run again by this very
/// test binary with `var=1`: behind `prefix` (e.g. `unshare --pid
/// --fork`), and as uid/gid `uid` when given. Returns the re-run's output
/// once it passed exactly that test; panics otherwise.
pub(crate) fn rerun(test: &str, var: &str, prefix: &[&str], uid: Option<u32>) -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = match prefix.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(&exe);
            command
        }
        None => Command::new(&exe),
    };
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(var, "1")
        .stdin(Stdio::null());
    if let Some(uid) = uid {
        // std drops the supplementary groups when root changes uid.
        command.uid(uid).gid(uid);
    }
    let output = command.output().expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the re-run of {test} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout + &stderr
}

/// The unprivileged uid (and gid) re-runs take: nobody.
pub(crate) const NOBODY: u32 = 65534;

/// A child process killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct ChildGuard(pub(crate) Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process pinned by a pidfd (so a reused pid is never hit), killed on
/// drop: for the test's processes that are not its children.
#[derive(Debug)]
pub(crate) struct Pinned {
    pub(crate) pid: i32,
    pub(crate) fd: std::os::fd::OwnedFd,
}

impl Pinned {
    pub(crate) fn new(pid: i32) -> Self {
        let raw = rustix::process::Pid::from_raw(pid).expect("a positive pid");
        let fd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
            .expect("pidfd_open of a test process");
        Self { pid, fd }
    }

    /// Whether it has exited (a zombie counts as exited).
    pub(crate) fn exited(&self) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&zero)).expect("poll a pidfd");
        fds[0].revents().contains(PollFlags::IN)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = rustix::process::pidfd_send_signal(&self.fd, rustix::process::Signal::KILL);
    }
}

/// Polls `condition` until it holds, or panics naming `what` after `timeout`.
pub(crate) fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A test's cgroup subtree. On drop, every process left in its leaves is
/// killed (`cgroup.kill`, or freeze and a `SIGKILL` to each through a
/// pidfd), and every directory is removed; a leftover directory fails a
/// test that did not fail already.
#[derive(Debug)]
pub(crate) struct TestSubtree(Option<Subtree>);

impl Deref for TestSubtree {
    type Target = Subtree;

    fn deref(&self) -> &Subtree {
        self.0.as_ref().expect("present until drop")
    }
}

impl DerefMut for TestSubtree {
    fn deref_mut(&mut self) -> &mut Subtree {
        self.0.as_mut().expect("present until drop")
    }
}

impl Drop for TestSubtree {
    fn drop(&mut self) {
        let Some(mut subtree) = self.0.take() else {
            return;
        };
        let path = subtree.path().to_owned();
        if let Ok(entries) = std::fs::read_dir(&path) {
            for leaf in entries.flatten().filter(|e| e.path().is_dir()) {
                empty_leaf(&leaf.path());
            }
        }
        if let Err(error) = subtree.remove() {
            if std::thread::panicking() {
                eprintln!("test cgroup left behind: {error}");
            } else {
                panic!("test cgroup left behind: {error}");
            }
        }
    }
}

/// Kills everything in a leaf and waits (up to 10 s) until it is empty.
fn empty_leaf(leaf: &Path) {
    let write = |name: &str, value: &[u8]| std::fs::write(leaf.join(name), value);
    if write("cgroup.kill", b"1").is_err() {
        let _ = write("cgroup.freeze", b"1");
        for _ in 0..100 {
            let pids = std::fs::read_to_string(leaf.join("cgroup.procs")).unwrap_or_default();
            if pids.trim().is_empty() {
                break;
            }
            for pid in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
                if let Some(pidfd) = rustix::process::Pid::from_raw(pid).and_then(|pid| {
                    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
                }) {
                    let _ =
                        rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
                }
            }
            let _ = write("cgroup.freeze", b"0");
        }
    }
    wait_empty(leaf, Duration::from_secs(10));
}

/// Waits for `populated 0` with `poll(POLLPRI)` on `cgroup.events`.
fn wait_empty(leaf: &Path, timeout: Duration) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let Ok(events) = File::open(leaf.join("cgroup.events")) else {
        return;
    };
    let deadline = Instant::now() + timeout;
    loop {
        let mut buf = [0u8; 256];
        let len = events.read_at(&mut buf, 0).unwrap_or(0);
        if String::from_utf8_lossy(&buf[..len]).contains("populated 0") {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!("{} still populated after {timeout:?}", leaf.display());
            return;
        }
        let mut fds = [PollFd::from_borrowed_fd(events.as_fd(), PollFlags::PRI)];
        let wait = Timespec {
            tv_sec: 0,
            tv_nsec: left.min(Duration::from_millis(100)).subsec_nanos().into(),
        };
        let _ = poll(&mut fds, Some(&wait));
    }
}
