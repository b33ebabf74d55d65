//! The registrations themselves: who holds how many (the quotas), adding
//! and dropping them, and tracking a saved one again (at restore, and when
//! an untrack is rolled back).

use monitor_core::{Error as MonitorError, TrackOptions};

use super::Service;
use crate::daemon::access::{self, Peer};
use crate::protocol::{ErrorBody, ErrorKind, Registration};

impl Service {
    /// Refuses a non-root client at its registration quota, or when
    /// non-root clients together hold `max_registrations`.
    pub(super) fn check_quota(&self, peer: Peer) -> Result<(), ErrorBody> {
        let mine = self.per_uid.get(&peer.uid).copied().unwrap_or(0);
        let others_than_root: usize = self
            .per_uid
            .iter()
            .filter(|(uid, _)| **uid != 0)
            .map(|(_, held)| held)
            .sum();
        let refusal = if mine >= self.limits.max_registrations_per_uid {
            format!(
                "uid {} already holds {mine} registrations, its quota (max_registrations_per_uid)",
                peer.uid
            )
        } else if others_than_root >= self.limits.max_registrations {
            format!(
                "non-root clients already hold {others_than_root} registrations, the limit (max_registrations)"
            )
        } else {
            return Ok(());
        };
        tracing::warn!(peer_uid = peer.uid, peer_pid = ?peer.pid, "refused: {refusal}");
        Err(ErrorBody::new(ErrorKind::LimitReached, refusal))
    }

    pub(super) fn insert(&mut self, registration: Registration) {
        *self.per_uid.entry(registration.uid).or_insert(0) += 1;
        if let Some(old) = self.registrations.insert(registration.id.pid, registration) {
            self.forget_owner(old.uid);
        }
        self.dirty = true;
    }

    pub(super) fn remove(&mut self, pid: i32) -> Option<Registration> {
        let registration = self.registrations.remove(&pid)?;
        self.forget_owner(registration.uid);
        self.dirty = true;
        Some(registration)
    }

    fn forget_owner(&mut self, uid: u32) {
        if let Some(held) = self.per_uid.get_mut(&uid) {
            *held -= 1;
            if *held == 0 {
                self.per_uid.remove(&uid);
            }
        }
    }

    /// Tracks a saved (or rolled-back) registration again, exactly as it
    /// was: same identity, same parent, same settings.
    pub(super) async fn retrack(
        &mut self,
        registration: &Registration,
    ) -> Result<(), MonitorError> {
        let id = registration.id;
        let options = TrackOptions::new()
            .owner(registration.uid)
            .start_time(id.start_time)
            .parent_identity(registration.parent)
            .action(registration.action)
            .grace(registration.grace)
            .signal(registration.signal)
            .tree(registration.tree)
            .target(registration.target);
        self.monitor.track_with(id.pid, options).await.map(|_| ())
    }

    /// Re-tracks saved registrations. Each one is checked as a new track
    /// would be (a state file is input too): the process must still have
    /// its identity and, for a non-root owner, still belong to that uid;
    /// values out of range are refused by the monitor. Whatever fails is
    /// dropped with a log line saying why.
    pub(super) async fn restore(&mut self, registrations: Vec<Registration>) {
        let total = registrations.len();
        let mut resumed = 0;
        for registration in registrations {
            let id = registration.id;
            if registration.uid != 0 && !access::still_owned_by(id, registration.uid) {
                tracing::warn!(id = %id, uid = registration.uid, "dropped a saved registration: the process does not belong to the uid that registered it");
                self.dirty = true;
                continue;
            }
            match self.retrack(&registration).await {
                Ok(()) => {
                    resumed += 1;
                    self.insert(registration);
                }
                Err(error) => {
                    tracing::info!(id = %id, %error, "dropped a saved registration");
                    self.dirty = true;
                }
            }
        }
        tracing::info!(
            resumed,
            dropped = total - resumed,
            "restored saved registrations"
        );
    }
}
