//! The pidfd fallback against real processes: with pidfds switched off in
//! the Linux backend (as on a kernel before 5.3, or out of descriptors),
//! status says so, and exits and orphans are still handled, each noticed
//! by a scan (the counter moved between the cause and the event): by a
//! check, which reads every process no watch covers, not by a full scan.

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::os::LinuxOs;
use crate::{Config, Event, Monitor, MonitorHandle, ProcessId};

/// Kills (through a pidfd opened at spawn) and reaps what a test started.
struct Guard {
    children: Vec<Child>,
    pidfds: Vec<OwnedFd>,
}

impl Guard {
    fn pin(&mut self, pid: i32) {
        let pid = rustix::process::Pid::from_raw(pid).expect("a valid pid");
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .expect("pidfd_open");
        self.pidfds.push(pidfd);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for pidfd in &self.pidfds {
            let _ = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL);
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn scans(handle: &MonitorHandle) -> u64 {
    handle.status().await.expect("status").counters.scans
}

async fn next(events: &mut broadcast::Receiver<Event>, wanted: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.recv().await.expect("events open");
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the event within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pidfds_the_scan_handles_exits_and_orphans() {
    let mut guard = Guard {
        children: Vec::new(),
        pidfds: Vec::new(),
    };
    let (_sweeps, sweeps_rx) = mpsc::channel(1);
    let config = Config {
        check_interval: Duration::from_millis(200),
        // No full scan but the one at start: what is seen, a check saw.
        full_scan_interval: Duration::from_secs(24 * 60 * 60),
        ..Config::default()
    };
    let monitor = Monitor::start(
        config,
        Arc::new(LinuxOs::without_pidfd()),
        CancellationToken::new(),
        sweeps_rx,
        crate::actor::Mechanisms::default(),
    )
    .expect("monitor starts");
    let handle = monitor.handle();
    let mut events = handle.subscribe().await.expect("subscribe");

    let child = Command::new("sleep").arg("300").spawn().expect("sleep");
    let child_pid = child.id() as i32;
    guard.children.push(child);
    guard.pin(child_pid);
    let mut shell = Command::new("sh")
        .args(["-c", "sleep 300 & echo $!; wait"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh");
    let mut line = String::new();
    BufReader::new(shell.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("the grandchild's pid");
    let grandchild: i32 = line.trim().parse().expect("a pid");
    guard.pin(grandchild);
    let shell_pid = shell.id() as i32;
    guard.children.push(shell);

    let direct = handle.track(child_pid).await.expect("track the child");
    let orphan = handle
        .track(grandchild)
        .await
        .expect("track the grandchild");
    assert!(!direct.pidfd && !direct.exit_watch && !orphan.exit_watch);
    let status = handle.status().await.expect("status");
    assert!(!status.pidfd_supported);
    assert_eq!(status.scan_only, 2);
    // Every check reads both: nothing watches them.
    let tracked_at = status.counters.scans;
    let status = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let status = handle.status().await.expect("status");
            if status.counters.scans >= tracked_at + 2 {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("two checks within 10 s");
    assert_eq!(status.last_scan.map(|last| last.processes), Some(2));

    // An exit: only a scan can notice it.
    let before = scans(&handle).await;
    guard.children[0].kill().expect("kill the child");
    guard.children[0].wait().expect("reap it");
    next(
        &mut events,
        |e| matches!(e, Event::Exited { id, .. } if id.pid == child_pid),
    )
    .await;
    assert!(scans(&handle).await > before, "noticed by a scan");

    // An orphan: its parent's death is seen by a scan, and the signal goes
    // through the start-time-checked kill.
    let before = scans(&handle).await;
    guard.children[1].kill().expect("kill the shell");
    guard.children[1].wait().expect("reap it");
    let orphaned = next(&mut events, |e| matches!(e, Event::Orphaned { .. })).await;
    assert_eq!(
        orphaned,
        Event::Orphaned {
            id: orphan.id,
            parent: ProcessId::new(shell_pid, orphan.parent.start_time),
            action: crate::OrphanAction::Terminate,
        }
    );
    assert!(scans(&handle).await > before, "noticed by a scan");
    next(
        &mut events,
        |e| matches!(e, Event::Exited { id, .. } if *id == orphan.id),
    )
    .await;
    let full_scans = handle.status().await.expect("status").counters.full_scans;
    assert_eq!(full_scans, 1, "only the scan at start was full");
    monitor.shutdown().await;
}
