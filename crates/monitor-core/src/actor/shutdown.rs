//! Stopping: the shutdown policy applied to what is still tracked.

use std::time::Duration;

use tokio::time::Instant;

use super::{Actor, SHUTDOWN_POLL};
use crate::{ShutdownPolicy, Signal};

impl Actor {
    /// Applies the shutdown policy, then stops the other tasks.
    pub(super) async fn shut_down(&mut self) {
        self.cancel.cancel();
        if self.config.shutdown == ShutdownPolicy::TerminateOwned {
            self.terminate_owned().await;
        }
        tracing::debug!(tracked = self.tracked.len(), "monitor stopped");
    }

    /// Signal, grace, `SIGKILL`, bounded wait, for every owned process.
    pub(super) async fn terminate_owned(&mut self) {
        let owned: Vec<(i32, Signal, Duration)> = self
            .tracked
            .iter()
            .filter(|(_, e)| e.owned.is_some())
            .map(|(pid, e)| (*pid, e.signal, e.grace))
            .collect();
        let grace = owned.iter().map(|(_, _, g)| *g).max().unwrap_or_default();
        for (pid, signal, _) in &owned {
            self.deliver(*pid, *signal);
        }
        let pids: Vec<i32> = owned.iter().map(|(pid, _, _)| *pid).collect();
        if !self
            .wait_reaped(&pids, crate::limits::deadline(Instant::now(), grace))
            .await
        {
            for pid in &pids {
                self.deliver(*pid, Signal::KILL);
            }
            let deadline = crate::limits::deadline(Instant::now(), self.config.kill_timeout);
            self.wait_reaped(&pids, deadline).await;
        }
    }

    /// Reaps until none of `pids` is tracked any more, or the deadline.
    pub(super) async fn wait_reaped(&mut self, pids: &[i32], deadline: Instant) -> bool {
        loop {
            self.sweep();
            if pids.iter().all(|pid| !self.tracked.contains_key(pid)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(
                SHUTDOWN_POLL.min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        }
    }
}
