//! Permission checks against a real privilege boundary: a monitor running
//! as an unprivileged user refuses to track a root process it could never
//! signal (`Error::PermissionDenied`), and still tracks its own.
//!
//! The test runs as root (CI does) and re-runs this very test binary as
//! uid/gid 65534 for the unprivileged side; an environment variable tells
//! the re-run which role it plays.

mod common;

use common::{NOBODY, Procs};
use monitor_core::{Error, Monitor};

/// Set in the unprivileged re-run: the pid of the root process to try.
const TARGET_VAR: &str = "PIDGUARD_TEST_ROOT_TARGET";
const THIS_TEST: &str = "an_unprivileged_monitor_cannot_track_a_root_process";

/// As root: start a root process, re-run this test as nobody against it,
/// and require that the re-run ran exactly this test and passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_monitor_cannot_track_a_root_process() {
    if let Ok(target) = std::env::var(TARGET_VAR) {
        let target = target.parse().expect("the target is a pid");
        return unprivileged_side(target).await;
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "this test drops privileges to uid {NOBODY} and must start as root (CI does)"
    );
    let mut procs = Procs::new();
    let root_process = procs.sleep("300");
    common::rerun_as_nobody(THIS_TEST, TARGET_VAR, &root_process.pid.to_string());
    assert!(root_process.is_running(), "the root process was harmed");
}

/// As nobody: the root process is refused with `PermissionDenied` naming
/// it; a process of our own is tracked; the monitor keeps working.
async fn unprivileged_side(target: i32) {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        NOBODY,
        "privileges were dropped"
    );
    let mut procs = Procs::new();
    let monitor = Monitor::builder().spawn().expect("monitor starts");
    let handle = monitor.handle();
    let refused = handle.track(target).await;
    assert!(
        matches!(refused, Err(Error::PermissionDenied { pid }) if pid == target),
        "{refused:?}"
    );
    let own = procs.sleep("300");
    let tracked = handle
        .track(own.pid)
        .await
        .expect("our own process is tracked");
    assert_eq!(tracked.id, own.id());
    let status = handle.status().await.expect("status");
    assert_eq!(status.tracked_count, 1);
    monitor.shutdown().await;
}
