//! Finding 9, the smaller ones: a thread id was accepted as a pid, two
//! corrupt state files moved aside in the same second overwrote each
//! other, and a request `id` beyond 64 bits came back as a float.

use std::io::{BufRead, BufReader, Write};

use serde_json::json;

use crate::fixture::{Daemon, TempDir};
use crate::support::run_dir;

#[test]
fn a_thread_id_is_refused_as_a_thread() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        tid_tx
            .send(rustix::thread::gettid().as_raw_nonzero().get())
            .unwrap();
        let _ = stop_rx.recv();
    });
    let tid = tid_rx.recv().unwrap();
    let mut client = daemon.client();
    let error = client.refused(json!({"request": "track", "pid": tid}));
    drop(stop_tx);
    thread.join().unwrap();
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("thread") && message.contains(&crate::common::my_pid().to_string()),
        "{error}"
    );
    assert!(client.tracked_pids().is_empty());
}

#[test]
fn request_ids_come_back_exactly_as_sent_or_are_refused() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let mut stream = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
    stream.set_read_timeout(Some(crate::common::SOON)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for id in [
        "18446744073709551617",
        "-170141183460469231731687303715884105729",
        "\"a string id\"",
        "7",
    ] {
        writeln!(stream, r#"{{"version":1,"id":{id},"request":"ping"}}"#).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(
            line.starts_with(&format!("{{\"version\":1,\"id\":{id},\"ok\":true")),
            "the id comes back verbatim: {line}"
        );
    }
    for id in ["1.5", "null", "{\"a\":1}", "[1]", "true"] {
        writeln!(stream, r#"{{"version":1,"id":{id},"request":"ping"}}"#).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let response: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(response["ok"], json!(false), "{id}: {line}");
        assert!(
            response["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`id` must be a string or an integer"),
            "{id}: {line}"
        );
    }
}

#[test]
fn corrupt_state_files_moved_aside_keep_distinct_names() {
    let dir = TempDir::new(0o700);
    let run = run_dir(&dir);
    for round in 0..2 {
        std::fs::write(run.join("state.json"), format!("corrupt {round}")).unwrap();
        let daemon = Daemon::start(&dir, &[]);
        assert!(daemon.client().tracked_pids().is_empty());
        assert_eq!(daemon.terminate().code(), Some(0));
    }
    let mut kept: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("state.json.corrupt-"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept, ["corrupt 0", "corrupt 1"], "both are kept");
}
