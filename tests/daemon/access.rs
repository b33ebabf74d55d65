//! Access control across a real privilege boundary. The test runs as root
//! (CI does), starts a daemon whose socket group is 65534, and re-runs this
//! test binary as uid/gid 65534: that client cannot track a root process,
//! cannot untrack or see root's registrations, and can track its own.
//! Root then sees and controls everything.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::{NOBODY, Procs, SOON};
use crate::fixture::{Client, Daemon, TempDir};

const THIS_TEST: &str = "access::an_unprivileged_client_is_confined_to_its_own_processes";
/// Set in the unprivileged re-run: "socket root_pid nobody_pid".
const ROLE_VAR: &str = "PIDGUARD_TEST_UNPRIVILEGED_CLIENT";

#[test]
fn an_unprivileged_client_is_confined_to_its_own_processes() {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        return unprivileged_side(&role);
    }
    let dir = TempDir::new(0o711);
    let daemon = Daemon::start_for_nobody(&dir);
    let mut procs = Procs::new();
    let root_process = procs.sleep("300");
    let mut nobody_command = Command::new("sleep");
    nobody_command
        .arg("300")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null());
    let nobody_process = procs.spawn(&mut nobody_command).proc;
    let mut root = daemon.client();
    root.track(root_process.pid);

    let role = format!(
        "{} {} {}",
        daemon.socket.display(),
        root_process.pid,
        nobody_process.pid
    );
    crate::common::rerun_as_nobody(THIS_TEST, ROLE_VAR, &role);

    // Root sees both registrations, with their owners, and may drop any.
    let status = root.ok(json!({"request": "status"}));
    let owners: Vec<(i64, i64)> = status["tracked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"]["pid"].as_i64().unwrap(), t["uid"].as_i64().unwrap()))
        .collect();
    let mut expected = vec![
        (i64::from(root_process.pid), 0),
        (i64::from(nobody_process.pid), i64::from(NOBODY)),
    ];
    expected.sort_unstable();
    assert_eq!(owners, expected);
    root.ok(json!({"request": "untrack", "pid": nobody_process.pid}));
    assert_eq!(root.tracked_pids(), vec![i64::from(root_process.pid)]);
    assert!(root_process.is_running(), "the root process was not harmed");
    let log = daemon.log();
    assert!(
        log.contains("refused: track of another user's process")
            && log.contains("refused: untrack of another user's registration"),
        "every refusal is logged:\n{log}"
    );
}

/// As uid 65534: every attempt on root's process or registration is an
/// error response; its own process is tracked; it sees only its own.
fn unprivileged_side(role: &str) {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        NOBODY,
        "privileges were dropped"
    );
    let mut parts = role.split(' ');
    let socket = parts.next().unwrap();
    let root_pid: i32 = parts.next().unwrap().parse().unwrap();
    let own_pid: i32 = parts.next().unwrap().parse().unwrap();
    let mut client = Client::connect(std::path::Path::new(socket));

    let refused = client.refused(json!({"request": "track", "pid": root_pid}));
    assert_eq!(refused["kind"], json!("permission_denied"), "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("uid 0"),
        "{refused}"
    );

    let refused = client.refused(json!({"request": "untrack", "pid": root_pid}));
    assert_eq!(refused["kind"], json!("permission_denied"), "{refused}");

    let status = client.ok(json!({"request": "status"}));
    assert_eq!(status["peer_uid"], json!(NOBODY));
    assert_eq!(
        status["tracked_count"],
        json!(0),
        "root's registration is hidden: {status}"
    );
    assert!(
        status.get("monitor").is_none(),
        "the monitor's full status is root's: {status}"
    );

    let mut events = Client::connect(std::path::Path::new(socket));
    events.ok(json!({"request": "events"}));
    let own = client.track(own_pid);
    assert_eq!(own["uid"], json!(NOBODY));
    client.ok(json!({"request": "untrack", "pid": own_pid}));
    client.track(own_pid);
    assert_eq!(client.tracked_pids(), vec![i64::from(own_pid)]);
    // Its own events reach it, the untrack's included, and nothing else.
    let seen: Vec<(String, i64)> = (0..3)
        .map(|_| {
            let line = events.next_event(SOON);
            let event = &line["event"];
            (
                event["event"].as_str().unwrap().to_owned(),
                event["id"]["pid"].as_i64().unwrap(),
            )
        })
        .collect();
    let own = i64::from(own_pid);
    assert_eq!(
        seen,
        [
            ("tracked".to_owned(), own),
            ("untracked".to_owned(), own),
            ("tracked".to_owned(), own)
        ]
    );
}
