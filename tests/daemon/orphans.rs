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
        counters["stops_requested"],
        json!(1),
        "only the orphan was stopped: {counters}"
    );
    assert_eq!(
        counters["orphans_killed"],
        json!(0),
        "SIGTERM sufficed: {counters}"
    );
}
