//! A monitor started over some of the pool's pids and measured while it
//! runs: the durations of its scans, and `status()` round trips with and
//! without scans running. The helpers here (start, sample scans, time a
//! spaced call, check and stop) also serve the stall check.

use std::time::{Duration, Instant};

use monitor_core::{Monitor, MonitorHandle, OrphanAction};

use crate::stats::{busy_share, micros, summarize};
use crate::{INTERVAL, NO_SCANS, SCANS};

/// How often the sampler asks for `status()`: several times per interval,
/// so every scan's duration is seen before the next one replaces it.
const POLL: Duration = Duration::from_millis(5);
/// `status()` round trips timed in each case.
pub(crate) const STATUS_CALLS: usize = 200;
/// Any one phase taking longer than this is a hang, not a measurement.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long tracking took.
pub(crate) struct Tracking {
    /// µs of each `track()` await.
    pub(crate) calls: Vec<f64>,
    /// All of them, one after the other.
    pub(crate) total: Duration,
}

/// Starts a monitor that scans every `interval` and tracks `pids` (one
/// `track()` awaited after the other, timed); returns it once the first scan
/// that saw all of them has been reported (unless `interval` is
/// [`NO_SCANS`]: then only the scan at start has run).
pub(crate) async fn start_tracking(pids: &[i32], interval: Duration) -> (Monitor, Tracking) {
    let monitor = Monitor::builder()
        .check_interval(interval)
        // What a full scan costs is measured: every check reads everything
        // (between full scans, a check skips the watched processes).
        .full_scan_interval(interval)
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
async fn wait_for_scan(monitor: &Monitor, scans: u64) {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        let status = monitor.handle().status().await.expect("status");
        if status.counters.scans >= scans {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "scan {scans} not reported within {PHASE_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Checks that the run measured what it meant to, and stops the monitor.
pub(crate) async fn finish(monitor: Monitor, tracked: usize) {
    let status = monitor.handle().status().await.expect("status");
    assert_eq!(status.tracked_count, tracked, "every sleep stayed tracked");
    assert_eq!(status.counters.exited, 0, "no sleep exited");
    assert_eq!(status.counters.orphans_found, 0, "no sleep was orphaned");
    assert_eq!(status.counters.errors, 0, "the monitor reported no errors");
    monitor.shutdown().await;
}

/// Polls `status()` until `count` more full scans of the `n` tracked pids
/// have been reported; returns the `last_scan.duration` (µs) of each.
pub(crate) async fn sample_scans(handle: &MonitorHandle, n: usize, count: usize) -> Vec<f64> {
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

/// The `i`th of a series of timed calls: waits an uneven gap (0.3 to 2.2
/// ms) so the calls fall all over the scans, then times `call`; returns its
/// output and its round trip in µs.
pub(crate) async fn spaced_round_trip<F: Future>(
    i: usize,
    call: impl FnOnce() -> F,
) -> (F::Output, f64) {
    let gap = 300 + (i as u64 * 397) % 1_900;
    tokio::time::sleep(Duration::from_micros(gap)).await;
    let started = Instant::now();
    let output = call().await;
    (output, micros(started.elapsed()))
}

/// Tracks `pids` and returns the `last_scan.duration` (µs) of [`SCANS`]
/// full scans at [`INTERVAL`].
pub(crate) async fn scan_durations(pids: &[i32]) -> Vec<f64> {
    let (monitor, _) = start_tracking(pids, INTERVAL).await;
    let scan_us = sample_scans(&monitor.handle(), pids.len(), SCANS).await;
    finish(monitor, pids.len()).await;
    scan_us
}

/// Times [`STATUS_CALLS`] `status()` round trips while `pids` are tracked
/// and the scanner runs every `interval`; returns the µs of each and the
/// share of the window the scanner spent scanning.
pub(crate) async fn status_round_trips(pids: &[i32], interval: Duration) -> (Vec<f64>, f64) {
    let (monitor, _) = start_tracking(pids, interval).await;
    let handle = monitor.handle();
    let before = handle.status().await.expect("status");
    let window = Instant::now();
    let mut round_trips = Vec::with_capacity(STATUS_CALLS);
    let mut scan_us = Vec::new();
    let mut scans = before.counters.scans;
    for i in 0..STATUS_CALLS {
        let (status, round_trip) = spaced_round_trip(i, || handle.status()).await;
        round_trips.push(round_trip);
        let status = status.expect("status");
        if status.counters.scans > scans {
            scan_us.push(micros(status.last_scan.expect("a scan ran").duration));
        }
        scans = status.counters.scans;
    }
    let elapsed = micros(window.elapsed());
    let scan_median = if scan_us.is_empty() {
        0.0
    } else {
        summarize(&scan_us).median
    };
    let busy = busy_share(scan_median, scans - before.counters.scans, elapsed);
    finish(monitor, pids.len()).await;
    (round_trips, busy)
}
