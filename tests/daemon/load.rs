//! Load: 100 concurrent clients make 100 requests each (track, ping,
//! untrack, status, ..., ending with a track). No request fails and no
//! registration is lost: the daemon and its state file end up holding
//! exactly the 100 processes. Throughput and memory are measured by the
//! `daemon` bench, not asserted here.

use serde_json::{Value, json};

use crate::common::Procs;
use crate::fixture::{Client, Daemon, TempDir};

const CLIENTS: usize = 100;
const REQUESTS: usize = 100;

#[test]
fn a_hundred_clients_making_a_hundred_requests_each_lose_nothing() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &["--check-interval", "60s"]);
    let mut procs = Procs::new();
    let sleeps: Vec<i32> = (0..CLIENTS).map(|_| procs.sleep("300").pid).collect();
    let socket = daemon.socket.clone();
    let workers: Vec<_> = sleeps
        .iter()
        .map(|&pid| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&socket);
                let mut failures: Vec<Value> = Vec::new();
                for i in 0..REQUESTS {
                    let request = match (i, i % 4) {
                        (i, _) if i == REQUESTS - 1 => json!({"request": "track", "pid": pid}),
                        (_, 0) => json!({"request": "track", "pid": pid}),
                        (_, 1) => json!({"request": "ping"}),
                        (_, 2) => json!({"request": "untrack", "pid": pid}),
                        _ => json!({"request": "status"}),
                    };
                    let response = client.request(request.clone());
                    if response["ok"] != json!(true) {
                        failures.push(json!({"request": request, "response": response}));
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<Value> = workers
        .into_iter()
        .flat_map(|worker| worker.join().expect("client thread"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} requests failed: {failures:#?}",
        failures.len()
    );

    let mut expected: Vec<i64> = sleeps.iter().map(|&pid| i64::from(pid)).collect();
    expected.sort_unstable();
    assert_eq!(
        daemon.client().tracked_pids(),
        expected,
        "every registration is there"
    );
    let state: Value = serde_json::from_slice(
        &std::fs::read(socket.with_file_name("state.json")).expect("state file"),
    )
    .expect("state is JSON");
    let mut saved: Vec<i64> = state["registrations"]
        .as_array()
        .expect("registrations")
        .iter()
        .map(|r| r["id"]["pid"].as_i64().expect("pid"))
        .collect();
    saved.sort_unstable();
    assert_eq!(saved, expected, "and durable");
    let log = daemon.log();
    assert!(
        !log.contains("missed monitor events"),
        "the service kept up with the monitor's events:\n{log}"
    );
}
