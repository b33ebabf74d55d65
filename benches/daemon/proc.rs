//! The processes the bench starts, and what `/proc` says about the daemon:
//! its RSS, and its CPU time over a window.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::wire::Client;

/// A `pidguard daemon`, killed and reaped on drop.
pub(crate) struct Daemon {
    child: Child,
    dir: PathBuf,
    /// Its socket.
    pub(crate) socket: PathBuf,
}

/// Numbers each daemon's private directory within this run.
static STARTED: AtomicUsize = AtomicUsize::new(0);

impl Daemon {
    /// Starts `binary daemon --check-interval <interval>` in a fresh
    /// private directory and waits until it answers.
    pub(crate) fn start(binary: &Path, interval: &str) -> Self {
        Self::start_with(binary, interval, "")
    }

    /// [`Daemon::start`] with `config` (TOML) as its config file.
    pub(crate) fn start_with(binary: &Path, interval: &str, config: &str) -> Self {
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pidguard-bench-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("create bench dir");
        let socket = dir.join("run").join("pidguard.sock");
        let config_file = dir.join("pidguard.toml");
        std::fs::write(&config_file, config).expect("write the bench's config");
        let child = Command::new(binary)
            .args(["daemon", "--check-interval", interval, "--config"])
            .arg(&config_file)
            .arg("--socket")
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
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // An unreaped child's pid cannot be reused: kill by pid is exact.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The run time of a process's threads over a window, in nanoseconds
/// (`/proc/<pid>/task/*/schedstat`: exact, where `/proc/<pid>/stat` counts
/// 10 ms ticks). A thread that ends during the window (a blocking-pool
/// thread idle for 10 s) takes its time with it, so the threads are
/// sampled every [`CpuMeter::SAMPLE`] and each keeps its last value.
pub(crate) struct CpuMeter {
    pid: u32,
    /// Run time per thread id when the window opened (0 for later ones).
    start: HashMap<u32, u64>,
    /// The last run time seen per thread id.
    last: HashMap<u32, u64>,
}

impl CpuMeter {
    /// How often [`CpuMeter::run_for`] samples the threads.
    const SAMPLE: Duration = Duration::from_millis(500);

    fn threads(pid: u32) -> HashMap<u32, u64> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return HashMap::new();
        };
        tasks
            .flatten()
            .filter_map(|task| {
                let tid = task.file_name().to_str()?.parse().ok()?;
                let text = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
                Some((tid, text.split_whitespace().next()?.parse().ok()?))
            })
            .collect()
    }

    /// Opens the window on `pid`'s threads.
    pub(crate) fn start(pid: u32) -> Self {
        let start = Self::threads(pid);
        Self {
            pid,
            last: start.clone(),
            start,
        }
    }

    /// Keeps the window open for `window`, sampling; returns the run time
    /// in it.
    pub(crate) fn run_for(mut self, window: Duration) -> Duration {
        let end = std::time::Instant::now() + window;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            std::thread::sleep(left.min(Self::SAMPLE));
            self.last.extend(Self::threads(self.pid));
            if left <= Self::SAMPLE {
                break;
            }
        }
        let ns: u64 = self
            .last
            .iter()
            .map(|(tid, &now)| now.saturating_sub(self.start.get(tid).copied().unwrap_or(0)))
            .sum();
        Duration::from_nanos(ns)
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
