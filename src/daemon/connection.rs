//! One client connection: read a request line, answer it, repeat; or,
//! after `events`, stream events until the client leaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::access::Peer;
use super::lines::{self, Line};
use super::service::{OwnedEvent, ServiceHandle};
use crate::protocol::{
    self, ErrorBody, ErrorKind, EventLine, Pong, Request, Streaming, VersionInfo,
};

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The service actor.
    pub(crate) service: ServiceHandle,
    /// The request size limit; a config reload may change it.
    pub(crate) max_request_bytes: AtomicUsize,
}

/// Serves one connection until the client leaves or the daemon stops.
/// A request being answered when `stop` fires is answered first.
#[tracing::instrument(name = "connection", skip_all, fields(peer_uid = peer.uid, peer_pid = ?peer.pid))]
pub(crate) async fn serve(
    stream: UnixStream,
    peer: Peer,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    loop {
        let max = shared.max_request_bytes.load(Ordering::Relaxed);
        let line = tokio::select! {
            line = lines::next_line(&mut reader, &mut buf, max) => line,
            () = stop.cancelled() => return,
        };
        let (id, request) = match line {
            Ok(Line::Complete) => protocol::parse(&buf),
            Ok(Line::TooLarge) => (
                None,
                Err(ErrorBody::new(
                    ErrorKind::TooLarge,
                    format!("the request is longer than the limit of {max} bytes"),
                )),
            ),
            Ok(Line::Closed) => return,
            Err(error) => {
                tracing::debug!(%error, "read failed; closing");
                return;
            }
        };
        let response = match request {
            Ok(Request::Events {}) => {
                let events = shared.service.subscribe();
                let answer = protocol::encode(id.as_ref(), Ok(Streaming { streaming: true }));
                if write.write_all(&answer).await.is_ok() {
                    stream_events(reader, write, events, peer, stop).await;
                }
                return;
            }
            Ok(request) => answer(&shared.service, peer, id.as_ref(), request).await,
            Err(error) => {
                tracing::info!(kind = ?error.kind, message = %error.message, "bad request");
                protocol::encode::<()>(id.as_ref(), Err(error))
            }
        };
        if let Err(error) = write.write_all(&response).await {
            tracing::debug!(%error, "write failed; closing");
            return;
        }
    }
}

async fn answer(
    service: &ServiceHandle,
    peer: Peer,
    id: Option<&Value>,
    request: Request,
) -> Vec<u8> {
    match request {
        Request::Ping {} => protocol::encode(
            id,
            Ok(Pong {
                pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
            }),
        ),
        Request::Version {} => protocol::encode(
            id,
            Ok(VersionInfo {
                daemon: env!("CARGO_PKG_VERSION").to_owned(),
                protocol: protocol::VERSION,
            }),
        ),
        Request::Track(track) => protocol::encode(id, service.track(peer, track).await),
        Request::Untrack { pid } => protocol::encode(id, service.untrack(peer, pid).await),
        Request::Status {} => protocol::encode(id, service.status(peer).await),
        // Handled by the caller, which switches the connection to streaming.
        Request::Events {} => protocol::encode::<()>(
            id,
            Err(ErrorBody::new(
                ErrorKind::Internal,
                "events must be streamed",
            )),
        ),
    }
}

/// Streams the events `peer` may see until it hangs up or the daemon stops.
async fn stream_events(
    mut reader: BufReader<OwnedReadHalf>,
    mut write: OwnedWriteHalf,
    mut events: broadcast::Receiver<Arc<OwnedEvent>>,
    peer: Peer,
    stop: CancellationToken,
) {
    let mut ignored = Vec::new();
    loop {
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
            // notices when it hangs up.
            read = lines::next_line(&mut reader, &mut ignored, 1024) => match read {
                Ok(Line::Closed) | Err(_) => return,
                Ok(_) => continue,
            },
            () = stop.cancelled() => return,
        };
        if send(&mut write, &line).await.is_err() {
            return;
        }
    }
}

async fn send(write: &mut OwnedWriteHalf, message: &impl Serialize) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await
}
