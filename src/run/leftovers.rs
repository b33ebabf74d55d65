//! Cleaning up after CMD: every descendant still alive when CMD has exited
//! is a leftover. Each gets SIGTERM, then SIGKILL once the grace period is
//! over, through the monitor (pidfd-pinned, escalations running side by
//! side), and pidguard waits, bounded, until it has no child left.
//!
//! It is event-driven: the whole descendant tree is signalled at once, and
//! pidguard's children are looked at again after every batch of `Reaped`
//! events, because a reaped leftover's own children were just reparented to
//! pidguard (and may have been forked after the first walk). A second
//! SIGTERM or SIGINT cuts every grace period short.

use std::collections::HashMap;
use std::time::Duration;

use monitor_core::{Error, Event, MonitorHandle, ProcessId, TrackOptions};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::signals;
use crate::procfs;

/// How long a leftover may take to vanish after SIGKILL before pidguard
/// stops waiting for it (it is stuck in the kernel); the monitor's
/// `kill_timeout` is the same.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(5);

/// A leftover being terminated.
#[derive(Debug)]
struct Leftover {
    id: ProcessId,
    name: String,
}

/// The cleanup of CMD's leftovers.
pub(crate) struct Cleanup {
    monitor: MonitorHandle,
    grace: Duration,
    /// Set by a second SIGTERM/SIGINT (or `--grace 0`): SIGKILL at once.
    kill_now: bool,
    leftovers: HashMap<i32, Leftover>,
}

/// How the cleanup ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// pidguard has no child left.
    AllGone,
    /// The bound (grace plus [`KILL_WAIT`]) passed with these still there.
    GaveUp(Vec<i32>),
}

impl Cleanup {
    /// A cleanup that terminates through `monitor` with `grace`.
    pub(crate) fn new(monitor: MonitorHandle, grace: Duration) -> Self {
        Self {
            monitor,
            grace,
            kill_now: grace.is_zero(),
            leftovers: HashMap::new(),
        }
    }

    /// Terminates every descendant and waits until none is left, or until
    /// the bound. `events` must have been subscribed before the first walk;
    /// `signals` are the signals pidguard receives meanwhile.
    pub(crate) async fn run(
        mut self,
        events: &mut broadcast::Receiver<Event>,
        signals: &mut mpsc::Receiver<i32>,
    ) -> Outcome {
        let deadline = Instant::now() + self.grace + KILL_WAIT;
        loop {
            if !self.sweep().await {
                // The monitor emits an event in the same step as the reap
                // (and this runtime has one thread), so every event about
                // the leftovers is queued by now: log them too.
                while let Ok(event) = events.try_recv() {
                    self.note(Ok(event));
                }
                return Outcome::AllGone;
            }
            tokio::select! {
                event = events.recv() => {
                    if matches!(event, Err(broadcast::error::RecvError::Closed)) {
                        // The monitor stopped: nothing can be reaped any more.
                        return Outcome::GaveUp(procfs::children("self"));
                    }
                    self.note(event);
                    // Take the whole batch before walking the tree again.
                    while let Ok(event) = events.try_recv() {
                        self.note(Ok(event));
                    }
                }
                Some(number) = signals.recv() => self.on_signal(number).await,
                () = tokio::time::sleep_until(deadline) => {
                    let left = procfs::children("self");
                    tracing::warn!(?left, "leftovers still there after the grace period and the kill wait; giving up");
                    return Outcome::GaveUp(left);
                }
            }
        }
    }

    /// Walks the descendant tree and terminates (or kills) every process
    /// not yet handled. Returns whether pidguard had a child at the start.
    ///
    /// The walk reads the tree first and signals after, so a leftover's
    /// children are the ones it had before it was signalled (whatever it
    /// starts in answer comes to pidguard when it dies). It does not descend
    /// into leftovers already handled: their subtrees were walked when they
    /// were found, and what they fork later comes to pidguard (and into this
    /// walk) when they die. So after the first walk, each one reads
    /// pidguard's own children list and the subtrees of new processes only.
    async fn sweep(&mut self) -> bool {
        let mut pending = procfs::children("self");
        let any = !pending.is_empty();
        let mut found = Vec::new();
        while let Some(pid) = pending.pop() {
            let start_time = procfs::start_time(pid);
            if let Some(known) = self.leftovers.get(&pid)
                && Some(known.id.start_time) == start_time
            {
                continue;
            }
            pending.extend(procfs::children(&pid.to_string()));
            found.push(pid);
        }
        // All at once: the monitor takes the requests back to back instead
        // of one round trip after the other.
        let mut takes = JoinSet::new();
        for pid in found {
            takes.spawn(take(self.monitor.clone(), pid, self.grace, self.kill_now));
        }
        while let Some(taken) = takes.join_next().await {
            if let Ok(Some((pid, leftover))) = taken {
                self.leftovers.insert(pid, leftover);
            }
        }
        any
    }

    /// Logs what the monitor did to a leftover, and forgets reaped ones.
    fn note(&mut self, event: Result<Event, broadcast::error::RecvError>) {
        match event {
            Ok(Event::Signalled { id, signal }) => {
                if let Some(leftover) = self.leftovers.get(&id.pid) {
                    tracing::info!(pid = id.pid, name = leftover.name, %signal, "leftover signalled");
                }
            }
            Ok(Event::Killed { id }) => {
                if let Some(leftover) = self.leftovers.get(&id.pid) {
                    tracing::info!(
                        pid = id.pid,
                        name = leftover.name,
                        signal = "SIGKILL",
                        "leftover signalled"
                    );
                }
            }
            Ok(Event::Reaped { pid, status }) => {
                let name = self.leftovers.remove(&pid).map(|leftover| leftover.name);
                tracing::debug!(pid, name = name.as_deref().unwrap_or("?"), %status, "reaped");
            }
            Ok(Event::Error { message, id, .. }) => {
                tracing::warn!(pid = id.map(|id| id.pid), message, "monitor error");
            }
            Ok(_) => {}
            // Missed events only mean the next walk finds what changed.
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "event stream lagged");
            }
            Err(broadcast::error::RecvError::Closed) => {}
        }
    }

    /// SIGTERM or SIGINT during the cleanup: SIGKILL every leftover now.
    /// Other signals have nobody to go to: CMD is gone.
    async fn on_signal(&mut self, number: i32) {
        if number != libc::SIGTERM && number != libc::SIGINT {
            tracing::debug!(signal = signals::name(number), "ignored: CMD has exited");
            return;
        }
        if self.kill_now {
            return;
        }
        tracing::info!(
            signal = signals::name(number),
            leftovers = self.leftovers.len(),
            "skipping the grace period: SIGKILL to every leftover"
        );
        self.kill_now = true;
        let pids: Vec<i32> = self.leftovers.keys().copied().collect();
        for pid in pids {
            // Gone meanwhile (NotTracked) is what we want anyway.
            let _ = self.monitor.kill(pid).await;
        }
    }
}

/// Tracks one leftover through the monitor and starts its termination
/// (SIGKILL at once with `kill`). Returns it if it is now being handled.
async fn take(
    monitor: MonitorHandle,
    pid: i32,
    grace: Duration,
    kill: bool,
) -> Option<(i32, Leftover)> {
    let name = procfs::command_name(pid);
    let options = TrackOptions::new().grace(grace);
    let tracked = match monitor.track_with(pid, options).await {
        Ok(tracked) => tracked,
        // Exited meanwhile (the monitor reaps it), or already handled.
        Err(Error::NoSuchProcess { .. } | Error::AlreadyExited { .. }) => return None,
        Err(Error::AlreadyTracked { id }) => return Some((pid, Leftover { id, name })),
        Err(error) => {
            tracing::warn!(pid, name, %error, "cannot terminate leftover");
            return None;
        }
    };
    let stop = if kill {
        monitor.kill(pid).await
    } else {
        monitor.terminate(pid).await
    };
    match stop {
        Ok(_) => Some((
            pid,
            Leftover {
                id: tracked.id,
                name,
            },
        )),
        // It exited between the two requests: the monitor settled it.
        Err(Error::NotTracked { .. }) => None,
        Err(error) => {
            tracing::warn!(pid, name, %error, "cannot terminate leftover");
            None
        }
    }
}
