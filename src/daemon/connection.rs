//! One client connection: read a request line, answer it, repeat; or,
//! after `events`, stream events until the client leaves.
//!
//! Every wait is bounded: a connection silent for `idle_timeout` between
//! requests, a line that takes longer than `line_timeout` to arrive, and a
//! response (or event line) that cannot be written within `line_timeout`
//! all close the connection. An event stream is never idle from the
//! daemon's side: a keepalive line goes out after [`KEEPALIVE`] of quiet,
//! so its client can tell a quiet daemon from a stopped one.

use std::os::fd::AsFd;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::access::Peer;
use super::limits::{Limits, Slot};
use super::lines::{Line, LineReader, ReadLimits};
use super::service::{OwnedEvent, ServiceHandle};
use super::stats::DaemonStats;
use crate::protocol::{
    self, ErrorBody, ErrorKind, EventLine, KEEPALIVE, Pong, Request, RequestKind, Streaming,
    VersionInfo,
};

/// The longest line a streaming client may send (it is ignored anyway).
const STREAMING_LINE: usize = 1024;

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The service actor.
    pub(crate) service: ServiceHandle,
    /// The limits; a config reload may change them.
    pub(crate) limits: RwLock<Limits>,
    /// The daemon's counters.
    pub(crate) stats: Arc<DaemonStats>,
}

impl Shared {
    /// The limits now.
    pub(crate) fn limits(&self) -> Limits {
        *self.limits.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves one connection until the client leaves, a limit closes it, or
/// the daemon stops. A request being answered when `stop` fires is
/// answered first. `_slot` holds the connection's place in the caps.
#[tracing::instrument(name = "connection", skip_all, fields(peer_uid = peer.uid, peer_pid = ?peer.pid))]
pub(crate) async fn serve(
    stream: UnixStream,
    peer: Peer,
    shared: Arc<Shared>,
    stop: CancellationToken,
    _slot: Slot,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = LineReader::new(read);
    loop {
        let limits = shared.limits();
        let read_limits = ReadLimits {
            max: limits.max_request_bytes,
            idle: Some(limits.idle_timeout),
            line: limits.line_timeout,
        };
        let line = tokio::select! {
            line = reader.next(read_limits) => line,
            () = stop.cancelled() => return,
        };
        let (id, request) = match line {
            Ok(Line::Complete(text)) => protocol::parse(text.as_bytes()),
            Ok(Line::TooLarge) => (
                None,
                Err(ErrorBody::new(
                    ErrorKind::TooLarge,
                    format!(
                        "the request is longer than the limit of {} bytes (max_request_bytes)",
                        limits.max_request_bytes
                    ),
                )),
            ),
            Ok(Line::NotUtf8) => (
                None,
                Err(ErrorBody::new(
                    ErrorKind::InvalidJson,
                    "the request is not valid JSON: it is not UTF-8",
                )),
            ),
            Ok(Line::Closed) => return,
            Ok(Line::Idle) => {
                tracing::debug!(idle_timeout = ?limits.idle_timeout, "idle; closing");
                return;
            }
            Ok(Line::Slow) => {
                tracing::info!(line_timeout = ?limits.line_timeout, "a request line took too long; closing");
                return;
            }
            Err(error) => {
                tracing::debug!(%error, "read failed; closing");
                return;
            }
        };
        let response = match request {
            Ok(Request::Events {}) => {
                shared.stats.request(RequestKind::Events, None);
                let events = shared.service.subscribe();
                let answer = protocol::encode(id.as_deref(), Ok(Streaming { streaming: true }));
                if write_bounded(&mut write, &answer, limits.line_timeout)
                    .await
                    .is_ok()
                {
                    stream_events(reader, write, events, peer, &shared, stop).await;
                }
                return;
            }
            Ok(request @ (Request::Track(_) | Request::Untrack { .. })) if hung_up(&write) => {
                // Nobody is left to learn the outcome (e.g. a client that
                // timed out while the daemon was stopped): not applying it
                // is what that client was told.
                tracing::info!(
                    ?request,
                    "the client hung up before its request was applied; not applied"
                );
                return;
            }
            Ok(request) => {
                let kind = request.kind();
                let (line, outcome) = answer(&shared.service, peer, id.as_deref(), request).await;
                shared.stats.request(kind, outcome);
                line
            }
            Err(error) => {
                tracing::info!(kind = ?error.kind, message = %error.message, "bad request");
                shared.stats.request(RequestKind::Invalid, Some(error.kind));
                protocol::encode::<()>(id.as_deref(), Err(error))
            }
        };
        if let Err(error) = write_bounded(&mut write, &response, limits.line_timeout).await {
            tracing::debug!(%error, "write failed; closing");
            return;
        }
    }
}

/// Writes `bytes` within `timeout`; a client that does not read is cut off.
async fn write_bounded(
    write: &mut OwnedWriteHalf,
    bytes: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    match tokio::time::timeout(timeout, write.write_all(bytes)).await {
        Ok(written) => written,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the client read nothing for {timeout:?}"),
        )),
    }
}

/// Whether the client has closed the connection entirely (`POLLHUP`: both
/// directions shut). A client that only shut its writing side (`socat`,
/// `printf ... | nc -U`) still waits for its answer and is not hung up.
fn hung_up(write: &OwnedWriteHalf) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let stream: &UnixStream = write.as_ref();
    let fd = stream.as_fd();
    let mut fds = [PollFd::new(&fd, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&now)).is_ok() && fds[0].revents().contains(PollFlags::HUP)
}

/// The response line to `request`, and its outcome for the counters.
async fn answer(
    service: &ServiceHandle,
    peer: Peer,
    id: Option<&RawValue>,
    request: Request,
) -> (Vec<u8>, Option<ErrorKind>) {
    match request {
        Request::Ping {} => outcome(
            id,
            Ok(Pong {
                pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
            }),
        ),
        Request::Version {} => outcome(
            id,
            Ok(VersionInfo {
                daemon: env!("CARGO_PKG_VERSION").to_owned(),
                protocol: protocol::VERSION,
            }),
        ),
        Request::Track(track) => outcome(id, service.track(peer, track).await),
        Request::Untrack { pid } => outcome(id, service.untrack(peer, pid).await),
        Request::Status {} => outcome(id, service.status(peer).await),
        // Handled by the caller, which switches the connection to streaming.
        Request::Events {} => outcome::<()>(
            id,
            Err(ErrorBody::new(
                ErrorKind::Internal,
                "events must be streamed",
            )),
        ),
    }
}

/// `result` as a response line, with its error's kind.
fn outcome<T: Serialize>(
    id: Option<&RawValue>,
    result: Result<T, ErrorBody>,
) -> (Vec<u8>, Option<ErrorKind>) {
    let kind = result.as_ref().err().map(|error| error.kind);
    (protocol::encode(id, result), kind)
}

/// Streams the events `peer` may see until it hangs up, a write times out,
/// or the daemon stops; a keepalive line after each [`KEEPALIVE`] of quiet.
async fn stream_events(
    mut reader: LineReader,
    mut write: OwnedWriteHalf,
    mut events: broadcast::Receiver<Arc<OwnedEvent>>,
    peer: Peer,
    shared: &Shared,
    stop: CancellationToken,
) {
    // Reset only by a line sent, not by events this client may not see.
    let mut keepalive_at = tokio::time::Instant::now() + KEEPALIVE;
    loop {
        let limits = shared.limits();
        let read_limits = ReadLimits {
            max: STREAMING_LINE,
            idle: None,
            line: limits.line_timeout,
        };
        let line = tokio::select! {
            event = events.recv() => match event {
                Ok(owned) if owned.uid.is_some_and(|uid| peer.may_see(uid)) || peer.is_root() => EventLine {
                    version: protocol::VERSION,
                    event: Some(owned.event.clone()),
                    lagged: None,
                },
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => EventLine {
                    version: protocol::VERSION,
                    event: None,
                    lagged: Some(missed),
                },
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // A streaming client has nothing more to say; reading only
            // notices when it hangs up (or trickles a line forever).
            read = reader.next(read_limits) => match read {
                Ok(Line::Closed | Line::Slow | Line::Idle) | Err(_) => return,
                Ok(Line::Complete(_) | Line::TooLarge | Line::NotUtf8) => continue,
            },
            () = tokio::time::sleep_until(keepalive_at) => EventLine {
                version: protocol::VERSION,
                event: None,
                lagged: None,
            },
            () = stop.cancelled() => return,
        };
        if send(&mut write, &line, limits.line_timeout).await.is_err() {
            return;
        }
        keepalive_at = tokio::time::Instant::now() + KEEPALIVE;
    }
}

async fn send(
    write: &mut OwnedWriteHalf,
    message: &impl Serialize,
    timeout: Duration,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write_bounded(write, &line, timeout).await
}
