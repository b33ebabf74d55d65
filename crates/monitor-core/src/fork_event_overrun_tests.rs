//! An overrun of the real process connector, provoked inside a running
//! monitor: its socket shrunk to the kernel's minimum (a few events), a
//! burst of forks while the actor cannot read, then the fork of a member.
//! That fork's event is lost; the overrun makes the unit read its
//! children lists, which finds the member. Needs the connector (root in
//! the initial namespaces): skips without it, fails under `CI=true`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::actor::Mechanisms;
use crate::connector::{Connector, EventSource, OpenEvents, Options};
use crate::os::LinuxOs;
use crate::requires::{self, ChildGuard, Pinned};
use crate::{Config, Containment, Monitor};

/// The connector, its receive buffer shrunk once open.
fn shrunk_connector() -> OpenEvents {
    Box::new(|| {
        Box::pin(async {
            let connector = Connector::open(Options::default()).await?;
            connector.shrink_receive_buffer();
            Ok(Box::new(connector) as Box<dyn EventSource>)
        })
    })
}

/// The runtime has one thread, so while the test blocks it (the fork
/// burst, the fixture's pipes) the actor reads nothing and the kernel
/// drops what the shrunk socket cannot hold: deterministic.
#[tokio::test]
async fn an_overrun_finds_a_member_whose_fork_event_was_lost() {
    let Some(probe) = requires::connector(Options::default()).await else {
        return;
    };
    drop(probe);
    let config = Config {
        check_interval: Duration::from_secs(60),
        unit_scan_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    let (_sweeps, sweeps_rx) = mpsc::channel(1);
    let mechanisms = Mechanisms {
        fork_events: Some(shrunk_connector()),
        ..Mechanisms::default()
    };
    let monitor = Monitor::start(
        config,
        Arc::new(LinuxOs::new()),
        CancellationToken::new(),
        sweeps_rx,
        mechanisms,
    )
    .expect("monitor starts");
    let handle = monitor.handle();
    let mut root = ChildGuard(
        Command::new("sh")
            .args(["-c", "read go; sleep 300 & echo $!; wait"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the root"),
    );
    let root_pid = root.0.id() as i32;
    handle.track(root_pid).await.expect("track the root");
    let status = handle.status().await.expect("status");
    assert_eq!(status.units[0].containment, Containment::ForkEvents);

    // Blocking from here on: the actor cannot read while the socket fills.
    for _ in 0..100 {
        Command::new("true").status().expect("run true");
    }
    writeln!(root.0.stdin.as_mut().expect("piped"), "go").expect("tell the root to fork");
    let mut line = String::new();
    BufReader::new(root.0.stdout.as_mut().expect("piped"))
        .read_line(&mut line)
        .expect("the member's pid");
    let member = Pinned::new(line.trim().parse().expect("a pid"));

    // Awaiting again: the actor reads what is left, then the overrun.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = handle.status().await.expect("status");
        if status.tracked.iter().any(|t| t.id.pid == member.pid) {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the member was not found: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        status.counters.fork_event_overruns >= 1,
        "{:?}",
        status.counters
    );
    assert_eq!(status.counters.unit_scans, 0);
    let tracked = status
        .tracked
        .iter()
        .find(|t| t.id.pid == member.pid)
        .expect("tracked");
    assert_eq!(tracked.descendant_of.map(|root| root.pid), Some(root_pid));
    monitor.shutdown().await;
}
