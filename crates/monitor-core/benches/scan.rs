//! What one scan costs per tracked pid, at 10, 100 and 1,000 real tracked
//! processes and at 10,000, side by side with the procfs floor (one bare read
//! of `/proc/<pid>/stat`) and the original Python design (psutil), plus how
//! long a `status()` command takes while 1,000 processes are scanned, how
//! long tracking 10,000 processes takes, and whether scans of 10,000 stall a
//! cheap command.
//!
//! Run with `cargo bench -p monitor-core --bench scan`; it prints a table.
//!
//! The tracked processes are `sleep 600`s started by a few `sh`s (one per
//! [`SLEEPS_PER_SH`]), so they are their children, not ours. That is the case
//! `track` is for (processes somebody else started), and it keeps the
//! per-scan zombie check (which lists this process's own children and stats
//! each one) out of the per-pid figure: with 1,000 direct children every scan
//! would also stat all 1,000 of them. Every `sleep` is pinned by a pidfd as
//! soon as its pid is read, and the [`Pool`] guard `SIGKILL`s each one
//! through that pidfd when it is dropped, also on a panic.
//!
//! The per-pid cost is the monitor's own `last_scan.duration` (measured
//! around the whole procfs loop of one scan, on the blocking pool) divided
//! by N. A scan also has a fixed part that does not grow with N (the zombie
//! check), measured once with nothing tracked and shown apart.
//!
//! The 10,000 row needs 10,000 more processes and three descriptors each
//! (see [`room`]); when the limits here leave no room for that, it runs at
//! the largest multiple of 1,000 that fits and says why, or is skipped.
//!
//! The stall check times `untrack` of a pid that is not tracked: an O(1)
//! lookup on the actor, so its round trip is the wait for the actor.
//! `status()` is O(n) (its reply lists every tracked process), so its round
//! trip grows with N whether a scan runs or not.

// A bench reports its table on stdout and its side notes on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use monitor_core::{Error, Monitor, MonitorHandle, OrphanAction, Status};
use rustix::process::{Pid, PidfdFlags, Resource, Signal, pidfd_open, pidfd_send_signal};

/// Tracked-set sizes, smallest first; the `status()` measurement uses the
/// largest.
const SIZES: [usize; 3] = [10, 100, 1_000];
/// The large tracked set: its table row, the time to track it, and the
/// stall check. The pool holds this many when the limits allow (see [`room`]).
const BIG: usize = 10_000;
/// Sleeps started by each `sh` (the last one starts the rest). Their pids
/// (at most 6 bytes a line) fit in a pipe buffer, so reading one `sh` after
/// the other never holds up the ones still starting theirs.
const SLEEPS_PER_SH: usize = 5_000;
/// Descriptors per tracked process: the monitor's pidfd and open
/// `/proc/<pid>/stat`, and the pool's pidfd.
const FDS_PER_PROCESS: u64 = 3;
/// Descriptors besides those: stdio, the runtime, pipes, a transient
/// `/proc/<ppid>` while tracking.
const FD_HEADROOM: u64 = 256;
/// Tasks (each takes a pid) left free under every process limit: this
/// process's threads, `python3`, `sh`s, and whatever else starts meanwhile.
const PID_MARGIN: u64 = 2_000;
/// Pids below this are not handed out again after the counter wraps.
const RESERVED_PIDS: u64 = 300;
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
/// least [`SCANS`] passes over the set, but at most [`MAX_READS`].
const READS: usize = 20_000;
/// The cap on reads per size, which only the large row reaches (10 passes
/// over 10,000 pids; psutil takes about 90 us a check).
const MAX_READS: usize = 100_000;
/// A scan interval so long that no scan runs after the one at start.
const NO_SCANS: Duration = Duration::from_secs(3_600);
/// A scan interval shorter than any scan of 1,000 pids: the scanner then
/// runs back to back (missed ticks are delayed, not bursted).
const BACK_TO_BACK: Duration = Duration::from_millis(1);
/// Any one phase taking longer than this is a hang, not a measurement.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);
/// Cheap-command round trips timed in each case of the stall check.
const CHEAP_CALLS: usize = 2_000;
/// Full scans sampled on each side of a stall-check window, for the
/// scanner's busy share.
const STALL_SCANS: usize = 5;
/// `status()` round trips timed with the large set tracked, to show it is
/// O(n).
const BIG_STATUS_CALLS: usize = 50;
/// How long the `sh`s get to reap their killed sleeps and exit.
const SH_EXIT_WAIT: Duration = Duration::from_secs(20);

/// Long-lived `sleep 600` processes, children of a few `sh`s that wait for
/// them. Dropping the pool kills them all.
struct Pool {
    shells: Vec<Child>,
    /// Each `sleep`, pinned by a pidfd opened right after its pid was read
    /// (it cannot have been reaped and reused before: its `sh` reaps it only
    /// once it exits, and it sleeps for 10 minutes).
    procs: Vec<(i32, OwnedFd)>,
    cleaned: bool,
}

impl Pool {
    fn spawn(n: usize) -> Self {
        // The guard exists before the first `sh` starts, so a failure below
        // still kills what was started.
        let mut pool = Self {
            shells: Vec::new(),
            procs: Vec::with_capacity(n),
            cleaned: false,
        };
        // Every `sh` starts at once; their pids are read one after the other.
        let mut outputs = Vec::new();
        for first in (0..n).step_by(SLEEPS_PER_SH) {
            let count = SLEEPS_PER_SH.min(n - first);
            // `exec >&-` closes the pipe once every pid is printed (the
            // sleeps never had it), so reading to the end reads exactly the
            // pids.
            let script = format!(
                "i=0; while [ $i -lt {count} ]; do sleep 600 </dev/null >/dev/null 2>&1 & echo $!; \
                 i=$((i+1)); done; exec >&-; wait"
            );
            let mut sh = Command::new("sh")
                .arg("-c")
                .arg(script)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn sh");
            outputs.push((sh.stdout.take().expect("piped stdout"), count));
            pool.shells.push(sh);
        }
        for (stdout, count) in outputs {
            let before = pool.procs.len();
            for line in BufReader::new(stdout).lines() {
                let line = line.expect("read a pid from sh");
                let pid: i32 = line.trim().parse().expect("sh prints pids");
                let raw = Pid::from_raw(pid).expect("positive pid");
                let pidfd = pidfd_open(raw, PidfdFlags::empty()).expect("pidfd_open(sleep)");
                pool.procs.push((pid, pidfd));
            }
            assert_eq!(pool.procs.len() - before, count, "sh started every sleep");
        }
        pool
    }

    fn pids(&self, n: usize) -> Vec<i32> {
        self.procs.iter().take(n).map(|(pid, _)| *pid).collect()
    }

    /// `SIGKILL`s every sleep through its pidfd (and any child of an `sh`
    /// not pinned yet, after a failed start), then waits for the `sh`s,
    /// which reap them and exit. Returns a line for the report.
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
        let mut stray = 0;
        for sh in &self.shells {
            let sh_pid = sh.id();
            let children =
                std::fs::read_to_string(format!("/proc/{sh_pid}/task/{sh_pid}/children"))
                    .unwrap_or_default();
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
        }
        // Each sh's `wait` returns once it has reaped every sleep.
        let deadline = Instant::now() + SH_EXIT_WAIT;
        let mut on_their_own = 0;
        let mut failed = Vec::new();
        for sh in &mut self.shells {
            loop {
                match sh.try_wait() {
                    Ok(Some(status)) if status.success() => on_their_own += 1,
                    Ok(Some(status)) => failed.push(format!("an sh exited with {status}")),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    Ok(None) | Err(_) => {
                        let _ = sh.kill();
                        let _ = sh.wait();
                        failed.push(format!(
                            "an sh did not finish within {SH_EXIT_WAIT:?} and was killed"
                        ));
                    }
                }
                break;
            }
        }
        let mut line = format!(
            "cleanup: SIGKILL sent to {killed} of {} sleeps (+{stray} unpinned); \
             {on_their_own} of {} sh exited on their own after reaping them",
            self.procs.len(),
            self.shells.len()
        );
        for failure in failed {
            let _ = write!(line, "; {failure}");
        }
        line
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

/// Each tracked process holds a pidfd and an open `/proc/<pid>/stat` in the
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
    format!(
        "RLIMIT_NOFILE soft limit raised from {soft} to the hard limit {hard} ({needed} needed)"
    )
}

/// How many more processes (each tracked, so with [`FDS_PER_PROCESS`]
/// descriptors) the limits here leave room for, with [`PID_MARGIN`] spare
/// tasks and [`FD_HEADROOM`] spare descriptors; with the limit that binds
/// and a line listing them all.
fn room() -> (u64, String, String) {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let number = |path: &str| read(path).and_then(|text| text.trim().parse::<u64>().ok());
    // Every thread of every process takes a pid: the kernel's count of them
    // is the fourth field of /proc/loadavg ("running/total").
    let tasks = read("/proc/loadavg")
        .and_then(|text| {
            let field = text.split_ascii_whitespace().nth(3)?;
            field.split_once('/')?.1.parse::<u64>().ok()
        })
        .unwrap_or(0);
    let free = |limit: u64, used: u64| limit.saturating_sub(used + PID_MARGIN);
    let mut limits: Vec<(u64, String)> = Vec::new();
    if let Some(pid_max) = number("/proc/sys/kernel/pid_max") {
        limits.push((
            free(pid_max.saturating_sub(RESERVED_PIDS), tasks),
            format!("kernel.pid_max {pid_max} ({RESERVED_PIDS} reserved)"),
        ));
    }
    if let Some(threads_max) = number("/proc/sys/kernel/threads-max") {
        limits.push((
            free(threads_max, tasks),
            format!("kernel.threads-max {threads_max}"),
        ));
    }
    // Counted against every task running, an upper bound on this user's.
    if let Some(nproc) = rustix::process::getrlimit(Resource::Nproc).current {
        limits.push((free(nproc, tasks), format!("RLIMIT_NPROC {nproc}")));
    }
    if let Some((max, current, path)) = cgroup_pids() {
        limits.push((free(max, current), format!("cgroup {path} pids.max {max}")));
    }
    let hard = rustix::process::getrlimit(Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX);
    limits.push((
        hard.saturating_sub(FD_HEADROOM) / FDS_PER_PROCESS,
        format!(
            "RLIMIT_NOFILE hard limit {hard} ({FDS_PER_PROCESS} descriptors per tracked process: \
             the monitor's pidfd and /proc/<pid>/stat, the pool's pidfd; {FD_HEADROOM} spare)"
        ),
    ));
    let listed = limits
        .iter()
        .map(|(room, limit)| format!("{limit}: room for {room}"))
        .collect::<Vec<_>>()
        .join("; ");
    let summary = format!("{tasks} tasks running at start, {PID_MARGIN} kept spare; {listed}");
    let (room, binding) = limits
        .into_iter()
        .min_by_key(|(room, _)| *room)
        .expect("the descriptor limit is always listed");
    (room, binding, summary)
}

/// This process's cgroup `pids.max` (v2, or the v1 pids controller) when it
/// is set: the limit, the current count, the cgroup.
fn cgroup_pids() -> Option<(u64, u64, String)> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let dir = match controllers {
            "" => format!("/sys/fs/cgroup{path}"),
            c if c.split(',').any(|c| c == "pids") => format!("/sys/fs/cgroup/pids{path}"),
            _ => return None,
        };
        let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).ok();
        let max = read("pids.max")?.trim().parse().ok()?;
        let current = read("pids.current")?.trim().parse().ok()?;
        Some((max, current, path.to_owned()))
    })
}

/// The size the large phases run at: [`BIG`] if it fits, else the largest
/// multiple of 1,000 above the largest of [`SIZES`] that does, else none;
/// with a note when it is not [`BIG`].
fn plan_big() -> (Option<usize>, Option<String>, String) {
    let (room, binding, summary) = room();
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    if room >= BIG {
        return (Some(BIG), None, summary);
    }
    let fallback = room / 1_000 * 1_000;
    let why = format!("N = {BIG} does not fit here: {binding} leaves room for {room}");
    if fallback > SIZES[SIZES.len() - 1] {
        let note = format!(
            "{why}; the large-N measurements below ran at N = {fallback} instead, the largest \
             multiple of 1,000 that fits"
        );
        (Some(fallback), Some(note), summary)
    } else {
        (
            None,
            Some(format!("{why}; the large-N measurements are skipped")),
            summary,
        )
    }
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

/// How long tracking took.
struct Tracking {
    /// µs of each `track()` await.
    calls: Vec<f64>,
    /// All of them, one after the other.
    total: Duration,
}

/// Starts a monitor that scans every `interval` and tracks `pids` (one
/// `track()` awaited after the other, timed); returns it once the first scan
/// that saw all of them has been reported (unless `interval` is
/// [`NO_SCANS`]: then only the scan at start has run).
async fn start_tracking(pids: &[i32], interval: Duration) -> (Monitor, Tracking) {
    let monitor = Monitor::builder()
        .check_interval(interval)
        // The parent `sh` lives on; if it did not, reporting is enough here.
        .orphan_action(OrphanAction::Notify)
        .spawn()
        .expect("spawn monitor");
    let handle = monitor.handle();
    let mut calls = Vec::with_capacity(pids.len());
    let all = Instant::now();
    for &pid in pids {
        let started = Instant::now();
        handle.track(pid).await.expect("track a sleep");
        calls.push(micros(started.elapsed()));
    }
    let tracking = Tracking {
        calls,
        total: all.elapsed(),
    };
    let tracked = handle.status().await.expect("status");
    assert_eq!(tracked.tracked_count, pids.len());
    // A scan in flight while we tracked may have seen part of the set, and
    // its report is the next one at most; every later scan took its snapshot
    // after this status() was answered, so it saw all of `pids`.
    if interval != NO_SCANS {
        wait_for_scan(&monitor, tracked.counters.scans + 2).await;
    }
    (monitor, tracking)
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
    let (monitor, _) = start_tracking(pids, INTERVAL).await;
    let scan_us = sample_scans(&monitor.handle(), pids.len(), SCANS).await;
    finish(monitor, pids.len()).await;
    scan_us
}

/// Polls `status()` until `count` more full scans of the `n` tracked pids
/// have been reported; returns the `last_scan.duration` (µs) of each.
async fn sample_scans(handle: &MonitorHandle, n: usize, count: usize) -> Vec<f64> {
    let mut seen = handle.status().await.expect("status").counters.scans;
    let mut scan_us = Vec::with_capacity(count);
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let mut poll = POLL;
    while scan_us.len() < count {
        assert!(
            Instant::now() < deadline,
            "no {count} scans within {PHASE_TIMEOUT:?}"
        );
        tokio::time::sleep(poll).await;
        let status = handle.status().await.expect("status");
        // Several polls per interval, so a skipped scan is rare; only scans
        // that read every tracked pid count.
        let last = status.last_scan.expect("a scan ran");
        if status.counters.scans > seen && last.processes == n {
            seen = status.counters.scans;
            scan_us.push(micros(last.duration));
        }
        // Still several polls per scan when a scan takes longer than the
        // interval (10,000 pids), without polling the O(n) status() (a few
        // ms there) often enough to compete with the scan for the CPU.
        // Scans of 1,000 pids and fewer stay under 4 * POLL: polled as ever.
        poll = POLL.max(last.duration / 4);
    }
    scan_us
}

/// Times [`STATUS_CALLS`] `status()` round trips while `pids` are tracked
/// and the scanner runs every `interval`; returns the µs of each and the
/// share of the window the scanner spent scanning.
async fn status_round_trips(pids: &[i32], interval: Duration) -> (Vec<f64>, f64) {
    let (monitor, _) = start_tracking(pids, interval).await;
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

/// Extra CPU load during a stall-check window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    None,
    /// A thread reading `/proc/<pid>/stat` of every tracked pid back to
    /// back: the scanner's CPU load (one core of two) without its messages
    /// to the actor, to tell CPU contention from waiting for the actor.
    ReadingThread,
}

/// One case of the stall check.
struct StallCase {
    tracking: Tracking,
    /// µs of each cheap round trip.
    round_trips: Vec<f64>,
    /// Share of the window the scanner spent scanning.
    busy: f64,
    /// Scans reported during the window, and its length.
    scans: u64,
    window: Duration,
    /// Median µs of [`STALL_SCANS`] full scans just before the window and as
    /// many just after it (`status()`, O(n), is not called inside it).
    scan_us: f64,
    /// Reads per second of the load thread, if there was one.
    load_reads: Option<f64>,
    /// µs of `status()` round trips after the window, if asked for.
    status: Vec<f64>,
}

/// Tracks `pids` with scans every `interval`, then times [`CHEAP_CALLS`]
/// round trips of an O(1) command (`untrack` of a pid that is not tracked,
/// answered `NotTracked` after one map lookup), with `load` running; then,
/// if asked, `status_calls` `status()` round trips.
async fn cheap_round_trips(
    pids: &[i32],
    interval: Duration,
    load: Load,
    status_calls: usize,
) -> StallCase {
    let (monitor, tracking) = start_tracking(pids, interval).await;
    let handle = monitor.handle();
    // The monitor never tracks its own process.
    let untracked = i32::try_from(std::process::id()).expect("a pid fits in i32");
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let loader = (load == Load::ReadingThread).then(|| {
        let paths: Vec<String> = pids.iter().map(|pid| format!("/proc/{pid}/stat")).collect();
        let (stop, reads) = (Arc::clone(&stop), Arc::clone(&reads));
        std::thread::spawn(move || {
            for path in paths.iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let stat = std::fs::read_to_string(path).expect("read /proc/<pid>/stat");
                std::hint::black_box(stat);
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    let scanning = interval != NO_SCANS;
    let mut scan_us = Vec::new();
    if scanning {
        scan_us = sample_scans(&handle, pids.len(), STALL_SCANS).await;
    }
    let before = handle.status().await.expect("status");
    let window = Instant::now();
    let mut round_trips = Vec::with_capacity(CHEAP_CALLS);
    for i in 0..CHEAP_CALLS {
        // Uneven gaps, as for status(), so the calls fall all over the scans.
        let gap = 300 + (i as u64 * 397) % 1_900;
        tokio::time::sleep(Duration::from_micros(gap)).await;
        let started = Instant::now();
        let answer = handle.untrack(untracked).await;
        round_trips.push(micros(started.elapsed()));
        assert!(
            matches!(answer, Err(Error::NotTracked { pid }) if pid == untracked),
            "untrack of an untracked pid: {answer:?}"
        );
    }
    let elapsed = window.elapsed();
    let load_reads = loader.map(|thread| {
        let done = reads.load(Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        thread.join().expect("the load thread read every pid");
        done as f64 / elapsed.as_secs_f64()
    });
    let after = handle.status().await.expect("status");
    let scans = after.counters.scans - before.counters.scans;
    let scan_us = if scanning {
        scan_us.extend(sample_scans(&handle, pids.len(), STALL_SCANS).await);
        summarize(&scan_us).median
    } else {
        assert_eq!(scans, 0, "no scan ran in the window");
        0.0
    };
    let busy = (scan_us * scans as f64 / micros(elapsed)).min(1.0);
    let mut status = Vec::with_capacity(status_calls);
    for i in 0..status_calls {
        let gap = 300 + (i as u64 * 397) % 1_900;
        tokio::time::sleep(Duration::from_micros(gap)).await;
        let started = Instant::now();
        let reply = handle.status().await.expect("status");
        status.push(micros(started.elapsed()));
        assert_eq!(reply.tracked.len(), pids.len());
    }
    finish(monitor, pids.len()).await;
    StallCase {
        tracking,
        round_trips,
        busy,
        scans,
        window: elapsed,
        scan_us,
        load_reads,
        status,
    }
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

/// Passes over `n` pids for about [`READS`] reads and at least [`SCANS`]
/// passes, but no more than [`MAX_READS`] reads (10 passes at 10,000).
fn pass_count(n: usize) -> usize {
    (READS / n).max(SCANS).min(MAX_READS / n).max(1)
}

/// Runs `pass` (one read of each of `n` pids) back to back
/// [`pass_count`] times, after one warm-up pass; returns the per-pid µs of
/// each pass.
fn passes(n: usize, mut pass: impl FnMut()) -> Vec<f64> {
    pass();
    (0..pass_count(n))
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
    let passes = pass_count(pids.len());
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
    // binary without it (in a debug build), and must not spawn 10,000
    // processes for minutes there.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("scan: skipped (no --bench); run `cargo bench -p monitor-core --bench scan`");
        return;
    }
    let max = SIZES[SIZES.len() - 1];
    let started = Instant::now();
    let (big, big_note, limits) = plan_big();
    let pool_size = big.unwrap_or(0).max(max);
    let nofile = raise_nofile(FDS_PER_PROCESS * pool_size as u64 + FD_HEADROOM);
    let psutil_ok = psutil_available();
    let spawning = Instant::now();
    let mut pool = Pool::spawn(pool_size);
    let spawned = format!(
        "{pool_size} sleeps started by {} sh and pinned in {:.1} s",
        pool.shells.len(),
        spawning.elapsed().as_secs_f64()
    );
    // Side notes while it runs, so a slow phase shows where the time goes.
    let progress = |what: &str| eprintln!("[{:>6.1} s] {what}", started.elapsed().as_secs_f64());
    progress(&spawned);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    // The part of a scan that does not grow with N: the zombie check, which
    // lists this process's children (only the `sh`s here) on every scan.
    let fixed = summarize(&runtime.block_on(scan_durations(&[])));
    progress("fixed cost");

    let mut rows = Vec::new();
    for n in SIZES.into_iter().chain(big) {
        let pids = pool.pids(n);
        // One thing at a time: the monitor is stopped before the floors run.
        let phase = Instant::now();
        let scans = runtime.block_on(scan_durations(&pids));
        let scanned = phase.elapsed();
        let per_pid: Vec<f64> = scans.iter().map(|us| us / n as f64).collect();
        let psutil = match &psutil_ok {
            Ok(()) => Some(summarize(&psutil(&pids).expect("psutil check"))),
            Err(_) => None,
        };
        let checked = phase.elapsed();
        rows.push(Row {
            n,
            ours: summarize(&per_pid),
            marginal: (summarize(&scans).median - fixed.median) / n as f64,
            floor: summarize(&floor(&pids)),
            paced: summarize(&paced_floor(&pids)),
            procfs: summarize(&procfs_floor(&pids)),
            psutil,
        });
        progress(&format!(
            "row N = {n}: tracking and scans {:.1} s, psutil {:.1} s, floors {:.1} s",
            scanned.as_secs_f64(),
            (checked - scanned).as_secs_f64(),
            (phase.elapsed() - checked).as_secs_f64()
        ));
    }

    // Commands during scans, against the same calls with no scan running.
    // (Nothing tracked: what the round trip costs without a 1,000-entry reply.)
    let pids = pool.pids(max);
    let empty = runtime.block_on(status_round_trips(&[], NO_SCANS));
    let idle = runtime.block_on(status_round_trips(&pids, NO_SCANS));
    let busy = runtime.block_on(status_round_trips(&pids, BACK_TO_BACK));
    progress("status() round trips");

    // The stall check with the large set: a cheap command with no scan
    // running, with scans back to back, and with only the scan's CPU load.
    let stall = big.map(|n| {
        let pids = pool.pids(n);
        let idle = runtime.block_on(cheap_round_trips(
            &pids,
            NO_SCANS,
            Load::None,
            BIG_STATUS_CALLS,
        ));
        progress(&format!("stall check (a), {n} tracked"));
        let scanning = runtime.block_on(cheap_round_trips(&pids, BACK_TO_BACK, Load::None, 0));
        progress(&format!("stall check (b), {n} tracked"));
        let control = runtime.block_on(cheap_round_trips(&pids, NO_SCANS, Load::ReadingThread, 0));
        progress(&format!("stall check (c), {n} tracked"));
        (n, idle, scanning, control)
    });
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
    let _ = writeln!(out, "limits: {limits}");
    if let Some(note) = &big_note {
        let _ = writeln!(out, "{note}");
    }
    let _ = writeln!(out, "{nofile}; {spawned}");
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
    if let Some(row) = rows.iter().find(|row| row.n > max) {
        let scan = Duration::from_secs_f64(row.ours.median * row.n as f64 / 1e6);
        let pace = if scan >= INTERVAL {
            "longer than the interval: its scans ran back to back"
        } else {
            "within the interval"
        };
        let _ = writeln!(
            out,
            "N = {}: a scan takes {:.1} ms (median), {pace}; floor, procfs and psutil took {} passes \
             over the set (at most {MAX_READS} reads), paced {SCANS}",
            row.n,
            micros(scan) / 1e3,
            pass_count(row.n),
        );
        let _ = writeln!(
            out,
            "per-pid scan cost at N = {}: median {:.2} us, min {:.2} us (DESIGN target: <= 10 us per pid)",
            row.n, row.ours.median, row.ours.min
        );
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
    match &stall {
        Some((n, idle, scanning, control)) => {
            write_stall(&mut out, *n, idle, scanning, control);
        }
        None => {
            let _ = writeln!(
                out,
                "\ntracking and stall check with {BIG} tracked: skipped (no room, see the limits above)"
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{cleanup}; total {:.1} s",
        started.elapsed().as_secs_f64()
    );
    print!("{out}");
}

/// The tracking time and the stall check with `n` tracked.
fn write_stall(
    out: &mut String,
    n: usize,
    idle: &StallCase,
    scanning: &StallCase,
    control: &StallCase,
) {
    let track = summarize(&idle.tracking.calls);
    let total = idle.tracking.total.as_secs_f64();
    let _ = writeln!(
        out,
        "\ntracking {n} processes, one track() awaited after the other from one task, no scan running:"
    );
    let _ = writeln!(
        out,
        "  total {total:.2} s; per call mean {:.1} us, median {:.1} us, p99 {:.1} us, max {:.1} us",
        total * 1e6 / n as f64,
        track.median,
        track.p99,
        track.max
    );
    let status = summarize(&idle.status);
    let _ = writeln!(
        out,
        "\nstall check with {n} tracked: round trip of untrack(<a pid not tracked>) -> Err(NotTracked), {CHEAP_CALLS} calls each."
    );
    let _ = writeln!(
        out,
        "  A cheap command: one map lookup on the actor. status() is O(n) because its reply lists every tracked"
    );
    let _ = writeln!(
        out,
        "  process ({BIG_STATUS_CALLS} calls with {n} tracked, no scan: median {:.1} us, p99 {:.1} us, max {:.1} us), so it would time the reply.",
        status.median, status.p99, status.max
    );
    let line = |label: &str, case: &StallCase, busy: String| {
        let s = summarize(&case.round_trips);
        format!(
            "  {label:<46} ({busy}): median {:>7.1} us, p99 {:>7.1} us, max {:>8.1} us",
            s.median, s.p99, s.max
        )
    };
    let (a, b, c) = (
        summarize(&idle.round_trips),
        summarize(&scanning.round_trips),
        summarize(&control.round_trips),
    );
    let _ = writeln!(
        out,
        "{}",
        line(
            "(a) no scan running (check_interval 1 h)",
            idle,
            format!("scanner busy {:>3.0}%", idle.busy * 100.0)
        )
    );
    let _ = writeln!(
        out,
        "{}",
        line(
            "(b) scans back to back (check_interval 1 ms)",
            scanning,
            format!(
                "scanner busy {:>3.0}%: {} scans in {:.1} s, median {:.1} ms",
                scanning.busy * 100.0,
                scanning.scans,
                scanning.window.as_secs_f64(),
                scanning.scan_us / 1e3
            )
        )
    );
    let _ = writeln!(
        out,
        "  (b)/(a): median {:.2}x, p99 {:.2}x, max {:.2}x",
        b.median / a.median,
        b.p99 / a.p99,
        b.max / a.max
    );
    let _ = writeln!(
        out,
        "{}",
        line(
            "(c) no scan; a thread re-reads every stat file",
            control,
            format!(
                "load thread busy 100%: {:.0}k reads/s",
                control.load_reads.unwrap_or_default() / 1e3
            )
        )
    );
    let _ = writeln!(
        out,
        "      (c) is a control: the CPU load of a scan (one core) without the actor's part of it;"
    );
    let _ = writeln!(
        out,
        "      (c)/(a): median {:.2}x, p99 {:.2}x, max {:.2}x; (b)/(c): median {:.2}x, p99 {:.2}x, max {:.2}x",
        c.median / a.median,
        c.p99 / a.p99,
        c.max / a.max,
        b.median / c.median,
        b.p99 / c.p99,
        b.max / c.max
    );
}
