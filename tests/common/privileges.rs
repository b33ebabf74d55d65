//! Crossing a real privilege boundary: a test that starts as root re-runs
//! itself (this very test binary, this one test) as uid/gid [`NOBODY`],
//! with an environment variable telling the re-run its role.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// The unprivileged uid and gid the re-run takes.
pub(crate) const NOBODY: u32 = 65534;

/// Re-runs `test` (its full name, for `--exact`) as [`NOBODY`] with `var`
/// set to `value`, and requires that the re-run ran exactly that test and
/// passed.
pub(crate) fn rerun_as_nobody(test: &str, var: &str, value: &str) {
    let output = Command::new(std::env::current_exe().expect("own path"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(var, value)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .expect("re-run the test binary as nobody");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the unprivileged side failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
