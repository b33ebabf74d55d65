//! A blocking connection to the daemon: one request line out, one
//! response line back, and never a wait without end.
//!
//! - Connecting, reading and writing each have a deadline (`--timeout`,
//!   `PIDGUARD_TIMEOUT`); a daemon that is stopped or wedged gets an error
//!   naming the socket and, from its lock file, the daemon's pid.
//! - Before anything is sent, the server's credentials are checked: the
//!   process listening must run as root or as this user. Anything else at
//!   the socket path is an impostor and learns nothing.
//! - A response line longer than [`MAX_RESPONSE_BYTES`] is an error, not
//!   an allocation without end.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use serde::de::DeserializeOwned;

use crate::exit::{Code, Failure};
use crate::paths;
use crate::protocol::{self, Envelope, ErrorBody, Request, Response};
use crate::safe_file::{self, Trusted};

/// The longest response line read: a `status` of every registration the
/// daemon allows fits many times over.
pub(crate) const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The daemon answered with an error.
    Refused(ErrorBody),
    /// The connection broke, timed out, or the answer made no sense.
    Broken(Failure),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(error) => write!(f, "{error}"),
            Self::Broken(failure) => write!(f, "{failure}"),
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Nothing listens there (or the connect timed out): a daemon may be
    /// started.
    Unreachable(anyhow::Error),
    /// Something listens there that is not to be trusted: never start a
    /// daemon over it, never talk to it.
    Untrusted(anyhow::Error),
}

/// An open connection.
#[derive(Debug)]
pub(crate) struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    socket: PathBuf,
    timeout: Duration,
}

impl Connection {
    /// Connects to `socket` within `timeout` and checks who listens.
    pub(crate) fn open(socket: &Path, timeout: Duration) -> Result<Self, OpenError> {
        let stream = connect(socket, timeout).map_err(OpenError::Unreachable)?;
        check_server(&stream, socket).map_err(OpenError::Untrusted)?;
        let prepared = stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .and_then(|()| stream.try_clone());
        let writer = prepared
            .with_context(|| format!("cannot set up the connection to {}", socket.display()))
            .map_err(OpenError::Unreachable)?;
        Ok(Self {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            socket: socket.to_path_buf(),
            timeout,
        })
    }

    /// From now on reads may wait `wait` (event streams, whose keepalive
    /// lines come at a known pace).
    pub(crate) fn set_read_wait(&mut self, wait: Duration) -> anyhow::Result<()> {
        self.timeout = wait;
        self.reader
            .get_ref()
            .set_read_timeout(Some(wait))
            .context("cannot set the read timeout")
    }

    /// Sends `request` and reads its answer as `T`.
    pub(crate) fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Envelope {
            version: protocol::VERSION,
            id,
            request,
        })
        .map_err(|e| CallError::Broken(Failure::from(anyhow::Error::from(e))))?;
        line.push(b'\n');
        if let Err(error) = self.writer.write_all(&line) {
            return Err(CallError::Broken(
                self.io_failure(error, "send the request"),
            ));
        }
        let response: Response = self.read_line().map_err(CallError::Broken)?;
        if !response.ok {
            let error = response.error.unwrap_or_else(|| {
                ErrorBody::new(protocol::ErrorKind::Internal, "error without a description")
            });
            return Err(CallError::Refused(error));
        }
        let result = response.result.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(result)
            .context("the daemon's answer has an unexpected shape")
            .map_err(|e| CallError::Broken(Failure::from(e)))
    }

    /// Reads the next line as `T` (a response or an event line), at most
    /// [`MAX_RESPONSE_BYTES`] long.
    pub(crate) fn read_line<T: DeserializeOwned>(&mut self) -> Result<T, Failure> {
        let mut line = Vec::new();
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(self.io_failure(error, "read the answer")),
            };
            if available.is_empty() {
                return Err(Failure::from(anyhow::anyhow!(
                    "the daemon on {} closed the connection",
                    self.socket.display()
                )));
            }
            let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
                Some(end) => (&available[..end], true),
                None => (available, false),
            };
            if line.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Failure::from(anyhow::anyhow!(
                    "the answer from {} is longer than {MAX_RESPONSE_BYTES} bytes; not a pidguard daemon?",
                    self.socket.display()
                )));
            }
            line.extend_from_slice(chunk);
            let used = chunk.len() + usize::from(found);
            self.reader.consume(used);
            if found {
                break;
            }
        }
        serde_json::from_slice(&line)
            .with_context(|| {
                format!(
                    "the daemon sent {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(200)])
                )
            })
            .map_err(Failure::from)
    }

    /// A read or write that failed: a timeout names the daemon and is
    /// "unreachable" (exit code 3); anything else is a broken connection.
    fn io_failure(&self, error: std::io::Error, doing: &str) -> Failure {
        if matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            return Failure::new(
                Code::Unreachable,
                anyhow::anyhow!(
                    "{} did not answer within {} (could not {doing}); it may be stopped or overloaded",
                    describe_daemon(&self.socket),
                    humantime::format_duration(self.timeout)
                ),
            );
        }
        Failure::from(
            anyhow::Error::from(error)
                .context(format!("cannot {doing} on {}", self.socket.display())),
        )
    }
}

/// "the pidguard daemon on SOCKET (pid N, from LOCK)": the pid is read
/// from the daemon's lock file, safely (the file may be anything).
pub(crate) fn describe_daemon(socket: &Path) -> String {
    let lock = paths::lock_file(socket);
    let me = rustix::process::geteuid().as_raw();
    let trusted = Trusted {
        owners: &[0, me],
        what: "lock file",
    };
    let pid = safe_file::read(&lock, 32, trusted)
        .ok()
        .flatten()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.trim().parse::<i32>().ok());
    match pid {
        Some(pid) => format!(
            "the pidguard daemon on {} (pid {pid}, from {})",
            socket.display(),
            lock.display()
        ),
        None => format!(
            "the pidguard daemon on {} (its pid is not in {})",
            socket.display(),
            lock.display()
        ),
    }
}

/// `connect` without blocking past `timeout`: a Unix socket whose
/// listener stopped accepting blocks a plain `connect` once its backlog is
/// full, so the socket is non-blocking and `EAGAIN` is retried until the
/// deadline.
fn connect(socket: &Path, timeout: Duration) -> anyhow::Result<UnixStream> {
    let address = SocketAddrUnix::new(socket)
        .with_context(|| format!("{} cannot be a socket address", socket.display()))?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .context("socket(AF_UNIX)")?;
    let deadline = Instant::now() + timeout;
    loop {
        match rustix::net::connect(&fd, &address) {
            Ok(()) => break,
            Err(Errno::AGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(Errno::AGAIN) => anyhow::bail!(
                "{} accepts no connections (its queue stayed full for {})",
                describe_daemon(socket),
                humantime::format_duration(timeout)
            ),
            Err(errno) => {
                return Err(std::io::Error::from(errno))
                    .with_context(|| format!("cannot connect to {}", socket.display()));
            }
        }
    }
    let stream = UnixStream::from(fd);
    stream
        .set_nonblocking(false)
        .context("making the connection blocking")?;
    Ok(stream)
}

/// The process listening on `socket` must run as root or as this user
/// (`SO_PEERCRED` of the listener); a daemon of anyone else could lie
/// about registrations, or collect them.
fn check_server(stream: &UnixStream, socket: &Path) -> anyhow::Result<()> {
    let cred = rustix::net::sockopt::socket_peercred(stream)
        .with_context(|| format!("cannot read the credentials of {}", socket.display()))?;
    let me = rustix::process::geteuid();
    if cred.uid.is_root() || cred.uid == me {
        return Ok(());
    }
    anyhow::bail!(
        "the process listening on {} (pid {}) runs as uid {}, neither root nor this user (uid {}); refusing to talk to it",
        socket.display(),
        cred.pid.as_raw_nonzero(),
        cred.uid.as_raw(),
        me.as_raw()
    )
}
