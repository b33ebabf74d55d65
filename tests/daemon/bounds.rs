//! Finding 1: one request switched the monitor off, for every user, across
//! restarts. A `grace` of years reached the deadline queue and panicked the
//! monitor task, while the daemon kept answering `ping`; the registration
//! was saved, so every restart panicked again; a config (or SIGHUP) could
//! do the same. Now every duration is bounded where it enters, and the
//! daemon keeps guarding.

use serde_json::json;

use crate::common::{Procs, SOON, wait_until_blocking};
use crate::fixture::{Daemon, TempDir};
use crate::support::{config, daemon_command, run_within, saved_registration, write_state};

/// A `grace` of three years is refused by name and limit; the daemon then
/// still cleans up a real orphan.
#[test]
fn a_grace_of_years_is_refused_and_the_daemon_keeps_guarding() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &["--check-interval", "60s"]);
    let mut procs = Procs::new();
    let shell = procs.spawn_shell("sleep 300 & echo $!; read x", 1);
    let orphan = shell.kid().clone();
    let mut client = daemon.client();
    for grace in ["3years", "2h"] {
        let error = client.refused(json!({"request": "track", "pid": orphan.pid, "grace": grace}));
        assert_eq!(error["kind"], json!("invalid_request"), "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("grace") && message.contains("1h"),
            "the field and its limit are named: {message}"
        );
    }
    assert!(client.tracked_pids().is_empty(), "nothing was registered");
    client.ok(json!({"request": "track", "pid": orphan.pid, "grace": "1h"}));
    procs.kill_and_reap(&shell.proc);
    wait_until_blocking(SOON, "the orphan is terminated", || orphan.is_dead());
    assert!(!daemon.log().contains("panicked"), "{}", daemon.log());
}

/// `kill_timeout = "3years"` (or a grace of years) in the config is refused
/// at start, naming the file, the key and the limit; on SIGHUP it changes
/// nothing and the old defaults stay.
#[test]
fn durations_out_of_range_are_refused_in_the_config_and_on_sighup() {
    let dir = TempDir::new(0o700);
    for (text, key) in [
        ("[monitor]\nkill_timeout = \"3years\"\n", "kill_timeout"),
        ("[monitor]\ngrace = \"3years\"\n", "grace"),
        ("[monitor]\ncheck_interval = \"1ns\"\n", "check_interval"),
    ] {
        let path = config(&dir, "bad.toml", text);
        let finished = run_within(
            daemon_command(&dir)
                .args(["--config", path.to_str().unwrap(), "--socket"])
                .arg(dir.socket()),
            SOON,
        );
        assert_eq!(finished.code(), Some(2), "{text}: {finished:?}");
        assert!(
            finished.stderr.contains(key) && finished.stderr.contains(path.to_str().unwrap()),
            "{text}: {}",
            finished.stderr
        );
    }
    let flag = run_within(
        daemon_command(&dir)
            .args(["--grace", "3years", "--socket"])
            .arg(dir.socket()),
        SOON,
    );
    assert_eq!(flag.code(), Some(2), "{flag:?}");
    assert!(flag.stderr.contains("grace"), "{}", flag.stderr);

    let path = config(&dir, "pidguard.toml", "[monitor]\ngrace = \"2s\"\n");
    let daemon = Daemon::start(&dir, &["--config", path.to_str().unwrap()]);
    std::fs::write(&path, "[monitor]\ngrace = \"3years\"\n").unwrap();
    daemon.signal(rustix::process::Signal::HUP);
    wait_until_blocking(SOON, "the refused reload is logged", || {
        daemon.log().contains("config not reloaded")
    });
    assert!(daemon.log().contains("grace"), "{}", daemon.log());
    let mut procs = Procs::new();
    let sleep = procs.sleep("300");
    assert_eq!(
        daemon.client().track(sleep.pid)["grace"],
        json!("2s"),
        "the last good default stays"
    );
}

/// A saved registration with a grace of years (written before the limits,
/// or forged) is dropped at restart with a log line; the daemon runs and
/// guards the rest.
#[test]
fn a_saved_registration_out_of_range_is_dropped_with_a_log_line() {
    let dir = TempDir::new(0o700);
    let mut procs = Procs::new();
    let doomed = procs.sleep("300");
    let me = crate::common::my_pid();
    let my_start = crate::common::read_stat(me).unwrap().start_time;
    let shell = procs.spawn_shell("sleep 300 & echo $!; read x", 1);
    let kept = shell.kid().clone();
    let kept_parent = (shell.proc.pid, shell.proc.start_time);
    write_state(
        &dir,
        &[
            saved_registration(doomed.pid, doomed.start_time, (me, my_start), 0, "3years"),
            saved_registration(kept.pid, kept.start_time, kept_parent, 0, "1s"),
        ],
    );
    let daemon = Daemon::start(&dir, &[]);
    let mut client = daemon.client();
    assert_eq!(client.tracked_pids(), vec![i64::from(kept.pid)]);
    let log = daemon.log();
    assert!(
        log.contains("dropped a saved registration")
            && log.contains(&format!("{}@", doomed.pid))
            && log.contains("grace"),
        "the dropped registration is logged with its reason:\n{log}"
    );
    procs.kill_and_reap(&shell.proc);
    wait_until_blocking(SOON, "the kept registration's orphan is terminated", || {
        kept.is_dead()
    });
    assert!(doomed.is_running(), "the dropped one was not acted on");
}
