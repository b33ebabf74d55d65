//! `pidguard run`'s options taken from tini and dumb-init, each with its
//! negative control, and each through its `PIDGUARD_RUN_*` variable too:
//! `-e/--remap-exit`, `-r/--rewrite`, the working directory given up once
//! CMD runs, and a closed stderr that must not wedge pidguard.

mod common;
mod runner;

use std::process::Stdio;

use common::{Procs, SOON};
use runner::{Run, pidguard_run, run_to_end, sh_fixture};

#[test]
fn remap_exit_turns_the_named_codes_into_zero() {
    let exit3 = ["sh", "-c", "exit 3"];
    // The negative control: without it, 3 passes through.
    assert_eq!(run_to_end(&mut pidguard_run(&[], &exit3)).code(), 3);
    assert_eq!(
        run_to_end(&mut pidguard_run(&["-e", "3"], &exit3)).code(),
        0
    );
    assert_eq!(
        run_to_end(&mut pidguard_run(&["--remap-exit", "4"], &exit3)).code(),
        3
    );
    let mut by_env = pidguard_run(&[], &exit3);
    by_env.env("PIDGUARD_RUN_REMAP_EXIT", "1,3");
    assert_eq!(run_to_end(&mut by_env).code(), 0);
    // 128 + N for a CMD killed by signal N, as tini does.
    let killed = ["sh", "-c", "kill -TERM $$"];
    assert_eq!(run_to_end(&mut pidguard_run(&[], &killed)).code(), 143);
    assert_eq!(
        run_to_end(&mut pidguard_run(&["-e", "143"], &killed)).code(),
        0
    );
    // Bad input names what was wrong.
    let finished = run_to_end(&mut pidguard_run(&["-e", "300"], &exit3));
    assert_eq!(finished.code(), 125, "{finished:?}");
    assert!(finished.stderr.contains("--remap-exit"), "{finished:?}");
}

/// Sends SIGTERM (then, for the dropped case, SIGUSR2 after SIGUSR1) to a
/// `signals.sh` CMD under `options`, returns CMD's last line and the code.
fn term_with(options: &[&str], env: Option<&str>, signals: &[i32]) -> (String, i32) {
    let mut procs = Procs::new();
    let mut command = pidguard_run(options, &sh_fixture("signals.sh", &[]));
    if let Some(value) = env {
        command.env("PIDGUARD_RUN_REWRITE", value);
    }
    let mut run = Run::start(&mut procs, &mut command);
    run.expect_line(SOON, "ready", |l| l.starts_with("ready "));
    for &signal in signals {
        runner::signal_number_pinned(&run.proc, signal);
    }
    let finished = run.finish(&mut procs, SOON);
    (
        finished.stdout.last().cloned().unwrap_or_default(),
        finished.code(),
    )
}

#[test]
fn rewrite_maps_a_signal_and_zero_drops_it() {
    // The negative control: SIGTERM arrives as itself.
    assert_eq!(
        term_with(&[], None, &[libc::SIGTERM]),
        ("got TERM".into(), 25)
    );
    assert_eq!(
        term_with(&["--rewrite", "TERM:USR1"], None, &[libc::SIGTERM]),
        ("got USR1".into(), 20)
    );
    assert_eq!(
        term_with(&[], Some("15:10"), &[libc::SIGTERM]),
        ("got USR1".into(), 20)
    );
    // USR1 dropped: CMD sees only the USR2 sent after it.
    assert_eq!(
        term_with(&["-r", "USR1:0"], None, &[libc::SIGUSR1, libc::SIGUSR2]),
        ("got USR2".into(), 22)
    );
    let finished = run_to_end(&mut pidguard_run(&["-r", "KILL:TERM"], &["true"]));
    assert_eq!(finished.code(), 125, "{finished:?}");
    assert!(finished.stderr.contains("cannot be caught"), "{finished:?}");
}

#[test]
fn pidguard_leaves_the_working_directory_once_the_command_runs() {
    let dir = std::env::temp_dir();
    let mut procs = Procs::new();
    let mut command = pidguard_run(&[], &["sh", "-c", "echo \"ready $(pwd)\"; exec sleep 60"]);
    command.current_dir(&dir);
    let mut run = Run::start(&mut procs, &mut command);
    let line = run.expect_line(SOON, "ready", |l| l.starts_with("ready "));
    // The negative control: CMD itself runs where pidguard was started.
    let started_in = dir.canonicalize().expect("temp dir");
    assert_eq!(line, format!("ready {}", started_in.display()));
    let cwd = |pid: i32| std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd link");
    common::wait_until_blocking(SOON, "pidguard's cwd is /", || {
        cwd(run.proc.pid) == std::path::Path::new("/")
    });
    runner::signal_number_pinned(&run.proc, libc::SIGTERM);
    assert_eq!(run.finish(&mut procs, SOON).code(), 143);
}

/// A log reader that went away (stderr a closed pipe) must not wedge
/// pidguard: each log line then raises SIGPIPE, which pidguard drops
/// without logging it (a log line about it would raise the next one).
#[test]
fn a_closed_stderr_does_not_wedge_pidguard() {
    let mut procs = Procs::new();
    let mut command = pidguard_run(&["-vvv"], &["sleep", "0.3"]);
    command.stderr(Stdio::piped());
    let spawned = procs.spawn(&mut command);
    drop(procs.child_mut(&spawned.proc).stderr.take());
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = procs.child_mut(&spawned.proc).try_wait().expect("try_wait") {
            break status;
        }
        assert!(start.elapsed() < SOON, "pidguard did not exit");
        std::thread::sleep(common::POLL);
    };
    assert_eq!(status.code(), Some(0));
}
