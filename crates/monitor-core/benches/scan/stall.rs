//! The stall check at the large size: round trips of a cheap command (one
//! map lookup on the actor) with no scan running, with scans back to back,
//! and with only a scan's CPU load; plus how long tracking the set took and
//! what the O(n) `status()` costs there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monitor_core::Error;

use crate::NO_SCANS;
use crate::floors::{read_stat, stat_paths};
use crate::measure::{Tracking, finish, sample_scans, spaced_round_trip, start_tracking};
use crate::stats::{busy_share, micros, summarize};

/// Cheap-command round trips timed in each case of the stall check.
pub(crate) const CHEAP_CALLS: usize = 2_000;
/// Full scans sampled on each side of a stall-check window, for the
/// scanner's busy share.
const STALL_SCANS: usize = 5;
/// `status()` round trips timed with the large set tracked, to show it is
/// O(n).
pub(crate) const BIG_STATUS_CALLS: usize = 50;

/// Extra CPU load during a stall-check window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    None,
    /// A thread reading `/proc/<pid>/stat` of every tracked pid back to
    /// back: the scanner's CPU load (one core of two) without its messages
    /// to the actor, to tell CPU contention from waiting for the actor.
    ReadingThread,
}

/// The three cases of the stall check with `n` tracked.
pub(crate) struct Stall {
    pub(crate) n: usize,
    /// (a) No scan running; also holds the tracking time and `status()`.
    pub(crate) idle: StallCase,
    /// (b) Scans back to back.
    pub(crate) scanning: StallCase,
    /// (c) No scan, with [`Load::ReadingThread`].
    pub(crate) control: StallCase,
}

/// One case of the stall check.
pub(crate) struct StallCase {
    pub(crate) tracking: Tracking,
    /// µs of each cheap round trip.
    pub(crate) round_trips: Vec<f64>,
    /// Share of the window the scanner spent scanning.
    pub(crate) busy: f64,
    /// Scans reported during the window, and its length.
    pub(crate) scans: u64,
    pub(crate) window: Duration,
    /// Median µs of [`STALL_SCANS`] full scans just before the window and as
    /// many just after it (`status()`, O(n), is not called inside it).
    pub(crate) scan_us: f64,
    /// Reads per second of the load thread, if there was one.
    pub(crate) load_reads: Option<f64>,
    /// µs of `status()` round trips after the window, if asked for.
    pub(crate) status: Vec<f64>,
}

/// The [`Load::ReadingThread`]: reads every tracked pid's stat file, over
/// and over, until stopped.
struct ReadingThread {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

impl ReadingThread {
    fn start(pids: &[i32]) -> Self {
        let paths = stat_paths(pids);
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let (stop, reads) = (Arc::clone(&stop), Arc::clone(&reads));
            move || {
                for path in paths.iter().cycle() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    read_stat(path);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            stop,
            reads,
            thread,
        }
    }

    /// Stops the thread; returns its reads per second over `window`.
    fn stop(self, window: Duration) -> f64 {
        let done = self.reads.load(Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the load thread read every pid");
        done as f64 / window.as_secs_f64()
    }
}

/// Tracks `pids` with scans every `interval`, then times [`CHEAP_CALLS`]
/// round trips of an O(1) command (`untrack` of a pid that is not tracked,
/// answered `NotTracked` after one map lookup), with `load` running; then,
/// if asked, `status_calls` `status()` round trips.
pub(crate) async fn cheap_round_trips(
    pids: &[i32],
    interval: Duration,
    load: Load,
    status_calls: usize,
) -> StallCase {
    let (monitor, tracking) = start_tracking(pids, interval).await;
    let handle = monitor.handle();
    // The monitor never tracks its own process.
    let untracked = i32::try_from(std::process::id()).expect("a pid fits in i32");
    let loader = (load == Load::ReadingThread).then(|| ReadingThread::start(pids));
    let scanning = interval != NO_SCANS;
    let mut scan_us = Vec::new();
    if scanning {
        scan_us = sample_scans(&handle, pids.len(), STALL_SCANS).await;
    }
    let before = handle.status().await.expect("status");
    let window = Instant::now();
    let mut round_trips = Vec::with_capacity(CHEAP_CALLS);
    for i in 0..CHEAP_CALLS {
        let (answer, round_trip) = spaced_round_trip(i, || handle.untrack(untracked)).await;
        round_trips.push(round_trip);
        assert!(
            matches!(answer, Err(Error::NotTracked { pid }) if pid == untracked),
            "untrack of an untracked pid: {answer:?}"
        );
    }
    let elapsed = window.elapsed();
    let load_reads = loader.map(|thread| thread.stop(elapsed));
    let after = handle.status().await.expect("status");
    let scans = after.counters.scans - before.counters.scans;
    let scan_us = if scanning {
        scan_us.extend(sample_scans(&handle, pids.len(), STALL_SCANS).await);
        summarize(&scan_us).median
    } else {
        assert_eq!(scans, 0, "no scan ran in the window");
        0.0
    };
    let busy = busy_share(scan_us, scans, micros(elapsed));
    let mut status = Vec::with_capacity(status_calls);
    for i in 0..status_calls {
        let (reply, round_trip) = spaced_round_trip(i, || handle.status()).await;
        status.push(round_trip);
        assert_eq!(reply.expect("status").tracked.len(), pids.len());
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
