//! What can go wrong talking to the daemon, each case naming the socket,
//! the daemon (with its pid where it can be learned) and the request.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use pidguard_protocol::{ErrorBody, ErrorKind, RequestKind};

use crate::DaemonRef;

/// What a call was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Writing the request line.
    Send,
    /// Reading the answer line.
    Receive,
    /// Reading the next line of an event stream.
    Stream,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Send => "send the request",
            Self::Receive => "read the answer",
            Self::Stream => "read the next event line",
        })
    }
}

/// "send `ping`", "read the answer to `ping`", ...: what failed, for a
/// message.
fn doing(step: Step, request: RequestKind) -> String {
    match step {
        Step::Send => format!("send `{request}`"),
        Step::Receive => format!("read the answer to `{request}`"),
        Step::Stream => format!("read the next line of the `{request}` stream"),
    }
}

/// Why a call to the daemon failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nothing accepts connections on the socket (no such file, nobody
    /// listening, no permission to reach it).
    #[error("cannot connect to {}", socket.display())]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// What `connect` said.
        #[source]
        source: std::io::Error,
    },
    /// The socket's listener took no connection within the timeout (its
    /// queue stayed full: stopped, or overwhelmed).
    #[error(
        "{daemon} accepts no connections (its queue stayed full for {})",
        humantime::format_duration(*timeout)
    )]
    ConnectTimeout {
        /// The daemon.
        daemon: DaemonRef,
        /// How long the client tried.
        timeout: Duration,
    },
    /// The listener's credentials could not be read.
    #[error("cannot read the credentials of the process listening on {}", socket.display())]
    PeerCredentials {
        /// The socket.
        socket: PathBuf,
        /// What `getsockopt(SO_PEERCRED)` said.
        #[source]
        source: std::io::Error,
    },
    /// The process listening on the socket runs as neither root nor this
    /// user: it could lie about registrations, or collect them. Nothing
    /// was sent to it.
    #[error(
        "the process listening on {} (pid {pid}) runs as uid {uid}, neither root nor this user (uid {own_uid}); refusing to talk to it",
        socket.display()
    )]
    Untrusted {
        /// The socket.
        socket: PathBuf,
        /// The listener's pid.
        pid: i32,
        /// The listener's uid.
        uid: u32,
        /// This process's effective uid.
        own_uid: u32,
    },
    /// The daemon did not take the request, or did not answer it, within
    /// the timeout. A `track` that timed out may still be applied unless
    /// the connection is dropped first: the daemon skips the requests of a
    /// client that has hung up.
    #[error(
        "{daemon} did not answer within {} (could not {}); it may be stopped or overloaded",
        humantime::format_duration(*timeout),
        doing(*step, *request)
    )]
    Timeout {
        /// The daemon.
        daemon: DaemonRef,
        /// The request.
        request: RequestKind,
        /// What timed out.
        step: Step,
        /// The timeout.
        timeout: Duration,
    },
    /// Reading or writing the socket failed.
    #[error("cannot {} on {}", doing(*step, *request), daemon.socket.display())]
    Io {
        /// The daemon.
        daemon: DaemonRef,
        /// The request.
        request: RequestKind,
        /// What failed.
        step: Step,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The daemon closed the connection before it answered.
    #[error("{daemon} closed the connection (during `{request}`)")]
    Closed {
        /// The daemon.
        daemon: DaemonRef,
        /// The request.
        request: RequestKind,
    },
    /// An answer line was longer than [`MAX_RESPONSE_BYTES`](crate::MAX_RESPONSE_BYTES):
    /// whatever listens is no pidguard daemon, or a broken one.
    #[error(
        "the answer to `{request}` from {} is longer than {limit} bytes; not a pidguard daemon?",
        daemon.socket.display()
    )]
    TooLong {
        /// The daemon.
        daemon: DaemonRef,
        /// The request.
        request: RequestKind,
        /// The limit.
        limit: usize,
    },
    /// The answer was not what the protocol says it is.
    #[error("{daemon} sent an answer to `{request}` that makes no sense ({problem}): {excerpt:?}")]
    Malformed {
        /// The daemon.
        daemon: DaemonRef,
        /// The request.
        request: RequestKind,
        /// What is wrong with it.
        problem: String,
        /// Its first 200 bytes.
        excerpt: String,
        /// The parser's error, if it was one.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// The daemon refused the request; [`ErrorBody::kind`] says why
    /// (`refused`, `permission_denied`, `limit_reached`, ...), the message
    /// what was wrong.
    #[error("{daemon} refused `{request}`: {error}")]
    Refused {
        /// The daemon.
        daemon: DaemonRef,
        /// The request.
        request: RequestKind,
        /// The daemon's error.
        error: ErrorBody,
    },
    /// An earlier call on this connection broke it: it was cancelled in
    /// the middle of sending its request, or its answer was too long to
    /// read to its end. Connect again.
    #[error("the connection to {} cannot be used any more: {reason}; connect again", socket.display())]
    Unusable {
        /// The socket.
        socket: PathBuf,
        /// What broke it.
        reason: &'static str,
    },
    /// A setting from the environment (`PIDGUARD_TIMEOUT`) is invalid.
    #[error("{var}={value:?} is not valid: {reason}")]
    Environment {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A timeout outside [`TIMEOUT_RANGE`](crate::TIMEOUT_RANGE): zero would
    /// mean "wait forever" to the socket, which is what it is there to
    /// prevent.
    #[error(
        "a timeout of {} is out of range: it must be between {} and {}",
        humantime::format_duration(*timeout),
        humantime::format_duration(crate::TIMEOUT_RANGE.min),
        humantime::format_duration(crate::TIMEOUT_RANGE.max)
    )]
    InvalidTimeout {
        /// The timeout given.
        timeout: Duration,
    },
}

impl Error {
    /// The daemon's refusal, if the daemon refused the request.
    pub fn refusal(&self) -> Option<&ErrorBody> {
        match self {
            Self::Refused { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The kind of the daemon's refusal, if it refused the request.
    pub fn refusal_kind(&self) -> Option<ErrorKind> {
        self.refusal().map(|error| error.kind)
    }

    /// Whether the daemon could not be reached or did not answer in time
    /// (nothing listening, a full queue, a timeout): the cases where
    /// starting a daemon, or waiting for one, may help.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::ConnectTimeout { .. } | Self::Timeout { .. }
        )
    }

    /// The daemon the error is about, if a connection was made.
    pub fn daemon(&self) -> Option<&DaemonRef> {
        match self {
            Self::ConnectTimeout { daemon, .. }
            | Self::Timeout { daemon, .. }
            | Self::Io { daemon, .. }
            | Self::Closed { daemon, .. }
            | Self::TooLong { daemon, .. }
            | Self::Malformed { daemon, .. }
            | Self::Refused { daemon, .. } => Some(daemon),
            _ => None,
        }
    }
}
