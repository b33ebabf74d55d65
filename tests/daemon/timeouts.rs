//! Finding 3: clients hung forever on a stopped (`kill -STOP`) or wedged
//! daemon, and a `track` whose client gave up was applied later. Now every
//! step of a client has a deadline, the message names the socket and the
//! daemon's pid, and a request whose client hung up is not applied.

use std::time::Duration;

use rustix::process::Signal;

use crate::common::{Procs, SOON, wait_until_blocking};
use crate::fixture::{Daemon, TempDir};
use crate::support::{client_command, run_within};

/// Resumes a stopped daemon on drop, so a failing test leaves none stopped
/// (the daemon's own guard kills it afterwards).
struct Resume<'a>(&'a Daemon);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.signal(Signal::CONT);
    }
}

#[test]
fn clients_of_a_stopped_daemon_time_out_naming_it_and_apply_nothing() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let mut procs = Procs::new();
    let sleep = procs.sleep("300");
    daemon.signal(Signal::STOP);
    let resume = Resume(&daemon);
    let pid = sleep.pid.to_string();
    for args in [vec!["status"], vec!["events"], vec!["track", &pid]] {
        let finished = run_within(
            client_command(&daemon.socket, &args).env("PIDGUARD_TIMEOUT", "500ms"),
            SOON,
        );
        assert_eq!(finished.code(), Some(3), "{args:?}: {finished:?}");
        let stderr = &finished.stderr;
        assert!(
            stderr.contains(&daemon.socket.display().to_string())
                && stderr.contains(&format!("pid {}", daemon.pid()))
                && stderr.contains("did not answer within 500ms"),
            "{args:?}: the message names the socket and the daemon's pid: {stderr}"
        );
    }
    // The flag works like the environment variable.
    let finished = run_within(
        &mut client_command(&daemon.socket, &["status", "--timeout", "300ms"]),
        SOON,
    );
    assert_eq!(finished.code(), Some(3), "{finished:?}");
    assert!(finished.stderr.contains("300ms"), "{}", finished.stderr);
    drop(resume);
    // The track sent while it was stopped is read now, its client gone.
    wait_until_blocking(SOON, "the abandoned track is dropped", || {
        daemon
            .log()
            .contains("the client hung up before its request was applied")
    });
    assert!(
        daemon.client().tracked_pids().is_empty(),
        "a track whose client gave up is not applied"
    );
}

/// An event stream that is merely quiet keeps going: the daemon sends a
/// keepalive line before the client's wait runs out.
#[test]
fn a_quiet_event_stream_stays_open() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let mut events = daemon.client();
    events.ok(serde_json::json!({"request": "events"}));
    let line = events.next_event(pidguard_keepalive() + SOON);
    assert_eq!(line, serde_json::json!({"version": 1}), "a keepalive line");
}

/// The daemon's keepalive interval (docs/protocol.md).
fn pidguard_keepalive() -> Duration {
    Duration::from_secs(15)
}
