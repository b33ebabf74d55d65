//! What reading the tracked pids costs without the monitor around it: bare
//! reads of `/proc/<pid>/stat` back to back and at the scan's pace, and
//! `stat()` on held `procfs` processes; per-pid µs of each pass.

use std::time::Instant;

use crate::stats::micros;
use crate::{INTERVAL, SCANS};

/// Reads of `/proc/<pid>/stat` (or psutil checks) aimed at per size, at
/// least [`SCANS`] passes over the set, but at most [`MAX_READS`].
const READS: usize = 20_000;
/// The cap on reads per size, which only the large row reaches (10 passes
/// over 10,000 pids; psutil takes about 90 us a check).
pub(crate) const MAX_READS: usize = 100_000;

/// The `/proc/<pid>/stat` path of each pid.
pub(crate) fn stat_paths(pids: &[i32]) -> Vec<String> {
    pids.iter().map(|pid| format!("/proc/{pid}/stat")).collect()
}

/// One bare read of a `/proc/<pid>/stat`, as the floor does it.
pub(crate) fn read_stat(path: &str) {
    let stat = std::fs::read_to_string(path).expect("read /proc/<pid>/stat");
    std::hint::black_box(stat);
}

/// The procfs floor: per-pid µs of passes of bare `read_to_string`s over
/// `pids`, one sample per pass.
pub(crate) fn floor(pids: &[i32]) -> Vec<f64> {
    let paths = stat_paths(pids);
    passes(pids.len(), || paths.iter().for_each(|path| read_stat(path)))
}

/// What the scan itself does per pid, without the monitor around it:
/// `stat()` on a held `procfs::process::Process` (openat through the pinned
/// directory fd, read, parse).
pub(crate) fn procfs_floor(pids: &[i32]) -> Vec<f64> {
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
pub(crate) fn paced_floor(pids: &[i32]) -> Vec<f64> {
    let paths = stat_paths(pids);
    (0..SCANS)
        .map(|_| {
            std::thread::sleep(INTERVAL);
            time_pass(pids.len(), || paths.iter().for_each(|path| read_stat(path)))
        })
        .collect()
}

/// Passes over `n` pids for about [`READS`] reads and at least [`SCANS`]
/// passes, but no more than [`MAX_READS`] reads (10 passes at 10,000).
pub(crate) fn pass_count(n: usize) -> usize {
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
