//! Taking connections in: the caps on connections per uid and in total,
//! the refusal a client over them gets, and the back-off after a failed
//! `accept` (for example `EMFILE`), so a full descriptor table is never
//! polled in a tight loop and never floods the log.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::access::Peer;
use super::connection::{self, Shared};
use super::limits::ConnectionCounts;
use crate::protocol::{self, ErrorBody, ErrorKind};

/// The shortest and longest pause after a failed `accept`.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const LONGEST_BACKOFF: Duration = Duration::from_secs(1);

/// How often a repeated warning (refusals, accept errors) is logged.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A warning logged at most once per [`LOG_EVERY`], with a count of the
/// ones left out in between: a flood must not become a flood of log lines.
#[derive(Debug, Default)]
pub(crate) struct Quiet {
    last: Option<Instant>,
    suppressed: u64,
}

impl Quiet {
    /// Whether to log now; if so, how many were left out since the last.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The pause after failed accepts: doubled each time, reset by a success.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    next: Option<Duration>,
    log: Quiet,
}

impl Backoff {
    /// After a successful accept.
    pub(crate) fn reset(&mut self) {
        self.next = None;
    }

    /// After a failed one: log (at most every 10 s) and wait.
    pub(crate) async fn wait(&mut self, error: &std::io::Error) {
        let pause = self.next.unwrap_or(FIRST_BACKOFF);
        self.next = Some((pause * 2).min(LONGEST_BACKOFF));
        if let Some(suppressed) = self.log.due() {
            tracing::error!(%error, ?pause, suppressed, "accept failed; backing off");
        }
        tokio::time::sleep(pause).await;
    }
}

/// What the accept loop hands each new connection.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Shared with every connection.
    pub(crate) shared: Arc<Shared>,
    /// Who holds how many connections.
    pub(crate) counts: ConnectionCounts,
    /// The connection tasks.
    pub(crate) connections: TaskTracker,
    /// Fired at shutdown.
    pub(crate) stop: CancellationToken,
    /// Refusals, logged sparingly.
    pub(crate) refusals: Quiet,
}

impl Admission {
    /// Serves `stream` if its uid is under the caps; otherwise tells it
    /// why (one error line, if the socket takes it at once) and closes it.
    pub(crate) fn admit(&mut self, stream: UnixStream) {
        let cred = match stream.peer_cred() {
            Ok(cred) => cred,
            Err(error) => {
                tracing::warn!(%error, "no peer credentials; connection dropped");
                return;
            }
        };
        let peer = Peer {
            uid: cred.uid(),
            pid: cred.pid(),
        };
        let limits = self.shared.limits();
        let slot = match self.counts.take(peer.uid, &limits) {
            Ok(slot) => slot,
            Err(refusal) => {
                self.shared.stats.refused(&refusal);
                if let Some(suppressed) = self.refusals.due() {
                    tracing::warn!(peer_uid = peer.uid, peer_pid = ?peer.pid, suppressed, "refused a connection: {refusal}");
                }
                let line = protocol::encode::<()>(
                    None,
                    Err(ErrorBody::new(
                        ErrorKind::LimitReached,
                        format!("connection refused: {refusal}"),
                    )),
                );
                // Never waits: a client that does not read just misses it.
                let _ = stream.try_write(&line);
                return;
            }
        };
        let serve = connection::serve(
            stream,
            peer,
            Arc::clone(&self.shared),
            self.stop.clone(),
            slot,
        );
        let open = self.shared.stats.connection();
        let task = tokio::spawn(async move {
            serve.await;
            drop(open);
        });
        // A panic ends only its own connection (the service's state is
        // owned by its actor, untouched), but it is a bug: say so.
        self.connections.spawn(async move {
            if let Err(error) = task.await
                && error.is_panic()
            {
                tracing::error!(peer_uid = peer.uid, %error, "a connection task panicked; its connection is closed");
            }
        });
    }
}
