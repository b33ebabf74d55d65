//! The client commands, run as the real binary: autostart (one daemon even
//! when two first clients race), `--no-autostart`, and what `track`,
//! `untrack`, `status` and `events` print and return.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::process::{Pid, PidfdFlags, Signal};
use serde_json::{Value, json};

use crate::common::{Procs, SOON, wait_until_blocking};
use crate::fixture::{Client, Daemon, PIDGUARD, TempDir};

/// Runs `pidguard args...` against `socket`.
fn pidguard(socket: &Path, args: &[&str]) -> std::process::Output {
    command(socket, args).output().expect("run pidguard")
}

fn command(socket: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(PIDGUARD);
    command
        .args(args)
        .env("PIDGUARD_SOCKET", socket)
        .env_remove("PIDGUARD_STATE")
        .env_remove("PIDGUARD_CONFIG")
        .stdin(Stdio::null());
    command
}

/// Kills, on drop, every daemon serving `socket` that a client started:
/// found through the pid in its lock file and its command line, and
/// signalled through a pidfd.
struct Autostarted {
    socket: PathBuf,
}

impl Autostarted {
    /// Pids of running `pidguard daemon` processes serving this socket.
    fn daemons(&self) -> Vec<i32> {
        let needle = self.socket.to_string_lossy().into_owned();
        std::fs::read_dir("/proc")
            .expect("read /proc")
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                    return false;
                };
                let args: Vec<String> = cmdline
                    .split(|&b| b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                args.first().is_some_and(|exe| exe == PIDGUARD)
                    && args.get(1).is_some_and(|a| a == "daemon")
                    && args.contains(&needle)
            })
            .collect()
    }
}

impl Drop for Autostarted {
    fn drop(&mut self) {
        for pid in self.daemons() {
            // Matched by its command line just now; the pidfd pins it.
            if let Ok(fd) =
                rustix::process::pidfd_open(Pid::from_raw(pid).unwrap(), PidfdFlags::empty())
            {
                let _ = rustix::process::pidfd_send_signal(&fd, Signal::KILL);
            }
        }
    }
}

fn status_json(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "pidguard status failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("status --json prints JSON")
}

#[test]
fn status_without_a_daemon_starts_one() {
    let dir = TempDir::new(0o700);
    let socket = dir.socket();
    let guard = Autostarted {
        socket: socket.clone(),
    };
    let status = status_json(&pidguard(&socket, &["status", "--json"]));
    let pid = status["daemon_pid"].as_i64().unwrap();
    assert_eq!(guard.daemons(), vec![i32::try_from(pid).unwrap()]);
    // It outlives the client, detached in its own session, logging to a file.
    let sid = rustix::process::getsid(Pid::from_raw(i32::try_from(pid).unwrap())).unwrap();
    assert_eq!(
        sid.as_raw_nonzero().get(),
        i32::try_from(pid).unwrap(),
        "its own session"
    );
    let log = std::fs::read_to_string(socket.with_file_name("daemon.log")).unwrap();
    assert!(log.contains("listening"), "{log}");
    assert!(Client::connect(&socket).pings());
}

#[test]
fn two_racing_first_clients_leave_exactly_one_daemon() {
    let dir = TempDir::new(0o700);
    let socket = dir.socket();
    let guard = Autostarted {
        socket: socket.clone(),
    };
    let clients: Vec<_> = (0..2)
        .map(|_| {
            command(&socket, &["status", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a client")
        })
        .collect();
    let pids: Vec<i64> = clients
        .into_iter()
        .map(|client| {
            let output = client.wait_with_output().expect("client finishes");
            status_json(&output)["daemon_pid"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(pids[0], pids[1], "both clients talk to the same daemon");
    // A losing daemon (if both clients started one) leaves at once.
    wait_until_blocking(SOON, "exactly one daemon runs", || {
        guard.daemons().len() == 1
    });
    assert_eq!(guard.daemons(), vec![i32::try_from(pids[0]).unwrap()]);
}

#[test]
fn no_autostart_fails_with_code_3_naming_the_socket() {
    let dir = TempDir::new(0o700);
    let socket = dir.socket();
    let output = pidguard(&socket, &["status", "--no-autostart"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&socket.display().to_string()), "{stderr}");
    assert!(!socket.exists(), "no daemon was started");
}

#[test]
fn track_untrack_and_status_print_and_exit_as_documented() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let mut procs = Procs::new();
    let (a, b) = (procs.sleep("300"), procs.sleep("300"));
    let (pa, pb) = (a.pid.to_string(), b.pid.to_string());
    let output = pidguard(&daemon.socket, &["track", "--action", "kill", &pa, &pb]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("tracking {}@{}", a.pid, a.start_time)),
        "{stdout}"
    );
    assert!(stdout.contains("kill"), "{stdout}");

    let output = pidguard(&daemon.socket, &["status"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("2 registration(s)"), "{stdout}");
    assert!(
        stdout.contains(&format!("{}@{}", b.pid, b.start_time)),
        "{stdout}"
    );

    let output = pidguard(&daemon.socket, &["untrack", &pa]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("untracked {}@", a.pid)));

    let output = pidguard(&daemon.socket, &["untrack", &pa]);
    assert_eq!(output.status.code(), Some(1), "a refusal exits 1");
    assert!(String::from_utf8_lossy(&output.stderr).contains("not tracked"));

    let output = pidguard(&daemon.socket, &["track", "--grace", "soon", &pb]);
    assert_eq!(output.status.code(), Some(2), "a bad flag is a usage error");
    assert!(daemon.client().tracked_pids() == vec![i64::from(b.pid)]);
}

#[test]
fn events_prints_each_event_as_it_happens() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let mut procs = Procs::new();
    let sleep = procs.sleep("300");
    let mut events =
        procs.spawn(command(&daemon.socket, &["events", "--json"]).stdout(Stdio::piped()));
    let stdout = events.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The command subscribes in its own time: register and drop the sleep
    // until an event about it is printed (bounded by a deadline).
    let mut client = daemon.client();
    let start = std::time::Instant::now();
    let line = loop {
        assert!(
            start.elapsed() < SOON,
            "pidguard events printed nothing within {SOON:?}"
        );
        client.track(sleep.pid);
        client.ok(json!({"request": "untrack", "pid": sleep.pid}));
        // Skip keepalive lines (no event) and unit ends (a root, no id).
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(100))
            && line.contains("\"id\"")
        {
            break line;
        }
    };
    let first: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(first["version"], json!(1));
    assert_eq!(first["event"]["id"]["pid"], json!(sleep.pid), "{first}");
    procs.kill_and_reap(&events.proc);
}
