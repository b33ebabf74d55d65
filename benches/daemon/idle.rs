//! The daemon at rest. For each configuration a fresh daemon is started;
//! its RSS and the CPU its threads spend are measured over one window
//! (`PIDGUARD_BENCH_IDLE_SECS`, 60 s by default) once what it was asked
//! to do beforehand has settled:
//!
//! - nothing registered: the idle RSS, for the release build `cargo bench`
//!   made and for the static build (`dist` profile, musl, every feature;
//!   docs/run.md), which this bench builds in `target/bench-static`;
//! - 1,000 registered `sleep`s (children of this bench, so the daemon
//!   records a live parent and watches it through one pidfd, and each
//!   `sleep` through its own), at check intervals of 1 s and 60 s, with
//!   units on (each registration the root of a unit contained by
//!   scanning, whose children list is read every `unit_scan_interval`,
//!   1 s) and off (`"tree": false`). The registrations happen before the
//!   window opens and a few seconds pass, so the window holds only what
//!   the daemon does by itself: checks, the full scan (once a minute),
//!   unit scans.
//!
//! The daemon's own counters (read as root through `status`, before and
//! after the window, outside it) say what it did in the window.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::proc::{CpuMeter, Daemon, Sleeps};
use crate::wire::Client;

/// Registered processes in the busy configurations.
const TRACKED: usize = 1000;
/// Time left after the registrations before the window opens.
const SETTLE: Duration = Duration::from_secs(3);

/// One measured configuration.
struct Row {
    build: &'static str,
    check: &'static str,
    units: Option<bool>,
    tracked: usize,
    rss_kib: u64,
    cpu: Duration,
    /// (checks, full scans, unit scans) in the window, when visible.
    counted: Option<(u64, u64, u64)>,
}

/// The daemon's monitor counters, as root sees them in `status`.
fn counters(client: &mut Client) -> Option<(u64, u64, u64)> {
    let status = client.request(json!({"request": "status"}));
    let counters = status.pointer("/result/monitor/counters")?;
    let get = |key: &str| counters.get(key).and_then(Value::as_u64);
    Some((get("scans")?, get("full_scans")?, get("unit_scans")?))
}

/// Builds the static `pidguard` with the daemon in its own target
/// directory; `Err` says why there is none.
fn static_build() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = root.join("target").join("bench-static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env(
            "RUSTFLAGS",
            "-C target-feature=+crt-static -C relocation-model=static",
        )
        .args(["build", "--locked", "--profile", "dist"])
        .args(["--target", "x86_64-unknown-linux-musl", "--bin", "pidguard"])
        .status()
        .map_err(|error| format!("cannot run cargo: {error}"))?;
    if !status.success() {
        return Err("the build failed (rustup target add x86_64-unknown-linux-musl?)".into());
    }
    Ok(target_dir.join("x86_64-unknown-linux-musl/dist/pidguard"))
}

/// A daemon with nothing registered, over the window.
fn empty(binary: &Path, build: &'static str, window: Duration) -> Row {
    let daemon = Daemon::start(binary, "1s");
    let mut client = Client::connect(&daemon.socket);
    std::thread::sleep(SETTLE);
    let before = counters(&mut client);
    let cpu = CpuMeter::start(daemon.pid()).run_for(window);
    let rss_kib = daemon.rss_kib();
    let after = counters(&mut client);
    Row {
        build,
        check: "1s",
        units: None,
        tracked: 0,
        rss_kib,
        cpu,
        counted: difference(before, after),
    }
}

/// A daemon with [`TRACKED`] registrations, over the window.
fn busy(binary: &Path, check: &'static str, units: bool, window: Duration) -> Row {
    let daemon = Daemon::start(binary, check);
    let sleeps = Sleeps::spawn(TRACKED);
    let mut client = Client::connect(&daemon.socket);
    for &pid in sleeps.pids() {
        client.ok(json!({"request": "track", "pid": pid, "tree": units}));
    }
    std::thread::sleep(SETTLE);
    let before = counters(&mut client);
    let cpu = CpuMeter::start(daemon.pid()).run_for(window);
    let rss_kib = daemon.rss_kib();
    let after = counters(&mut client);
    // The daemon goes first, so it does not see 1,000 exits.
    drop(client);
    drop(daemon);
    drop(sleeps);
    Row {
        build: "release",
        check,
        units: Some(units),
        tracked: TRACKED,
        rss_kib,
        cpu,
        counted: difference(before, after),
    }
}

fn difference(
    before: Option<(u64, u64, u64)>,
    after: Option<(u64, u64, u64)>,
) -> Option<(u64, u64, u64)> {
    let (b, a) = (before?, after?);
    Some((a.0 - b.0, a.1 - b.1, a.2 - b.2))
}

fn percent(cpu: Duration, window: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / window.as_secs_f64()
}

/// Measures every configuration and prints the table and the verdicts.
pub(crate) fn report(window: Duration) {
    let release = Path::new(env!("CARGO_BIN_EXE_pidguard"));
    let mut rows = vec![empty(release, "release", window)];
    match static_build() {
        Ok(binary) => rows.push(empty(&binary, "static", window)),
        Err(why) => println!("static build: skipped: {why}"),
    }
    for check in ["1s", "60s"] {
        for units in [true, false] {
            rows.push(busy(release, check, units, window));
        }
    }

    println!(
        "## idle over {} s (a fresh daemon each; CPU: its threads' run time)",
        window.as_secs()
    );
    println!(
        "{:<8} {:>6} {:>6} {:>8} {:>8} {:>10} {:>8} {:>7} {:>6} {:>6} {:>8}",
        "build",
        "check",
        "units",
        "tracked",
        "RSS KiB",
        "CPU ms",
        "% core",
        "checks",
        "full",
        "unit",
        "lists/s"
    );
    for row in &rows {
        let (checks, full, unit) = match row.counted {
            Some((c, f, u)) => (c.to_string(), f.to_string(), u.to_string()),
            None => ("-".into(), "-".into(), "-".into()),
        };
        // Each unit scan reads the children list of every registration.
        let lists = match (row.units, row.counted) {
            (Some(true), Some((_, _, u))) => {
                format!(
                    "{:.0}",
                    (u as f64 * row.tracked as f64) / window.as_secs_f64()
                )
            }
            _ => "0".into(),
        };
        println!(
            "{:<8} {:>6} {:>6} {:>8} {:>8} {:>10.2} {:>8.3} {:>7} {:>6} {:>6} {:>8}",
            row.build,
            row.check,
            match row.units {
                Some(true) => "on",
                Some(false) => "off",
                None => "-",
            },
            row.tracked,
            row.rss_kib,
            row.cpu.as_secs_f64() * 1000.0,
            percent(row.cpu, window),
            checks,
            full,
            unit,
            lists
        );
    }
    println!();
    for row in rows.iter().filter(|r| r.tracked == 0) {
        let verdict = if row.rss_kib <= 3 * 1024 {
            "met"
        } else {
            "not met"
        };
        println!(
            "idle RSS with nothing tracked, {} build: {} KiB (target <= 3072 KiB: {verdict})",
            row.build, row.rss_kib
        );
    }
    for row in rows.iter().filter(|r| r.tracked > 0 && r.check == "1s") {
        let share = percent(row.cpu, window);
        if row.units == Some(false) {
            let verdict = if share <= 0.1 { "met" } else { "not met" };
            println!(
                "{TRACKED} tracked at 1s, units off: {share:.3} % of a core (target <= 0.1 %: {verdict})"
            );
        } else {
            println!(
                "{TRACKED} tracked at 1s, units on: {share:.3} % of a core (the unit scan's children lists; not a target)"
            );
        }
    }
}
