//! Helpers for the hostile-input tests: commands run with a deadline (a
//! hang is a failure, never a stuck test), a memory cap for commands that
//! would otherwise allocate without end, config files, and what `/proc`
//! says about the daemon.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::fixture::{PIDGUARD, TempDir};

/// How a command run with a deadline ended.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Its exit status; `None` if it was still running at the deadline
    /// (it was killed then).
    pub(crate) status: Option<ExitStatus>,
    /// What it printed on stdout.
    pub(crate) stdout: String,
    /// What it printed on stderr.
    pub(crate) stderr: String,
}

impl Finished {
    /// Its exit code, panicking (with its output) if it hung.
    pub(crate) fn code(&self) -> Option<i32> {
        let status = self
            .status
            .unwrap_or_else(|| panic!("the command hung and was killed:\n{self:?}"));
        status.code()
    }
}

/// Runs `command` (stdin closed, output captured) and kills it if it has
/// not exited within `limit`.
pub(crate) fn run_within(command: &mut Command, limit: Duration) -> Finished {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the command");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // An unreaped child's pid cannot be reused: this kill is exact.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `pidguard daemon` for `dir` with a clean environment (no socket chosen).
pub(crate) fn daemon_command(dir: &TempDir) -> Command {
    let mut command = Command::new(PIDGUARD);
    command
        .arg("daemon")
        .env_remove("PIDGUARD_SOCKET")
        .env_remove("PIDGUARD_STATE")
        .env_remove("PIDGUARD_CONFIG")
        .env("RUST_LOG", "info")
        .current_dir(dir.path());
    command
}

/// `pidguard ARGS` as a client of `socket`.
pub(crate) fn client_command(socket: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(PIDGUARD);
    command
        .args(args)
        .env("PIDGUARD_SOCKET", socket)
        .env_remove("PIDGUARD_TIMEOUT")
        .env_remove("PIDGUARD_STATE")
        .env_remove("PIDGUARD_CONFIG");
    command
}

/// Caps `command`'s address space, so a process that allocates without
/// end (as the unfixed code did) dies quickly instead of eating the
/// machine's memory.
pub(crate) fn cap_memory(command: &mut Command, bytes: u64) -> &mut Command {
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the
    // parent; it is the only thing run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            rustix::process::setrlimit(
                rustix::process::Resource::As,
                rustix::process::Rlimit {
                    current: Some(bytes),
                    maximum: Some(bytes),
                },
            )
            .map_err(std::io::Error::from)
        })
    }
}

/// Writes `text` as the config file `name` in `dir`.
pub(crate) fn config(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write the config");
    path
}

/// The directory holding the daemon's socket and state (created 0700).
pub(crate) fn run_dir(dir: &TempDir) -> PathBuf {
    let run = dir.socket().parent().expect("socket dir").to_path_buf();
    if !run.exists() {
        std::fs::create_dir(&run).expect("create the socket dir");
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod");
    }
    run
}

/// How many descriptors `pid` has open.
pub(crate) fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the daemon's fd table")
        .count()
}

/// Its resident set size in KiB.
pub(crate) fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// A registration line of a state file, as the daemon writes them.
pub(crate) fn saved_registration(
    pid: i32,
    start_time: u64,
    parent: (i32, u64),
    uid: u32,
    grace: &str,
) -> String {
    format!(
        r#"{{"id":{{"pid":{pid},"start_time":{start_time}}},"parent":{{"pid":{},"start_time":{}}},"uid":{uid},"action":"terminate","grace":"{grace}","signal":"SIGTERM","tree":false,"target":"process"}}"#,
        parent.0, parent.1
    )
}

/// Writes a state file holding `registrations` for `dir`'s daemon.
pub(crate) fn write_state(dir: &TempDir, registrations: &[String]) -> PathBuf {
    let path = run_dir(dir).join("state.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"format":1,"registrations":[{}]}}"#,
            registrations.join(",")
        ),
    )
    .expect("write the state file");
    path
}
