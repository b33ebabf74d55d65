//! Opening a connection: `connect` bounded by the timeout, then the
//! listener's credentials checked before a single byte is sent.
//!
//! A Unix socket whose listener stopped accepting makes a non-blocking
//! `connect` fail with `EAGAIN` once its queue is full (a blocking one
//! would wait without end), so `EAGAIN` is retried until the deadline.
//! The process listening must run as root or as this user
//! (`SO_PEERCRED`): a daemon of anyone else could lie about registrations,
//! or collect them.

use std::path::Path;
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::time::Instant;

use crate::{DaemonRef, Error};

/// How often a full queue is tried again.
const RETRY: Duration = Duration::from_millis(5);

/// A connection to `socket` made within `timeout`, whose listener is root
/// or this user; and the listener's pid.
pub(crate) async fn connect(socket: &Path, timeout: Duration) -> Result<(UnixStream, i32), Error> {
    let deadline = Instant::now() + timeout;
    let full = || Error::ConnectTimeout {
        daemon: DaemonRef::find(socket, None),
        timeout,
    };
    let stream = loop {
        match tokio::time::timeout_at(deadline, UnixStream::connect(socket)).await {
            Ok(Ok(stream)) => break stream,
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(full());
                }
                tokio::time::sleep(RETRY).await;
            }
            Ok(Err(source)) => {
                return Err(Error::Connect {
                    socket: socket.to_path_buf(),
                    source,
                });
            }
            Err(_elapsed) => return Err(full()),
        }
    };
    let pid = check_listener(&stream, socket)?;
    tracing::debug!(socket = %socket.display(), listener_pid = pid, "connected to the daemon");
    Ok((stream, pid))
}

/// The listener's pid, if it runs as root or as this user.
fn check_listener(stream: &UnixStream, socket: &Path) -> Result<i32, Error> {
    let cred =
        rustix::net::sockopt::socket_peercred(stream).map_err(|errno| Error::PeerCredentials {
            socket: socket.to_path_buf(),
            source: errno.into(),
        })?;
    let me = rustix::process::geteuid();
    let pid = cred.pid.as_raw_nonzero().get();
    if cred.uid.is_root() || cred.uid == me {
        return Ok(pid);
    }
    tracing::debug!(socket = %socket.display(), listener_pid = pid, listener_uid = cred.uid.as_raw(), "refused: the socket's listener is neither root nor this user");
    Err(Error::Untrusted {
        socket: socket.to_path_buf(),
        pid,
        uid: cred.uid.as_raw(),
        own_uid: me.as_raw(),
    })
}
