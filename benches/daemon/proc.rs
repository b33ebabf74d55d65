//! The processes the bench starts, and what `/proc` says about the daemon.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::wire::Client;

/// The release `pidguard daemon`, killed and reaped on drop.
pub(crate) struct Daemon {
    child: Child,
    dir: PathBuf,
    /// Its socket.
    pub(crate) socket: PathBuf,
}

impl Daemon {
    /// Starts it in a fresh private directory and waits until it answers.
    pub(crate) fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("pidguard-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("create bench dir");
        let socket = dir.join("run").join("pidguard.sock");
        let interval =
            std::env::var("PIDGUARD_BENCH_CHECK_INTERVAL").unwrap_or_else(|_| "60s".to_owned());
        let child = Command::new(env!("CARGO_BIN_EXE_pidguard"))
            .args(["daemon", "--check-interval", &interval, "--socket"])
            .arg(&socket)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pidguard daemon");
        let daemon = Self { child, dir, socket };
        let start = std::time::Instant::now();
        while Client::try_connect(&daemon.socket).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        daemon
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident set size in KiB (`VmRSS`).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the daemon's status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// The CPU time (user + system) it has used so far.
    pub(crate) fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read the daemon's stat");
        let (_, rest) = stat.rsplit_once(')').expect("stat has a name");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 (utime, stime), counted from field 3 at index 0.
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        let hz = rustix::param::clock_ticks_per_second();
        Duration::from_secs_f64(ticks as f64 / hz as f64)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // An unreaped child's pid cannot be reused: kill by pid is exact.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `sleep 600`s, direct children, killed and reaped on drop.
pub(crate) struct Sleeps {
    children: Vec<Child>,
    pids: Vec<i32>,
}

impl Sleeps {
    /// Starts `n` of them.
    pub(crate) fn spawn(n: usize) -> Self {
        let children: Vec<Child> = (0..n)
            .map(|_| {
                Command::new("sleep")
                    .arg("600")
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("spawn sleep")
            })
            .collect();
        let pids = children
            .iter()
            .map(|c| i32::try_from(c.id()).expect("pid fits"))
            .collect();
        Self { children, pids }
    }

    /// Their pids.
    pub(crate) fn pids(&self) -> &[i32] {
        &self.pids
    }
}

impl Drop for Sleeps {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}
