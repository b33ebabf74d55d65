//! The daemon under a service manager, played by the test: a datagram
//! socket in `NOTIFY_SOCKET` gets `READY=1` once the socket is bound and
//! the state restored, `STATUS=`, `RELOADING=1`, `STOPPING=1`, and
//! `WATCHDOG=1` at half of `WATCHDOG_USEC`, which stops when the service
//! actor is wedged; and a listening socket passed as descriptor 3
//! (`LISTEN_FDS=1`) serves requests with the usual access control.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde_json::json;

use crate::common::{NOBODY, Procs, SOON, wait_until_blocking};
use crate::fixture::{Client, Daemon, PIDGUARD, Stderr, TempDir};
use crate::support::{client_command, run_dir, run_within, saved_registration, write_state};

/// The test's end of `NOTIFY_SOCKET`.
struct Manager {
    socket: UnixDatagram,
    /// Every line received, with when it came.
    seen: Vec<(Instant, String)>,
}

impl Manager {
    fn bind(dir: &TempDir) -> (Self, std::path::PathBuf) {
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind NOTIFY_SOCKET");
        (
            Self {
                socket,
                seen: Vec::new(),
            },
            path,
        )
    }

    /// Reads datagrams until a line satisfies `wanted` (one seen before
    /// counts), for up to `timeout`; returns when it came and the lines of
    /// its datagram.
    fn expect(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> (Instant, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut buffer = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no such notification within {timeout:?}; got {:?}",
                self.seen
            );
            self.socket.set_read_timeout(Some(left)).expect("timeout");
            let Ok(n) = self.socket.recv(&mut buffer) else {
                continue;
            };
            let at = Instant::now();
            let lines: Vec<String> = String::from_utf8_lossy(&buffer[..n])
                .lines()
                .map(str::to_owned)
                .collect();
            self.seen
                .extend(lines.iter().map(|line| (at, line.clone())));
            if lines.iter().any(|line| wanted(line)) {
                return (at, lines);
            }
        }
    }

    /// The watchdog pings received so far.
    fn pings(&self) -> Vec<Instant> {
        self.seen
            .iter()
            .filter(|(_, line)| line == "WATCHDOG=1")
            .map(|(at, _)| *at)
            .collect()
    }

    /// Waits until `count` pings in all have arrived.
    fn wait_pings(&mut self, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.pings().len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            self.expect(left, |line| line == "WATCHDOG=1");
        }
    }
}

/// A daemon told to notify `notify` with a watchdog of `watchdog`.
fn notifying_daemon(
    dir: &TempDir,
    notify: &std::path::Path,
    watchdog: Duration,
    extra_env: &[(&str, &str)],
) -> Daemon {
    let mut command = Daemon::command(dir, &["--check-interval", "60s"]);
    command
        .env("NOTIFY_SOCKET", notify)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
        .env_remove("WATCHDOG_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    for (name, value) in extra_env {
        command.env(name, value);
    }
    // Not waiting for a ping: READY=1 itself must mean "serving".
    Daemon::spawn(dir, command, Stderr::Log)
}

#[test]
fn ready_after_bind_and_restore_then_status_watchdog_reload_and_stopping() {
    let dir = TempDir::new(0o700);
    let mut procs = Procs::new();
    let saved = procs.sleep("300");
    let me = rustix::process::getuid().as_raw();
    let me_pid = i32::try_from(std::process::id()).expect("pid fits");
    let parent = crate::common::read_stat(me_pid).expect("own stat");
    write_state(
        &dir,
        &[saved_registration(
            saved.pid,
            saved.start_time,
            (me_pid, parent.start_time),
            me,
            "5s",
        )],
    );
    let (mut manager, notify) = Manager::bind(&dir);
    let watchdog = Duration::from_secs(2);
    let daemon = notifying_daemon(&dir, &notify, watchdog, &[]);

    let (_, lines) = manager.expect(SOON, |line| line == "READY=1");
    // Served at once, without a retry, with the saved registration back.
    let mut client = Client::try_connect(&daemon.socket)
        .unwrap_or_else(|| panic!("READY=1 before the socket was bound: {}", daemon.log()));
    assert_eq!(client.tracked_pids(), vec![i64::from(saved.pid)]);
    assert!(
        lines.contains(&"STATUS=1 registration(s), 1 process(es) tracked".to_owned()),
        "{lines:?}"
    );

    // Pings at half the interval: every gap is below the interval (systemd
    // would restart us otherwise) and none is much shorter than half.
    manager.wait_pings(4, SOON);
    let pings = manager.pings();
    for gap in pings.windows(2).map(|pair| pair[1] - pair[0]) {
        assert!(gap < watchdog, "a ping came {gap:?} after the last one");
        assert!(gap > watchdog / 4, "pings too often: {gap:?}");
    }
    assert!(
        manager
            .seen
            .iter()
            .any(|(_, line)| line.starts_with("STATUS=") && line.ends_with("tracked")),
        "{:?}",
        manager.seen
    );

    daemon.signal(Signal::HUP);
    manager.expect(SOON, |line| line == "RELOADING=1");
    let reload = manager.seen.iter().rposition(|(_, l)| l == "RELOADING=1");
    assert!(
        manager.seen[reload.expect("seen")..]
            .iter()
            .any(|(_, line)| line.starts_with("MONOTONIC_USEC=")),
        "{:?}",
        manager.seen
    );
    let before = manager
        .seen
        .iter()
        .filter(|(_, line)| line == "READY=1")
        .count();
    manager.expect(SOON, |line| line == "READY=1");
    assert_eq!(
        manager
            .seen
            .iter()
            .filter(|(_, line)| line == "READY=1")
            .count(),
        before + 1
    );

    let status = daemon.terminate();
    assert!(status.success(), "{status}");
    manager.expect(SOON, |line| line == "STOPPING=1");
    assert!(
        saved.is_running(),
        "a stopping daemon leaves processes alone"
    );
}

/// The wedge (a test-only hook of debug builds) stops the service actor
/// for good; the daemon process still runs and answers `ping`, and only
/// the watchdog's probe, which goes through that actor to the monitor's,
/// notices: the pings stop.
#[test]
fn a_wedged_actor_stops_the_watchdog_pings() {
    if !cfg!(debug_assertions) {
        // The hook exists only in debug builds, which `cargo test` makes.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs the debug build, which has the test wedge"
        );
        eprintln!("a_wedged_actor_stops_the_watchdog_pings skipped: a release build has no wedge");
        return;
    }
    let dir = TempDir::new(0o700);
    let (mut manager, notify) = Manager::bind(&dir);
    let watchdog = Duration::from_secs(1);
    let daemon = notifying_daemon(&dir, &notify, watchdog, &[("PIDGUARD_TEST_WEDGE", "1")]);
    manager.expect(SOON, |line| line == "READY=1");
    manager.wait_pings(3, SOON);

    daemon.signal(Signal::USR2);
    wait_until_blocking(SOON, "the service is wedged", || {
        daemon.log().contains("test wedge")
    });
    let wedged = Instant::now();
    // A probe answered just before the wedge may still ping once; after
    // that, three intervals (systemd restarts after one) without a ping.
    let quiet_from = wedged + watchdog;
    let until = quiet_from + 3 * watchdog;
    let mut buffer = [0u8; 4096];
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        manager
            .socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        if let Ok(n) = manager.socket.recv(&mut buffer) {
            let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
            assert!(
                !(text.lines().any(|line| line == "WATCHDOG=1") && Instant::now() > quiet_from),
                "a ping {:?} after the wedge: {text:?}\n{}",
                wedged.elapsed(),
                daemon.log()
            );
        }
    }
    // Alive, and its runtime answers: only the actor is stuck.
    assert!(daemon.client().pings());
    assert!(
        daemon.log().contains("did not answer the watchdog's probe"),
        "{}",
        daemon.log()
    );
}

/// A socket created and bound by the test (the service manager) and
/// passed as descriptor 3: the daemon serves it, gives its file the
/// configured mode and group, applies the usual access rules, and leaves
/// it in place when it stops.
#[test]
fn a_passed_socket_is_served_with_the_same_access_control() {
    let root = rustix::process::geteuid().is_root();
    // Others may traverse the test directory, so uid 65534 can reach the
    // socket through its group (root runs only).
    let dir = TempDir::new(0o711);
    let run = run_dir(&dir);
    let config = dir.path().join("pidguard.toml");
    if root {
        std::fs::write(&config, format!("socket_group = {NOBODY}\n")).expect("config");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o710)).expect("chmod");
        rustix::fs::chown(&run, None, Some(rustix::fs::Gid::from_raw(NOBODY))).expect("chgrp");
    } else {
        std::fs::write(&config, "").expect("config");
    }
    let listener = UnixListener::bind(dir.socket()).expect("bind the passed socket");
    std::fs::set_permissions(dir.socket(), std::fs::Permissions::from_mode(0o777))
        .expect("a careless SocketMode");
    let fd = listener.as_raw_fd();

    let elsewhere = dir.path().join("elsewhere.sock");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(PIDGUARD)
        .args(["daemon", "--socket"])
        .arg(&elsewhere)
        .arg("--config")
        .arg(&config)
        .env_remove("NOTIFY_SOCKET");
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and
    // exec; `fd` stays open in the parent until the child has started.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let daemon = Daemon::launch(&dir, command, Stderr::Log);
    drop(listener);

    let mut procs = Procs::new();
    let sleeper = procs.sleep("300");
    let mut client = daemon.client();
    let registration = client.track(sleeper.pid);
    assert_eq!(registration["id"]["pid"], json!(sleeper.pid));
    assert_eq!(client.tracked_pids(), vec![i64::from(sleeper.pid)]);
    assert!(
        !elsewhere.exists(),
        "nothing was bound at the configured path"
    );
    let log = daemon.log();
    assert!(log.contains("another path than configured"), "{log}");
    let meta = std::fs::metadata(dir.socket()).expect("socket");
    let expected_mode = if root { 0o660 } else { 0o600 };
    assert_eq!(meta.mode() & 0o777, expected_mode, "the daemon's own mode");

    if root {
        let mut nobody_command = Command::new("sleep");
        nobody_command.arg("300").uid(NOBODY).gid(NOBODY);
        let own = procs.spawn(&mut nobody_command).proc;
        let as_nobody = |args: &[&str]| {
            let mut command = client_command(&daemon.socket, args);
            command.uid(NOBODY).gid(NOBODY).env("HOME", "/");
            run_within(&mut command, SOON)
        };
        let refused = as_nobody(&["track", "--no-autostart", &sleeper.pid.to_string()]);
        assert_eq!(refused.code(), Some(1), "{refused:?}");
        assert!(refused.stderr.contains("uid 0"), "{refused:?}");
        let tracked = as_nobody(&["track", "--no-autostart", &own.pid.to_string()]);
        assert_eq!(tracked.code(), Some(0), "{tracked:?}");
        let status = as_nobody(&["status", "--no-autostart", "--json"]);
        let report: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
        assert_eq!(
            report["tracked"]
                .as_array()
                .expect("list")
                .iter()
                .map(|t| t["id"]["pid"].clone())
                .collect::<Vec<_>>(),
            vec![json!(own.pid)],
            "uid {NOBODY} sees only its own: {report}"
        );
    } else {
        eprintln!("the uid {NOBODY} half of the passed-socket test needs root (CI runs it)");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root"
        );
    }

    let status = daemon.terminate();
    assert!(status.success(), "{status}");
    assert!(
        std::fs::symlink_metadata(dir.socket()).is_ok(),
        "the passed socket is the service manager's: left in place"
    );
}
