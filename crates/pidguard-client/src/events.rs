//! [`Events`]: a connection turned into the daemon's event stream.

use std::path::PathBuf;
use std::time::Duration;

use monitor_core::Event;
use pidguard_protocol::{EventLine, KEEPALIVE, RequestKind};
use tokio::net::unix::OwnedWriteHalf;

use crate::lines::{LineError, LineReader, excerpt};
use crate::{DaemonRef, Error, MAX_RESPONSE_BYTES, Step};

/// One item of an event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamItem {
    /// Something the daemon's monitor saw or did.
    Event(Event),
    /// This client read too slowly and missed this many events (the
    /// daemon never waits for a slow reader). Ask for a `status` to catch
    /// up.
    Lagged(u64),
}

/// The daemon's events about this user's registrations (root: every
/// event), from [`Client::events`](crate::Client::events).
///
/// [`Events::next`] is cancel-safe: it can sit in a `tokio::select!` loop
/// next to other branches; a line half read when another branch wins is
/// finished by the next call.
///
/// A quiet daemon sends a keepalive line every 15 s
/// ([`pidguard_protocol::KEEPALIVE`]); a stream that stays silent for that
/// long plus the client's timeout is reported as [`Error::Timeout`]: the
/// daemon is stopped or gone.
#[derive(Debug)]
pub struct Events {
    reader: LineReader,
    /// Kept open: the daemon ends a stream whose client closed its side.
    _writer: OwnedWriteHalf,
    socket: PathBuf,
    listener_pid: i32,
    timeout: Duration,
    /// Set once a line was too long to read to its end: what follows is
    /// the rest of it, not a line.
    broken: bool,
}

impl Events {
    pub(crate) fn new(
        reader: LineReader,
        writer: OwnedWriteHalf,
        socket: PathBuf,
        listener_pid: i32,
        timeout: Duration,
    ) -> Self {
        Self {
            reader,
            _writer: writer,
            socket,
            listener_pid,
            timeout,
            broken: false,
        }
    }

    /// The next event (or count of missed events); `Ok(None)` once the
    /// daemon has ended the stream (it stops, or closed the connection).
    pub async fn next(&mut self) -> Result<Option<StreamItem>, Error> {
        loop {
            let Some(line) = self.next_line().await? else {
                return Ok(None);
            };
            match (line.event, line.lagged) {
                (Some(event), _) => return Ok(Some(StreamItem::Event(event))),
                (None, Some(missed)) => return Ok(Some(StreamItem::Lagged(missed))),
                // A keepalive.
                (None, None) => {}
            }
        }
    }

    /// The next line exactly as the daemon sent it, keepalives (lines with
    /// neither `event` nor `lagged`) included; `Ok(None)` once the daemon
    /// has ended the stream.
    pub async fn next_line(&mut self) -> Result<Option<EventLine>, Error> {
        if self.broken {
            return Err(Error::Unusable {
                socket: self.socket.clone(),
                reason: "an event line was too long to be read to its end",
            });
        }
        let wait = KEEPALIVE + self.timeout;
        let line = match tokio::time::timeout(wait, self.reader.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => return Ok(None),
            Ok(Err(LineError::TooLong)) => {
                self.broken = true;
                return Err(Error::TooLong {
                    daemon: self.daemon(),
                    request: RequestKind::Events,
                    limit: MAX_RESPONSE_BYTES,
                });
            }
            Ok(Err(LineError::Io(source))) => {
                return Err(Error::Io {
                    daemon: self.daemon(),
                    request: RequestKind::Events,
                    step: Step::Stream,
                    source,
                });
            }
            Err(_elapsed) => {
                return Err(Error::Timeout {
                    daemon: self.daemon(),
                    request: RequestKind::Events,
                    step: Step::Stream,
                    timeout: wait,
                });
            }
        };
        serde_json::from_slice(&line).map_err(|source| Error::Malformed {
            daemon: self.daemon(),
            request: RequestKind::Events,
            problem: "not an event line".to_owned(),
            excerpt: excerpt(&line),
            source: Some(source),
        })
    }

    /// The daemon as errors name it.
    pub fn daemon(&self) -> DaemonRef {
        DaemonRef::find(&self.socket, Some(self.listener_pid))
    }
}
