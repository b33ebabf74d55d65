//! Cleaning up after CMD. CMD is the root of a unit in the monitor: its
//! descendants, present and future, are members (found as the unit's
//! containment allows, and, since pidguard is a subreaper or init, every
//! orphan reparented to pidguard joins it too). When CMD exits, the monitor
//! ends the unit: every member still alive gets SIGTERM, then SIGKILL once
//! the grace period is over, all side by side. This cleanup only waits,
//! bounded, for the unit's end, says what the monitor did to each
//! leftover, and cuts the grace short on a second SIGTERM or SIGINT.

use std::collections::HashMap;
use std::time::Duration;

use monitor_core::{Event, MonitorHandle, ProcessId};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::signals;

/// How long a leftover may take to vanish after SIGKILL before pidguard
/// stops waiting for it (it is stuck in the kernel); the monitor's
/// `kill_timeout` is the same.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(5);

/// The wait for CMD's unit to end.
pub(crate) struct Cleanup {
    monitor: MonitorHandle,
    /// CMD: the root of the unit.
    root: ProcessId,
    grace: Duration,
    /// Set by a second SIGTERM/SIGINT: the unit was killed.
    killed: bool,
    /// Leftovers' command names, read once for the log (only when it is on).
    names: HashMap<i32, String>,
}

/// How the cleanup ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The unit is over: nothing CMD started is left.
    AllGone,
    /// The bound (grace plus [`KILL_WAIT`]) passed with these still there.
    GaveUp(Vec<i32>),
}

impl Cleanup {
    /// The cleanup of `root`'s unit, whose members the monitor terminates
    /// with `grace`.
    pub(crate) fn new(monitor: MonitorHandle, root: ProcessId, grace: Duration) -> Self {
        Self {
            monitor,
            root,
            grace,
            killed: false,
            names: HashMap::new(),
        }
    }

    /// Waits until CMD's unit has ended, or until the bound. `events` must
    /// have been subscribed before this is called (an end after the
    /// subscription is an event, one before it shows in the status);
    /// `signals` are the signals pidguard receives meanwhile.
    pub(crate) async fn run(
        mut self,
        events: &mut broadcast::Receiver<Event>,
        signals: &mut mpsc::Receiver<i32>,
    ) -> Outcome {
        let deadline = Instant::now() + self.grace + KILL_WAIT;
        if !self.unit_exists().await {
            self.drain(events);
            return Outcome::AllGone;
        }
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event @ Event::UnitEnded { root, .. }) if root == self.root => {
                        self.note(&event);
                        self.drain(events);
                        return Outcome::AllGone;
                    }
                    Ok(event) => self.note(&event),
                    // The monitor stopped: nothing more will happen.
                    Err(broadcast::error::RecvError::Closed) => {
                        return Outcome::GaveUp(self.left().await);
                    }
                    // Missed events may hold the end: ask.
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "event stream lagged");
                        if !self.unit_exists().await {
                            return Outcome::AllGone;
                        }
                    }
                },
                Some(number) = signals.recv() => self.on_signal(number).await,
                () = tokio::time::sleep_until(deadline) => {
                    let left = self.left().await;
                    tracing::warn!(?left, "leftovers still there after the grace period and the kill wait; giving up");
                    return Outcome::GaveUp(left);
                }
            }
        }
    }

    /// Logs the events already queued (the monitor emits them in the same
    /// step as the unit's end).
    fn drain(&mut self, events: &mut broadcast::Receiver<Event>) {
        while let Ok(event) = events.try_recv() {
            self.note(&event);
        }
    }

    async fn unit_exists(&self) -> bool {
        self.monitor
            .status()
            .await
            .is_ok_and(|status| status.units.iter().any(|unit| unit.root == self.root))
    }

    /// The unit's members still tracked.
    async fn left(&self) -> Vec<i32> {
        self.monitor.status().await.map_or_else(
            |_| Vec::new(),
            |status| {
                status
                    .tracked
                    .iter()
                    .filter(|t| t.descendant_of == Some(self.root))
                    .map(|t| t.id.pid)
                    .collect()
            },
        )
    }

    /// Logs what the monitor did to a leftover.
    fn note(&mut self, event: &Event) {
        match event {
            Event::Signalled { id, signal } => {
                let name = self.name(id.pid);
                tracing::info!(pid = id.pid, name, %signal, "leftover signalled");
            }
            Event::Killed { id } => {
                let name = self.name(id.pid);
                tracing::info!(pid = id.pid, name, signal = "SIGKILL", "leftover signalled");
            }
            Event::Reaped { pid, status } => {
                let name = self.names.remove(pid);
                tracing::debug!(pid, name = name.as_deref().unwrap_or("?"), %status, "reaped");
            }
            Event::UnitEnded {
                root,
                resources: Some(used),
            } if *root == self.root => {
                // What CMD and everything it started used, where the
                // cgroup says.
                tracing::info!(
                    cpu = ?used.cpu_usec.map(Duration::from_micros),
                    memory_peak_bytes = used.memory_peak_bytes,
                    "the command's unit ended"
                );
            }
            Event::Refused { id, uid, .. } => {
                tracing::warn!(
                    pid = id.pid,
                    uid,
                    "a leftover of another user is left alone"
                );
            }
            Event::Error { message, id, .. } => {
                tracing::warn!(pid = id.map(|id| id.pid), message, "monitor error");
            }
            _ => {}
        }
    }

    /// The leftover's command name, read once and only when it is logged.
    fn name(&mut self, pid: i32) -> String {
        if !tracing::enabled!(tracing::Level::INFO) {
            return String::new();
        }
        self.names
            .entry(pid)
            .or_insert_with(|| {
                procfs::process::Process::new(pid)
                    .and_then(|process| process.stat())
                    .map_or_else(|_| "?".to_owned(), |stat| stat.comm)
            })
            .clone()
    }

    /// SIGTERM or SIGINT during the cleanup: SIGKILL the whole unit now.
    /// Other signals have nobody to go to: CMD is gone.
    async fn on_signal(&mut self, number: i32) {
        if number != libc::SIGTERM && number != libc::SIGINT {
            tracing::debug!(signal = signals::name(number), "ignored: CMD has exited");
            return;
        }
        if self.killed {
            return;
        }
        tracing::info!(
            signal = signals::name(number),
            "skipping the grace period: SIGKILL to every leftover"
        );
        self.killed = true;
        // Gone meanwhile (NotTracked) is what we want anyway.
        let _ = self.monitor.kill(self.root).await;
    }
}
