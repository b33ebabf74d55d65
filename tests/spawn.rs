//! The owned spawn helper and explicit termination.
//!
//! - A child started through `MonitorHandle::spawn` is owned from the first
//!   instant: its exit status comes back through the `OwnedChild`, with its
//!   piped stdout, and a missing or non-executable program is a named error.
//! - Parent-death signal: a helper process (this test binary re-run in a
//!   role) spawns a child through the monitor from a short-lived thread,
//!   and a control child with the same signal armed directly from another
//!   short-lived thread. When those threads end, the control child dies
//!   (proving the hazard is real and the check can fail) and the monitor's
//!   child lives; when the helper is SIGKILLed, the monitor's child dies.
//! - `terminate` and `kill` start termination of a tracked process on
//!   request, without counting it as an orphan.

mod common;

use std::io::{BufRead, BufReader, Read};

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

use common::{Procs, SOON, wait_until};
use monitor_core::{Error, Event, ExitStatus, Monitor, ProcessState, Signal, SpawnOptions};

/// Set in the helper re-run.
const ROLE_VAR: &str = "PIDGUARD_TEST_SPAWN_ROLE";
const HELPER_TEST: &str = "the_parent_death_signal_fires_when_the_process_dies_not_the_thread";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_child_is_owned_and_its_status_and_output_come_back() {
    let (monitor, handle, mut log) = common::fast_monitor(Duration::from_secs(5)).await;
    let mut command = Command::new("sh");
    command
        .args(["-c", "echo hello; exit 3"])
        .stdout(Stdio::piped());
    let mut child = handle.spawn(command).await.expect("sh starts");
    assert!(child.tracked().owned);
    let id = child.process_id();
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout was piped")
        .read_to_string(&mut out)
        .await
        .expect("read its output");
    assert_eq!(out, "hello\n");
    let status = tokio::time::timeout(SOON, child.wait())
        .await
        .expect("the exit is reported")
        .expect("the monitor is running");
    assert_eq!(status, ExitStatus::Exited(3));
    log.wait_for(SOON, "Reaped", |e| {
        matches!(e, Event::Reaped { pid, status } if *pid == id.pid && *status == ExitStatus::Exited(3))
    })
    .await;
    let status = handle.status().await.expect("status");
    assert_eq!(status.tracked_count, 0, "auto-untracked after the reap");
    assert!(!status.unowned_zombies.iter().any(|z| z.pid == id.pid));
    monitor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_cannot_start_is_a_named_error() {
    let (monitor, handle, _log) = common::fast_monitor(Duration::from_secs(5)).await;
    let missing = handle
        .spawn(Command::new("/nonexistent/pidguard-no-such-program"))
        .await
        .expect_err("nothing to run");
    match &missing {
        Error::Spawn { program, source } => {
            assert_eq!(program, "/nonexistent/pidguard-no-such-program");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Error::Spawn, got {other:?}"),
    }
    // The cause is in the message itself (for whoever prints only that)
    // and in the source chain.
    let message = missing.to_string();
    let os_cause = std::io::Error::from_raw_os_error(libc::ENOENT).to_string();
    assert!(
        message.contains("/nonexistent/pidguard-no-such-program") && message.contains(&os_cause),
        "the message hides the cause: {message}"
    );
    let source = std::error::Error::source(&missing).expect("a source");
    assert_eq!(source.to_string(), os_cause);
    let dir = std::env::temp_dir().join(format!("pidguard-spawn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let not_executable = dir.join("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").expect("write the file");
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644))
        .expect("chmod 644");
    let refused = handle.spawn(Command::new(&not_executable)).await;
    let _ = std::fs::remove_dir_all(&dir);
    match refused {
        Err(Error::Spawn { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
        }
        other => panic!("expected Error::Spawn, got {other:?}"),
    }
    // Still working.
    let mut child = handle
        .spawn(Command::new("true"))
        .await
        .expect("true starts");
    assert!(child.wait().await.expect("reaped").success());
    monitor.shutdown().await;
}

/// As the test: run the helper, read the two children it reports, and
/// check who lives and who dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parent_death_signal_fires_when_the_process_dies_not_the_thread() {
    if std::env::var_os(ROLE_VAR).is_some() {
        return helper_side().await;
    }
    let mut procs = Procs::new();
    let mut command = Command::new(std::env::current_exe().expect("own path"));
    command
        .args(["--exact", HELPER_TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, "helper")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut helper = procs.spawn(&mut command);
    let mut lines = BufReader::new(helper.stdout.take().expect("piped")).lines();
    let mut read_pid = |label: &str| -> i32 {
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("the helper ended before reporting {label}"))
                .expect("read the helper's output");
            // libtest may put its own "test ... " prefix on the same line.
            if let Some((_, pid)) = line.split_once(label) {
                return pid.trim().parse().expect("a pid");
            }
        }
    };
    let control = procs.pin(read_pid("control "));
    let ours = procs.pin(read_pid("spawned "));
    // Both spawning threads have been joined by now.
    read_pid("threads-joined ");
    wait_until(SOON, "the control child dies with its thread", || {
        control.is_dead()
    })
    .await;
    // The control died within about a millisecond of its thread; the
    // monitor's child, spawned the same way, must outlive that by far.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_millis(300) {
        assert!(
            ours.is_running(),
            "the monitor's child died when its calling thread ended"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    helper.proc.kill();
    wait_until(SOON, "the child dies with the helper process", || {
        ours.is_dead()
    })
    .await;
}

/// As the helper: spawn both children from short-lived threads, report
/// them, then wait to be killed.
async fn helper_side() {
    let monitor = Monitor::builder().spawn().expect("monitor starts");
    let handle = monitor.handle();
    let control = std::thread::spawn(|| {
        let mut command = Command::new("sleep");
        command.arg("300");
        // SAFETY: prctl is async-signal-safe and nothing is allocated.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        // Its `Child` is dropped unreaped: it dies with its thread and this
        // helper is killed right after, so init reaps it.
        #[allow(clippy::zombie_processes)]
        let child = command.spawn().expect("sleep starts");
        child.id()
    });
    let thread_handle = handle.clone();
    let ours = std::thread::spawn(move || {
        let mut command = Command::new("sleep");
        command.arg("300");
        let options = SpawnOptions::new().parent_death_signal(Signal::KILL);
        thread_handle
            .spawn_with_blocking(command, options)
            .expect("spawn through the monitor")
            .process_id()
            .pid
    });
    let control = control.join().expect("control thread");
    let ours = ours.join().expect("spawning thread");
    #[allow(clippy::print_stdout)]
    {
        println!("control {control}");
        println!("spawned {ours}");
        println!("threads-joined 0");
    }
    // Wait for the test to kill this process; EOF means the test is gone.
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read(&mut [0u8; 1])).await;
    monitor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_and_kill_on_request_escalate_without_counting_an_orphan() {
    let mut procs = Procs::new();
    let (monitor, handle, mut log) = common::fast_monitor(Duration::from_secs(60)).await;
    // Ignores SIGTERM, so only the SIGKILL of `kill` ends it.
    let stubborn = procs.spawn_shell("trap '' TERM; sleep 300 & echo $!; wait", 1);
    let target = stubborn.kid().clone();
    handle.track(target.pid).await.expect("track");
    let missing = handle.terminate(999_999_999).await;
    assert!(
        matches!(missing, Err(Error::NotTracked { pid: 999_999_999 })),
        "{missing:?}"
    );

    handle.terminate(target.pid).await.expect("terminate");
    log.wait_for(SOON, "Signalled", |e| {
        matches!(e, Event::Signalled { id, signal } if *id == target.id() && *signal == Signal::TERM)
    })
    .await;
    let status = handle.status().await.expect("status");
    assert_eq!(status.tracked[0].state, ProcessState::Terminating);
    // `sleep` inherited the ignored SIGTERM and is still running.
    assert!(target.is_running());

    handle.kill(target.pid).await.expect("kill");
    log.wait_for(
        SOON,
        "Killed",
        |e| matches!(e, Event::Killed { id } if *id == target.id()),
    )
    .await;
    wait_until(SOON, "the stubborn process is gone", || target.is_dead()).await;
    let status =
        common::wait_for_status(&handle, SOON, "it is untracked", |s| s.tracked_count == 0).await;
    assert_eq!(status.counters.stops_requested, 2);
    assert_eq!(status.counters.orphans_found, 0);
    assert_eq!(status.counters.orphans_killed, 0);
    assert_eq!(status.counters.orphans_terminated, 0);
    monitor.shutdown().await;
}
