//! Fixtures for the daemon tests: a private temporary directory, the real
//! `pidguard daemon` in it (killed through its pidfd on drop), and a raw
//! protocol client.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustix::process::{Pid, PidfdFlags, Signal};
use serde_json::{Value, json};

use crate::common::{SOON, wait_until_blocking};

/// The binary under test.
pub(crate) const PIDGUARD: &str = env!("CARGO_BIN_EXE_pidguard");

/// A directory of its own for one test, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh directory with `mode`.
    pub(crate) fn new(mode: u32) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "pidguard-daemon-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).expect("create test dir");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        Self { path }
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The socket path used in it (in a subdirectory the daemon creates).
    pub(crate) fn socket(&self) -> PathBuf {
        self.path.join("run").join("pidguard.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Where a daemon's stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stderr {
    /// `daemon.stderr` in the test directory ([`Daemon::log`]).
    Log,
    /// A pipe, for [`Daemon::take_stderr`].
    Pipe,
    /// Wherever the command already sends it.
    Given,
}

/// A running `pidguard daemon`, killed on drop.
#[derive(Debug)]
pub(crate) struct Daemon {
    child: Child,
    pidfd: OwnedFd,
    /// Its socket.
    pub(crate) socket: PathBuf,
    /// Its log (stderr).
    pub(crate) log: PathBuf,
}

impl Daemon {
    /// A daemon whose socket the group of uid 65534 may use, for a test
    /// that re-runs itself as that user; the test itself must be root.
    /// Others may pass through (not list) `dir`, so the group can reach the
    /// socket directory the daemon makes inside it.
    pub(crate) fn start_for_nobody(dir: &TempDir) -> Self {
        let nobody = crate::common::NOBODY;
        assert!(
            rustix::process::geteuid().is_root(),
            "this test drops privileges to uid {nobody} and must start as root (CI does)"
        );
        let config = dir.path().join("pidguard.toml");
        std::fs::write(&config, format!("socket_group = {nobody}\n")).expect("write the config");
        let config = config.to_str().expect("a UTF-8 path").to_owned();
        Self::start(dir, &["--config", &config])
    }

    /// Starts a daemon on `dir`'s socket with `args`, and waits until it
    /// answers a ping.
    pub(crate) fn start(dir: &TempDir, args: &[&str]) -> Self {
        Self::launch(dir, Self::command(dir, args), Stderr::Log)
    }

    /// `pidguard daemon --socket <dir's socket> ARGS`, for a test to adjust
    /// before [`Daemon::launch`].
    pub(crate) fn command(dir: &TempDir, args: &[&str]) -> Command {
        let mut command = Command::new(PIDGUARD);
        command
            .arg("daemon")
            .arg("--socket")
            .arg(dir.socket())
            .args(args);
        command
    }

    /// Runs `command`, which must become a daemon on `dir`'s socket in the
    /// process it starts (a wrapper must `exec` it), with the daemon's own
    /// variables cleared unless `command` sets them, and `RUST_LOG=info`
    /// unless it sets that; waits until it answers a ping.
    pub(crate) fn launch(dir: &TempDir, command: Command, stderr: Stderr) -> Self {
        let mut daemon = Self::spawn(dir, command, stderr);
        daemon.wait_ready();
        daemon
    }

    /// [`Daemon::launch`] without waiting for it to answer.
    pub(crate) fn spawn(dir: &TempDir, mut command: Command, stderr: Stderr) -> Self {
        let socket = dir.socket();
        let log = dir.path().join("daemon.stderr");
        let set = |command: &Command, var: &str| command.get_envs().any(|(name, _)| name == var);
        for var in ["PIDGUARD_SOCKET", "PIDGUARD_STATE", "PIDGUARD_CONFIG"] {
            if !set(&command, var) {
                command.env_remove(var);
            }
        }
        if !set(&command, "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        match stderr {
            Stderr::Log => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("open daemon log");
                command.stderr(file);
            }
            Stderr::Pipe => {
                command.stderr(Stdio::piped());
            }
            Stderr::Given => {}
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start pidguard daemon");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits")).expect("pid > 0");
        let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty()).expect("pidfd_open");
        Self {
            child,
            pidfd,
            socket,
            log,
        }
    }

    /// Its stderr, when it was started with [`Stderr::Pipe`].
    pub(crate) fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Waits until the daemon answers a ping (panics if it exits first).
    pub(crate) fn wait_ready(&mut self) {
        let socket = self.socket.clone();
        let child = &mut self.child;
        let log = self.log.clone();
        wait_until_blocking(SOON, "the daemon answers a ping", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the daemon exited ({status}) before answering:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            Client::try_connect(&socket).is_some_and(|mut client| {
                client.request(json!({"request": "ping"}))["ok"] == json!(true)
            })
        });
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits")
    }

    /// A new connection.
    pub(crate) fn client(&self) -> Client {
        Client::connect(&self.socket)
    }

    /// Sends `signal` through its pidfd.
    pub(crate) fn signal(&self, signal: Signal) {
        rustix::process::pidfd_send_signal(&self.pidfd, signal).expect("signal the daemon");
    }

    /// Sends SIGTERM and waits for it to exit.
    pub(crate) fn terminate(mut self) -> ExitStatus {
        self.signal(Signal::TERM);
        self.wait_exit()
    }

    /// Sends SIGKILL (a crash) and waits for it to be gone.
    pub(crate) fn kill9(mut self) -> ExitStatus {
        self.signal(Signal::KILL);
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let mut status = None;
        let child = &mut self.child;
        wait_until_blocking(SOON, "the daemon exits", || {
            status = child.try_wait().expect("try_wait daemon");
            status.is_some()
        });
        status.expect("exited")
    }

    /// Its log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // ESRCH: it already exited; the pidfd never reaches another process.
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, Signal::KILL);
        let _ = self.child.wait();
    }
}

/// A raw protocol connection.
#[derive(Debug)]
pub(crate) struct Client {
    reader: BufReader<UnixStream>,
    /// The write side.
    pub(crate) stream: UnixStream,
}

impl Client {
    /// Connects, or panics.
    pub(crate) fn connect(socket: &Path) -> Self {
        Self::try_connect(socket)
            .unwrap_or_else(|| panic!("cannot connect to {}", socket.display()))
    }

    /// Connects, if something listens.
    pub(crate) fn try_connect(socket: &Path) -> Option<Self> {
        let stream = UnixStream::connect(socket).ok()?;
        stream
            .set_read_timeout(Some(SOON))
            .expect("set read timeout");
        Some(Self {
            reader: BufReader::new(stream.try_clone().expect("clone stream")),
            stream,
        })
    }

    /// Sends raw bytes.
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to the daemon");
    }

    /// Reads one line as JSON.
    pub(crate) fn read(&mut self) -> Value {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .expect("read from the daemon");
        assert!(n > 0, "the daemon closed the connection");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
    }

    /// Sends `request` (with `"version": 1` added) and reads the answer.
    pub(crate) fn request(&mut self, mut request: Value) -> Value {
        request["version"] = json!(1);
        let mut line = serde_json::to_vec(&request).expect("serialize");
        line.push(b'\n');
        self.send_raw(&line);
        self.read()
    }

    /// A request that must succeed; returns its result.
    pub(crate) fn ok(&mut self, request: Value) -> Value {
        let response = self.request(request.clone());
        assert_eq!(response["ok"], json!(true), "{request} failed: {response}");
        response["result"].clone()
    }

    /// A request that must fail; returns its error.
    pub(crate) fn refused(&mut self, request: Value) -> Value {
        let response = self.request(request.clone());
        assert_eq!(
            response["ok"],
            json!(false),
            "{request} succeeded: {response}"
        );
        response["error"].clone()
    }

    /// Registers `pid` with the defaults.
    pub(crate) fn track(&mut self, pid: i32) -> Value {
        self.ok(json!({"request": "track", "pid": pid}))
    }

    /// The pids the daemon lists for this client.
    pub(crate) fn tracked_pids(&mut self) -> Vec<i64> {
        let status = self.ok(json!({"request": "status"}));
        let mut pids: Vec<i64> = status["tracked"]
            .as_array()
            .expect("tracked is a list")
            .iter()
            .map(|t| t["id"]["pid"].as_i64().expect("pid"))
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Whether a ping on this connection gets any answer (false when the
    /// daemon closed it).
    pub(crate) fn try_pings(&mut self) -> bool {
        let line = b"{\"version\":1,\"request\":\"ping\"}\n";
        if self.stream.write_all(line).is_err() {
            return false;
        }
        let mut answer = String::new();
        matches!(self.reader.read_line(&mut answer), Ok(n) if n > 0)
    }

    /// Whether the daemon answers a ping on this connection.
    pub(crate) fn pings(&mut self) -> bool {
        self.request(json!({"request": "ping"}))["ok"] == json!(true)
    }

    /// Reads the next event line, waiting up to `timeout`.
    pub(crate) fn next_event(&mut self, timeout: Duration) -> Value {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("set read timeout");
        self.read()
    }
}

/// Waits for an event line about `pid` named `name`; panics after `timeout`.
pub(crate) fn wait_event(client: &mut Client, pid: i32, name: &str, timeout: Duration) -> Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(
            !left.is_zero(),
            "no {name} event for {pid} within {timeout:?}"
        );
        let line = client.next_event(left);
        let event = &line["event"];
        if event["event"] == json!(name) && event["id"]["pid"] == json!(pid) {
            return event.clone();
        }
    }
}
