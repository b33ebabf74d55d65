//! The paused-time test harness: a monitor over the fake process table,
//! its event stream, and the signals it sent, all timed from the start.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::actor::Mechanisms;
use crate::fake::{FakeOs, FakeProc, Sent};
use crate::{Config, Event, Monitor, MonitorHandle, ProcessId, Signal};

pub(crate) const INTERVAL: Duration = Duration::from_secs(60);
pub(crate) const GRACE: Duration = Duration::from_secs(5);
pub(crate) const PARENT: i32 = 200;
pub(crate) const CHILD: i32 = 201;

pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

pub(crate) struct Harness {
    pub(crate) os: Arc<FakeOs>,
    pub(crate) monitor: Monitor,
    pub(crate) handle: MonitorHandle,
    pub(crate) events: broadcast::Receiver<Event>,
    pub(crate) t0: Instant,
    /// Keeps the injected SIGCHLD channel open.
    _sweeps: mpsc::Sender<()>,
}

impl Harness {
    pub(crate) async fn start(config: Config) -> Self {
        Self::start_with(config, Mechanisms::default()).await
    }

    /// Like [`Harness::start`], with these kernel mechanisms for units.
    pub(crate) async fn start_with(config: Config, mechanisms: Mechanisms) -> Self {
        let os = FakeOs::new();
        let (sweeps, sweeps_rx) = mpsc::channel(1);
        // A child of the monitor that dies raises SIGCHLD, as in the kernel.
        os.set_sigchld(sweeps.clone());
        let t0 = Instant::now();
        let monitor = Monitor::start(
            config,
            os.clone(),
            CancellationToken::new(),
            sweeps_rx,
            mechanisms,
        )
        .expect("monitor starts");
        let handle = monitor.handle();
        let events = handle.subscribe().await.expect("subscribe");
        Self {
            os,
            monitor,
            handle,
            events,
            t0,
            _sweeps: sweeps,
        }
    }

    pub(crate) async fn default() -> Self {
        Self::start(Config {
            check_interval: INTERVAL,
            grace: GRACE,
            ..Config::default()
        })
        .await
    }

    /// A parent (pid 200) and its tracked child (pid 201).
    pub(crate) async fn with_tracked_child(config: Config, child: FakeProc) -> (Self, ProcessId) {
        let harness = Self::start(config).await;
        harness.os.spawn(PARENT, 1);
        let id = harness.os.spawn_with(
            CHILD,
            FakeProc {
                start_time: 5000,
                ppid: PARENT,
                ..child
            },
        );
        harness.handle.track(CHILD).await.expect("track");
        (harness, id)
    }

    pub(crate) fn elapsed(&self) -> Duration {
        Instant::now() - self.t0
    }

    pub(crate) async fn sleep_until(&self, at: Duration) {
        tokio::time::sleep_until(self.t0 + at).await;
    }

    /// The next event matching `wanted`, and when (since start) it came.
    pub(crate) async fn next(&mut self, wanted: impl Fn(&Event) -> bool) -> (Duration, Event) {
        loop {
            let event = self.events.recv().await.expect("event stream open");
            if wanted(&event) {
                return (self.elapsed(), event);
            }
        }
    }

    /// Signals sent, as (seconds since start, pid, signal).
    pub(crate) fn sent(&self) -> Vec<(Duration, i32, Signal)> {
        self.os
            .sent()
            .into_iter()
            .map(|Sent { at, id, signal }| (at - self.t0, id.pid, signal))
            .collect()
    }
}

pub(crate) fn is_orphaned(event: &Event) -> bool {
    matches!(event, Event::Orphaned { .. })
}

pub(crate) fn is_exit_of(id: ProcessId) -> impl Fn(&Event) -> bool {
    move |event| matches!(event, Event::Exited { id: exited, .. } if *exited == id)
}

pub(crate) fn stubborn() -> FakeProc {
    FakeProc {
        ignores_term: true,
        ..FakeProc::default()
    }
}

pub(crate) fn config() -> Config {
    Config {
        check_interval: INTERVAL,
        grace: GRACE,
        ..Config::default()
    }
}
