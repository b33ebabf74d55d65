//! `examples/job_runner.rs`, the built example, run with `--once` under a
//! subreaper: it exits 0, its overrunning jobs' units were terminated
//! children and all, and no process it started is left, the workers'
//! children included.
//!
//! This test binary makes itself a child subreaper (a process-wide
//! setting, hence a binary of its own with this one test): every process
//! the example leaves behind, however it was orphaned, is reparented to
//! this process instead of init, where the test can see it.

mod common;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{POLL, Procs, children_of, read_stat};
use rustix::process::{PidfdFlags, Signal};

/// Builds the example (a no-op when it is fresh) and returns its path.
/// `cargo test` builds examples, but not `cargo test --test job_runner`,
/// and a binary left from an earlier build could be stale: cargo knows.
fn build_example() -> String {
    let mut command = Command::new(env!("CARGO"));
    command
        .args(["build", "--locked", "--example", "job_runner"])
        .arg("--message-format=json")
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .stderr(Stdio::inherit());
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let output = command.output().expect("run cargo build");
    assert!(
        output.status.success(),
        "cargo build --example job_runner failed"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .rev()
        .filter(|line| line.contains(r#""name":"job_runner""#))
        .filter_map(|line| {
            let (_, rest) = line.split_once(r#""executable":""#)?;
            rest.split_once('"').map(|(path, _)| path.to_owned())
        })
        .next()
        .expect("cargo names the example's executable")
}

/// This process as a child subreaper, for one test. On drop (also when
/// the test fails) every process reparented to it is killed and reaped,
/// and so, pass by pass, is whatever they still held.
struct Subreaper;

impl Subreaper {
    fn become_one() -> Self {
        nix::sys::prctl::set_child_subreaper(true).expect("become a child subreaper");
        Self
    }

    /// The live processes reparented here, after reaping those already
    /// dead (a leftover that died here is not a leak, only a status nobody
    /// collected yet). The example itself is waited for by its guard.
    fn live_leftovers(&self) -> Vec<i32> {
        children_of(common::my_pid())
            .into_iter()
            .filter(|pid| !reap_if_zombie(*pid))
            .collect()
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let live = self.live_leftovers();
            if live.is_empty() && children_of(common::my_pid()).is_empty() {
                return;
            }
            for pid in live {
                // A child of this process keeps its pid until this process
                // reaps it, so the pid names it exactly.
                if let Some(pidfd) = rustix::process::Pid::from_raw(pid)
                    .and_then(|pid| rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok())
                {
                    let _ = rustix::process::pidfd_send_signal(&pidfd, Signal::KILL);
                }
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Reaps `pid` if it is a zombie child of this process.
fn reap_if_zombie(pid: i32) -> bool {
    let zombie = read_stat(pid).is_some_and(|stat| stat.exited());
    if zombie {
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
    }
    zombie
}

/// `pid`'s command line, for a failure message.
fn describe(pid: i32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    format!(
        "{pid} {}",
        String::from_utf8_lossy(&cmdline).replace('\0', " ")
    )
}

/// Two files for the example's stdout and stderr, removed on drop.
struct Output {
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Output {
    fn new() -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let pid = std::process::id();
        Self {
            stdout: dir.join(format!("job_runner.{pid}.out")),
            stderr: dir.join(format!("job_runner.{pid}.err")),
        }
    }

    fn stdout(&self) -> File {
        File::create(&self.stdout).expect("create the stdout file")
    }

    fn stderr(&self) -> File {
        File::create(&self.stderr).expect("create the stderr file")
    }

    fn read(&self) -> (String, String) {
        let read = |path: &PathBuf| std::fs::read_to_string(path).unwrap_or_default();
        (read(&self.stdout), read(&self.stderr))
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.stdout);
        let _ = std::fs::remove_file(&self.stderr);
    }
}

#[test]
fn the_job_runner_leaves_no_process_behind() {
    // First, so it is dropped last: after the guard below has killed the
    // example, it kills whatever was reparented here.
    let subreaper = Subreaper::become_one();
    let example = build_example();
    let mut procs = Procs::new();
    // Its output goes to files, not pipes: a leftover that inherited a
    // pipe would hold it open, and reading to its end would wait for the
    // leftover to exit on its own, hiding it.
    let output = Output::new();
    let mut command = Command::new(&example);
    command
        .arg("--once")
        .stdin(Stdio::null())
        .stdout(output.stdout())
        .stderr(output.stderr());
    let runner = procs.spawn(&mut command).proc;

    // Two jobs overrun a 1 s and a 1.5 s deadline; a grace period of 2 s
    // at most follows. A minute is far beyond.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = procs.child_mut(&runner).try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the job runner did not finish within 60 s"
        );
        std::thread::sleep(POLL);
    };

    // Nothing is left: whatever the example orphaned came here; each one
    // must be dead. The deadline only leaves time for a process that is
    // exiting right now; anything alive after it is a leak (and the guard
    // kills it).
    let deadline = Instant::now() + Duration::from_secs(10);
    let alive = loop {
        let alive = subreaper.live_leftovers();
        if alive.is_empty() || Instant::now() >= deadline {
            break alive;
        }
        std::thread::sleep(POLL);
    };
    let alive: Vec<String> = alive.into_iter().map(describe).collect();
    assert!(alive.is_empty(), "left running: {alive:?}");

    let (out, stderr) = output.read();
    assert!(
        status.success(),
        "exit {status}\nstdout:\n{out}\nstderr:\n{stderr}"
    );

    // It did what it says: five jobs, the two overrunning ones ended with
    // their two children each, and nothing was left for the drain.
    let jobs: Vec<&str> = out.lines().filter(|l| l.starts_with("job ")).collect();
    assert_eq!(jobs.len(), 5, "{out}");
    let terminated = jobs
        .iter()
        .filter(|l| l.contains("its unit was terminated (3 processes signalled)"))
        .count();
    assert_eq!(terminated, 2, "{out}");
    assert_eq!(
        jobs.iter()
            .filter(|l| l.contains("finished: exit code 0"))
            .count(),
        3,
        "{out}"
    );
    assert!(out.contains("drained: 0 processes ended, 0 left"), "{out}");
}
