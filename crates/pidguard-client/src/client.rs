//! [`Client`]: one connection to the daemon, one request at a time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use monitor_core::{OrphanTarget, ProcessId};
use pidguard_protocol::{
    Envelope, ErrorBody, ErrorKind, Pong, Registration, Request, RequestKind, Response,
    StatusReport, Streaming, Untracked, VERSION, VersionInfo,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::time::Instant;

use crate::events::Events;
use crate::lines::{LineError, LineReader, excerpt};
use crate::options::{self, DEFAULT_TIMEOUT, TrackOptions};
use crate::{DaemonRef, Error, MAX_RESPONSE_BYTES, Step};

/// A connection to `pidguard daemon`.
///
/// Each call sends one request and waits for its answer; every step
/// (connecting, sending, each answer) is bounded by the client's timeout.
/// Calls take `&mut self`: a connection carries one request at a time, in
/// order. Open one client per task that talks to the daemon; connections
/// are cheap (the daemon caps them per uid, 32 by default).
///
/// # Cancellation
///
/// A call may be cancelled (dropped by `tokio::time::timeout` or a
/// `select!`) while it waits for its answer: the answer is skipped when it
/// arrives, and the next call gets its own. A call cancelled while it was
/// still sending its request leaves half a line on the socket; every later
/// call on that client fails with [`Error::Unusable`], and a new client is
/// needed. A cancelled `track` or `untrack` may still be applied.
#[derive(Debug)]
pub struct Client {
    reader: LineReader,
    writer: OwnedWriteHalf,
    socket: PathBuf,
    /// The listener's pid from `SO_PEERCRED`, for errors when the lock
    /// file does not say.
    listener_pid: i32,
    timeout: Duration,
    next_id: u64,
    /// Set while a request line is being written: still set when the next
    /// call starts, it means a call was cancelled halfway through sending.
    sending: bool,
    /// Why the connection cannot be used any more, once it cannot.
    broken: Option<&'static str>,
}

impl Client {
    /// Connects to the daemon on `socket` with the [`DEFAULT_TIMEOUT`] per
    /// step, and checks that the process listening runs as root or as this
    /// user before anything is sent.
    ///
    /// The client never starts a daemon: run it as a service (the package
    /// installs a systemd unit), or start it before connecting.
    pub async fn connect(socket: impl AsRef<Path>) -> Result<Self, Error> {
        Self::connect_with_timeout(socket, DEFAULT_TIMEOUT).await
    }

    /// [`Client::connect`] with `timeout` per step (1 ms to a day,
    /// [`crate::TIMEOUT_RANGE`]).
    pub async fn connect_with_timeout(
        socket: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let timeout = options::checked_timeout(timeout)?;
        let socket = socket.as_ref();
        let (stream, listener_pid) = crate::connect::connect(socket, timeout).await?;
        let (read, writer) = stream.into_split();
        Ok(Self {
            reader: LineReader::new(read),
            writer,
            socket: socket.to_path_buf(),
            listener_pid,
            timeout,
            next_id: 1,
            sending: false,
            broken: None,
        })
    }

    /// Connects as the `pidguard` client commands do without flags: to the
    /// socket `PIDGUARD_SOCKET` names, else the default one
    /// ([`pidguard_protocol::default_socket`]: `/run/pidguard/pidguard.sock`
    /// for root, `$XDG_RUNTIME_DIR/pidguard/pidguard.sock` for a user), with
    /// the timeout `PIDGUARD_TIMEOUT` sets, else [`DEFAULT_TIMEOUT`].
    pub async fn connect_default() -> Result<Self, Error> {
        let timeout = options::timeout_from_env()?;
        Self::connect_with_timeout(options::socket_from_env(), timeout).await
    }

    /// The socket this client is connected to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// How long each step of a call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes how long each step of a call may take (1 ms to a day).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        self.timeout = options::checked_timeout(timeout)?;
        Ok(())
    }

    /// The daemon as errors name it: its socket and pid.
    pub fn daemon(&self) -> DaemonRef {
        DaemonRef::find(&self.socket, Some(self.listener_pid))
    }

    /// Asks whether the daemon is there; the answer holds its pid.
    pub async fn ping(&mut self) -> Result<Pong, Error> {
        self.call(&Request::Ping {}).await
    }

    /// The daemon's package version and the protocol version it speaks.
    pub async fn version(&mut self) -> Result<VersionInfo, Error> {
        self.call(&Request::Version {}).await
    }

    /// Registers whatever process holds `pid` now: when its parent (or the
    /// one `options` names) dies, the daemon applies its orphan action.
    /// The answer is the registration as the daemon stored it (fsynced
    /// before it answers), defaults filled in.
    ///
    /// A pid learned a while ago may have been reused since: prefer
    /// [`Client::track_process`], which the daemon checks against the
    /// process's start time.
    pub async fn track(&mut self, pid: i32, options: TrackOptions) -> Result<Registration, Error> {
        self.call(&Request::Track(options.request(pid, None))).await
    }

    /// Registers the process `id` names: the daemon refuses the request
    /// ([`Error::Refused`], kind `refused`: "process N started at tick T,
    /// not S: the pid was reused") when `id.pid` now belongs to a process
    /// with another start time, so a reused pid is never registered.
    pub async fn track_process(
        &mut self,
        id: ProcessId,
        options: TrackOptions,
    ) -> Result<Registration, Error> {
        self.call(&Request::Track(
            options.request(id.pid, Some(id.start_time)),
        ))
        .await
    }

    /// Hands the process `id` and everything it starts to the daemon as a
    /// crash net: a unit (`tree` on, whatever `options` say) whose orphan
    /// action reaches the whole unit (`target` `tree`, unless `options`
    /// name another). When this process dies, SIGKILL included, the daemon
    /// sees the process orphaned and ends its unit: the process and every
    /// descendant it has, with the action, signal and grace of the
    /// registration.
    ///
    /// Typically `id` is a child this process just spawned (its identity
    /// from `monitor_core::OwnedChild`, or `ProcessId::of(pid)` while the
    /// child is not yet reaped), and the registration is dropped with
    /// [`Client::untrack`] when the child is done. The start time is
    /// checked by the daemon, as for [`Client::track_process`].
    pub async fn track_unit(
        &mut self,
        id: ProcessId,
        options: TrackOptions,
    ) -> Result<Registration, Error> {
        let mut request = options.request(id.pid, Some(id.start_time));
        request.tree = Some(true);
        request.target = request.target.or(Some(OrphanTarget::Tree));
        self.call(&Request::Track(request)).await
    }

    /// Drops the registration of `pid` (and, for a unit, of everything it
    /// holds). Nothing is signalled.
    pub async fn untrack(&mut self, pid: i32) -> Result<Untracked, Error> {
        self.call(&Request::Untrack { pid }).await
    }

    /// The registrations this user may see (root: all), and for root and
    /// the daemon's own user, the monitor's and the daemon's figures.
    pub async fn status(&mut self) -> Result<StatusReport, Error> {
        self.call(&Request::Status {}).await
    }

    /// Turns the connection into the daemon's event stream: every event
    /// about this user's registrations (root: every event), as it happens.
    pub async fn events(mut self) -> Result<Events, Error> {
        let _: Streaming = self.call(&Request::Events {}).await?;
        Ok(Events::new(
            self.reader,
            self.writer,
            self.socket,
            self.listener_pid,
            self.timeout,
        ))
    }

    /// Sends `request` and reads its answer as `T`.
    async fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, Error> {
        let kind = request.kind();
        if self.sending {
            self.broken = Some("an earlier call was cancelled while it was sending its request");
        }
        if let Some(reason) = self.broken {
            return Err(Error::Unusable {
                socket: self.socket.clone(),
                reason,
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Envelope {
            version: VERSION,
            id,
            request,
        })
        .expect("a request serializes: strings, integers and flat enums only");
        line.push(b'\n');
        tracing::debug!(socket = %self.socket.display(), request = %kind, id, "sending");
        self.send(kind, &line).await?;
        let response = self.receive(kind, id).await?;
        if !response.ok {
            let error = response.error.unwrap_or_else(|| {
                ErrorBody::new(ErrorKind::Internal, "an error without a description")
            });
            return Err(Error::Refused {
                daemon: self.daemon(),
                request: kind,
                error,
            });
        }
        let result = response.result.unwrap_or(Value::Null);
        let text = result.to_string();
        serde_json::from_value(result).map_err(|source| Error::Malformed {
            daemon: self.daemon(),
            request: kind,
            problem: "the result has an unexpected shape".to_owned(),
            excerpt: excerpt(text.as_bytes()),
            source: Some(source),
        })
    }

    /// Writes one request line within the timeout.
    async fn send(&mut self, kind: RequestKind, line: &[u8]) -> Result<(), Error> {
        self.sending = true;
        let outcome = tokio::time::timeout(self.timeout, self.writer.write_all(line)).await;
        match outcome {
            Ok(Ok(())) => {
                self.sending = false;
                Ok(())
            }
            Ok(Err(source)) => {
                self.broken = Some("a request could not be sent");
                Err(Error::Io {
                    daemon: self.daemon(),
                    request: kind,
                    step: Step::Send,
                    source,
                })
            }
            Err(_elapsed) => {
                self.broken = Some("a request was cut off by the timeout while it was sent");
                Err(Error::Timeout {
                    daemon: self.daemon(),
                    request: kind,
                    step: Step::Send,
                    timeout: self.timeout,
                })
            }
        }
    }

    /// Reads the answer to request `id`, skipping the answers to calls that
    /// were cancelled while they waited.
    async fn receive(&mut self, kind: RequestKind, id: u64) -> Result<Response, Error> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.reader.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(Ok(None)) => {
                    self.broken = Some("the daemon closed it");
                    return Err(Error::Closed {
                        daemon: self.daemon(),
                        request: kind,
                    });
                }
                Ok(Err(LineError::TooLong)) => {
                    self.broken = Some("an answer was too long to be read to its end");
                    return Err(Error::TooLong {
                        daemon: self.daemon(),
                        request: kind,
                        limit: MAX_RESPONSE_BYTES,
                    });
                }
                Ok(Err(LineError::Io(source))) => {
                    return Err(Error::Io {
                        daemon: self.daemon(),
                        request: kind,
                        step: Step::Receive,
                        source,
                    });
                }
                Err(_elapsed) => {
                    return Err(Error::Timeout {
                        daemon: self.daemon(),
                        request: kind,
                        step: Step::Receive,
                        timeout: self.timeout,
                    });
                }
            };
            let malformed = |problem: String, source| Error::Malformed {
                daemon: self.daemon(),
                request: kind,
                problem,
                excerpt: excerpt(&line),
                source,
            };
            let response: Response = serde_json::from_slice(&line)
                .map_err(|source| malformed("not a response line".to_owned(), Some(source)))?;
            match response.id.as_ref().map(Value::as_u64) {
                Some(Some(answered)) if answered == id => return Ok(response),
                // The answer to a call that was cancelled while it waited.
                Some(Some(answered)) if answered < id => {}
                // A refusal of the connection itself (`limit_reached` when
                // the daemon has too many) answers no request in particular.
                None if !response.ok => return Ok(response),
                _ => {
                    let problem = format!(
                        "it answers request id {}, not {id}",
                        response.id.unwrap_or(Value::Null)
                    );
                    return Err(malformed(problem, None));
                }
            }
        }
    }
}
