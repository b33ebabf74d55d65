//! Fork and exit events from the kernel's process connector: one netlink
//! socket for the whole monitor.
//!
//! # Theory of operation
//!
//! The socket (`AF_NETLINK`, `NETLINK_CONNECTOR`) joins multicast group
//! `CN_IDX_PROC` and sends `PROC_CN_MCAST_LISTEN`; from then on the kernel
//! sends a message for every fork and exit on the machine, in order per
//! task, within microseconds. [`Connector::open`] waits for the kernel's
//! answer to `LISTEN`, so a refusal is an error naming its cause instead of
//! a socket that stays silent: binding needs `CAP_NET_ADMIN` (root), and
//! the kernel ignores listeners outside the initial user and pid
//! namespaces (their pids would be wrong). Since Linux 6.6 the socket then
//! asks for forks and exits only (execs are of no use to a unit, see
//! `wire::WANTED_EVENTS`); older kernels ignore that request and send
//! everything: execs are parsed, the other events skipped.
//!
//! The socket is non-blocking and registered with the reactor;
//! [`Connector::poll_event`] returns one event at a time and parses it in
//! place, in safe code over the received bytes (`wire`). Only datagrams
//! from the kernel (netlink port 0) are read. When the receive buffer
//! overflowed, `recv` fails with `ENOBUFS` once: events were lost, and that
//! is reported as [`ProcEvent::Overrun`], so the caller rescans.
//!
//! Filtering is the caller's (`lineage`): a machine forks hundreds of times
//! a second, and each event costs one `recvfrom`, a parse of a few bytes
//! and a hash lookup of its parent.

mod source;
mod wire;

#[cfg(test)]
mod tests;

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

#[cfg(test)]
pub(crate) use source::Opened;
pub(crate) use source::{EventSource, OpenEvents, connector};
use wire::{CN_IDX_PROC, MCAST_LISTEN, Message, WANTED_EVENTS};
pub(crate) use wire::{Exec, Exit, Fork};

use crate::sys_error::SysError;

/// What the connector reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProcEvent {
    /// A process or thread was created.
    Fork(Fork),
    /// A process ran `execve`.
    Exec(Exec),
    /// A thread (or, when it is the leader, a process) exited.
    Exit(Exit),
    /// The receive buffer overflowed and events were lost: membership
    /// learnt from events may miss processes; rescan.
    Overrun,
}

/// How to open the socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Receive buffer size in bytes. The kernel doubles it for its own
    /// bookkeeping; each event takes about a kilobyte of it. Root may
    /// exceed `net.core.rmem_max` (`SO_RCVBUFFORCE`); otherwise it caps.
    pub(crate) receive_buffer: usize,
    /// How long to wait for the kernel's answer to `LISTEN` (it comes in
    /// microseconds; none at all means another pid namespace).
    pub(crate) ack_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            // Enough for a burst of a few thousand forks while the actor is
            // busy; memory is used only while events wait.
            receive_buffer: 4 << 20,
            ack_timeout: Duration::from_secs(2),
        }
    }
}

/// Counters of what the socket received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Fork events returned.
    pub(crate) forks: u64,
    /// Exec events returned.
    pub(crate) execs: u64,
    /// Exit events returned.
    pub(crate) exits: u64,
    /// Other connector messages skipped (exec, comm, acks of others, ...).
    pub(crate) skipped: u64,
    /// Overruns (`ENOBUFS`) reported.
    pub(crate) overruns: u64,
    /// Datagrams dropped because they did not come from the kernel.
    pub(crate) foreign: u64,
    /// Messages that did not parse.
    pub(crate) malformed: u64,
}

/// `PROC_USER_INIT_INO`, `PROC_PID_INIT_INO`, `PROC_TIME_INIT_INO`: the
/// fixed inode numbers of the initial namespaces in `/proc/self/ns`.
const INIT_USER_NS: u64 = 0xEFFF_FFFD;
const INIT_PID_NS: u64 = 0xEFFF_FFFC;
const INIT_TIME_NS: u64 = 0xEFFF_FFFA;

/// Largest datagram kept: one event is under 100 bytes.
const BUFFER: usize = 8192;

/// The monitor's process connector socket.
pub(crate) struct Connector {
    fd: AsyncFd<OwnedFd>,
    buf: Box<[u8; BUFFER]>,
    /// Bytes of the datagram in `buf`, and where its next message starts.
    len: usize,
    next: Option<usize>,
    stats: Stats,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Opens the socket, subscribes, and waits for the kernel to confirm.
    /// Must run inside a Tokio runtime with I/O enabled.
    pub(crate) async fn open(options: Options) -> Result<Self, SysError> {
        check_namespaces()?;
        let socket = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::CONNECTOR),
        )
        .map_err(|e| SysError::call("socket(AF_NETLINK, NETLINK_CONNECTOR)", e.into()))?;
        if let Err(forced) =
            rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, options.receive_buffer)
        {
            // Without CAP_NET_ADMIN the plain option still works, capped.
            tracing::debug!(error = %forced, "SO_RCVBUFFORCE refused; using SO_RCVBUF");
            rustix::net::sockopt::set_socket_recv_buffer_size(&socket, options.receive_buffer)
                .map_err(|e| SysError::call("setsockopt(SO_RCVBUF)", e.into()))?;
        }
        rustix::net::bind(&socket, &SocketAddrNetlink::new(0, CN_IDX_PROC)).map_err(|e| {
            SysError::call(
                "bind to the process connector group (needs CAP_NET_ADMIN)",
                e.into(),
            )
        })?;
        // SAFETY: the `AsyncFd` owns the socket, so the descriptor stays
        // open and keeps its number for as long as it is registered.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|e| SysError::call("register the connector socket", e.into_parts().1))?;
        let mut connector = Self {
            fd,
            buf: Box::new([0; BUFFER]),
            len: 0,
            next: None,
            stats: Stats::default(),
        };
        connector.listen(options.ack_timeout).await?;
        Ok(connector)
    }

    /// Sends `LISTEN` tagged with a nonce and reads until the kernel's
    /// answer to exactly that request arrives (other listeners' answers and
    /// events are skipped), then narrows the subscription to forks and
    /// exits.
    async fn listen(&mut self, timeout: Duration) -> Result<(), SysError> {
        let nonce = nonce();
        self.send(&[MCAST_LISTEN], nonce, "send PROC_CN_MCAST_LISTEN")?;
        let wait = async {
            loop {
                match self.next_message().await? {
                    Some(Message::Ack { ack, err }) if ack == nonce.wrapping_add(1) => {
                        return Ok(err);
                    }
                    Some(_) => {}
                    // The answer may have been among the lost: ask again
                    // (a no-op since Linux 6.6; before, the kernel's count
                    // of listeners goes one higher than needed).
                    None => self.send(&[MCAST_LISTEN], nonce, "send PROC_CN_MCAST_LISTEN")?,
                }
            }
        };
        let err = match tokio::time::timeout(timeout, wait).await {
            Ok(result) => result?,
            Err(_elapsed) => {
                return Err(SysError::call(
                    "PROC_CN_MCAST_LISTEN",
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the kernel did not answer within {timeout:?} \
                             (it ignores listeners outside the initial user and pid namespaces)"
                        ),
                    ),
                ));
            }
        };
        if err != 0 {
            return Err(SysError::call(
                "PROC_CN_MCAST_LISTEN",
                io::Error::from_raw_os_error(err as i32),
            ));
        }
        // Linux 6.6 filters per socket; older kernels drop this request
        // (its length is not the one they know) and send everything.
        self.send(
            &[MCAST_LISTEN, WANTED_EVENTS],
            0,
            "send the fork and exit event filter",
        )
    }

    fn send(&self, payload: &[u32], ack: u32, op: &'static str) -> Result<(), SysError> {
        let request = wire::control(payload, ack, std::process::id());
        rustix::net::send(self.fd.get_ref(), &request, SendFlags::empty())
            .map(drop)
            .map_err(|e| SysError::call(op, e.into()))
    }

    /// Shrinks the receive buffer to the kernel's minimum (a few events),
    /// so a test can provoke an overrun.
    #[cfg(test)]
    pub(crate) fn shrink_receive_buffer(&self) {
        rustix::net::sockopt::set_socket_recv_buffer_size_force(self.fd.get_ref(), 0)
            .expect("SO_RCVBUFFORCE as root");
    }

    /// Counters so far.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }

    /// The next fork, exit or overrun; `Pending` (with `cx`'s waker
    /// registered) when the socket is drained. Errors are the socket
    /// failing, never a malformed or foreign message (those are counted).
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<ProcEvent, SysError>> {
        loop {
            match ready!(self.poll_message(cx))? {
                None => return Poll::Ready(Ok(ProcEvent::Overrun)),
                Some(message) => {
                    if let Some(event) = self.count(message) {
                        return Poll::Ready(Ok(event));
                    }
                }
            }
        }
    }

    /// [`Connector::poll_event`] as a future. Cancel-safe: an event is
    /// taken off the socket only when it is returned.
    #[cfg(test)]
    pub(crate) async fn next_event(&mut self) -> Result<ProcEvent, SysError> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    async fn next_message(&mut self) -> Result<Option<Message>, SysError> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    /// The next message of the current datagram, or of a new one.
    /// `Ok(None)`: an overrun.
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Message>, SysError>> {
        loop {
            if let Some(message) = self.parse_next() {
                return Poll::Ready(Ok(Some(message)));
            }
            let Self {
                fd,
                buf,
                len,
                next,
                stats,
            } = self;
            let mut guard = ready!(fd.poll_read_ready(cx))
                .map_err(|e| SysError::call("wait for the connector socket", e))?;
            match guard.try_io(|fd| receive(fd.get_ref(), buf, len, next, stats)) {
                // Drained: `try_io` cleared the readiness; poll again to
                // register the waker.
                Err(_would_block) => continue,
                Ok(Ok(Received::Datagram)) => {}
                Ok(Ok(Received::Overrun)) => return Poll::Ready(Ok(None)),
                Ok(Err(e)) => {
                    return Poll::Ready(Err(SysError::call("recvfrom(connector)", e)));
                }
            }
        }
    }

    /// The next event already queued, without waiting: `None` when the
    /// socket is empty now. It reads the socket directly, outside tokio's
    /// readiness and its cooperative budget (which could cut it short), so
    /// a caller that must see everything the kernel sent so far (before a
    /// unit is declared empty) can drain it from synchronous code. The
    /// reactor's readiness is left as it was: at worst the next
    /// [`Connector::poll_event`] finds the socket empty and waits again.
    pub(crate) fn try_event(&mut self) -> Option<Result<ProcEvent, SysError>> {
        loop {
            let message = match self.parse_next() {
                Some(message) => message,
                None => {
                    let Self {
                        fd,
                        buf,
                        len,
                        next,
                        stats,
                    } = self;
                    match receive(fd.get_ref(), buf, len, next, stats) {
                        Ok(Received::Datagram) => continue,
                        Ok(Received::Overrun) => return Some(Ok(ProcEvent::Overrun)),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                        Err(e) => return Some(Err(SysError::call("recvfrom(connector)", e))),
                    }
                }
            };
            if let Some(event) = self.count(message) {
                return Some(Ok(event));
            }
        }
    }

    /// Counts a message; the event it is, if it is one the caller wants.
    fn count(&mut self, message: Message) -> Option<ProcEvent> {
        match message {
            Message::Fork(fork) => {
                self.stats.forks += 1;
                Some(ProcEvent::Fork(fork))
            }
            Message::Exec(exec) => {
                self.stats.execs += 1;
                Some(ProcEvent::Exec(exec))
            }
            Message::Exit(exit) => {
                self.stats.exits += 1;
                Some(ProcEvent::Exit(exit))
            }
            _ => {
                self.stats.skipped += 1;
                None
            }
        }
    }

    /// The next message of the datagram in the buffer, if any is left.
    fn parse_next(&mut self) -> Option<Message> {
        while let Some(offset) = self.next.take() {
            match wire::parse_at(&self.buf[..self.len], offset) {
                Ok((message, next)) => {
                    self.next = next;
                    return Some(message);
                }
                Err(malformed) => {
                    // The rest of this datagram cannot be trusted.
                    self.stats.malformed += 1;
                    tracing::debug!(%malformed, "connector datagram skipped");
                }
            }
        }
        None
    }
}

/// What one `recvfrom` brought.
enum Received {
    /// A datagram to parse (now in the buffer), or one dropped (counted).
    Datagram,
    /// The receive buffer overflowed: events were lost.
    Overrun,
}

/// Receives one datagram into `buf` without waiting. `WouldBlock` when
/// the socket is empty; an interrupted call counts as a datagram dropped,
/// so the caller simply tries again.
fn receive(
    fd: &OwnedFd,
    buf: &mut [u8; BUFFER],
    buf_len: &mut usize,
    next: &mut Option<usize>,
    stats: &mut Stats,
) -> io::Result<Received> {
    match rustix::net::recvfrom(fd, &mut buf[..], RecvFlags::DONTWAIT) {
        Ok((len, full_len, from)) => {
            let kernel = from
                .and_then(|addr| SocketAddrNetlink::try_from(addr).ok())
                .is_some_and(|addr| addr.pid() == 0);
            if !kernel {
                // Only the kernel speaks for the connector; another
                // process's datagram is never believed.
                stats.foreign += 1;
            } else if full_len > len {
                stats.malformed += 1;
            } else {
                *buf_len = len;
                *next = Some(0);
            }
            Ok(Received::Datagram)
        }
        Err(e) if e == Errno::NOBUFS => {
            stats.overruns += 1;
            Ok(Received::Overrun)
        }
        Err(e) if e == Errno::INTR => Ok(Received::Datagram),
        Err(e) => Err(e.into()),
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        // Kernels before 6.8 count listeners by LISTEN/IGNORE, not by open
        // sockets: say goodbye so they stop generating events for nobody.
        const MCAST_IGNORE: u32 = 2;
        let _ = self.send(&[MCAST_IGNORE], 0, "send PROC_CN_MCAST_IGNORE");
    }
}

/// An `ack` tag no other listener is likely to use at the same moment.
fn nonce() -> u32 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (std::process::id() << 16) ^ (now.tv_nsec as u32) ^ (now.tv_sec as u32).rotate_left(8)
}

/// Fails with a clear cause outside the initial user or pid namespace,
/// where the kernel would silently ignore `LISTEN`, and in a time
/// namespace, where our `CLOCK_MONOTONIC` is not the kernel's and event
/// times would not compare with [`now_ns`]. Without a readable
/// `/proc/self/ns`, the missing answer to `LISTEN` says the first later.
fn check_namespaces() -> Result<(), SysError> {
    for (file, init, what) in [
        ("/proc/self/ns/user", INIT_USER_NS, "user"),
        ("/proc/self/ns/pid", INIT_PID_NS, "pid"),
        ("/proc/self/ns/time", INIT_TIME_NS, "time"),
    ] {
        let path = std::path::Path::new(file);
        if let Ok(meta) = std::fs::metadata(path)
            && meta.ino() != init
        {
            return Err(SysError::at(
                "check the namespace",
                path,
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "this process is not in the initial {what} namespace; \
                         the process connector reports only there"
                    ),
                ),
            ));
        }
    }
    Ok(())
}

/// Now, on the clock the kernel stamps events with (`CLOCK_MONOTONIC`,
/// `ktime_get_ns`): what `lineage` takes as the time from which a process
/// the caller pinned is known to hold its pid.
pub(crate) fn now_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

/// The clock tick of a fork event on the `/proc/<pid>/stat` start-time
/// scale: the event's `CLOCK_MONOTONIC` time plus the time spent
/// suspended (`CLOCK_BOOTTIME` minus `CLOCK_MONOTONIC`), in `USER_HZ`
/// ticks. A process whose stat start time is *later* than this is not the
/// one the event announced (it reused the pid after that one was reaped);
/// one at or before it is, unless the pid was reused within the same tick.
pub(crate) fn event_boot_ticks(timestamp_ns: u64) -> u64 {
    use rustix::time::{ClockId, clock_gettime};
    let nanos = |t: rustix::time::Timespec| t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128;
    let suspended =
        (nanos(clock_gettime(ClockId::Boottime)) - nanos(clock_gettime(ClockId::Monotonic))).max(0);
    let boot_ns = timestamp_ns as i128 + suspended;
    let ticks = boot_ns * i128::from(procfs::ticks_per_second()) / 1_000_000_000;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}
