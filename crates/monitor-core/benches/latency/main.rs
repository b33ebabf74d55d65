//! How fast the event-driven paths react, over many real runs:
//!
//! - **orphan**: a shell's background `sleep` is tracked; the shell is
//!   SIGKILLed; time until the monitor's `Signalled` (SIGTERM) event for
//!   the orphan arrives;
//! - **exit**: a tracked `sleep` that is not our child is SIGKILLed; time
//!   until its `Exited` event arrives;
//! - **owned**: a `sleep` spawned through the monitor is SIGKILLed; time
//!   until `OwnedChild::wait` returns its status. Side by side, in the same
//!   run: a plain `std::process::Child::wait` (a blocking `waitpid`, the
//!   floor) and a `tokio::process::Child::wait`.
//!
//! Every clock starts when the `pidfd_send_signal(SIGKILL)` call returns
//! and stops when the awaited event or status is in hand, so it includes
//! the kernel's exit work, the wake-up, the actor's handling and the
//! delivery to the subscriber. The monitor scans every 60 s, so a scan
//! never helps.
//!
//! Run with `cargo bench -p monitor-core --bench latency`.

// A bench reports on stdout.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use monitor_core::{Event, Monitor, MonitorHandle, Signal};
use rustix::process::{Pid, PidfdFlags, pidfd_open, pidfd_send_signal};
use tokio::sync::broadcast;

/// Runs per case.
const RUNS: usize = 200;
/// Longest any one awaited event may take before the bench gives up.
const TIMEOUT: Duration = Duration::from_secs(10);

/// SIGKILLs every pinned process on drop, also on a panic.
#[derive(Default)]
struct Pinned(Vec<OwnedFd>);

impl Pinned {
    fn pin(&mut self, pid: u32) -> usize {
        let pid = Pid::from_raw(pid as i32).expect("a pid");
        self.0
            .push(pidfd_open(pid, PidfdFlags::empty()).expect("pidfd_open"));
        self.0.len() - 1
    }

    fn kill(&self, index: usize) {
        let _ = pidfd_send_signal(&self.0[index], rustix::process::Signal::KILL);
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        for fd in &self.0 {
            let _ = pidfd_send_signal(fd, rustix::process::Signal::KILL);
        }
    }
}

async fn until(events: &mut broadcast::Receiver<Event>, wanted: impl Fn(&Event) -> bool) {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match events.recv().await {
                Ok(event) if wanted(&event) => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("monitor stopped"),
            }
        }
    })
    .await
    .expect("the event arrives");
}

/// A shell with one background `sleep`: the shell, and the sleep's pid.
fn family() -> (std::process::Child, u32) {
    let mut shell = Command::new("sh")
        .args(["-c", "sleep 300 & echo $!; wait"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh");
    let mut line = String::new();
    BufReader::new(shell.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("the sleep's pid");
    (shell, line.trim().parse().expect("a pid"))
}

async fn orphan(handle: &MonitorHandle, pinned: &mut Pinned) -> Duration {
    let mut events = handle.subscribe().await.expect("subscribe");
    let (mut shell, sleep) = family();
    let shell_fd = pinned.pin(shell.id());
    pinned.pin(sleep);
    let id = handle.track(sleep as i32).await.expect("track").id;
    pinned.kill(shell_fd);
    let start = Instant::now();
    until(
        &mut events,
        |e| matches!(e, Event::Signalled { id: i, signal } if *i == id && *signal == Signal::TERM),
    )
    .await;
    let took = start.elapsed();
    shell.wait().expect("reap the shell");
    until(
        &mut events,
        |e| matches!(e, Event::Exited { id: i, .. } if *i == id),
    )
    .await;
    took
}

async fn exit(handle: &MonitorHandle, pinned: &mut Pinned) -> Duration {
    let mut events = handle.subscribe().await.expect("subscribe");
    let (mut shell, sleep) = family();
    pinned.pin(shell.id());
    let sleep_fd = pinned.pin(sleep);
    let id = handle.track(sleep as i32).await.expect("track").id;
    pinned.kill(sleep_fd);
    let start = Instant::now();
    until(
        &mut events,
        |e| matches!(e, Event::Exited { id: i, .. } if *i == id),
    )
    .await;
    let took = start.elapsed();
    shell.wait().expect("the shell ends with its sleep");
    took
}

fn sleeper() -> Command {
    let mut command = Command::new("sleep");
    command.arg("300");
    command
}

async fn owned(handle: &MonitorHandle, pinned: &mut Pinned) -> Duration {
    let mut child = handle.spawn(sleeper()).await.expect("spawn");
    let fd = pinned.pin(child.id().expect("running"));
    pinned.kill(fd);
    let start = Instant::now();
    tokio::time::timeout(TIMEOUT, child.wait())
        .await
        .expect("reaped in time")
        .expect("monitor running");
    start.elapsed()
}

fn std_wait(pinned: &mut Pinned) -> Duration {
    let mut child = sleeper().spawn().expect("sleep");
    let fd = pinned.pin(child.id());
    pinned.kill(fd);
    let start = Instant::now();
    child.wait().expect("wait");
    start.elapsed()
}

async fn tokio_wait(pinned: &mut Pinned) -> Duration {
    let mut child = tokio::process::Command::from(sleeper())
        .spawn()
        .expect("sleep");
    let fd = pinned.pin(child.id().expect("running"));
    pinned.kill(fd);
    let start = Instant::now();
    child.wait().await.expect("wait");
    start.elapsed()
}

/// Median and worst of `samples`, in µs.
fn summary(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    (
        micros(samples[samples.len() / 2]),
        micros(samples[samples.len() - 1]),
    )
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!(
            "latency: skipped (no --bench); run `cargo bench -p monitor-core --bench latency`"
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut pinned = Pinned::default();
    let mut results: Vec<(&str, Vec<Duration>)> = Vec::new();
    runtime.block_on(async {
        let monitor = Monitor::builder()
            .check_interval(Duration::from_secs(60))
            .grace(Duration::from_secs(5))
            .spawn()
            .expect("monitor");
        let handle = monitor.handle();
        let mut cases: [(&str, Vec<Duration>); 5] = Default::default();
        let names = [
            "orphan: parent SIGKILL -> orphan's SIGTERM event",
            "exit: tracked non-child SIGKILL -> Exited event",
            "owned: spawned child SIGKILL -> OwnedChild::wait",
            "floor: std Child SIGKILL -> Child::wait (blocking)",
            "tokio: tokio Child SIGKILL -> Child::wait",
        ];
        for (case, name) in cases.iter_mut().zip(names) {
            case.0 = name;
        }
        // Interleaved, so machine noise spreads over every case alike.
        for _ in 0..RUNS {
            cases[0].1.push(orphan(&handle, &mut pinned).await);
            cases[1].1.push(exit(&handle, &mut pinned).await);
            cases[2].1.push(owned(&handle, &mut pinned).await);
            cases[3].1.push(std_wait(&mut pinned));
            cases[4].1.push(tokio_wait(&mut pinned).await);
            // Keep the descriptor count flat over the runs.
            pinned = Pinned::default();
        }
        results.extend(cases);
        let status = handle.status().await.expect("status");
        assert_eq!(status.counters.scans, 1, "only the scan at start ran");
        monitor.shutdown().await;
    });
    println!("{RUNS} runs each, one run of `cargo bench -p monitor-core --bench latency`");
    println!("{:<52} {:>12} {:>12}", "case", "median (µs)", "worst (µs)");
    let floor = summary(&mut results[3].1.clone()).0;
    for (name, samples) in &mut results {
        let (median, worst) = summary(samples);
        println!(
            "{name:<52} {median:>12.0} {worst:>12.0}   ({:.1}× the std floor's median)",
            median / floor
        );
    }
}
