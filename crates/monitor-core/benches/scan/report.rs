//! The printed report: the machine and its limits, the per-pid table, the
//! `status()` round trips, the tracking time and stall check at the large
//! size, and the cleanup.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::floors::{MAX_READS, pass_count};
use crate::limits::Plan;
use crate::measure::STATUS_CALLS;
use crate::stall::{BIG_STATUS_CALLS, CHEAP_CALLS, Stall, StallCase};
use crate::stats::{Summary, micros, summarize};
use crate::{BIG, INTERVAL, LARGEST, SCANS};

/// One row of the table.
pub(crate) struct Row {
    pub(crate) n: usize,
    pub(crate) ours: Summary,
    /// Median per pid once the fixed per-scan cost is taken off.
    pub(crate) marginal: f64,
    pub(crate) floor: Summary,
    pub(crate) paced: Summary,
    pub(crate) procfs: Summary,
    pub(crate) psutil: Option<Summary>,
}

/// Everything the bench measured, as the report shows it.
pub(crate) struct Report {
    pub(crate) plan: Plan,
    /// What was done about `RLIMIT_NOFILE`.
    pub(crate) nofile: String,
    /// How the pool was started.
    pub(crate) spawned: String,
    /// The µs of a scan with nothing tracked.
    pub(crate) fixed: Summary,
    pub(crate) rows: Vec<Row>,
    /// Whether psutil could be run, and why not.
    pub(crate) psutil: Result<(), String>,
    /// `status()` round trips (µs) and the scanner's busy share: nothing
    /// tracked, then [`LARGEST`] tracked with no scan running and with
    /// scans back to back.
    pub(crate) status: [(Vec<f64>, f64); 3],
    pub(crate) stall: Option<Stall>,
    /// The pool's cleanup line.
    pub(crate) cleanup: String,
}

impl Report {
    /// The whole report, ending with the time since `started`.
    pub(crate) fn render(&self, started: Instant) -> String {
        let mut out = String::new();
        self.write_header(&mut out);
        self.write_table(&mut out);
        self.write_status(&mut out);
        match &self.stall {
            Some(stall) => write_stall(&mut out, stall),
            None => {
                let _ = writeln!(
                    out,
                    "\ntracking and stall check with {BIG} tracked: skipped (no room, see the limits above)"
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{}; total {:.1} s",
            self.cleanup,
            started.elapsed().as_secs_f64()
        );
        out
    }

    /// The machine, the limits, the pool and the fixed cost of a scan.
    fn write_header(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nmonitor-core scan cost: {} CPUs, kernel {}, check_interval {INTERVAL:?}, {SCANS} full scans per size",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim(),
        );
        let _ = writeln!(out, "limits: {}", self.plan.limits);
        if let Some(note) = &self.plan.note {
            let _ = writeln!(out, "{note}");
        }
        let _ = writeln!(out, "{}; {}", self.nofile, self.spawned);
        let _ = writeln!(
            out,
            "fixed cost of one scan with nothing tracked (the zombie check): median {:.1} us, min {:.1} us",
            self.fixed.median, self.fixed.min
        );
    }

    /// The per-pid table, and what the large row means.
    fn write_table(&self, out: &mut String) {
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
        for row in &self.rows {
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
        if let Err(reason) = &self.psutil {
            let _ = writeln!(out, "psutil comparison skipped: {reason}");
        }
        if let Some(row) = self.rows.iter().find(|row| row.n > LARGEST) {
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
    }

    /// `status()` round trips with and without scans running.
    fn write_status(&self, out: &mut String) {
        let _ = writeln!(out, "\nstatus() round trip, {STATUS_CALLS} calls each:");
        let labels = [
            "0 tracked, no scan running".to_owned(),
            format!("{LARGEST} tracked, no scan running"),
            format!("{LARGEST} tracked, scans back to back"),
        ];
        for (label, (round_trips, share)) in labels.iter().zip(&self.status) {
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
    }
}

/// The tracking time and the stall check with `stall.n` tracked.
fn write_stall(out: &mut String, stall: &Stall) {
    let Stall {
        n,
        idle,
        scanning,
        control,
    } = stall;
    let track = summarize(&idle.tracking.calls);
    let total = idle.tracking.total.as_secs_f64();
    let _ = writeln!(
        out,
        "\ntracking {n} processes, one track() awaited after the other from one task, no scan running:"
    );
    let _ = writeln!(
        out,
        "  total {total:.2} s; per call mean {:.1} us, median {:.1} us, p99 {:.1} us, max {:.1} us",
        total * 1e6 / *n as f64,
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
    let a = write_case(
        out,
        "(a) no scan running (check_interval 1 h)",
        idle,
        format!("scanner busy {:>3.0}%", idle.busy * 100.0),
    );
    let b = write_case(
        out,
        "(b) scans back to back (check_interval 1 ms)",
        scanning,
        format!(
            "scanner busy {:>3.0}%: {} scans in {:.1} s, median {:.1} ms",
            scanning.busy * 100.0,
            scanning.scans,
            scanning.window.as_secs_f64(),
            scanning.scan_us / 1e3
        ),
    );
    let _ = writeln!(out, "  (b)/(a): {}", ratios(b, a));
    let c = write_case(
        out,
        "(c) no scan; a thread re-reads every stat file",
        control,
        format!(
            "load thread busy 100%: {:.0}k reads/s",
            control.load_reads.unwrap_or_default() / 1e3
        ),
    );
    let _ = writeln!(
        out,
        "      (c) is a control: the CPU load of a scan (one core) without the actor's part of it;"
    );
    let _ = writeln!(
        out,
        "      (c)/(a): {}; (b)/(c): {}",
        ratios(c, a),
        ratios(b, c)
    );
}

/// One case's line of the stall check; returns its round trips' summary.
fn write_case(out: &mut String, label: &str, case: &StallCase, busy: String) -> Summary {
    let s = summarize(&case.round_trips);
    let _ = writeln!(
        out,
        "  {label:<46} ({busy}): median {:>7.1} us, p99 {:>7.1} us, max {:>8.1} us",
        s.median, s.p99, s.max
    );
    s
}

/// `top` over `bottom`, as median, p99 and max ratios.
fn ratios(top: Summary, bottom: Summary) -> String {
    format!(
        "median {:.2}x, p99 {:.2}x, max {:.2}x",
        top.median / bottom.median,
        top.p99 / bottom.p99,
        top.max / bottom.max
    )
}
