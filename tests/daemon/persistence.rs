//! Nothing lost: registrations survive `kill -9` of the daemon; a restart
//! resumes every process that still has its identity, drops the rest with
//! a log line, and treats a parent that died meanwhile as an orphan at
//! once. A corrupt state file is moved aside and does not stop the daemon.

use serde_json::json;

use crate::common::{Procs, SOON, wait_until_blocking};
use crate::fixture::{Daemon, TempDir};

#[test]
fn registrations_survive_kill_9_and_a_restart() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &["--check-interval", "60s"]);
    let mut procs = Procs::new();
    let survivor = procs.sleep("300");
    let victim = procs.sleep("300");
    let orphan_shell = procs.spawn_shell("sleep 300 & echo $!; read x", 1);
    let orphan = orphan_shell.kid().clone();
    let mut client = daemon.client();
    for pid in [survivor.pid, victim.pid, orphan.pid] {
        client.track(pid);
    }
    drop(client);
    // A crash: no chance to write anything more.
    daemon.kill9();
    // While no daemon runs, one process ends and another's parent dies.
    procs.kill_and_reap(&victim);
    procs.kill_and_reap(&orphan_shell.proc);

    let daemon = Daemon::start(&dir, &["--check-interval", "60s"]);
    wait_until_blocking(
        SOON,
        "the orphan whose parent died meanwhile is terminated",
        || orphan.is_dead(),
    );
    let mut client = daemon.client();
    wait_until_blocking(SOON, "only the survivor stays registered", || {
        client.tracked_pids() == vec![i64::from(survivor.pid)]
    });
    let status = client.ok(json!({"request": "status"}));
    assert_eq!(
        status["tracked"][0]["id"]["start_time"],
        json!(survivor.start_time)
    );
    assert!(survivor.is_running());
    let log = daemon.log();
    assert!(
        log.contains("dropped a saved registration") && log.contains(&format!("{}@", victim.pid)),
        "the dropped registration is logged:\n{log}"
    );
}

#[test]
fn a_corrupt_state_file_is_moved_aside_and_the_daemon_runs() {
    let dir = TempDir::new(0o700);
    let run = dir.socket().parent().unwrap().to_path_buf();
    std::fs::create_dir(&run).unwrap();
    std::fs::write(
        run.join("state.json"),
        b"{\"format\":1,\"registrations\":[{\"id\":",
    )
    .unwrap();
    let daemon = Daemon::start(&dir, &[]);
    let mut client = daemon.client();
    assert!(client.tracked_pids().is_empty());
    let moved: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.json.corrupt-")
        })
        .collect();
    assert_eq!(
        moved.len(),
        1,
        "the corrupt file is kept aside for inspection"
    );
    assert!(
        daemon.log().contains("corrupt"),
        "and reported:\n{}",
        daemon.log()
    );
    // It works as usual afterwards, including writing a fresh state file.
    let mut procs = Procs::new();
    let sleep = procs.sleep("300");
    client.track(sleep.pid);
    let state = std::fs::read_to_string(run.join("state.json")).unwrap();
    assert!(state.contains(&format!("\"pid\":{}", sleep.pid)), "{state}");
}

/// Finding 7: an untrack whose state write fails is rolled back, like a
/// track: answered `internal`, still registered, and still there after
/// `kill -9` and a restart.
#[test]
fn an_untrack_that_cannot_be_saved_is_rolled_back() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let mut procs = Procs::new();
    let sleep = procs.sleep("300");
    let mut client = daemon.client();
    client.track(sleep.pid);
    let state = daemon.socket.with_file_name("state.json");
    let saved = std::fs::read(&state).unwrap();
    // A directory where the state file was: the rename over it fails.
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("keep"), b"x").unwrap();
    let error = client.refused(json!({"request": "untrack", "pid": sleep.pid}));
    assert_eq!(error["kind"], json!("internal"), "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("state file could not be written"),
        "{error}"
    );
    assert_eq!(
        client.tracked_pids(),
        vec![i64::from(sleep.pid)],
        "the untrack was rolled back"
    );
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::write(&state, &saved).unwrap();
    daemon.kill9();
    let daemon = Daemon::start(&dir, &[]);
    assert_eq!(
        daemon.client().tracked_pids(),
        vec![i64::from(sleep.pid)],
        "the registration the client was told is kept, is kept"
    );
}
