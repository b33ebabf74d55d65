//! Stopping: the shutdown policy applied to what is still tracked.

use std::time::Duration;

use tokio::time::Instant;

use super::{Actor, SHUTDOWN_POLL};
use crate::{ProcessId, ShutdownPolicy, Signal};

impl Actor {
    /// Applies the shutdown policy, then stops the other tasks.
    pub(super) async fn shut_down(&mut self) {
        self.cancel.cancel();
        if self.config.shutdown == ShutdownPolicy::TerminateUnits {
            self.terminate_units().await;
        }
        // A last sweep for a monitor that reaps every child: a zombie
        // reparented here when the last member of a unit died (its own
        // exit seen through a pidfd, not a sweep) is reaped before the
        // monitor goes, not left to whoever adopts it next.
        if self.config.reap_policy == crate::ReapPolicy::AllChildren {
            self.sweep();
        }
        self.remove_cgroups();
        // Feeds get their units' ends; drains are answered with what is
        // left, since nothing will end it now.
        self.after_message();
        self.settle_drains(true);
        tracing::debug!(tracked = self.tracked.len(), "monitor stopped");
    }

    /// Signal, grace, `SIGKILL`, bounded wait, for every member of every
    /// unit the monitor spawned or was handed. Members are looked for
    /// again before each signal round, so a child forked during the grace
    /// period is killed too.
    pub(super) async fn terminate_units(&mut self) {
        let roots: Vec<ProcessId> = self
            .units
            .iter()
            .filter(|(_, unit)| unit.owned)
            .map(|(root, _)| *root)
            .collect();
        let members = self.owned_unit_members(&roots);
        let grace = members
            .iter()
            .filter_map(|pid| self.tracked.get(pid).map(|e| e.grace))
            .max()
            .unwrap_or(Duration::ZERO);
        for pid in &members {
            if let Some(signal) = self.tracked.get(pid).map(|e| e.signal) {
                self.deliver(*pid, signal);
            }
        }
        if self
            .wait_gone(&roots, crate::limits::deadline(Instant::now(), grace))
            .await
        {
            return;
        }
        for pid in self.owned_unit_members(&roots) {
            self.deliver(pid, Signal::KILL);
        }
        let deadline = crate::limits::deadline(Instant::now(), self.config.kill_timeout);
        self.wait_gone(&roots, deadline).await;
    }

    /// Every tracked process of these units, after a last look for new
    /// members.
    fn owned_unit_members(&mut self, roots: &[ProcessId]) -> Vec<i32> {
        let mut members = Vec::new();
        for root in roots {
            self.discover_tree(*root);
            members.extend(self.unit_pids(*root));
        }
        members
    }

    /// Reaps and settles until none of these units holds a process any
    /// more, or the deadline. Exit watches are not served while shutting
    /// down, so each process is read here.
    async fn wait_gone(&mut self, roots: &[ProcessId], deadline: Instant) -> bool {
        loop {
            self.sweep();
            let left: Vec<i32> = roots.iter().flat_map(|r| self.unit_pids(*r)).collect();
            for pid in &left {
                if self.tracked.get(pid).is_some_and(|e| !self.is_running(e)) {
                    self.settle_exit(*pid);
                }
            }
            if roots.iter().all(|root| self.unit_pids(*root).is_empty()) {
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

    /// Removes the units' leaves and the monitor's subtree, as far as they
    /// are empty (a unit left running under `leave` keeps its leaf, and the
    /// subtree with it).
    fn remove_cgroups(&mut self) {
        for unit in self.units.values_mut() {
            if let Some((mut leaf, _)) = unit.cgroup.take()
                && let Err(error) = leaf.remove()
            {
                tracing::info!(%error, "a unit's cgroup stays: it still holds processes");
            }
        }
        if let super::Cgroups::Ready(subtree) = &mut self.cgroups
            && let Err(error) = subtree.remove()
        {
            tracing::info!(%error, "the monitor's cgroup subtree stays: a unit in it still runs");
        }
    }
}
