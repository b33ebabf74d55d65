//! Units: how fast a new member is found (fork to member), and how long a
//! 1,000-member unit takes to end, for each containment this machine
//! offers, in one run.
//!
//! `cargo bench -p monitor-core --bench units` (as root, for the cgroup
//! and fork-events rows; the fork-events row has the cgroup off). Discovery is timed from the write that makes the root fork to
//! the first status that counts the new member (status polled every
//! 200 µs), 30 times, at phases spread over the unit scan interval;
//! termination from `terminate` to `UnitEnded`, with
//! 1,000 `sleep`s that die of SIGTERM. A containment the monitor cannot
//! have here is reported as unavailable.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use monitor_core::{Containment, Event, Monitor, MonitorHandle};

const FORKS: usize = 30;
const MEMBERS: usize = 1000;
const POLL: Duration = Duration::from_micros(200);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "containment | fork to member: median (min..max) | 1,000-member unit: terminate to UnitEnded"
    );
    for containment in [
        Containment::Scan,
        Containment::ForkEvents,
        Containment::Cgroup,
    ] {
        runtime.block_on(async {
            match (discovery(containment).await, termination(containment).await) {
                (Some(mut found), Some(ended)) => {
                    found.sort();
                    println!(
                        "{containment} | {:.2?} ({:.2?}..{:.2?}) | {ended:.1?}",
                        found[found.len() / 2],
                        found[0],
                        found[found.len() - 1]
                    );
                }
                _ => println!("{containment} | unavailable here | unavailable here"),
            }
        });
    }
}

async fn monitor(containment: Containment) -> (Monitor, MonitorHandle) {
    let monitor = Monitor::builder().containment(containment).spawn().unwrap();
    let handle = monitor.handle();
    (monitor, handle)
}

/// Whether the first unit got `containment`.
async fn got(handle: &MonitorHandle, containment: Containment) -> bool {
    let status = handle.status().await.unwrap();
    status.units.first().map(|unit| unit.containment) == Some(containment)
}

async fn members(handle: &MonitorHandle) -> usize {
    let status = handle.status().await.unwrap();
    status.units.first().map_or(0, |unit| unit.members)
}

async fn end(monitor: Monitor, handle: &MonitorHandle, root: i32) -> Duration {
    let mut events = handle.subscribe().await.unwrap();
    let start = Instant::now();
    handle.terminate(root).await.unwrap();
    loop {
        match events.recv().await {
            Ok(Event::UnitEnded { .. }) => break,
            // 1,000 members make more events than the stream keeps.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_))
                if handle.status().await.unwrap().units.is_empty() =>
            {
                break;
            }
            Ok(_) | Err(_) => {}
        }
    }
    let took = start.elapsed();
    monitor.shutdown().await;
    took
}

async fn discovery(containment: Containment) -> Option<Vec<Duration>> {
    let (monitor, handle) = monitor(containment).await;
    let mut command = Command::new("sh");
    command
        .args(["-c", "while read x; do sleep 300 & done"])
        .stdin(Stdio::piped());
    let mut root = handle.spawn(command).await.unwrap();
    let mut stdin = root.stdin.take().unwrap();
    let pid = root.process_id().pid;
    if !got(&handle, containment).await {
        drop(stdin);
        end(monitor, &handle, pid).await;
        return None;
    }
    let mut found = Vec::with_capacity(FORKS);
    for i in 0..FORKS {
        // Forks at spread-out phases of the unit scan's interval (a fork
        // right after a scan would always wait a whole interval).
        tokio::time::sleep(Duration::from_millis((i as u64 * 137) % 1000)).await;
        let start = Instant::now();
        stdin.write_all(b"\n").await.unwrap();
        while members(&handle).await < i + 2 {
            tokio::time::sleep(POLL).await;
        }
        found.push(start.elapsed());
    }
    drop(stdin);
    end(monitor, &handle, pid).await;
    Some(found)
}

async fn termination(containment: Containment) -> Option<Duration> {
    let (monitor, handle) = monitor(containment).await;
    let script = format!(
        "i=0; while [ $i -lt {MEMBERS} ]; do sleep 300 & i=$((i+1)); done; echo ready; wait"
    );
    let mut command = Command::new("sh");
    command
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut root = handle.spawn(command).await.unwrap();
    let pid = root.process_id().pid;
    let stdout = root.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await.unwrap();
    if !got(&handle, containment).await {
        end(monitor, &handle, pid).await;
        return None;
    }
    while members(&handle).await < MEMBERS + 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Some(end(monitor, &handle, pid).await)
}
