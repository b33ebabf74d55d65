//! The flood: one local user (uid 65534) throws 21,000 connections and
//! 1,024 registrations at the release daemon, holding what it gets (mid-
//! line, as a slow client would), while root keeps using the daemon. The
//! daemon's descriptors and RSS are recorded before, at the peak, and
//! after the flood; root's `ping` round trip is timed during it.
//!
//! Run as root (it switches the flooder to uid 65534):
//!
//! ```text
//! cargo bench --bench flood
//! ```
//!
//! The unfixed daemon (no caps) went to 20,000 of 20,000 descriptors and
//! 204 MiB with this load, kept them afterwards, and root's requests timed
//! out. Every process started here is a direct child held by a guard that
//! kills and reaps it on drop, also on a panic.

#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The flooder's uid and gid.
const NOBODY: u32 = 65534;
/// Connection attempts, as in the finding.
const CONNECTIONS: usize = 21_000;
/// Registration attempts: the default per-uid quota.
const REGISTRATIONS: usize = 1024;
/// Set in the flooder: the socket path.
const ROLE: &str = "PIDGUARD_FLOOD_SOCKET";

fn main() {
    if let Ok(socket) = std::env::var(ROLE) {
        flood(Path::new(&socket));
        return;
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "the flood bench runs its flooder as uid {NOBODY}: run it as root"
    );
    let bench = Bench::start();
    let daemon = bench.daemon_pid();
    println!("pidguard daemon flood (release binary, pid {daemon}, default limits)");
    let (fds_before, rss_before) = (fd_count(daemon), rss_kib(daemon));
    let anon_before = status_kib(daemon, "RssAnon:");
    let mut root = Conn::open(&bench.socket).expect("root connects");
    let ping_before = median_ping(&mut root, 200);
    println!(
        "before: {fds_before} fds, RSS {rss_before} KiB (anonymous {anon_before} KiB), root ping median {ping_before:.0} us"
    );
    let mut tracked = false;
    // Twice: what the first flood leaves behind must be reused by the
    // second, not added to.
    for round in 1..=2 {
        let figures = flood_round(&bench, &mut root, &mut tracked);
        println!("round {round}, flooder (uid {NOBODY}): {}", figures.report);
        println!("  flood took {:.1} s", figures.took.as_secs_f64());
        println!("                 before     peak    after");
        println!(
            "  daemon fds   {fds_before:>8} {:>8} {:>8}",
            figures.peak_fds, figures.fds_after
        );
        println!(
            "  daemon RSS   {rss_before:>5} KiB {:>5} KiB {:>5} KiB",
            figures.peak_rss, figures.rss_after
        );
        println!(
            "  anonymous RSS (heap, stacks) after: {} KiB; the rest is the binary's code, paged in as new paths run",
            figures.anon_after
        );
        println!(
            "  root ping median at the caps: {:.0} us; after: {:.0} us; root's track at the caps: ok",
            figures.ping_during, figures.ping_after
        );
    }
}

/// What one flood did to the daemon.
struct Figures {
    report: String,
    took: Duration,
    peak_fds: usize,
    peak_rss: u64,
    fds_after: usize,
    rss_after: u64,
    anon_after: u64,
    ping_during: f64,
    ping_after: f64,
}

/// One flood: the flooder at its caps, root served meanwhile, then the
/// flood gone and the daemon settled.
fn flood_round(bench: &Bench, root: &mut Conn, tracked: &mut bool) -> Figures {
    let daemon = bench.daemon_pid();
    let fds_before = fd_count(daemon);
    let mut flooder = Guard(
        Command::new(std::env::current_exe().expect("own path"))
            .env(ROLE, &bench.socket)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the flooder"),
    );
    let mut out = BufReader::new(flooder.0.stdout.take().expect("piped"));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = Arc::clone(&sampling);
        std::thread::spawn(move || {
            let (mut fds, mut rss) = (0, 0);
            while sampling.load(Ordering::Relaxed) {
                fds = fds.max(fd_count(daemon));
                rss = rss.max(rss_kib(daemon));
                std::thread::sleep(Duration::from_millis(10));
            }
            (fds, rss)
        })
    };
    let mut report = String::new();
    let start = Instant::now();
    while !report.starts_with("AT CAPS") {
        report.clear();
        if out.read_line(&mut report).expect("flooder output") == 0 {
            panic!("the flooder ended early");
        }
    }
    let took = start.elapsed();
    let ping_during = median_ping(root, 200);
    if !*tracked {
        let answer = root.request(&format!(
            "{{\"version\":1,\"request\":\"track\",\"pid\":{}}}",
            bench.sleep.id()
        ));
        assert!(answer.contains("\"ok\":true"), "{answer}");
        *tracked = true;
    }
    sampling.store(false, Ordering::Relaxed);
    let (peak_fds, peak_rss) = sampler.join().expect("sampler");
    let (peak_fds, peak_rss) = (
        peak_fds.max(fd_count(daemon)),
        peak_rss.max(rss_kib(daemon)),
    );
    drop(flooder.0.stdin.take());
    let _ = flooder.0.wait();
    // Registrations end as the flooder's processes exit; connections as it
    // closes them. Wait until the table settles (bounded).
    let settle = Instant::now();
    let mut fds_after = fd_count(daemon);
    while settle.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
        let now = fd_count(daemon);
        if now == fds_after && now <= fds_before + 4 {
            break;
        }
        fds_after = now;
    }
    let ping_after = median_ping(root, 200);
    // The runtime's blocking threads (state writes) linger 10 s when idle;
    // their stacks count in the RSS until they exit.
    std::thread::sleep(Duration::from_secs(12));
    Figures {
        report: report.trim().to_owned(),
        took,
        peak_fds,
        peak_rss,
        fds_after,
        rss_after: rss_kib(daemon),
        anon_after: status_kib(daemon, "RssAnon:"),
        ping_during,
        ping_after,
    }
}

/// The flooder, as uid 65534: connect until the daemon refuses, keep what
/// it accepted (each left mid-line), register processes until the quota
/// refuses, report, and hold everything until stdin closes.
fn flood(socket: &Path) {
    let mut held = Vec::new();
    let mut refused = 0;
    let mut failed = 0;
    for _ in 0..CONNECTIONS {
        match Conn::open(socket) {
            Some(mut conn) => {
                // A refused connection gets one line and is closed; an
                // accepted one answers a ping.
                let answer = conn.request("{\"version\":1,\"request\":\"ping\"}");
                if answer.contains("\"ok\":true") {
                    held.push(conn);
                } else {
                    refused += 1;
                }
            }
            None => failed += 1,
        }
    }
    let mut sleeps: Vec<Guard> = Vec::new();
    let (mut registered, mut over_quota) = (0, 0);
    if let Some(conn) = held.first_mut() {
        for _ in 0..REGISTRATIONS + 16 {
            let sleep = Guard(
                Command::new("sleep")
                    .arg("600")
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("spawn sleep"),
            );
            let answer = conn.request(&format!(
                "{{\"version\":1,\"request\":\"track\",\"pid\":{}}}",
                sleep.id()
            ));
            if answer.contains("\"ok\":true") {
                registered += 1;
            } else if answer.contains("limit_reached") {
                over_quota += 1;
            }
            sleeps.push(sleep);
        }
    }
    for conn in &mut held {
        let _ = conn.stream.write_all(b"{\"version\":1,");
    }
    println!(
        "AT CAPS: {} connections held, {refused} refused, {failed} failed to connect; {registered} registered, {over_quota} over the quota",
        held.len()
    );
    std::io::stdout().flush().expect("stdout");
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
}

/// The daemon and a root `sleep`, killed and reaped on drop, and their
/// directory removed.
struct Bench {
    daemon: Guard,
    sleep: Guard,
    dir: PathBuf,
    socket: PathBuf,
}

impl Bench {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("pidguard-flood-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("bench dir");
        // uid 65534 passes through to the socket directory (group 65534).
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        let config = dir.join("pidguard.toml");
        std::fs::write(&config, format!("socket_group = {NOBODY}\n")).expect("config");
        let socket = dir.join("run").join("pidguard.sock");
        let daemon = Guard(
            Command::new(env!("CARGO_BIN_EXE_pidguard"))
                .arg("daemon")
                .arg("--config")
                .arg(&config)
                .arg("--socket")
                .arg(&socket)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start pidguard daemon"),
        );
        let started = Instant::now();
        while Conn::open(&socket).is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let sleep = Guard(
            Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn sleep"),
        );
        Self {
            daemon,
            sleep,
            dir,
            socket,
        }
    }

    fn daemon_pid(&self) -> i32 {
        self.daemon.id()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A direct child, killed and reaped on drop (an unreaped child's pid
/// cannot be reused, so the kill is exact).
struct Guard(Child);

impl Guard {
    fn id(&self) -> i32 {
        i32::try_from(self.0.id()).expect("pid fits")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One raw protocol connection.
struct Conn {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Conn {
    fn open(socket: &Path) -> Option<Self> {
        let stream = UnixStream::connect(socket).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let reader = BufReader::new(stream.try_clone().ok()?);
        Some(Self { stream, reader })
    }

    /// Sends one line, returns the answer ("" if the daemon closed).
    fn request(&mut self, line: &str) -> String {
        let mut answer = String::new();
        if self
            .stream
            .write_all(format!("{line}\n").as_bytes())
            .is_ok()
        {
            let _ = self.reader.read_line(&mut answer);
        }
        if answer.is_empty() {
            // A refused connection may close before our write: its one
            // line is still waiting to be read.
            let _ = self.reader.read_line(&mut answer);
        }
        answer
    }
}

fn median_ping(conn: &mut Conn, n: usize) -> f64 {
    let mut samples: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let answer = conn.request("{\"version\":1,\"request\":\"ping\"}");
            assert!(answer.contains("\"ok\":true"), "root's ping: {answer}");
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[n / 2]
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

fn rss_kib(pid: i32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `kB` line of `/proc/<pid>/status`.
fn status_kib(pid: i32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
