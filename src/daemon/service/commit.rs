//! Group commit: replies to requests that changed the registrations wait
//! until one state write covers them all.

use std::sync::Arc;

use super::Service;
use super::handle::Reply;
use crate::protocol::{ErrorBody, ErrorKind, Registration, Untracked};

/// A reply held back until the state write that makes it true.
pub(super) enum Pending {
    Track(Reply<Registration>, Registration),
    /// The reply, what it says, and the registration it removed (to put
    /// back if the write fails).
    Untrack(Reply<Untracked>, Untracked, Registration),
}

impl Service {
    /// Writes the state file if it changed, then answers the requests
    /// that waited for it.
    pub(super) async fn flush(&mut self) {
        if self.dirty {
            self.dirty = false;
            let store = Arc::clone(&self.store);
            let snapshot: Vec<Registration> = self.registrations.values().cloned().collect();
            let started = std::time::Instant::now();
            let written = tokio::task::spawn_blocking(move || store.save(&snapshot))
                .await
                .unwrap_or_else(|panic| Err(anyhow::anyhow!("state writer panicked: {panic}")));
            self.stats.state_write(written.is_ok(), started.elapsed());
            if let Err(error) = written {
                tracing::error!(state = %self.store.path().display(), error = %format!("{error:#}"), "cannot write the state file");
                self.dirty = true;
                self.fail_pending(&format!("{error:#}")).await;
                return;
            }
        }
        if self.shrinkage.note(self.registrations.len()) {
            tracing::debug!(
                registrations = self.registrations.len(),
                "many registrations ended; giving freed memory back"
            );
            crate::daemon::memory::release_free_memory();
        }
        for pending in self.pending.drain(..) {
            // A client that hung up meanwhile just misses its answer.
            match pending {
                Pending::Track(reply, registration) => {
                    let _ = reply.send(Ok(registration));
                }
                Pending::Untrack(reply, untracked, _) => {
                    let _ = reply.send(Ok(untracked));
                }
            }
        }
    }

    /// The state could not be written: every change of this round is
    /// undone, newest first, and refused (a reply is never sent for
    /// something not durable). A track is untracked again; an untrack is
    /// tracked again with its saved identity, parent and settings (if the
    /// process exited meanwhile, there is nothing left to restore).
    pub(super) async fn fail_pending(&mut self, error: &str) {
        let message = format!("the state file could not be written: {error}");
        let mut pending = std::mem::take(&mut self.pending);
        while let Some(change) = pending.pop() {
            match change {
                Pending::Track(reply, registration) => {
                    let _ = self.monitor.untrack(registration.id).await;
                    self.untracked_owners
                        .insert(registration.id, registration.uid);
                    self.remove(registration.id.pid);
                    let _ = reply.send(Err(ErrorBody::new(
                        ErrorKind::Internal,
                        format!("{message}; the registration was rolled back"),
                    )));
                }
                Pending::Untrack(reply, _, registration) => {
                    let id = registration.id;
                    let kept = match self.retrack(&registration).await {
                        Ok(()) => {
                            self.insert(registration);
                            "the registration was kept"
                        }
                        Err(retrack) => {
                            tracing::info!(id = %id, error = %retrack, "an untrack could not be rolled back: the process is gone");
                            "the process is gone meanwhile"
                        }
                    };
                    let _ = reply.send(Err(ErrorBody::new(
                        ErrorKind::Internal,
                        format!("{message}; not untracked ({kept})"),
                    )));
                }
            }
        }
    }
}
