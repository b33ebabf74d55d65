//! Exit notification through pidfd readiness, without a task per process.
//!
//! A pidfd becomes readable when its process exits. Each watched pidfd is
//! registered with Tokio's reactor as an `AsyncFd`, and polled with a waker
//! of its own that only names it: when the reactor fires that waker, the
//! name goes into one channel the actor selects over, and the actor polls
//! just that fd. So a wake-up costs the actor work for the processes that
//! changed, never for every tracked one, and a watch is one registration
//! (no task, no future, no extra descriptor). Dropping a [`Watch`]
//! deregisters it.
//!
//! Readiness is a hint: a ptraced process can wake its pidfd without
//! exiting. The actor confirms every wake-up (a reap attempt for an owned
//! child, the pinned stat file otherwise) and re-arms the watch when the
//! process still runs.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::ProcessId;
use crate::os::ProcHandle;

/// What a wake-up is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum WatchKey {
    /// A tracked process may have exited.
    Exit(ProcessId),
    /// A recorded parent may have exited: its tracked children are orphans.
    Parent(ProcessId),
    /// A unit's cgroup changed (`cgroup.events`): perhaps it emptied.
    Unit(ProcessId),
}

/// Wakes the actor with a key. The channel is unbounded because a waker
/// must never block; it holds at most one key per armed watch, since a
/// watch fires once and is only re-armed by the actor.
struct KeyWaker {
    key: WatchKey,
    ready: mpsc::UnboundedSender<WatchKey>,
}

impl Wake for KeyWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The actor is gone when this fails; nothing is left to wake.
        let _ = self.ready.send(self.key);
    }
}

/// The pidfd of a pinned process, lent to the reactor. The `Arc` keeps the
/// descriptor open for as long as the registration exists.
struct Pidfd(Arc<ProcHandle>);

impl AsRawFd for Pidfd {
    fn as_raw_fd(&self) -> RawFd {
        // Only built for handles that have a pidfd (see `Watch::new`).
        self.0.pidfd_raw().unwrap_or(-1)
    }
}

/// One registered pidfd and the waker that names it.
pub(crate) struct Watch {
    fd: AsyncFd<Pidfd>,
    waker: Waker,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("fd", &self.fd.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// Registers the handle's pidfd and arms it. `Ok(None)`: the handle has
    /// no pidfd (the scan covers it). An error (e.g. `ENOSPC` from the
    /// epoll watch limit) also leaves the process to the scan.
    pub(crate) fn new(
        handle: &Arc<ProcHandle>,
        key: WatchKey,
        ready: &mpsc::UnboundedSender<WatchKey>,
    ) -> io::Result<Option<Self>> {
        if handle.pidfd_raw().is_none() {
            return Ok(None);
        }
        // SAFETY: the descriptor belongs to the `ProcHandle` the `Pidfd`
        // holds an `Arc` of, so it stays open (and keeps its number) for as
        // long as the `AsyncFd` exists, which deregisters it on drop.
        let fd = unsafe {
            AsyncFd::register_with_interest(Pidfd(Arc::clone(handle)), Interest::READABLE)
        }
        .map_err(|error| error.into_parts().1)?;
        let waker = Waker::from(Arc::new(KeyWaker {
            key,
            ready: ready.clone(),
        }));
        Ok(Some(Self { fd, waker }))
    }

    /// Whether the pidfd reads as exited. When it does not, the watch is
    /// armed: its key arrives once it does.
    pub(crate) fn fired(&self) -> bool {
        let mut cx = Context::from_waker(&self.waker);
        match self.fd.poll_read_ready(&mut cx) {
            Poll::Ready(Ok(_)) => true,
            // The reactor is shutting down; the scan is the safety net.
            Poll::Ready(Err(_)) | Poll::Pending => false,
        }
    }

    /// A wake-up that was not an exit: forget it and arm again.
    pub(crate) fn rearm(&self) {
        let mut cx = Context::from_waker(&self.waker);
        if let Poll::Ready(Ok(mut guard)) = self.fd.poll_read_ready(&mut cx) {
            guard.clear_ready();
        }
        // Registers the waker for the next edge.
        let _ = self.fired();
    }
}
