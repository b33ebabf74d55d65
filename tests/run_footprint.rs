//! What `pidguard run` holds while CMD runs and leaves at exit: one thread
//! (the runtime's; nothing else is needed to supervise one command), and
//! nothing valgrind's leak check counts against it (`valgrind
//! --leak-check=full --error-exitcode=1 pidguard run -- true`, the check
//! image maintainers run on tini). Sizes and memory are figures, not
//! assertions: `cargo bench --bench run` reports them.
//!
//! The valgrind test needs `valgrind` (`.ci/run` installs it); elsewhere it
//! is skipped saying so, and under `CI=true` a missing valgrind is a
//! failure.

mod common;
mod runner;

use std::process::{Command, Stdio};

use common::{Procs, SOON};
use runner::{PIDGUARD, Run, pidguard_run};

/// The `Threads:` line of `/proc/<pid>/status`.
fn threads(pid: i32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("a Threads line")
}

#[test]
fn one_thread_while_cmd_runs() {
    let mut procs = Procs::new();
    // CMD says it runs, then waits for its stdin (pidguard's) to close.
    let mut command = pidguard_run(&[], &["sh", "-c", "echo running; read line || exit 0"]);
    command.stdin(Stdio::piped());
    let mut run = Run::start(&mut procs, &mut command);
    run.expect_line(SOON, "from CMD", |line| line == "running");
    assert_eq!(
        threads(run.proc.pid),
        1,
        "pidguard's threads while CMD runs"
    );
    drop(run.stdin.take());
    let finished = run.finish(&mut procs, SOON);
    assert_eq!(finished.code(), 0, "{finished:?}");
}

#[test]
#[allow(clippy::print_stderr)] // a skip must say so
fn valgrind_finds_nothing_lost_at_exit() {
    let present = Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "valgrind is missing (.ci/run installs it)"
        );
        eprintln!("valgrind_finds_nothing_lost_at_exit skipped: no valgrind");
        return;
    }
    let output = Command::new("valgrind")
        .args(["--leak-check=full", "--error-exitcode=1"])
        .args([PIDGUARD, "run", "--", "true"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run valgrind");
    let report = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "valgrind said:\n{report}");
    // The leak check ran (valgrind saw the allocator: a static binary's
    // would go unseen) and found nothing lost, not even possibly.
    for kind in ["definitely lost: 0 bytes", "possibly lost: 0 bytes"] {
        assert!(report.contains(kind), "no {kind:?} in:\n{report}");
    }
}
