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
//! [`pool::SLEEPS_PER_SH`]), so they are their children, not ours. That is
//! the case `track` is for (processes somebody else started), and it keeps
//! the per-scan zombie check (which lists this process's own children and
//! stats each one) out of the per-pid figure: with 1,000 direct children
//! every scan would also stat all 1,000 of them. Every `sleep` is pinned by a
//! pidfd as soon as its pid is read, and the [`Pool`] guard `SIGKILL`s each
//! one through that pidfd when it is dropped, also on a panic.
//!
//! The per-pid cost is the monitor's own `last_scan.duration` (measured
//! around the whole procfs loop of one scan, on the blocking pool) divided
//! by N. A scan also has a fixed part that does not grow with N (the zombie
//! check), measured once with nothing tracked and shown apart.
//!
//! The 10,000 row needs 10,000 more processes and three descriptors each
//! (see [`limits::room`]); when the limits here leave no room for that, it
//! runs at the largest multiple of 1,000 that fits and says why, or is
//! skipped.
//!
//! The stall check times `untrack` of a pid that is not tracked: an O(1)
//! lookup on the actor, so its round trip is the wait for the actor.
//! `status()` is O(n) (its reply lists every tracked process), so its round
//! trip grows with N whether a scan runs or not.
//!
//! # Layout
//!
//! - `main.rs`: the sizes and scan intervals every phase shares, and the
//!   order the phases run in.
//! - [`limits`]: descriptor and task limits, and the size the large phases
//!   fit at.
//! - [`pool`]: the `sleep`s that get tracked, and their cleanup.
//! - [`measure`]: a monitor started over the pool; scan durations and
//!   `status()` round trips.
//! - [`stall`]: the stall check and the tracking time at the large size.
//! - [`floors`]: the procfs floors, timed without the monitor.
//! - [`psutil`]: the original design's check, run by `python3`.
//! - [`stats`]: order statistics of the samples.
//! - [`report`]: the printed report.

// A bench reports its table on stdout and its side notes on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod floors;
mod limits;
mod measure;
mod pool;
mod psutil;
mod report;
mod stall;
mod stats;

use std::time::{Duration, Instant};

use crate::limits::{FD_HEADROOM, FDS_PER_PROCESS};
use crate::pool::Pool;
use crate::report::{Report, Row};
use crate::stall::Load;
use crate::stats::summarize;

/// Tracked-set sizes, smallest first; the `status()` measurement uses the
/// largest.
const SIZES: [usize; 3] = [10, 100, 1_000];
/// The largest of [`SIZES`].
const LARGEST: usize = SIZES[SIZES.len() - 1];
/// The large tracked set: its table row, the time to track it, and the
/// stall check. The pool holds this many when the limits allow (see
/// [`limits::room`]).
const BIG: usize = 10_000;
/// The scan interval while scans are sampled.
const INTERVAL: Duration = Duration::from_millis(50);
/// Full scans sampled per size.
const SCANS: usize = 30;
/// A scan interval so long that no scan runs after the one at start.
const NO_SCANS: Duration = Duration::from_secs(3_600);
/// A scan interval shorter than any scan of 1,000 pids: the scanner then
/// runs back to back (missed ticks are delayed, not bursted).
const BACK_TO_BACK: Duration = Duration::from_millis(1);

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it (in a debug build), and must not spawn 10,000
    // processes for minutes there.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("scan: skipped (no --bench); run `cargo bench -p monitor-core --bench scan`");
        return;
    }
    let started = Instant::now();
    let plan = limits::plan_big();
    let pool_size = plan.big.unwrap_or(0).max(LARGEST);
    let nofile = limits::raise_nofile(FDS_PER_PROCESS * pool_size as u64 + FD_HEADROOM);
    let psutil_ok = psutil::available();
    let spawning = Instant::now();
    let mut pool = Pool::spawn(pool_size);
    let spawned = format!(
        "{pool_size} sleeps started by {} sh and pinned in {:.1} s",
        pool.shell_count(),
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
    let fixed = summarize(&runtime.block_on(measure::scan_durations(&[])));
    progress("fixed cost");

    let mut rows = Vec::new();
    for n in SIZES.into_iter().chain(plan.big) {
        let pids = pool.pids(n);
        // One thing at a time: the monitor is stopped before the floors run.
        let phase = Instant::now();
        let scans = runtime.block_on(measure::scan_durations(&pids));
        let scanned = phase.elapsed();
        let per_pid: Vec<f64> = scans.iter().map(|us| us / n as f64).collect();
        let psutil = match &psutil_ok {
            Ok(()) => Some(summarize(&psutil::check(&pids).expect("psutil check"))),
            Err(_) => None,
        };
        let checked = phase.elapsed();
        rows.push(Row {
            n,
            ours: summarize(&per_pid),
            marginal: (summarize(&scans).median - fixed.median) / n as f64,
            floor: summarize(&floors::floor(&pids)),
            paced: summarize(&floors::paced_floor(&pids)),
            procfs: summarize(&floors::procfs_floor(&pids)),
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
    let pids = pool.pids(LARGEST);
    let empty = runtime.block_on(measure::status_round_trips(&[], NO_SCANS));
    let idle = runtime.block_on(measure::status_round_trips(&pids, NO_SCANS));
    let busy = runtime.block_on(measure::status_round_trips(&pids, BACK_TO_BACK));
    progress("status() round trips");

    // The stall check with the large set: a cheap command with no scan
    // running, with scans back to back, and with only the scan's CPU load.
    let stall = plan.big.map(|n| {
        let pids = pool.pids(n);
        let idle = runtime.block_on(stall::cheap_round_trips(
            &pids,
            NO_SCANS,
            Load::None,
            stall::BIG_STATUS_CALLS,
        ));
        progress(&format!("stall check (a), {n} tracked"));
        let scanning =
            runtime.block_on(stall::cheap_round_trips(&pids, BACK_TO_BACK, Load::None, 0));
        progress(&format!("stall check (b), {n} tracked"));
        let control = runtime.block_on(stall::cheap_round_trips(
            &pids,
            NO_SCANS,
            Load::ReadingThread,
            0,
        ));
        progress(&format!("stall check (c), {n} tracked"));
        stall::Stall {
            n,
            idle,
            scanning,
            control,
        }
    });
    drop(runtime);
    let cleanup = pool.clean_up();

    let report = Report {
        plan,
        nofile,
        spawned,
        fixed,
        rows,
        psutil: psutil_ok,
        status: [empty, idle, busy],
        stall,
        cleanup,
    };
    print!("{}", report.render(started));
}
