//! What one scan costs per tracked pid, at 10, 100 and 1,000 real tracked
//! processes, side by side with the procfs floor (one bare read of
//! `/proc/<pid>/stat`) and the original Python design (psutil), plus how
//! long a `status()` command takes while 1,000 processes are scanned.
//!
//! Run with `cargo bench -p monitor-core --bench scan`; it prints a table.
//!
//! The tracked processes are `sleep 600`s started by one `sh`, so they are
//! its children, not ours. That is the case `track` is for (processes
//! somebody else started), and it keeps the per-scan zombie check (which
//! lists this process's own children and stats each one) out of the per-pid
//! figure: with 1,000 direct children every scan would also stat all 1,000
//! of them. Every `sleep` is pinned by a pidfd as soon as its pid is read,
//! and the [`Pool`] guard `SIGKILL`s each one through that pidfd when it is
//! dropped, also on a panic.
//!
//! The per-pid cost is the monitor's own `last_scan.duration` (measured
//! around the whole procfs loop of one scan, on the blocking pool) divided
//! by N. A scan also has a fixed part that does not grow with N (the zombie
//! check), measured once with nothing tracked and shown apart.

// A bench reports its table on stdout and its side notes on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use monitor_core::{Monitor, OrphanAction, Status};
use rustix::process::{Pid, PidfdFlags, Resource, Signal, pidfd_open, pidfd_send_signal};

/// Tracked-set sizes, smallest first; the pool holds the largest.
const SIZES: [usize; 3] = [10, 100, 1_000];
/// The scan interval while scans are sampled.
const INTERVAL: Duration = Duration::from_millis(50);
/// Full scans sampled per size.
const SCANS: usize = 30;
/// How often the sampler asks for `status()`: several times per interval,
/// so every scan's duration is seen before the next one replaces it.
const POLL: Duration = Duration::from_millis(5);
/// `status()` round trips timed in each case.
const STATUS_CALLS: usize = 200;
/// Reads of `/proc/<pid>/stat` (or psutil checks) aimed at per size, at
/// least [`SCANS`] passes over the set.
const READS: usize = 20_000;
/// A scan interval so long that no scan runs after the one at start.
const NO_SCANS: Duration = Duration::from_secs(3_600);
/// A scan interval shorter than any scan of 1,000 pids: the scanner then
/// runs back to back (missed ticks are delayed, not bursted).
const BACK_TO_BACK: Duration = Duration::from_millis(1);
/// Any one phase taking longer than this is a hang, not a measurement.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Long-lived `sleep 600` processes, children of one `sh` that waits for
/// them. Dropping the pool kills them all.
struct Pool {
    sh: Child,
    /// Each `sleep`, pinned by a pidfd opened right after its pid was read
    /// (it cannot have been reaped and reused before: `sh` reaps it only
    /// once it exits, and it sleeps for 10 minutes).
    procs: Vec<(i32, OwnedFd)>,
    cleaned: bool,
}

impl Pool {
    fn spawn(n: usize) -> Self {
        // `exec >&-` closes the pipe once every pid is printed (the sleeps
        // never had it), so reading to the end reads exactly the pids.
        let script = format!(
            "i=0; while [ $i -lt {n} ]; do sleep 600 </dev/null >/dev/null 2>&1 & echo $!; \
             i=$((i+1)); done; exec >&-; wait"
        );
        let mut sh = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let stdout = sh.stdout.take().expect("piped stdout");
        // The guard exists before the first pid is read, so a failure below
        // still kills what was started.
        let mut pool = Self {
            sh,
            procs: Vec::with_capacity(n),
            cleaned: false,
        };
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read a pid from sh");
            let pid: i32 = line.trim().parse().expect("sh prints pids");
            let raw = Pid::from_raw(pid).expect("positive pid");
            let pidfd = pidfd_open(raw, PidfdFlags::empty()).expect("pidfd_open(sleep)");
            pool.procs.push((pid, pidfd));
        }
        assert_eq!(pool.procs.len(), n, "sh started every sleep");
        pool
    }

    fn pids(&self, n: usize) -> Vec<i32> {
        self.procs.iter().take(n).map(|(pid, _)| *pid).collect()
    }

    /// `SIGKILL`s every sleep through its pidfd (and any child of `sh` not
    /// pinned yet, after a failed start), then waits for `sh`, which reaps
    /// them and exits. Returns a line for the report.
    fn clean_up(&mut self) -> String {
        if self.cleaned {
            return String::new();
        }
        self.cleaned = true;
        let mut killed = 0;
        for (_, pidfd) in &self.procs {
            if pidfd_send_signal(pidfd, Signal::KILL).is_ok() {
                killed += 1;
            }
        }
        let sh_pid = self.sh.id();
        let children = std::fs::read_to_string(format!("/proc/{sh_pid}/task/{sh_pid}/children"))
            .unwrap_or_default();
        let mut stray = 0;
        for pid in children
            .split_ascii_whitespace()
            .filter_map(|p| p.parse().ok())
        {
            if self.procs.iter().any(|(known, _)| *known == pid) {
                continue;
            }
            // An unreaped child of sh keeps its pid, so this pins the right one.
            if let Some(fd) =
                Pid::from_raw(pid).and_then(|raw| pidfd_open(raw, PidfdFlags::empty()).ok())
                && pidfd_send_signal(&fd, Signal::KILL).is_ok()
            {
                stray += 1;
            }
        }
        // sh's `wait` returns once it has reaped every sleep.
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match self.sh.try_wait() {
                Ok(Some(status)) => break format!("sh exited on its own ({status})"),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) | Err(_) => {
                    let _ = self.sh.kill();
                    let _ = self.sh.wait();
                    break "sh did not finish within 10 s and was killed".to_owned();
                }
            }
        };
        format!(
            "cleanup: SIGKILL sent to {killed} of {} sleeps (+{stray} unpinned); {status}",
            self.procs.len()
        )
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let report = self.clean_up();
        if !report.is_empty() {
            eprintln!("{report}");
        }
    }
}

/// Each tracked process holds a pidfd and a procfs directory fd in the
/// monitor, and one pidfd in the pool: raise the soft limit if that does
/// not fit.
fn raise_nofile(needed: u64) -> String {
    let limit = rustix::process::getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= needed {
        return format!("RLIMIT_NOFILE soft limit {soft} >= {needed} needed, unchanged");
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= needed,
        "RLIMIT_NOFILE hard limit {hard} < {needed} needed"
    );
    rustix::process::setrlimit(
        Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .expect("raise RLIMIT_NOFILE to the hard limit");
    format!("RLIMIT_NOFILE soft limit raised from {soft} to the hard limit {hard}")
}

/// Order statistics of some samples.
#[derive(Debug, Clone, Copy)]
struct Summary {
    median: f64,
    min: f64,
    p99: f64,
    max: f64,
}

fn summarize(samples: &[f64]) -> Summary {
    assert!(!samples.is_empty(), "no samples");
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    };
    let p99 = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
    Summary {
        median,
        min: sorted[0],
        p99: sorted[p99],
        max: sorted[sorted.len() - 1],
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Starts a monitor that scans every `interval` and tracks `pids`; returns
/// it once the first scan that saw all of them has been reported (unless
/// `interval` is [`NO_SCANS`]: then only the scan at start has run).
async fn start_tracking(pids: &[i32], interval: Duration) -> Monitor {
    let monitor = Monitor::builder()
        .check_interval(interval)
        // The parent `sh` lives on; if it did not, reporting is enough here.
        .orphan_action(OrphanAction::Notify)
        .spawn()
        .expect("spawn monitor");
    let handle = monitor.handle();
    for &pid in pids {
        handle.track(pid).await.expect("track a sleep");
    }
    let tracked = handle.status().await.expect("status");
    assert_eq!(tracked.tracked_count, pids.len());
    // A scan in flight while we tracked may have seen part of the set, and
    // its report is the next one at most; every later scan took its snapshot
    // after this status() was answered, so it saw all of `pids`.
    if interval != NO_SCANS {
        wait_for_scan(&monitor, tracked.counters.scans + 2).await;
    }
    monitor
}

/// Polls `status()` until `scans` scans have been reported.
async fn wait_for_scan(monitor: &Monitor, scans: u64) -> Status {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        let status = monitor.handle().status().await.expect("status");
        if status.counters.scans >= scans {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "scan {scans} not reported within {PHASE_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Checks that the run measured what it meant to, and stops the monitor.
async fn finish(monitor: Monitor, tracked: usize) {
    let status = monitor.handle().status().await.expect("status");
    assert_eq!(status.tracked_count, tracked, "every sleep stayed tracked");
    assert_eq!(status.counters.exited, 0, "no sleep exited");
    assert_eq!(status.counters.orphans_found, 0, "no sleep was orphaned");
    assert_eq!(status.counters.errors, 0, "the monitor reported no errors");
    monitor.shutdown().await;
}

/// Tracks `pids` and returns the `last_scan.duration` (µs) of [`SCANS`]
/// full scans at [`INTERVAL`].
async fn scan_durations(pids: &[i32]) -> Vec<f64> {
    let monitor = start_tracking(pids, INTERVAL).await;
    let handle = monitor.handle();
    let mut seen = handle.status().await.expect("status").counters.scans;
    let mut scan_us = Vec::with_capacity(SCANS);
    let deadline = Instant::now() + PHASE_TIMEOUT;
    while scan_us.len() < SCANS {
        assert!(
            Instant::now() < deadline,
            "no {SCANS} scans within {PHASE_TIMEOUT:?}"
        );
        tokio::time::sleep(POLL).await;
        let status = handle.status().await.expect("status");
        // Several polls per interval, so a skipped scan is rare; only scans
        // that read every tracked pid count.
        let last = status.last_scan.expect("a scan ran");
        if status.counters.scans > seen && last.processes == pids.len() {
            seen = status.counters.scans;
            scan_us.push(micros(last.duration));
        }
    }
    finish(monitor, pids.len()).await;
    scan_us
}

/// Times [`STATUS_CALLS`] `status()` round trips while `pids` are tracked
/// and the scanner runs every `interval`; returns the µs of each and the
/// share of the window the scanner spent scanning.
async fn status_round_trips(pids: &[i32], interval: Duration) -> (Vec<f64>, f64) {
    let monitor = start_tracking(pids, interval).await;
    let handle = monitor.handle();
    let before = handle.status().await.expect("status");
    let window = Instant::now();
    let mut round_trips = Vec::with_capacity(STATUS_CALLS);
    let mut scan_us = Vec::new();
    let mut scans = before.counters.scans;
    for i in 0..STATUS_CALLS {
        // Uneven gaps (0.3 to 2.2 ms) so the calls fall all over the scans.
        let gap = 300 + (i as u64 * 397) % 1_900;
        tokio::time::sleep(Duration::from_micros(gap)).await;
        let started = Instant::now();
        let status = handle.status().await.expect("status");
        round_trips.push(micros(started.elapsed()));
        if status.counters.scans > scans {
            scan_us.push(micros(status.last_scan.expect("a scan ran").duration));
        }
        scans = status.counters.scans;
    }
    let elapsed = micros(window.elapsed());
    let busy = if scan_us.is_empty() {
        0.0
    } else {
        summarize(&scan_us).median * (scans - before.counters.scans) as f64 / elapsed
    };
    finish(monitor, pids.len()).await;
    (round_trips, busy.min(1.0))
}

/// The procfs floor: per-pid µs of passes of bare `read_to_string`s over
/// `pids`, one sample per pass.
fn floor(pids: &[i32]) -> Vec<f64> {
    let paths: Vec<String> = pids.iter().map(|pid| format!("/proc/{pid}/stat")).collect();
    passes(pids.len(), || {
        for path in &paths {
            let stat = std::fs::read_to_string(path).expect("read /proc/<pid>/stat");
            std::hint::black_box(stat);
        }
    })
}

/// What the scan itself does per pid, without the monitor around it:
/// `stat()` on a held `procfs::process::Process` (openat through the pinned
/// directory fd, read, parse).
fn procfs_floor(pids: &[i32]) -> Vec<f64> {
    let procs: Vec<procfs::process::Process> = pids
        .iter()
        .map(|&pid| procfs::process::Process::new(pid).expect("open /proc/<pid>"))
        .collect();
    passes(pids.len(), || {
        for proc in &procs {
            let stat = proc.stat().expect("stat");
            std::hint::black_box(stat);
        }
    })
}

/// The floor at the scan's pace: one pass of `read_to_string`s every
/// [`INTERVAL`], [`SCANS`] times, as the scanner reads (caches cold).
fn paced_floor(pids: &[i32]) -> Vec<f64> {
    let paths: Vec<String> = pids.iter().map(|pid| format!("/proc/{pid}/stat")).collect();
    (0..SCANS)
        .map(|_| {
            std::thread::sleep(INTERVAL);
            time_pass(pids.len(), || {
                for path in &paths {
                    let stat = std::fs::read_to_string(path).expect("read /proc/<pid>/stat");
                    std::hint::black_box(stat);
                }
            })
        })
        .collect()
}

/// Runs `pass` (one read of each of `n` pids) back to back, often enough
/// for about [`READS`] reads and at least [`SCANS`] passes, after one
/// warm-up pass; returns the per-pid µs of each pass.
fn passes(n: usize, mut pass: impl FnMut()) -> Vec<f64> {
    pass();
    (0..(READS / n).max(SCANS))
        .map(|_| time_pass(n, &mut pass))
        .collect()
}

/// Per-pid µs of one pass over `n` pids.
fn time_pass(n: usize, pass: impl FnOnce()) -> f64 {
    let started = Instant::now();
    pass();
    micros(started.elapsed()) / n as f64
}

/// The original design's per-check work for each tracked pid, timed by the
/// Python process itself; prints the per-pid µs of every pass.
const PSUTIL_CHECK: &str = r#"
import sys, time
import psutil

pids = [int(p) for p in sys.stdin.read().split()]
passes = int(sys.argv[1])

def check(pid):
    try:
        proc = psutil.Process(pid)
        if not proc.is_running():
            return False
        ppid = proc.ppid()
        status = proc.status()
        if status == psutil.STATUS_ZOMBIE:
            return False
        return ppid > 0
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False

for p in range(passes + 1):
    started = time.perf_counter_ns()
    alive = 0
    for pid in pids:
        if check(pid):
            alive += 1
    elapsed = time.perf_counter_ns() - started
    if alive != len(pids):
        sys.exit(f"only {alive} of {len(pids)} pids checked alive")
    if p > 0:
        print(elapsed / 1000 / len(pids))
"#;

/// Whether `python3` can import psutil, after one `pip install` if needed.
fn psutil_available() -> Result<(), String> {
    let import = || {
        Command::new("python3")
            .args(["-c", "import psutil"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if import() {
        return Ok(());
    }
    eprintln!("psutil not importable; trying `python3 -m pip install psutil` once");
    let install = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "psutil"])
        .stdin(Stdio::null())
        .output();
    match install {
        Ok(out) if out.status.success() && import() => Ok(()),
        Ok(out) => Err(format!(
            "pip install psutil failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(error) => Err(format!("python3 not runnable: {error}")),
    }
}

fn psutil(pids: &[i32]) -> Result<Vec<f64>, String> {
    let passes = (READS / pids.len()).max(SCANS);
    let mut child = Command::new("python3")
        .args(["-c", PSUTIL_CHECK, &passes.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    let input: String = pids.iter().map(|pid| format!("{pid} ")).collect();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "psutil check failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            line.trim()
                .parse::<f64>()
                .map_err(|e| format!("{line:?}: {e}"))
        })
        .collect()
}

/// One row of the table.
struct Row {
    n: usize,
    ours: Summary,
    /// Median per pid once the fixed per-scan cost is taken off.
    marginal: f64,
    floor: Summary,
    paced: Summary,
    procfs: Summary,
    psutil: Option<Summary>,
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it (in a debug build), and must not spawn 1,000
    // processes for half a minute there.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("scan: skipped (no --bench); run `cargo bench -p monitor-core --bench scan`");
        return;
    }
    let max = SIZES[SIZES.len() - 1];
    let started = Instant::now();
    let nofile = raise_nofile(3 * max as u64 + 256);
    let psutil_ok = psutil_available();
    let mut pool = Pool::spawn(max);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    // The part of a scan that does not grow with N: the zombie check, which
    // lists this process's children (only `sh` here) on every scan.
    let fixed = summarize(&runtime.block_on(scan_durations(&[])));

    let mut rows = Vec::new();
    for n in SIZES {
        let pids = pool.pids(n);
        // One thing at a time: the monitor is stopped before the floors run.
        let scans = runtime.block_on(scan_durations(&pids));
        let per_pid: Vec<f64> = scans.iter().map(|us| us / n as f64).collect();
        let psutil = match &psutil_ok {
            Ok(()) => Some(summarize(&psutil(&pids).expect("psutil check"))),
            Err(_) => None,
        };
        rows.push(Row {
            n,
            ours: summarize(&per_pid),
            marginal: (summarize(&scans).median - fixed.median) / n as f64,
            floor: summarize(&floor(&pids)),
            paced: summarize(&paced_floor(&pids)),
            procfs: summarize(&procfs_floor(&pids)),
            psutil,
        });
    }

    // Commands during scans, against the same calls with no scan running.
    // (Nothing tracked: what the round trip costs without a 1,000-entry reply.)
    let pids = pool.pids(max);
    let empty = runtime.block_on(status_round_trips(&[], NO_SCANS));
    let idle = runtime.block_on(status_round_trips(&pids, NO_SCANS));
    let busy = runtime.block_on(status_round_trips(&pids, BACK_TO_BACK));
    drop(runtime);
    let cleanup = pool.clean_up();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nmonitor-core scan cost: {} CPUs, kernel {}, check_interval {INTERVAL:?}, {SCANS} full scans per size",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
    );
    let _ = writeln!(out, "{nofile}");
    let _ = writeln!(
        out,
        "fixed cost of one scan with nothing tracked (the zombie check): median {:.1} us, min {:.1} us",
        fixed.median, fixed.min
    );
    let _ = writeln!(
        out,
        "\nus per tracked pid, median and min; ours = last_scan.duration / N, -fixed = (median scan - fixed) / N;"
    );
    let _ = writeln!(
        out,
        "floor = read_to_string(/proc/<pid>/stat) back to back, paced = the same once per {INTERVAL:?}; procfs = held Process::stat()"
    );
    let _ = writeln!(
        out,
        "{:>5} | {:>15} {:>6} | {:>15} | {:>15} | {:>15} | {:>15} | {:>10} {:>10} {:>11}",
        "N",
        "ours",
        "-fixed",
        "floor",
        "paced floor",
        "procfs stat()",
        "psutil",
        "ours/floor",
        "ours/paced",
        "psutil/ours"
    );
    let pair = |s: Summary| format!("{:>7.2} {:>7.2}", s.median, s.min);
    for row in &rows {
        let (psutil, ratio) = match row.psutil {
            Some(ps) => (pair(ps), format!("{:.1}x", ps.median / row.ours.median)),
            None => (format!("{:>15}", "skipped"), "-".into()),
        };
        let _ = writeln!(
            out,
            "{:>5} | {} {:>6.2} | {} | {} | {} | {} | {:>9.2}x {:>9.2}x {:>11}",
            row.n,
            pair(row.ours),
            row.marginal,
            pair(row.floor),
            pair(row.paced),
            pair(row.procfs),
            psutil,
            row.ours.median / row.floor.median,
            row.ours.median / row.paced.median,
            ratio,
        );
    }
    if let Err(reason) = &psutil_ok {
        let _ = writeln!(out, "psutil comparison skipped: {reason}");
    }
    let _ = writeln!(out, "\nstatus() round trip, {STATUS_CALLS} calls each:");
    for (label, (round_trips, share)) in [
        ("0 tracked, no scan running".to_owned(), &empty),
        (format!("{max} tracked, no scan running"), &idle),
        (format!("{max} tracked, scans back to back"), &busy),
    ] {
        let s = summarize(round_trips);
        let _ = writeln!(
            out,
            "  {label:<34} (scanner busy {:>3.0}%): median {:>7.1} us, p99 {:>7.1} us, max {:>7.1} us",
            share * 100.0,
            s.median,
            s.p99,
            s.max
        );
    }
    let _ = writeln!(
        out,
        "\n{cleanup}; total {:.1} s",
        started.elapsed().as_secs_f64()
    );
    print!("{out}");
}
