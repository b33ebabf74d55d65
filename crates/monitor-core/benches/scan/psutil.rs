//! The original Python design's per-pid check (psutil), run by `python3`
//! over the same pids and timed by the Python process itself.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::floors::pass_count;

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
pub(crate) fn available() -> Result<(), String> {
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

/// Runs [`PSUTIL_CHECK`] over `pids` for [`pass_count`] passes (after one
/// warm-up pass); returns the per-pid µs of each pass.
pub(crate) fn check(pids: &[i32]) -> Result<Vec<f64>, String> {
    let passes = pass_count(pids.len());
    let mut child = Command::new("python3")
        .args(["-c", PSUTIL_CHECK, &passes.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    let input: String = pids.iter().map(|pid| format!("{pid} ")).collect();
    // Dropped once written: Python reads stdin to its end.
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .map_err(|e| e.to_string())?;
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
