//! The central scenario: a shell starts a long `sleep`, registers it with
//! `pidguard track`, and is SIGKILLed. With a 60 s scan interval, only the
//! parent watch can catch it in time: the `sleep` gets SIGTERM and is
//! gone, while a process whose parent stays alive is never touched.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Procs, SOON, wait_until_blocking};
use crate::fixture::{Daemon, PIDGUARD, TempDir, wait_event};

/// The shell: start a sleep, register it through the CLI, print its pid,
/// then wait (`read` returns when the test closes stdin, if ever).
fn script(socket: &std::path::Path) -> String {
    format!(
        "sleep 300 & \"{PIDGUARD}\" track --no-autostart --socket '{}' $! >&2 && echo $!; read x",
        socket.display()
    )
}

#[test]
fn a_killed_shells_sleep_is_terminated_and_a_living_ones_is_not() {
    let dir = TempDir::new(0o700);
    // 60 s: the scan would come far too late; the pidfd watch must act.
    let daemon = Daemon::start(&dir, &["--check-interval", "60s", "--grace", "5s"]);
    let mut events = daemon.client();
    events.ok(json!({"request": "events"}));
    let mut procs = Procs::new();
    let shells: Vec<_> = (0..2)
        .map(|_| procs.spawn_shell(&script(&daemon.socket), 1))
        .collect();
    let doomed = shells[0].kid().clone();
    let survivor = shells[1].kid().clone();
    let mut client = daemon.client();
    let mut expected = vec![i64::from(doomed.pid), i64::from(survivor.pid)];
    expected.sort_unstable();
    assert_eq!(client.tracked_pids(), expected, "both are registered");

    let killed_at = Instant::now();
    procs.kill_and_reap(&shells[0].proc);
    let signalled = wait_event(&mut events, doomed.pid, "signalled", SOON);
    assert_eq!(signalled["signal"], json!("SIGTERM"));
    let took = wait_until_blocking(SOON, "the orphaned sleep is gone", || doomed.is_dead());
    eprintln!(
        "orphan gone {:?} after its shell was killed (scan interval 60 s)",
        killed_at.elapsed().min(took + Duration::from_secs(1))
    );
    wait_until_blocking(SOON, "its registration ends", || {
        client.tracked_pids() == vec![i64::from(survivor.pid)]
    });

    assert!(
        survivor.is_running(),
        "a process whose parent lives is untouched"
    );
    let status = client.ok(json!({"request": "status"}));
    assert_eq!(status["tracked"][0]["state"], json!("running"));
    let counters = &status["monitor"]["counters"];
    assert_eq!(
        counters["orphans_found"],
        json!(1),
        "only the orphan was acted on: {counters}"
    );
    assert_eq!(
        counters["orphans_terminated"],
        json!(1),
        "SIGTERM sufficed: {counters}"
    );
    assert_eq!(counters["orphans_killed"], json!(0), "{counters}");
    assert!(
        counters["scans"].as_u64().is_some_and(|scans| scans <= 1),
        "at most the scan at start ran: {counters}"
    );
}

/// With `--tree`, the registered process's own children are followed: the
/// shell that registered it is killed, the process is terminated, and so
/// is its child that had called `setsid`, whose parent it was.
#[test]
fn a_registered_tree_goes_with_its_root() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &["--check-interval", "60s", "--grace", "5s"]);
    let mut events = daemon.client();
    events.ok(json!({"request": "events"}));
    let mut procs = Procs::new();
    // The registered process is a shell whose child leaves its session;
    // it is registered once that child exists, so the track finds it.
    let script = format!(
        "sh -c 'setsid sleep 300 & wait' & r=$!; \
         until [ -n \"$(cat /proc/$r/task/*/children 2>/dev/null)\" ]; do sleep 0.01; done; \
         \"{PIDGUARD}\" track --no-autostart --tree --socket '{}' $r >&2 && echo $r; read x",
        daemon.socket.display()
    );
    let shell = procs.spawn_shell(&script, 1);
    let registered = shell.kid().clone();
    let mut client = daemon.client();
    let mut grandchild = None;
    wait_until_blocking(SOON, "the daemon follows the root's child", || {
        let status = client.ok(json!({"request": "status"}));
        grandchild = status["monitor"]["tracked"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["descendant_of"]["pid"] == json!(registered.pid))
            .and_then(|t| t["id"]["pid"].as_i64());
        grandchild.is_some()
    });
    let grandchild = procs.pin(i32::try_from(grandchild.expect("found")).expect("a pid"));

    procs.kill_and_reap(&shell.proc);
    wait_event(&mut events, registered.pid, "signalled", SOON);
    wait_until_blocking(SOON, "the registered root is gone", || registered.is_dead());
    wait_until_blocking(SOON, "its setsid child is gone", || grandchild.is_dead());
}
