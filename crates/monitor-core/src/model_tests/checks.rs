//! What is checked after each step and at shutdown.

use std::time::Duration;

use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::time::Instant;

use super::ledger::StepOutcome;
use super::run::Run;
use crate::{Event, ProcessId, ShutdownPolicy};

impl Run {
    /// Lets everything the step set off run to rest, then checks it all.
    pub(super) async fn check_step(&mut self, untracked: Option<i32>) -> Result<(), String> {
        settle().await;
        // A consistent cut: a status with no event before or after it.
        let mut events = drain(&mut self.events)?;
        let status = loop {
            let status = self.handle.status().await.map_err(|e| e.to_string())?;
            let more = drain(&mut self.events)?;
            if more.is_empty() {
                break status;
            }
            events.extend(more);
        };
        let sent = self.os.sent();
        let step = StepOutcome {
            events: &events,
            sent: &sent,
            status: Some(&status),
            shutdown: false,
        };
        self.ledger
            .step(&self.model, &self.os, step)
            .map_err(|error| format!("{error}\n  the step's events: {events:#?}"))?;
        if let Some(root) = untracked {
            let left: Vec<ProcessId> = status
                .tracked
                .iter()
                .filter(|t| t.descendant_of.unwrap_or(t.id).pid == root)
                .map(|t| t.id)
                .collect();
            if !left.is_empty() || status.units.iter().any(|u| u.root.pid == root) {
                return Err(format!("untracked {root}, still tracked: {left:?}"));
            }
            if let Some(unit) = self.model.units.get_mut(&root) {
                unit.registered = false;
            }
            self.predictions.retain(|p| p.root != root);
        }
        self.check_waiters(false)?;
        self.check_predictions()?;
        self.last = status;
        Ok(())
    }

    /// Every owned child's wait resolves with the status it ended with, at
    /// its reap: not before, and (SIGCHLD having been raised) not later.
    fn check_waiters(&self, shut_down: bool) -> Result<(), String> {
        for waiter in &self.waiters {
            let id = waiter.id;
            let result = waiter.result.lock().expect("no panic holds it").clone();
            let ended = self.os.exit_status(id.pid);
            let reaped = !self.os.is_alive(id.pid);
            match result {
                Some(Ok(status)) if ended == Some(status) && reaped => {}
                Some(Ok(status)) => {
                    return Err(format!(
                        "{id}'s wait gave {status}; it ended {ended:?}, reaped {reaped}"
                    ));
                }
                Some(Err(error)) if !shut_down || reaped => {
                    return Err(format!(
                        "{id}'s wait failed ({error}); ended {ended:?}, reaped {reaped}, \
                         shut down {shut_down}"
                    ));
                }
                Some(Err(_)) => {}
                None if shut_down || ended.is_some() => {
                    return Err(format!(
                        "{id}'s wait has not resolved; ended {ended:?}, reaped {reaped}"
                    ));
                }
                None => {}
            }
        }
        Ok(())
    }

    /// What a unit held when its root's parent died is gone once due,
    /// unless the unit was untracked or a process's uid changed (it may
    /// have left the unit then).
    fn check_predictions(&mut self) -> Result<(), String> {
        let now = Instant::now();
        let (due, waiting) = std::mem::take(&mut self.predictions)
            .into_iter()
            .partition(|p| p.due <= now);
        self.predictions = waiting;
        for prediction in due {
            let unit = &self.model.units[&prediction.root];
            for id in &prediction.held {
                let proc = &self.model.procs[&id.pid];
                if proc.uid_changed || !self.model.owner_may_signal(unit, id.pid) {
                    continue;
                }
                if self.os.is_running(id.pid) {
                    return Err(format!(
                        "{id} still runs; its unit's root {} lost its parent long ago",
                        unit.root
                    ));
                }
            }
        }
        Ok(())
    }

    /// Shuts the monitor down; checks the shutdown's signals, what it
    /// ended, and every owned child's wait.
    pub(super) async fn shut_down(&mut self, policy: ShutdownPolicy) -> Result<(), String> {
        let must_end: Vec<ProcessId> = self
            .last
            .tracked
            .iter()
            .filter(|t| {
                let unit = &self.model.units[&t.descendant_of.unwrap_or(t.id).pid];
                unit.owned
                    && !self.model.procs[&t.id.pid].uid_changed
                    && self.model.owner_may_signal(unit, t.id.pid)
            })
            .map(|t| t.id)
            .collect();
        let signals_before = self.os.sent().len();
        if let Some(monitor) = self.monitor.take() {
            monitor.shutdown().await;
        }
        settle().await;
        let events = drain(&mut self.events)?;
        let sent = self.os.sent();
        let step = StepOutcome {
            events: &events,
            sent: &sent,
            status: None,
            shutdown: true,
        };
        self.ledger.step(&self.model, &self.os, step)?;
        match policy {
            ShutdownPolicy::Leave if sent.len() != signals_before => {
                return Err(format!("Leave signalled {:?}", &sent[signals_before..]));
            }
            ShutdownPolicy::TerminateUnits => {
                if let Some(id) = must_end.iter().find(|id| self.os.is_running(id.pid)) {
                    return Err(format!("{id} of an owned unit outlived shutdown"));
                }
            }
            _ => {}
        }
        self.check_waiters(true)
    }
}

/// Lets every task run to rest: on paused time the clock moves only once
/// nothing is ready and the blocking pool (a scan) is idle.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

fn drain(events: &mut broadcast::Receiver<Event>) -> Result<Vec<Event>, String> {
    let mut drained = Vec::new();
    loop {
        match events.try_recv() {
            Ok(event) => drained.push(event),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return Ok(drained),
            Err(TryRecvError::Lagged(missed)) => {
                return Err(format!("the ledger missed {missed} events"));
            }
        }
    }
}
