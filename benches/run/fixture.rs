//! The CMD side of the benchmark: this same binary, started by the
//! supervisor under test as `run __fixture <what> ...`.
//!
//! - `leftovers <n> well|stubborn`: starts `n` leftovers (`sleep 1000`s,
//!   or copies of this binary that ignore SIGTERM), prints `exiting` and
//!   exits 0. The measurement starts at that line.
//! - `stubborn`: ignores SIGTERM, says `ready`, sleeps.
//! - `burst <n>`: starts `n` orphans blocked on one pipe (forked by a
//!   short-lived helper, so they are reparented to the supervisor at once),
//!   closes the pipe so they all exit together, polls until every one is
//!   reaped (`kill(pid, 0)` fails with ESRCH; a zombie still answers,
//!   polled every 20 us), and prints `burst <n> <ns to reap all>
//!   <supervisor cpu ns> <ns from the last exit to the last reap>` (each
//!   orphan writes the moment it exits to a pipe, made large enough for
//!   every record first: 10,000 of them overflow a default pipe, and an
//!   orphan blocked on a full one never exits, or exits late, alive
//!   among the zombies the supervisor walks past).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::{ForkResult, Pid};

/// The argument that selects fixture mode.
pub(crate) const FLAG: &str = "__fixture";

/// Runs the fixture named by `args` (what follows [`FLAG`]).
pub(crate) fn main(args: &[String]) -> io::Result<()> {
    match args {
        [what, n, kind] if what == "leftovers" => leftovers(parse(n)?, kind == "stubborn"),
        [what] if what == "stubborn" => stubborn(),
        [what, n] if what == "burst" => burst(parse(n)?),
        _ => Err(io::Error::other(format!("unknown fixture {args:?}"))),
    }
}

fn parse(n: &str) -> io::Result<usize> {
    n.parse()
        .map_err(|e| io::Error::other(format!("not a count {n:?}: {e}")))
}

fn leftovers(n: usize, stubborn: bool) -> io::Result<()> {
    for _ in 0..n {
        let mut command = if stubborn {
            let mut command = Command::new(std::env::current_exe()?);
            command.args([FLAG, "stubborn"]);
            command
        } else {
            let mut command = Command::new("sleep");
            command.arg("1000");
            command
        };
        command.stdin(Stdio::null()).stderr(Stdio::null());
        if stubborn {
            // Wait until it ignores SIGTERM, or the measurement would race it.
            let mut child = command.stdout(Stdio::piped()).spawn()?;
            let stdout = child.stdout.take().expect("piped");
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line)?;
        } else {
            command.stdout(Stdio::null()).spawn()?;
        }
    }
    // The `Child` values are dropped unwaited: the leftovers outlive us.
    let mut out = io::stdout().lock();
    writeln!(out, "exiting")?;
    out.flush()
}

fn stubborn() -> io::Result<()> {
    // SAFETY: installs the plain "ignore" disposition; no handler code runs.
    unsafe { signal::signal(Signal::SIGTERM, SigHandler::SigIgn) }.map_err(io::Error::from)?;
    let mut out = io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    loop {
        std::thread::sleep(Duration::from_secs(1000));
    }
}

/// The supervisor's CPU time so far (every thread), in nanoseconds, from
/// `/proc/<pid>/task/*/schedstat` (its first field).
fn cpu_ns(pid: i32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CLOCK_MONOTONIC in nanoseconds (the same clock as `Instant`).
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into; async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn burst(n: usize) -> io::Result<()> {
    let (gate_reader, gate_writer) = io::pipe()?;
    let (mut pids_reader, pids_writer) = io::pipe()?;
    // Each orphan writes the moment it exits here (8 bytes: atomic).
    let (mut exits_reader, exits_writer) = io::pipe()?;
    let room = (n * 8).max(1 << 16);
    // SAFETY: F_SETPIPE_SZ on a pipe this process owns; it takes a size
    // and touches no memory.
    let set = unsafe { libc::fcntl(exits_writer.as_raw_fd(), libc::F_SETPIPE_SZ, room as i32) };
    if set < 0 || (set as usize) < n * 8 {
        return Err(io::Error::other(format!(
            "cannot make the exits pipe hold {n} records: {}",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: this process has a single thread (the fixture starts none),
    // so the forked copy may run ordinary code.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        ForkResult::Child => {
            drop(gate_writer);
            drop(pids_reader);
            let mut pids_writer = pids_writer;
            for _ in 0..n {
                // SAFETY: as above: the helper is single-threaded too.
                match unsafe { nix::unistd::fork() } {
                    Ok(ForkResult::Child) => {
                        drop(pids_writer);
                        let mut byte = [0u8; 1];
                        // SAFETY: read into a valid buffer, write 8 bytes
                        // from one, then _exit (no destructors, no atexit
                        // handlers).
                        unsafe {
                            libc::read(gate_reader.as_raw_fd(), byte.as_mut_ptr().cast(), 1);
                            let at = monotonic_ns().to_le_bytes();
                            libc::write(exits_writer.as_raw_fd(), at.as_ptr().cast(), 8);
                            libc::_exit(0);
                        }
                    }
                    Ok(ForkResult::Parent { child }) => {
                        pids_writer.write_all(&child.as_raw().to_le_bytes())?;
                    }
                    Err(_) => break,
                }
            }
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(pids_writer);
            drop(gate_reader);
            drop(exits_writer);
            let mut bytes = Vec::new();
            pids_reader.read_to_end(&mut bytes)?;
            nix::sys::wait::waitpid(child, None).map_err(io::Error::from)?;
            let mut left: Vec<Pid> = bytes
                .chunks_exact(4)
                .map(|c| Pid::from_raw(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            let started = left.len();
            let supervisor = nix::unistd::getppid().as_raw();
            let cpu_before = cpu_ns(supervisor);
            let release = Instant::now();
            drop(gate_writer);
            while !left.is_empty() {
                left.retain(|&pid| signal::kill(pid, None).is_ok());
                if !left.is_empty() {
                    // Short: the last orphan's reap is timed to this.
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
            let reaped_at = monotonic_ns();
            let reaped_in = release.elapsed();
            let cpu = cpu_ns(supervisor).saturating_sub(cpu_before);
            let mut exits = Vec::new();
            exits_reader.read_to_end(&mut exits)?;
            let last_exit = exits
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .max()
                .unwrap_or(reaped_at);
            let lag = reaped_at.saturating_sub(last_exit);
            let mut out = io::stdout().lock();
            writeln!(out, "burst {started} {} {cpu} {lag}", reaped_in.as_nanos())?;
            out.flush()
        }
    }
}
