//! What the service does with the monitor's events: end registrations
//! whose process exited, and fan events out with their owner's uid. The
//! orphan rule itself is the monitor's: it watches every recorded parent
//! through a pidfd and starts the orphan action the moment it dies.

use std::collections::HashSet;
use std::sync::Arc;

use monitor_core::{Event, ProcessId};

use super::{OwnedEvent, Service};

impl Service {
    pub(super) fn on_event(&mut self, event: Event) {
        let id = event.id();
        let uid = match (&event, id) {
            (Event::Untracked { id }, _) => self.untracked_owners.remove(id),
            // About another user's process, but news for the registrant
            // whose unit it was kept out of.
            (Event::Refused { root, .. }, _) => self
                .registrations
                .get(&root.pid)
                .filter(|r| r.id == *root)
                .map(|r| r.uid),
            (_, Some(id)) => self
                .registrations
                .get(&id.pid)
                .filter(|r| r.id == id)
                .map(|r| r.uid),
            (_, None) => None,
        };
        // Only an exit ends a registration here. An `Untracked` event
        // follows an untrack this actor already applied, and may arrive
        // after the same process was registered again.
        if let (Event::Exited { id, .. }, Some(_)) = (&event, uid) {
            self.remove(id.pid);
            tracing::info!(id = %id, "registration ended: the process exited");
        }
        // Nobody may be listening; that is fine.
        let _ = self.events.send(Arc::new(OwnedEvent { uid, event }));
    }

    /// After missed events: drop the registrations the monitor no longer has.
    pub(super) async fn reconcile(&mut self) {
        let Ok(status) = self.monitor.status().await else {
            return;
        };
        // Their `Untracked` events may have been among the missed ones.
        self.untracked_owners.clear();
        let live: HashSet<ProcessId> = status.tracked.iter().map(|t| t.id).collect();
        let stale: Vec<i32> = self
            .registrations
            .values()
            .filter(|r| !live.contains(&r.id))
            .map(|r| r.id.pid)
            .collect();
        for pid in stale {
            self.remove(pid);
        }
    }
}
