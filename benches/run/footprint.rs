//! The footprint rows, for every tool in one run, as ratios to tini's:
//! RSS and threads while CMD (`sleep 3`) runs (read at 1.5 s), the wall
//! time of `run -- true`, the binary's size, and whether
//! `valgrind --leak-check=full --error-exitcode=1 TOOL -- true` exits 0.
//!
//! pidguard is measured twice: the build `cargo bench` made (release,
//! dynamically linked) and the static container build (profile `dist`,
//! musl, see docs/run.md) when it has been built; tini twice too, when
//! Debian's `tini-static` is there beside `tini`.
//!
//! valgrind's check means something for dynamically linked programs only:
//! it finds `malloc` and the string functions by replacing them in the C
//! library it loads. In a static binary it sees no allocation at all (so
//! no leak is possible) and flags the C library's own code, which reads
//! memory in ways it cannot follow: tini-static fails it (10 errors in
//! glibc), and so does the musl build (2, in its allocator's `enframe`).
//! Such a row says `static` beside its exit code.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::Tool;

/// The static build, where the documented command puts it.
const STATIC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/x86_64-unknown-linux-musl/dist/pidguard"
);

/// Debian's statically linked tini (package `tini`).
const TINI_STATIC: &str = "/usr/bin/tini-static";

/// One supervisor: its name and the argv prefix before CMD.
struct Subject {
    name: String,
    binary: PathBuf,
    prefix: Vec<String>,
}

fn subjects(tools: &[Tool]) -> Vec<Subject> {
    let mut all = Vec::new();
    for &tool in tools {
        let argv = tool.argv("5s", &[]);
        let binary = which(&argv[0]);
        all.push(Subject {
            name: tool.name().into(),
            binary,
            prefix: argv,
        });
        let twin = match tool {
            Tool::Pidguard => Some(("pidguard static", STATIC)),
            Tool::Tini => Some(("tini-static", TINI_STATIC)),
            Tool::DumbInit => None,
        };
        if let Some((name, path)) = twin.filter(|(_, path)| Path::new(path).exists()) {
            let mut argv = tool.argv("5s", &[]);
            argv[0] = path.into();
            all.push(Subject {
                name: name.into(),
                binary: path.into(),
                prefix: argv,
            });
        }
    }
    if !Path::new(STATIC).exists() {
        println!("pidguard static: not built ({STATIC}); see docs/run.md for the command");
    }
    all
}

fn which(program: &str) -> PathBuf {
    if program.contains('/') {
        return program.into();
    }
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.exists())
        .unwrap_or_else(|| program.into())
}

fn command(subject: &Subject, cmd: &[&str]) -> Command {
    let mut command = Command::new(&subject.prefix[0]);
    command
        .args(&subject.prefix[1..])
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// (RSS in KiB, threads) of the supervisor 1.5 s into `sleep 3`.
fn rss(subject: &Subject) -> (u64, u64) {
    let mut child = command(subject, &["sleep", "3"]).spawn().expect("start");
    std::thread::sleep(Duration::from_millis(1500));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let sample = (field("VmRSS:"), field("Threads:"));
    child.wait().expect("wait");
    sample
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Median wall time of `TOOL -- true` in ms.
fn wall(subject: &Subject) -> f64 {
    median(
        (0..21)
            .map(|_| {
                let start = Instant::now();
                command(subject, &["true"]).status().expect("run");
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    )
}

/// valgrind's verdict: its exit code (with `static` when valgrind saw no
/// allocation: see the module's docs), or why it could not run.
fn valgrind(subject: &Subject) -> String {
    let mut command = Command::new("valgrind");
    command
        .args(["--leak-check=full", "--error-exitcode=1"])
        .args(&subject.prefix)
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match command.output() {
        Ok(output) => {
            let report = String::from_utf8_lossy(&output.stderr);
            let code = output.status.code().unwrap_or(-1);
            if report.contains("total heap usage: 0 allocs") {
                format!("exit {code} static")
            } else {
                format!("exit {code}")
            }
        }
        Err(error) => format!("no valgrind ({error})"),
    }
}

/// Prints the footprint table.
pub(crate) fn report(tools: &[Tool]) {
    let subjects = subjects(tools);
    let rows: Vec<_> = subjects
        .iter()
        .map(|s| {
            let samples: Vec<(u64, u64)> = (0..3).map(|_| rss(s)).collect();
            let rss = median(samples.iter().map(|x| x.0 as f64).collect());
            let threads = samples.iter().map(|x| x.1).max().unwrap_or(0);
            let size = std::fs::metadata(&s.binary).map(|m| m.len()).unwrap_or(0);
            (rss, threads, wall(s), size, valgrind(s))
        })
        .collect();
    let tini = subjects.iter().position(|s| s.name == Tool::Tini.name());
    let ratio = |value: f64, pick: fn(&(f64, u64, f64, u64, String)) -> f64| match tini {
        Some(t) if pick(&rows[t]) > 0.0 => format!("{:.2}x", value / pick(&rows[t])),
        _ => "-".into(),
    };
    println!("## footprint (ratios to tini's, same run)");
    println!(
        "{:<16} {:>16} {:>8} {:>18} {:>20} {:>15}",
        "tool", "RSS KiB (ratio)", "threads", "true ms (ratio)", "binary bytes", "valgrind"
    );
    for (subject, row) in subjects.iter().zip(&rows) {
        println!(
            "{:<16} {:>16} {:>8} {:>18} {:>20} {:>15}",
            subject.name,
            format!("{:.0} ({})", row.0, ratio(row.0, |r| r.0)),
            row.1,
            format!("{:.2} ({})", row.2, ratio(row.2, |r| r.2)),
            format!("{} ({})", row.3, ratio(row.3 as f64, |r| r.3 as f64)),
            row.4
        );
    }
    // The targets (issue 12): the static build against tini, same run.
    let find = |name: &str| subjects.iter().position(|s| s.name == name);
    if let (Some(p), Some(t)) = (find("pidguard static"), tini) {
        let (ours, theirs) = (&rows[p], &rows[t]);
        let verdict = |met: bool| if met { "met" } else { "NOT met" };
        println!(
            "pidguard static: RSS {:.2}x tini's (target <= 1.5x: {}), `run -- true` {:.2}x (target <= 1.5x: {}), {} bytes (target <= 2 MiB: {}), threads {}",
            ours.0 / theirs.0,
            verdict(ours.0 <= 1.5 * theirs.0),
            ours.2 / theirs.2,
            verdict(ours.2 <= 1.5 * theirs.2),
            ours.3,
            verdict(ours.3 <= 2 * 1024 * 1024),
            ours.1,
        );
    }
    if let Some(p) = find(Tool::Pidguard.name()) {
        println!(
            "pidguard run (dynamic): valgrind {} (target: exit 0, as tini's)",
            rows[p].4
        );
    }
}
