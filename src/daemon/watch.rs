//! Parent watches: one task per recorded parent, waiting for its pidfd to
//! become readable (the parent exited), which makes every process
//! registered under it an orphan at once. The monitor's interval scan stays
//! the safety net for anything a watch cannot see.
//!
//! A watch only forwards the parent's identity to the service; it never
//! acts itself.

use std::os::fd::OwnedFd;

use monitor_core::ProcessId;
use rustix::process::{Pid, PidfdFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::access;

/// Starts watching `parent`; its identity is sent on `died` when it exits
/// (at once if it is already gone).
pub(crate) fn spawn(parent: ProcessId, died: mpsc::Sender<ProcessId>) -> JoinHandle<()> {
    tokio::spawn(async move {
        match open(parent) {
            Opened::Watching(fd) => {
                // Readable means the process has exited; an error means the
                // fd is unusable, and the scan will catch the orphan.
                if let Err(error) = fd.readable().await {
                    tracing::warn!(parent = %parent, %error, "parent watch failed; the scan will notice");
                    return;
                }
            }
            Opened::Gone => {}
            Opened::Unavailable(error) => {
                tracing::warn!(parent = %parent, %error, "cannot watch parent; the scan will notice");
                return;
            }
        }
        // The service may be shutting down; then nothing needs to happen.
        let _ = died.send(parent).await;
    })
}

enum Opened {
    Watching(AsyncFd<OwnedFd>),
    Gone,
    Unavailable(std::io::Error),
}

/// Opens a pidfd for `parent` first, then checks its start time: the
/// pidfd pins the process, the check proves it is the recorded one.
fn open(parent: ProcessId) -> Opened {
    let Some(pid) = Pid::from_raw(parent.pid) else {
        return Opened::Gone;
    };
    let fd = match rustix::process::pidfd_open(pid, PidfdFlags::NONBLOCK) {
        Ok(fd) => fd,
        Err(errno) if errno == rustix::io::Errno::SRCH => return Opened::Gone,
        Err(errno) => return Opened::Unavailable(errno.into()),
    };
    match access::start_time(parent.pid) {
        Ok(start) if start == parent.start_time => {}
        // Another process has the pid now, or it vanished: ours is gone.
        _ => return Opened::Gone,
    }
    // SAFETY: the AsyncFd takes ownership of the OwnedFd, which stays open
    // (and keeps its raw fd) for as long as the registration exists.
    match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
        Ok(fd) => Opened::Watching(fd),
        Err(error) => Opened::Unavailable(error.into_parts().1),
    }
}
