//! `cgroup.events` (`populated`, `frozen`) read on change, never polled.
//!
//! The kernel marks the file with `POLLPRI` when a value changes (at most
//! every 10 ms per file; a change inside that window is delivered at its
//! end, not lost). Reading the file through the same descriptor resets the
//! mark. So a watch registers the descriptor with the reactor for
//! [`Interest::PRIORITY`], and every check arms the wake-up *first* and
//! then reads: a change that lands between the two shows in the read and
//! wakes once more, harmlessly; none is missed.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::Leaf;
use crate::sys_error::SysError;

/// What `cgroup.events` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Events {
    /// Some process is in the leaf (zombies do not count: a process leaves
    /// its cgroup when it exits, before it is reaped).
    pub(crate) populated: bool,
    /// Every process in the leaf is frozen (`cgroup.freeze` took effect).
    pub(crate) frozen: bool,
}

impl Events {
    /// Parses the file's `key value` lines; unknown keys (a later kernel's)
    /// are ignored.
    pub(crate) fn parse(text: &str) -> io::Result<Self> {
        let mut events = Self::default();
        let mut seen_populated = false;
        for line in text.lines() {
            let mut words = line.split_ascii_whitespace();
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let flag = match value {
                "0" => false,
                "1" => true,
                _ => continue,
            };
            match key {
                "populated" => {
                    events.populated = flag;
                    seen_populated = true;
                }
                "frozen" => events.frozen = flag,
                _ => {}
            }
        }
        if seen_populated {
            Ok(events)
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no `populated` line in {text:?}"),
            ))
        }
    }
}

/// Longest `cgroup.events` text: two short lines today; room for more.
const EVENTS_MAX: usize = 256;

/// Reads `cgroup.events` from its start through an open descriptor (which
/// also resets the descriptor's change mark).
fn read_events(file: &File, path: &Path) -> Result<Events, SysError> {
    let mut buf = [0u8; EVENTS_MAX];
    let len = file
        .read_at(&mut buf, 0)
        .map_err(SysError::on("read", path))?;
    let text = String::from_utf8_lossy(&buf[..len]);
    Events::parse(&text).map_err(SysError::on("parse", path))
}

fn open_registered(path: &Path) -> Result<AsyncFd<File>, SysError> {
    let file = File::open(path).map_err(SysError::on("open", path))?;
    // SAFETY: the `AsyncFd` owns the file, so the descriptor stays open and
    // keeps its number for as long as it is registered.
    unsafe { AsyncFd::register_with_interest(file, Interest::PRIORITY) }
        .map_err(|e| SysError::at("register with the reactor", path, e.into_parts().1))
}

impl Leaf {
    /// Reads `cgroup.events` once.
    pub(crate) fn events(&self) -> Result<Events, SysError> {
        let path = self.file("cgroup.events");
        let file = File::open(&path).map_err(SysError::on("open", &path))?;
        read_events(&file, &path)
    }

    /// Waits until `until` holds for `cgroup.events`, at most `timeout`.
    /// Returns the last state read: the first that satisfied `until`, or
    /// the one at the deadline (the caller tests `until` again).
    pub(crate) async fn wait_events(
        &self,
        timeout: Duration,
        until: impl Fn(&Events) -> bool,
    ) -> Result<Events, SysError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let path = self.file("cgroup.events");
        let fd = open_registered(&path)?;
        loop {
            // Read after registering: a change from here on sets the
            // readiness even before `ready` is awaited.
            let events = read_events(fd.get_ref(), &path)?;
            if until(&events) {
                return Ok(events);
            }
            match tokio::time::timeout_at(deadline, fd.ready(Interest::PRIORITY)).await {
                Err(_elapsed) => return read_events(fd.get_ref(), &path),
                Ok(Ok(mut guard)) => guard.clear_ready(),
                Ok(Err(e)) => return Err(SysError::at("wait for a change of", &path, e)),
            }
        }
    }

    /// A watch of this leaf's `cgroup.events` that sends `key` on `ready`
    /// whenever the file changes. See [`EventsWatch::check`].
    pub(crate) fn watch<K>(
        &self,
        key: K,
        ready: &mpsc::UnboundedSender<K>,
    ) -> Result<EventsWatch, SysError>
    where
        K: Clone + Send + Sync + 'static,
    {
        let path = self.file("cgroup.events");
        let fd = Arc::new(open_registered(&path)?);
        let waker = Waker::from(Arc::new(KeyWaker {
            key,
            ready: ready.clone(),
        }));
        Ok(EventsWatch {
            fd,
            pending: None,
            waker,
            path,
        })
    }
}

/// Sends its key when woken. Unbounded because a waker must never block;
/// a watch is re-armed only by its owner's `check`, so it queues at most
/// one key per check.
struct KeyWaker<K> {
    key: K,
    ready: mpsc::UnboundedSender<K>,
}

impl<K: Clone + Send + Sync + 'static> Wake for KeyWaker<K> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The receiver is gone when this fails; nobody is left to wake.
        let _ = self.ready.send(self.key.clone());
    }
}

/// The wait for the next `POLLPRI`, kept alive between checks: tokio
/// registers a waiter only while such a future exists.
type Armed = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// One leaf's `cgroup.events`, registered with the reactor, and the waker
/// that sends the owner's key. No task, no polling: a change costs one
/// key on the channel and one read.
pub(crate) struct EventsWatch {
    fd: Arc<AsyncFd<File>>,
    pending: Option<Armed>,
    waker: Waker,
    path: PathBuf,
}

impl std::fmt::Debug for EventsWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsWatch")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EventsWatch {
    /// Arms the watch and returns the current state. Call it once after
    /// [`Leaf::watch`] (the leaf may have emptied before the watch existed)
    /// and again whenever the key arrives; a key with no change in the
    /// state is a harmless repeat.
    pub(crate) fn check(&mut self) -> Result<Events, SysError> {
        let mut cx = Context::from_waker(&self.waker);
        loop {
            let fd = Arc::clone(&self.fd);
            let armed = self.pending.get_or_insert_with(|| {
                Box::pin(async move {
                    let mut guard = fd.ready(Interest::PRIORITY).await?;
                    // Cleared before the read below, so a change after the
                    // read raises it again.
                    guard.clear_ready();
                    Ok(())
                })
            });
            match armed.as_mut().poll(&mut cx) {
                // A change was pending: consume it and arm again.
                Poll::Ready(result) => {
                    self.pending = None;
                    result.map_err(|e| SysError::at("wait for a change of", &self.path, e))?;
                }
                Poll::Pending => break,
            }
        }
        read_events(self.fd.get_ref(), &self.path)
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn parses_the_kernel_format() {
        assert_eq!(
            Events::parse("populated 1\nfrozen 0\n").expect("valid"),
            Events {
                populated: true,
                frozen: false
            }
        );
        assert_eq!(
            Events::parse("populated 0\nfrozen 1\nfuture 7\n").expect("valid"),
            Events {
                populated: false,
                frozen: true
            }
        );
        // Before Linux 5.2 there is no `frozen` line.
        assert_eq!(
            Events::parse("populated 1\n").expect("valid"),
            Events {
                populated: true,
                frozen: false
            }
        );
    }

    #[test]
    fn text_without_populated_is_an_error_naming_it() {
        let error = Events::parse("frozen 1\n").expect_err("no populated line");
        assert!(error.to_string().contains("populated"), "{error}");
    }
}
