//! `pidguard run` side by side with `tini -s` and `dumb-init`, in one run:
//!
//! 1. Leftovers: the time from CMD's exit to the supervisor's exit with 100
//!    well-behaved leftovers (`sleep`s that die of SIGTERM) and with one
//!    stubborn leftover (ignores SIGTERM; pidguard's grace is 1 s), and how
//!    many leftovers were still alive when the supervisor exited. Run as an
//!    ordinary process: this benchmark is a child subreaper, so what a
//!    supervisor leaves behind comes here, is counted, and is killed.
//! 2. Reaping: how long the supervisor, as PID 1 of a fresh PID namespace
//!    (`unshare --fork --pid --mount-proc`, root), takes to reap a burst of
//!    100, 1,000 and 10,000 orphans that exit at the same moment (from the
//!    moment they are released to the moment the last is reaped, as seen
//!    from inside), the supervisor's CPU time over that span, and the lag
//!    from the last exit to the last reap. As PID 1 every tool gets the
//!    orphans (dumb-init is no subreaper otherwise). The tools take turns
//!    run by run. At 10,000 the lag mostly measures the kernel's backlog
//!    of exits on two cores, not the supervisor.
//!
//! 3. Footprint ([`footprint`]): RSS and threads while CMD runs, the
//!    wall time of `run -- true`, the binary's size, and valgrind's leak
//!    check, as ratios to tini's.
//!
//! Run with `cargo bench --bench run`; it prints a table (median, min and
//! max over the runs). A tool that is not installed is reported as missing
//! and skipped; the burst rows need root and `unshare`.
//!
//! # Layout
//!
//! - `main.rs`: the phases and the report.
//! - [`fixture`]: the CMD side (this binary, re-executed).
//! - [`tools`]: the supervisors and their command lines.
//! - [`stats`]: median, min, max.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod fixture;
mod footprint;
mod stats;
mod tools;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stats::Summary;
use tools::Tool;

/// Runs per leftover measurement.
const LEFTOVER_RUNS: usize = 5;
/// Runs per burst size (three times as many for 100).
const BURST_RUNS: usize = 5;
/// Well-behaved leftovers per run.
const LEFTOVERS: usize = 100;
/// pidguard's grace period in the leftover runs.
const GRACE: &str = "1s";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(fixture::FLAG) {
        if let Err(error) = fixture::main(&args[1..]) {
            eprintln!("fixture {args:?}: {error}");
            std::process::exit(1);
        }
        return;
    }
    // `cargo test --all-targets` runs this binary without `--bench`.
    if !args.iter().any(|arg| arg == "--bench") {
        println!("run: skipped (no --bench); run `cargo bench --bench run`");
        return;
    }
    nix::sys::prctl::set_child_subreaper(true).expect("prctl(PR_SET_CHILD_SUBREAPER)");
    let tools: Vec<Tool> = Tool::ALL
        .into_iter()
        .filter(|tool| match tool.available() {
            Ok(()) => true,
            Err(why) => {
                println!("{}: missing: {why}", tool.name());
                false
            }
        })
        .collect();

    println!("## time from CMD's exit to the supervisor's exit ({LEFTOVER_RUNS} runs)");
    println!(
        "{:<14} {:<22} {:>28} {:>14}",
        "tool", "leftovers", "CMD exit -> exit (ms)", "alive at exit"
    );
    for (label, n, kind) in [
        ("100 well-behaved", LEFTOVERS, "well"),
        ("1 stubborn, grace 1s", 1, "stubborn"),
    ] {
        for &tool in &tools {
            let mut times = Vec::new();
            let mut alive = Vec::new();
            for _ in 0..LEFTOVER_RUNS {
                let (time, left) = leftovers_once(tool, n, kind);
                times.push(time);
                alive.push(left);
            }
            println!(
                "{:<14} {:<22} {:>28} {:>14}",
                tool.name(),
                label,
                Summary::of(&times).millis(),
                format!("{:?}", alive)
            );
        }
    }

    println!();
    footprint::report(&tools);

    println!();
    if let Err(why) = can_unshare() {
        println!("## burst reaping: skipped: {why}");
        return;
    }
    println!(
        "## reaping a burst of orphans as PID 1 ({BURST_RUNS} runs each, {} at 100)",
        BURST_RUNS * 3
    );
    println!(
        "{:<14} {:>7} {:>28} {:>28} {:>28}",
        "tool",
        "orphans",
        "release -> all reaped (ms)",
        "supervisor CPU (ms)",
        "last exit -> reaped (ms)"
    );
    // (tool, orphans) -> (median CPU, median lag), for the verdicts.
    let mut medians = Vec::new();
    for n in [100, 1_000, 10_000] {
        let runs = if n == 100 { BURST_RUNS * 3 } else { BURST_RUNS };
        // Run by run, every tool in turn: the machine's load drifts, and
        // each tool should see the same share of it.
        let mut samples = vec![(Vec::new(), Vec::new(), Vec::new()); tools.len()];
        for _ in 0..runs {
            for (&tool, (times, cpus, lags)) in tools.iter().zip(&mut samples) {
                let (time, cpu, lag) = burst_once(tool, n);
                times.push(time);
                cpus.push(cpu);
                lags.push(lag);
            }
        }
        for (&tool, (times, cpus, lags)) in tools.iter().zip(&samples) {
            let (cpu, lag) = (Summary::of(cpus), Summary::of(lags));
            println!(
                "{:<14} {:>7} {:>28} {:>28} {:>28}",
                tool.name(),
                n,
                Summary::of(times).millis(),
                cpu.millis(),
                lag.millis()
            );
            medians.push(((tool, n), (cpu.median(), lag.median())));
        }
    }
    let get = |tool, n| {
        medians
            .iter()
            .find(|(key, _)| *key == (tool, n))
            .map(|(_, value)| *value)
    };
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    if let Some((_, lag)) = get(Tool::Pidguard, 100) {
        println!(
            "pidguard: median lag after the last exit of 100: {:.2} ms (target <= 0.5 ms: {})",
            lag.as_secs_f64() * 1000.0,
            verdict(lag <= Duration::from_micros(500))
        );
    }
    if let (Some((ours, _)), Some((theirs, _))) =
        (get(Tool::Pidguard, 10_000), get(Tool::DumbInit, 10_000))
    {
        println!(
            "pidguard: median CPU at 10,000: {:.1} ms, dumb-init's {:.1} ms (target: at most dumb-init's: {})",
            ours.as_secs_f64() * 1000.0,
            theirs.as_secs_f64() * 1000.0,
            verdict(ours <= theirs)
        );
    }
}

/// One leftover run: (time from CMD's `exiting` line to the supervisor's
/// exit, leftovers still alive right then). Cleans up what is left.
fn leftovers_once(tool: Tool, n: usize, kind: &str) -> (Duration, usize) {
    let me = std::env::current_exe().expect("current_exe");
    let cmd = [
        me.display().to_string(),
        fixture::FLAG.into(),
        "leftovers".into(),
        n.to_string(),
        kind.into(),
    ];
    let argv = tool.argv(GRACE, &cmd);
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the supervisor");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read CMD's line");
    assert_eq!(line.trim(), "exiting", "{}: CMD said {line:?}", tool.name());
    let exiting = Instant::now();
    child.wait().expect("wait for the supervisor");
    let time = exiting.elapsed();
    let alive = own_children().iter().filter(|&&pid| running(pid)).count();
    reap_all_children();
    (time, alive)
}

/// One burst run as PID 1: (release to all reaped, supervisor CPU, last
/// exit to last reap).
fn burst_once(tool: Tool, n: usize) -> (Duration, Duration, Duration) {
    let me = std::env::current_exe().expect("current_exe");
    let cmd = [
        me.display().to_string(),
        fixture::FLAG.into(),
        "burst".into(),
        n.to_string(),
    ];
    let argv = tool.argv(GRACE, &cmd);
    let output = Command::new("unshare")
        .args(["--fork", "--pid", "--mount-proc", "--kill-child"])
        .args(&argv)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run unshare");
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<u64> = text
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    assert!(
        output.status.success() && fields.len() == 4 && fields[0] == n as u64,
        "{}: burst of {n}: {:?} {text:?}",
        tool.name(),
        output.status
    );
    (
        Duration::from_nanos(fields[1]),
        Duration::from_nanos(fields[2]),
        Duration::from_nanos(fields[3]),
    )
}

/// Whether PID namespaces can be made here (root and `unshare`).
fn can_unshare() -> Result<(), String> {
    match Command::new("unshare")
        .args(["--fork", "--pid", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("unshare --pid failed ({status}); needs root")),
        Err(error) => Err(format!("unshare not found: {error}")),
    }
}

/// This process's children (each thread's list).
fn own_children() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Whether `pid` runs (is not a zombie).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|text| {
            let (_, rest) = text.rsplit_once(')')?;
            rest.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}

/// SIGKILLs and reaps every child of this process: the leftovers a
/// supervisor left, reparented here. They are our children and unreaped,
/// so their pids cannot have been reused.
fn reap_all_children() {
    loop {
        let children = own_children();
        if children.is_empty() {
            return;
        }
        for pid in children {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}
