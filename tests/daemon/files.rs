//! Findings 4, 5 and 8: the daemon's files as an attacker (or a mistake)
//! may leave them. The socket path replaced whatever was there; the state
//! directory was never checked and its temporary file followed symlinks;
//! the lock file was opened through symlinks and truncated; a FIFO at the
//! config path froze the daemon on SIGHUP, one at the state path hung it
//! before it bound, and `/dev/zero` as the state file was read without
//! end. Each test plants the thing and checks that nothing is harmed and
//! the refusal names the path.

use std::os::unix::fs::PermissionsExt;

use rustix::fs::Mode;
use rustix::process::Signal;

use crate::common::{Procs, SOON, wait_until_blocking};
use crate::fixture::{Daemon, TempDir};
use crate::support::{
    cap_memory, client_command, config, daemon_command, run_dir, run_within, write_state,
};

const PRECIOUS: &str = "notes that must survive\n";

fn mkfifo(path: &std::path::Path) {
    rustix::fs::mkfifoat(rustix::fs::CWD, path, Mode::from_raw_mode(0o600)).expect("mkfifo");
}

/// Finding 4: a regular file at the socket path is refused by name and
/// left alone, by the daemon and by a client's autostart.
#[test]
fn the_socket_path_replaces_nothing_but_a_socket() {
    let dir = TempDir::new(0o700);
    let notes = run_dir(&dir).join("notes.txt");
    std::fs::write(&notes, PRECIOUS).unwrap();
    let finished = run_within(daemon_command(&dir).arg("--socket").arg(&notes), SOON);
    assert_eq!(finished.code(), Some(1), "{finished:?}");
    assert!(
        finished.stderr.contains(&notes.display().to_string())
            && finished.stderr.contains("not a socket"),
        "{}",
        finished.stderr
    );
    let client = run_within(
        &mut client_command(&notes, &["status", "--timeout", "2s"]),
        SOON * 2,
    );
    assert_ne!(client.code(), Some(0), "{client:?}");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), PRECIOUS);
}

/// Finding 5: a state directory others can write is refused (it is where
/// a forged state file or a planted symlink would come from).
#[test]
fn a_state_directory_others_can_write_is_refused() {
    let dir = TempDir::new(0o700);
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let state = shared.join("state.json");
    let finished = run_within(
        daemon_command(&dir)
            .arg("--socket")
            .arg(dir.socket())
            .arg("--state")
            .arg(&state),
        SOON,
    );
    assert_eq!(finished.code(), Some(1), "{finished:?}");
    assert!(
        finished.stderr.contains(&shared.display().to_string())
            && finished.stderr.contains("written by others"),
        "{}",
        finished.stderr
    );
    assert!(!dir.socket().exists(), "nothing was served");
}

/// Finding 5: symlinks planted at the state file's temporary name and at
/// the lock file's path are never followed; their targets stay intact.
#[test]
fn planted_symlinks_are_never_followed() {
    let dir = TempDir::new(0o700);
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, PRECIOUS).unwrap();
    let run = run_dir(&dir);
    std::os::unix::fs::symlink(&victim, run.join("state.json.tmp")).unwrap();
    let daemon = Daemon::start(&dir, &[]);
    let mut procs = Procs::new();
    let sleep = procs.sleep("300");
    daemon.client().track(sleep.pid);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), PRECIOUS);
    let state = std::fs::read_to_string(run.join("state.json")).unwrap();
    assert!(state.contains(&format!("\"pid\":{}", sleep.pid)), "{state}");
    daemon.kill9();

    let lock = run.join("pidguard.sock.lock");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    let finished = run_within(daemon_command(&dir).arg("--socket").arg(dir.socket()), SOON);
    assert_eq!(finished.code(), Some(1), "{finished:?}");
    assert!(
        finished.stderr.contains("symbolic link") && finished.stderr.contains("lock"),
        "{}",
        finished.stderr
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), PRECIOUS);
}

/// Finding 5: a forged state file cannot make a root daemon kill a root
/// process: one owned by another uid is refused, and a registration
/// claiming another uid for a root process is dropped at restore.
#[test]
fn a_forged_state_file_kills_nothing() {
    let dir = TempDir::new(0o700);
    let mut procs = Procs::new();
    let target = procs.sleep("300");
    let dead_parent = procs.sleep("300");
    procs.kill_and_reap(&dead_parent);
    let forged = crate::support::saved_registration(
        target.pid,
        target.start_time,
        (dead_parent.pid, dead_parent.start_time),
        crate::common::NOBODY,
        "1s",
    );
    let state = write_state(&dir, &[forged]);
    std::os::unix::fs::chown(&state, Some(crate::common::NOBODY), None).unwrap();
    let finished = run_within(daemon_command(&dir).arg("--socket").arg(dir.socket()), SOON);
    assert_eq!(finished.code(), Some(1), "{finished:?}");
    assert!(
        finished.stderr.contains("belongs to uid 65534"),
        "{}",
        finished.stderr
    );
    std::os::unix::fs::chown(&state, Some(0), None).unwrap();
    let daemon = Daemon::start(&dir, &[]);
    assert!(daemon.client().tracked_pids().is_empty());
    assert!(
        daemon
            .log()
            .contains("does not belong to the uid that registered it"),
        "{}",
        daemon.log()
    );
    assert!(target.is_running(), "the root process was not touched");
}

/// Finding 8: a FIFO at the config path is refused on SIGHUP (not waited
/// on), and the daemon keeps serving.
#[test]
fn a_fifo_at_the_config_path_does_not_freeze_the_daemon() {
    let dir = TempDir::new(0o700);
    let path = config(&dir, "pidguard.toml", "");
    let daemon = Daemon::start(&dir, &["--config", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    daemon.signal(Signal::HUP);
    wait_until_blocking(SOON, "the refused reload is logged", || {
        daemon.log().contains("config not reloaded")
    });
    assert!(daemon.log().contains("a FIFO"), "{}", daemon.log());
    assert!(daemon.client().pings(), "the daemon still answers");
}

/// Finding 8: a FIFO, a device, a huge file or a symlink at the state path
/// is refused by name at start (never waited on, never read whole), and
/// nothing is served on a state the daemon could not read.
#[test]
fn a_state_path_that_is_not_a_small_regular_file_is_refused() {
    let dir = TempDir::new(0o700);
    let run = run_dir(&dir);
    let fifo = run.join("fifo.json");
    mkfifo(&fifo);
    let huge = run.join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(17 * 1024 * 1024)
        .unwrap();
    let link = run.join("link.json");
    std::os::unix::fs::symlink(&huge, &link).unwrap();
    for (state, names) in [
        (fifo.as_path(), "a FIFO"),
        (std::path::Path::new("/dev/zero"), "a character device"),
        (huge.as_path(), "the limit of 16777216"),
        (link.as_path(), "symbolic link"),
    ] {
        let finished = run_within(
            cap_memory(
                daemon_command(&dir)
                    .arg("--socket")
                    .arg(dir.socket())
                    .arg("--state")
                    .arg(state),
                1 << 30,
            ),
            SOON,
        );
        assert_eq!(
            finished.code(),
            Some(1),
            "{}: {finished:?}",
            state.display()
        );
        assert!(
            finished.stderr.contains(&state.display().to_string())
                && finished.stderr.contains(names),
            "{}: {}",
            state.display(),
            finished.stderr
        );
        assert!(!dir.socket().exists(), "nothing was served");
    }
    assert!(huge.exists(), "a file refused is left where it is");
}

/// Finding 8: `max_request_bytes` has an upper bound.
#[test]
fn a_request_limit_of_hundreds_of_mebibytes_is_refused() {
    let dir = TempDir::new(0o700);
    let path = config(&dir, "pidguard.toml", "max_request_bytes = 314572800\n");
    let finished = run_within(
        daemon_command(&dir)
            .args(["--config", path.to_str().unwrap(), "--socket"])
            .arg(dir.socket()),
        SOON,
    );
    assert_eq!(finished.code(), Some(2), "{finished:?}");
    assert!(
        finished.stderr.contains("max_request_bytes") && finished.stderr.contains("1048576"),
        "{}",
        finished.stderr
    );
}
