//! Group commit: replies to requests that changed the registrations wait
//! until one state write covers them all.

use super::Service;
use super::handle::Reply;
use crate::daemon::store;
use crate::protocol::{ErrorBody, ErrorKind, Registration, Untracked};

/// A reply held back until the state write that makes it true.
pub(super) enum Pending {
    Track(Reply<Registration>, Registration),
    Untrack(Reply<Untracked>, Untracked),
}

impl Service {
    /// Writes the state file if it changed, then answers the requests
    /// that waited for it.
    pub(super) async fn flush(&mut self) {
        if self.dirty {
            self.dirty = false;
            let path = self.state.clone();
            let snapshot: Vec<Registration> = self.registrations.values().cloned().collect();
            let written = tokio::task::spawn_blocking(move || store::save(&path, &snapshot))
                .await
                .unwrap_or_else(|panic| Err(anyhow::anyhow!("state writer panicked: {panic}")));
            if let Err(error) = written {
                tracing::error!(state = %self.state.display(), error = %format!("{error:#}"), "cannot write the state file");
                self.dirty = true;
                self.fail_pending(&format!("{error:#}")).await;
                return;
            }
        }
        for pending in self.pending.drain(..) {
            // A client that hung up meanwhile just misses its answer.
            match pending {
                Pending::Track(reply, registration) => {
                    let _ = reply.send(Ok(registration));
                }
                Pending::Untrack(reply, untracked) => {
                    let _ = reply.send(Ok(untracked));
                }
            }
        }
    }

    /// The state could not be written: registrations made in this round
    /// are rolled back (a reply is never sent for something not durable).
    pub(super) async fn fail_pending(&mut self, error: &str) {
        for pending in std::mem::take(&mut self.pending) {
            let message = format!("the state file could not be written: {error}");
            match pending {
                Pending::Track(reply, registration) => {
                    let _ = self.monitor.untrack(registration.id.pid).await;
                    self.remove(registration.id.pid);
                    let _ = reply.send(Err(ErrorBody::new(ErrorKind::Internal, message)));
                }
                Pending::Untrack(reply, _) => {
                    let _ = reply.send(Err(ErrorBody::new(
                        ErrorKind::Internal,
                        format!("untracked, but {message}"),
                    )));
                }
            }
        }
    }
}
