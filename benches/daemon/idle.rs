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
//!   units on and off (`"tree": false`). Units on, twice: with the
//!   default ceiling, where each registration follows fork events if the
//!   daemon may listen to them (root) and needs no unit scan, and with
//!   `containment = "scan"`, where each registration's children list is
//!   read every `unit_scan_interval` (1 s): before and after fork events,
//!   in one run. The column `units` says what the units got. The
//!   registrations happen before the window opens and a few seconds pass,
//!   so the window holds only what the daemon does by itself: checks, the
//!   full scan (once a minute), unit scans, and (with fork events) the
//!   machine's forks. Since that last cost follows the machine, not the
//!   daemon, one more row repeats the fork-events one at 1 s while this
//!   bench forks `true` every [`FORK_EVERY`] (about 100 forks a second),
//!   for the cost of one fork elsewhere on the machine.
//!
//! The daemon's own counters (read as root through `status`, before and
//! after the window, outside it) say what it did in the window, and the
//! machine's fork count (`processes` in `/proc/stat`, threads included)
//! how many forks a daemon that follows fork events had to look at: its
//! idle cost follows the machine's forks, not its registrations.

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
/// How often the loaded row's generator forks `true`.
const FORK_EVERY: Duration = Duration::from_millis(10);

/// How registrations are made units in a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Units {
    /// `"tree": false`: units of one.
    Off,
    /// The default ceiling: the strongest mechanism the daemon has.
    Strongest,
    /// `containment = "scan"`.
    Scan,
}

/// One measured configuration.
struct Row {
    build: &'static str,
    check: &'static str,
    units: Option<Units>,
    /// The containment the first registration's unit got, as status says.
    containment: String,
    tracked: usize,
    rss_kib: u64,
    cpu: Duration,
    /// (checks, full scans, unit scans) in the window, when visible.
    counted: Option<(u64, u64, u64)>,
    /// Forks on the whole machine in the window, threads included.
    forks: u64,
    /// This bench forked `true` every [`FORK_EVERY`] in the window.
    loaded: bool,
}

/// Forks `true` every [`FORK_EVERY`] until dropped: the machine's forks
/// that a daemon following fork events has to read.
struct ForkLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ForkLoad {
    fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                Command::new("true").status().expect("run true");
                std::thread::sleep(FORK_EVERY);
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ForkLoad {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Forks since boot on the whole machine, threads included.
fn machine_forks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            stat.lines()
                .find_map(|line| line.strip_prefix("processes "))
                .and_then(|count| count.trim().parse().ok())
        })
        .unwrap_or(0)
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
    let forks = machine_forks();
    let cpu = CpuMeter::start(daemon.pid()).run_for(window);
    let forks = machine_forks() - forks;
    let rss_kib = daemon.rss_kib();
    let after = counters(&mut client);
    Row {
        build,
        check: "1s",
        units: None,
        containment: "-".into(),
        tracked: 0,
        rss_kib,
        cpu,
        counted: difference(before, after),
        forks,
        loaded: false,
    }
}

/// A daemon with [`TRACKED`] registrations, over the window.
fn busy(binary: &Path, check: &'static str, units: Units, window: Duration, load: bool) -> Row {
    let config = match units {
        Units::Scan => "[monitor]\ncontainment = \"scan\"\n",
        Units::Off | Units::Strongest => "",
    };
    let daemon = Daemon::start_with(binary, check, config);
    let sleeps = Sleeps::spawn(TRACKED);
    let mut client = Client::connect(&daemon.socket);
    for &pid in sleeps.pids() {
        client.ok(json!({"request": "track", "pid": pid, "tree": units != Units::Off}));
    }
    let status = client.request(json!({"request": "status"}));
    let containment = status
        .pointer("/result/tracked/0/unit/containment")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    std::thread::sleep(SETTLE);
    let before = counters(&mut client);
    let generator = load.then(ForkLoad::start);
    let forks = machine_forks();
    let cpu = CpuMeter::start(daemon.pid()).run_for(window);
    let forks = machine_forks() - forks;
    drop(generator);
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
        containment,
        tracked: TRACKED,
        rss_kib,
        cpu,
        counted: difference(before, after),
        forks,
        loaded: load,
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
        for units in [Units::Strongest, Units::Scan, Units::Off] {
            rows.push(busy(release, check, units, window, false));
        }
    }
    rows.push(busy(release, "1s", Units::Strongest, window, true));

    println!(
        "## idle over {} s (a fresh daemon each; CPU: its threads' run time)",
        window.as_secs()
    );
    println!(
        "{:<8} {:>6} {:>11} {:>8} {:>8} {:>10} {:>8} {:>7} {:>6} {:>6} {:>8} {:>8}",
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
        "lists/s",
        "forks/s"
    );
    for row in &rows {
        let (checks, full, unit) = match row.counted {
            Some((c, f, u)) => (c.to_string(), f.to_string(), u.to_string()),
            None => ("-".into(), "-".into(), "-".into()),
        };
        // Each unit scan reads the children list of every registration
        // contained by scanning.
        let lists = match (row.containment.as_str(), row.counted) {
            ("scan", Some((_, _, u))) => {
                format!(
                    "{:.0}",
                    (u as f64 * row.tracked as f64) / window.as_secs_f64()
                )
            }
            _ => "0".into(),
        };
        println!(
            "{:<8} {:>6} {:>11} {:>8} {:>8} {:>10.2} {:>8.3} {:>7} {:>6} {:>6} {:>8} {:>8.1}",
            row.build,
            row.check,
            row.containment,
            row.tracked,
            row.rss_kib,
            row.cpu.as_secs_f64() * 1000.0,
            percent(row.cpu, window),
            checks,
            full,
            unit,
            lists,
            row.forks as f64 / window.as_secs_f64()
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
    for row in rows
        .iter()
        .filter(|r| r.tracked > 0 && r.check == "1s" && !r.loaded)
    {
        let share = percent(row.cpu, window);
        let verdict = if share <= 0.1 { "met" } else { "not met" };
        let what = match row.units {
            Some(Units::Off) => "units off".to_owned(),
            Some(Units::Strongest | Units::Scan) | None => {
                format!("units by {}", row.containment)
            }
        };
        println!(
            "{TRACKED} tracked at 1s, {what}: {share:.3} % of a core (target <= 0.1 %: {verdict}), {:.1} forks/s on the machine",
            row.forks as f64 / window.as_secs_f64()
        );
    }
    // The loaded row against the same configuration without the load.
    let fork_events = |loaded: bool| {
        rows.iter()
            .find(|r| r.loaded == loaded && r.check == "1s" && r.units == Some(Units::Strongest))
    };
    if let (Some(quiet), Some(loaded)) = (fork_events(false), fork_events(true)) {
        let forks = loaded.forks.saturating_sub(quiet.forks).max(1);
        let extra = loaded.cpu.saturating_sub(quiet.cpu);
        println!(
            "{TRACKED} tracked at 1s, units by {}, with {:.1} forks/s on the machine: {:.3} % of a core, {:.1} us per fork",
            loaded.containment,
            loaded.forks as f64 / window.as_secs_f64(),
            percent(loaded.cpu, window),
            extra.as_secs_f64() * 1e6 / forks as f64
        );
    }
}
