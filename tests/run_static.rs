//! The static container build (docs/run.md, "A static binary"): built here
//! with the documented command, it is at most 2 MiB, has no interpreter and
//! no dynamic section, and runs as PID 1 of a fresh PID namespace whose
//! root file system holds only that binary and a static busybox: no C
//! library at all. There it reaps the usual 100 orphans and passes CMD's
//! exit code.
//!
//! Needs root, util-linux `unshare`, Debian's `busybox-static` and the
//! Rust standard library for musl (`rustup target add
//! x86_64-unknown-linux-musl`; `.ci/run` installs both); elsewhere it is
//! skipped saying what is missing, and under `CI=true` a missing piece is
//! a failure.

mod common;
mod runner;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Procs;
use runner::Run;

/// The documented build's output, relative to the workspace.
const BUILT: &str = "target/x86_64-unknown-linux-musl/dist/pidguard";
/// The target the documented build needs.
const TARGET: &str = "x86_64-unknown-linux-musl";
/// Where Debian's `busybox-static` puts the binary.
const BUSYBOX: &str = "/bin/busybox";
/// The size limit.
const MAX_SIZE: u64 = 2 * 1024 * 1024;

/// Skips (or, under `CI=true`, fails) when something is missing.
#[allow(clippy::print_stderr)] // a skip must say so
fn missing(what: &str) -> bool {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "static binary test: {what}"
    );
    eprintln!("static binary test skipped: {what}");
    true
}

/// Whether the toolchain has the standard library for [`TARGET`].
fn target_installed() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .is_some_and(|sysroot| {
            Path::new(sysroot.trim())
                .join("lib/rustlib")
                .join(TARGET)
                .exists()
        })
}

/// Runs the documented build command; returns the binary.
fn build() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .env(
            "RUSTFLAGS",
            "-C target-feature=+crt-static -C relocation-model=static",
        )
        .args([
            "build",
            "--locked",
            "--profile",
            "dist",
            "--target",
            TARGET,
            "--no-default-features",
            "--bin",
            "pidguard",
        ])
        .status()
        .expect("run cargo");
    assert!(status.success(), "the documented static build failed");
    root.join(BUILT)
}

/// The `p_type`s of an ELF64 file's program headers.
fn segment_types(elf: &[u8]) -> Vec<u32> {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count)
        .map(|i| {
            let at = phoff + i * size;
            u32::from_le_bytes(elf[at..at + 4].try_into().expect("4 bytes"))
        })
        .collect()
}

/// A directory removed on drop, even when the test fails.
struct TempRoot(PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A root file system with only `pidguard`, busybox (and its applet
/// links) and the orphan fixture.
fn root_with(binary: &Path) -> TempRoot {
    let dir = std::env::temp_dir().join(format!("pidguard-static-root-{}", std::process::id()));
    let root = TempRoot(dir.clone());
    for sub in ["bin", "proc", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("make the root");
    }
    std::fs::copy(binary, dir.join("pidguard")).expect("copy pidguard");
    std::fs::copy(BUSYBOX, dir.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "awk", "sleep", "date", "cat"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).expect("applet link");
    }
    std::fs::copy(runner::fixture("orphans.sh"), dir.join("orphans.sh")).expect("copy fixture");
    root
}

/// `pidguard run -- CMD` as PID 1 in `root`, to its end.
fn run_in(root: &Path, cmd: &[&str]) -> runner::Finished {
    let mut command = Command::new("unshare");
    command
        .args([
            "--fork",
            "--pid",
            "--mount",
            "--mount-proc=/proc",
            "--kill-child",
        ])
        .arg(format!("--root={}", root.display()))
        .args(["/pidguard", "run", "--"])
        .args(cmd)
        .env_clear()
        .env("PATH", "/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut procs = Procs::new();
    Run::start(&mut procs, &mut command).finish(&mut procs, Duration::from_secs(60))
}

#[test]
fn the_static_binary_runs_as_pid_1_with_no_c_library() {
    if !Path::new(BUSYBOX).exists() && missing("no static busybox (apt-get install busybox-static)")
    {
        return;
    }
    if !runner::pid_namespaces_or_skip("the_static_binary_runs_as_pid_1_with_no_c_library") {
        return;
    }
    if !target_installed()
        && missing("no musl standard library (rustup target add x86_64-unknown-linux-musl)")
    {
        return;
    }
    let binary = build();
    let size = std::fs::metadata(&binary).expect("built").len();
    assert!(size <= MAX_SIZE, "{} is {size} bytes", binary.display());
    let elf = std::fs::read(&binary).expect("read the binary");
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    let types = segment_types(&elf);
    assert!(
        !types.contains(&PT_INTERP) && !types.contains(&PT_DYNAMIC),
        "not static: {types:?}"
    );

    let root = root_with(&binary);
    let finished = run_in(&root.0, &["/bin/sh", "/orphans.sh", "100", "2000", "20"]);
    assert_eq!(finished.code(), 0, "{finished:?}");
    assert_eq!(finished.stdout.last().map(String::as_str), Some("gone 100"));
    assert!(
        finished.stdout.iter().any(|l| l == "parent 1"),
        "pidguard was not PID 1: {finished:?}"
    );
    let finished = run_in(&root.0, &["/bin/sh", "-c", "exit 7"]);
    assert_eq!(finished.code(), 7, "{finished:?}");
    // The negative control: the dynamically linked build cannot even start
    // there (it has no C library to load).
    std::fs::copy(runner::PIDGUARD, root.0.join("pidguard")).expect("copy the dynamic build");
    let finished = run_in(&root.0, &["/bin/sh", "-c", "exit 7"]);
    assert_ne!(finished.status.code(), Some(7), "{finished:?}");
}
