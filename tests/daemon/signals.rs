//! Signals: SIGTERM stops the daemon cleanly (exit 0, socket gone, state
//! kept, processes left running); SIGHUP reloads the config, and a bad
//! config on reload changes nothing.

use rustix::process::Signal;
use serde_json::json;

use crate::common::{Procs, SOON, wait_until_blocking};
use crate::fixture::{Daemon, TempDir};

#[test]
fn sigterm_exits_zero_and_leaves_the_processes_and_the_state() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let mut procs = Procs::new();
    let sleep = procs.sleep("300");
    let mut client = daemon.client();
    client.track(sleep.pid);
    let socket = daemon.socket.clone();
    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean exit");
    assert!(!socket.exists(), "the socket is removed");
    assert!(sleep.is_running(), "tracked processes are left running");
    let state = std::fs::read_to_string(socket.with_file_name("state.json")).unwrap();
    assert!(state.contains(&format!("\"pid\":{}", sleep.pid)), "{state}");
    // The client on the open connection sees the end, not a hang.
    assert!(!client.try_pings(), "the connection is closed");
}

#[test]
fn sighup_reloads_the_track_defaults_and_survives_a_bad_file() {
    let dir = TempDir::new(0o700);
    let config = dir.path().join("pidguard.toml");
    std::fs::write(&config, "[monitor]\norphan_action = \"terminate\"\n").unwrap();
    let daemon = Daemon::start(&dir, &["--config", config.to_str().unwrap()]);
    let mut procs = Procs::new();
    let mut client = daemon.client();
    let first = procs.sleep("300");
    assert_eq!(client.track(first.pid)["action"], json!("terminate"));

    std::fs::write(
        &config,
        "[monitor]\norphan_action = \"notify\"\ngrace = \"1s\"\n",
    )
    .unwrap();
    daemon.signal(Signal::HUP);
    let second = procs.sleep("300");
    wait_until_blocking(SOON, "the reload is logged", || {
        daemon.log().contains("config reloaded")
    });
    let registration = client.track(second.pid);
    assert_eq!(registration["action"], json!("notify"));
    assert_eq!(registration["grace"], json!("1s"));

    std::fs::write(&config, "[monitor]\norphan_action = \"explode\"\n").unwrap();
    daemon.signal(Signal::HUP);
    wait_until_blocking(SOON, "the bad reload is logged", || {
        daemon.log().contains("config not reloaded")
    });
    assert!(
        daemon.log().contains("explode"),
        "the log names the bad value"
    );
    let third = procs.sleep("300");
    assert_eq!(
        client.track(third.pid)["action"],
        json!("notify"),
        "the last good config stays"
    );
}
