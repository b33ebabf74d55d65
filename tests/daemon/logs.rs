//! The daemon's log: no escape codes unless asked for, JSON lines that
//! parse, the journal with structured fields (a fake journald in a mount
//! namespace of the daemon's own), and messages said once.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::common::{Procs, SOON, wait_until_blocking};
use crate::fixture::{Daemon, PIDGUARD, Stderr, TempDir};
use crate::support::{client_command, run_within};

/// Runs a daemon with `args` and stderr on a pipe, registers and drops a
/// process, stops it, and returns everything it wrote on stderr.
fn piped_log(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = TempDir::new(0o700);
    let mut command = Daemon::command(&dir, args);
    command.env_remove("NO_COLOR");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut daemon = Daemon::launch(&dir, command, Stderr::Pipe);
    let mut stderr = daemon.take_stderr().expect("piped");
    // Drained meanwhile: a full pipe would block the daemon.
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let mut procs = Procs::new();
    let sleeper = procs.sleep("300");
    let mut client = daemon.client();
    client.track(sleeper.pid);
    client.ok(json!({"request": "untrack", "pid": sleeper.pid}));
    let status = daemon.terminate();
    assert!(status.success(), "{status}");
    String::from_utf8(reader.join().expect("reader")).expect("UTF-8 log")
}

#[test]
fn logs_to_a_pipe_carry_no_escape_codes() {
    let log = piped_log(&[], &[]);
    assert!(log.contains("registered"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in a pipe: {log:?}");
    // The control: asked for, they are there (so the check above can fail).
    let coloured = piped_log(&["--color", "always"], &[]);
    assert!(coloured.contains('\u{1b}'), "{coloured:?}");
}

#[test]
fn json_log_lines_parse_with_their_fields() {
    for args in [&["--log-format", "json"][..], &[][..]] {
        // The flag, or the variable (which the flag would beat).
        let env: &[(&str, &str)] = if args.is_empty() {
            &[("PIDGUARD_LOG_FORMAT", "json")]
        } else {
            &[]
        };
        let log = piped_log(args, env);
        let lines: Vec<Value> = log
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
            })
            .collect();
        assert!(!lines.is_empty());
        for line in &lines {
            assert!(line["timestamp"].is_string(), "{line}");
            assert!(line["level"].is_string(), "{line}");
            assert!(line["target"].is_string(), "{line}");
            assert!(line["fields"]["message"].is_string(), "{line}");
        }
        let registered = lines
            .iter()
            .find(|line| line["fields"]["message"] == json!("registered"))
            .unwrap_or_else(|| panic!("no `registered` line: {log}"));
        assert_eq!(registered["level"], json!("INFO"));
        assert!(
            registered["fields"]["id"]
                .as_str()
                .is_some_and(|id| id.contains('@')),
            "{registered}"
        );
        assert_eq!(
            registered["fields"]["uid"],
            json!(rustix::process::getuid().as_raw())
        );
    }
}

/// `pidguard track 1` says why once: "pid 1 is the init process ...",
/// not "pid 1: pid 1 is the init process ...".
#[test]
fn a_refusal_is_said_once() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let finished = run_within(
        &mut client_command(&daemon.socket, &["track", "--no-autostart", "1"]),
        SOON,
    );
    assert_eq!(finished.code(), Some(1), "{finished:?}");
    assert_eq!(
        finished.stderr.trim_end(),
        "pidguard: pid 1 is the init process and is never tracked",
        "{finished:?}"
    );
}

/// One journal entry: its fields by name.
type Entry = std::collections::HashMap<String, String>;

/// Parses a datagram of journald's native protocol: `NAME=value` lines,
/// or `NAME`, a newline, a 64-bit little-endian length, the value and a
/// newline.
fn parse_entry(mut datagram: &[u8]) -> Entry {
    let mut entry = Entry::new();
    while !datagram.is_empty() {
        let end = datagram
            .iter()
            .position(|&b| b == b'\n')
            .expect("a field ends with a newline");
        let line = &datagram[..end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            let name = String::from_utf8_lossy(&line[..eq]).into_owned();
            entry.insert(name, String::from_utf8_lossy(&line[eq + 1..]).into_owned());
            datagram = &datagram[end + 1..];
        } else {
            let name = String::from_utf8_lossy(line).into_owned();
            let rest = &datagram[end + 1..];
            let len = usize::try_from(u64::from_le_bytes(
                rest[..8].try_into().expect("8 length bytes"),
            ))
            .expect("fits");
            let value = &rest[8..8 + len];
            entry.insert(name, String::from_utf8_lossy(value).into_owned());
            datagram = &rest[8 + len + 1..];
        }
    }
    entry
}

/// Collects journal entries until one satisfies `wanted` (or the deadline).
fn wait_entry(socket: &UnixDatagram, seen: &mut Vec<Entry>, wanted: impl Fn(&Entry) -> bool) {
    let deadline = Instant::now() + SOON;
    let mut buffer = vec![0; 1 << 16];
    while !seen.iter().any(&wanted) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no such journal entry; got {seen:#?}");
        socket.set_read_timeout(Some(left)).expect("timeout");
        match socket.recv(&mut buffer) {
            // The layer's connectivity probe is an empty datagram.
            Ok(0) => {}
            Ok(n) => seen.push(parse_entry(&buffer[..n])),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => panic!("reading the journal socket: {error}"),
        }
    }
}

/// Root only (a mount namespace): the daemon, told by `JOURNAL_STREAM`
/// that its stderr is the journal, sends its log to journald (here: the
/// test, through a directory mounted at `/run/systemd/journal` in the
/// daemon's own mount namespace), with the tracing fields as journal
/// fields: the orphan's pid, the signal, the registrant's uid.
#[test]
fn the_journal_gets_structured_fields() {
    if !rustix::process::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the journal test needs root (a mount namespace), as CI runs"
        );
        eprintln!("the_journal_gets_structured_fields skipped: needs root");
        return;
    }
    let dir = TempDir::new(0o700);
    let journal_dir = dir.path().join("journal");
    std::fs::create_dir(&journal_dir).expect("mkdir");
    let journal = UnixDatagram::bind(journal_dir.join("socket")).expect("bind the journal");
    let stderr_path = dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let meta = stderr.metadata().expect("stat");

    // A tmpfs over /run (in that namespace only) gives a place for the
    // journal's directory without touching the real /run.
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal \
             && mount --bind \"$0\" /run/systemd/journal && exec \"$@\"",
        )
        .arg(&journal_dir)
        .arg(PIDGUARD)
        .args(["daemon", "--socket"])
        .arg(dir.socket())
        .args(["--check-interval", "60s"])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(stderr);
    let daemon = Daemon::launch(&dir, command, Stderr::Given);

    let mut seen = Vec::new();
    let mut procs = Procs::new();
    let shell = procs.spawn_shell(&script(&daemon.socket), 1);
    let orphan = shell.kid().clone();
    wait_entry(&journal, &mut seen, |e| {
        e.get("MESSAGE").map(String::as_str) == Some("registered")
    });
    let registered = seen
        .iter()
        .find(|e| e.get("MESSAGE").map(String::as_str) == Some("registered"))
        .expect("found");
    assert_eq!(registered["PIDGUARD_UID"], "0", "{registered:?}");
    assert!(
        registered["PIDGUARD_ID"].starts_with(&format!("{}@", orphan.pid)),
        "{registered:?}"
    );
    assert_eq!(registered["SYSLOG_IDENTIFIER"], "pidguard");
    assert_eq!(registered["PRIORITY"], "6", "info is priority 6");

    procs.kill_and_reap(&shell.proc);
    let pid = orphan.pid.to_string();
    wait_entry(&journal, &mut seen, |e| {
        e.get("PIDGUARD_SIGNAL").map(String::as_str) == Some("SIGTERM")
    });
    let signalled = seen
        .iter()
        .find(|e| e.contains_key("PIDGUARD_SIGNAL"))
        .expect("found");
    assert_eq!(
        signalled.get("PIDGUARD_PID"),
        Some(&pid),
        "the tracked process's span names its pid: {signalled:?}"
    );
    wait_until_blocking(SOON, "the orphan is gone", || orphan.is_dead());
    let stderr = std::fs::read_to_string(&stderr_path).expect("read stderr");
    assert!(
        !stderr.contains("registered"),
        "the log went to the journal, not stderr: {stderr}"
    );
    drop(daemon);
}

/// A shell that starts a `sleep`, registers it and waits to be killed.
fn script(socket: &Path) -> String {
    format!(
        "sleep 300 & \"{PIDGUARD}\" track --no-autostart --socket '{}' $! >&2 && echo $!; read x",
        socket.display()
    )
}
