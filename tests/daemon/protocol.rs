//! Every request, and every kind of bad input, against the real daemon;
//! after each bad input the same connection (or, after a hang-up, a new
//! one) still gets answers.

use std::io::Write;

use serde_json::json;

use crate::common::{Procs, SOON};
use crate::fixture::{Client, Daemon, TempDir, wait_event};

fn daemon(dir: &TempDir) -> Daemon {
    Daemon::start(dir, &["--check-interval", "60s"])
}

#[test]
fn ping_and_version_answer_with_the_request_id() {
    let dir = TempDir::new(0o700);
    let daemon = daemon(&dir);
    let mut client = daemon.client();
    let pong = client.request(json!({"request": "ping", "id": "abc"}));
    assert_eq!(pong["id"], json!("abc"));
    assert_eq!(pong["version"], json!(1));
    assert_eq!(pong["result"]["pid"], json!(daemon.pid()));
    let version = client.ok(json!({"request": "version"}));
    assert_eq!(version["protocol"], json!(1));
    assert_eq!(version["daemon"], json!(env!("CARGO_PKG_VERSION")));
}

#[test]
fn track_status_untrack_round_trip() {
    let dir = TempDir::new(0o700);
    let daemon = daemon(&dir);
    let mut procs = Procs::new();
    let sleep = procs.sleep("300");
    let mut client = daemon.client();
    let registration = client.ok(json!({
        "request": "track", "pid": sleep.pid, "action": "kill", "grace": "2s", "signal": "INT"
    }));
    assert_eq!(registration["id"]["pid"], json!(sleep.pid));
    assert_eq!(registration["id"]["start_time"], json!(sleep.start_time));
    let me = i32::try_from(std::process::id()).unwrap();
    assert_eq!(
        registration["parent"]["pid"],
        json!(me),
        "the real parent is recorded"
    );
    assert_eq!(registration["uid"], json!(0));
    assert_eq!(registration["action"], json!("kill"));
    assert_eq!(registration["grace"], json!("2s"));
    assert_eq!(registration["signal"], json!("SIGINT"));

    let again = client.refused(json!({"request": "track", "pid": sleep.pid}));
    assert_eq!(again["kind"], json!("refused"));
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("already tracked"),
        "{again}"
    );

    let status = client.ok(json!({"request": "status"}));
    assert_eq!(status["tracked_count"], json!(1));
    assert_eq!(status["tracked"][0]["state"], json!("running"));
    assert_eq!(status["tracked"][0]["id"]["pid"], json!(sleep.pid));

    let untracked = client.ok(json!({"request": "untrack", "pid": sleep.pid}));
    assert_eq!(untracked["id"]["pid"], json!(sleep.pid));
    assert!(client.tracked_pids().is_empty());
    let missing = client.refused(json!({"request": "untrack", "pid": sleep.pid}));
    assert!(
        missing["message"].as_str().unwrap().contains("not tracked"),
        "{missing}"
    );
    assert!(sleep.is_running(), "untracking signals nothing");

    let nobody = client.refused(json!({"request": "track", "pid": 0}));
    assert!(
        nobody["message"].as_str().unwrap().contains("pid 0"),
        "{nobody}"
    );
    let parent = client.refused(json!({"request": "track", "pid": sleep.pid, "parent": -5}));
    assert!(
        parent["message"].as_str().unwrap().contains("-5"),
        "{parent}"
    );
}

/// A `track` naming the start time it expects registers that process
/// only: a pid now held by a process with another start time (a reused
/// pid) is refused, naming both.
#[test]
fn a_track_with_a_start_time_registers_only_that_process() {
    let dir = TempDir::new(0o700);
    let daemon = daemon(&dir);
    let mut procs = Procs::new();
    let sleep = procs.sleep("300");
    let mut client = daemon.client();
    let stale = sleep.start_time.saturating_sub(1);
    let refused = client.refused(json!({
        "request": "track", "pid": sleep.pid, "start_time": stale
    }));
    assert_eq!(refused["kind"], json!("refused"), "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains(&sleep.start_time.to_string())
            && message.contains(&stale.to_string())
            && message.contains("reused"),
        "{refused}"
    );
    assert!(client.tracked_pids().is_empty(), "nothing was registered");
    let registration = client.ok(json!({
        "request": "track", "pid": sleep.pid, "start_time": sleep.start_time
    }));
    assert_eq!(
        registration["id"],
        json!({"pid": sleep.pid, "start_time": sleep.start_time})
    );
}

#[test]
fn events_stream_what_happens_to_registrations() {
    let dir = TempDir::new(0o700);
    // Exits of processes that are not the daemon's children are seen by
    // the scan, so this one scans often.
    let daemon = Daemon::start(&dir, &["--check-interval", "100ms"]);
    let mut procs = Procs::new();
    let sleep = procs.sleep("300");
    let mut events = daemon.client();
    let streaming = events.ok(json!({"request": "events"}));
    assert_eq!(streaming["streaming"], json!(true));
    let mut client = daemon.client();
    client.track(sleep.pid);
    let tracked = wait_event(&mut events, sleep.pid, "tracked", SOON);
    assert_eq!(tracked["id"]["start_time"], json!(sleep.start_time));
    procs.kill_and_reap(&sleep);
    wait_event(&mut events, sleep.pid, "exited", SOON);
    assert!(
        client.tracked_pids().is_empty(),
        "an exited process is no longer registered"
    );
}

/// Each bad line gets an error naming the problem; the connection stays.
#[test]
fn bad_input_gets_a_named_error_and_the_connection_stays() {
    let dir = TempDir::new(0o700);
    let daemon = daemon(&dir);
    let mut client = daemon.client();
    let cases: [(&[u8], &str, &str); 9] = [
        (b"this is not json\n", "invalid_json", "not valid JSON"),
        (b"[1, 2, 3]\n", "invalid_json", "object"),
        (
            b"{\"request\":\"ping\"}\n",
            "unsupported_version",
            "version",
        ),
        (
            b"{\"version\":9,\"request\":\"ping\"}\n",
            "unsupported_version",
            "9",
        ),
        (
            b"{\"version\":1,\"request\":\"explode\"}\n",
            "invalid_request",
            "explode",
        ),
        (
            b"{\"version\":1,\"request\":\"track\",\"pid\":\"ten\"}\n",
            "invalid_request",
            "ten",
        ),
        (
            b"{\"version\":1,\"request\":\"track\",\"pid\":5,\"depth\":2}\n",
            "invalid_request",
            "depth",
        ),
        (
            b"{\"version\":1,\"request\":\"track\",\"pid\":5,\"target\":\"cgroup\"}\n",
            "invalid_request",
            "cgroup",
        ),
        (
            b"{\"version\":1,\"request\":\"track\",\"pid\":5,\"grace\":\"soon\"}\n",
            "invalid_request",
            "soon",
        ),
    ];
    for (line, kind, names) in cases {
        client.send_raw(line);
        let response = client.read();
        let text = String::from_utf8_lossy(line);
        assert_eq!(response["ok"], json!(false), "{text}: {response}");
        assert_eq!(response["error"]["kind"], json!(kind), "{text}: {response}");
        let message = response["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(names),
            "{text}: the error should name {names:?}: {message}"
        );
        assert!(client.pings(), "the connection answers after {text}");
    }
}

#[test]
fn a_mebibyte_of_garbage_is_one_error_and_the_daemon_carries_on() {
    let dir = TempDir::new(0o700);
    let daemon = daemon(&dir);
    let mut client = daemon.client();
    let garbage: Vec<u8> = (0..1024 * 1024).map(|i| b'!' + (i % 90) as u8).collect();
    client.send_raw(&garbage);
    client.send_raw(b"\n");
    let response = client.read();
    assert_eq!(response["error"]["kind"], json!("too_large"), "{response}");
    assert!(
        response["error"]["message"]
            .as_str()
            .unwrap()
            .contains("65536"),
        "the limit is named: {response}"
    );
    assert!(client.pings(), "the same connection still answers");
    assert!(daemon.client().pings(), "and so do new ones");
}

#[test]
fn a_client_that_hangs_up_mid_line_harms_nothing() {
    let dir = TempDir::new(0o700);
    let daemon = daemon(&dir);
    for _ in 0..3 {
        let mut quitter = Client::connect(&daemon.socket);
        quitter
            .stream
            .write_all(b"{\"version\":1,\"request\":\"tra")
            .unwrap();
        drop(quitter);
    }
    let mut client = daemon.client();
    assert!(client.pings());
    assert!(client.tracked_pids().is_empty());
}
