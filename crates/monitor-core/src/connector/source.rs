//! The seam between the actor and the process connector: where fork
//! events come from, and the clocks they are compared with. The connector
//! in production; a scripted source in the paused-time tests (like the
//! `Os` seam).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{Connector, Options, ProcEvent};
use crate::sys_error::SysError;

/// A stream of process events and the clocks to judge them by.
pub(crate) trait EventSource: Send + 'static {
    /// The next event; `Pending` (with `cx`'s waker registered) when none
    /// is queued. An error is the source failing for good.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<ProcEvent, SysError>>;

    /// The next event already queued, without waiting and without a
    /// waker; `None` when none is queued now.
    fn try_event(&mut self) -> Option<Result<ProcEvent, SysError>>;

    /// Now, on the clock events are stamped with: a process pinned before
    /// this is known to hold its pid from then on.
    fn now_ns(&self) -> u64;

    /// An event's time on the `/proc/<pid>/stat` start-time scale: a
    /// process that started later than its supposed fork event is another
    /// one that reused the pid.
    fn start_ticks(&self, timestamp_ns: u64) -> u64;
}

impl EventSource for Connector {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<ProcEvent, SysError>> {
        Connector::poll_event(self, cx)
    }

    fn try_event(&mut self) -> Option<Result<ProcEvent, SysError>> {
        Connector::try_event(self)
    }

    fn now_ns(&self) -> u64 {
        super::now_ns()
    }

    fn start_ticks(&self, timestamp_ns: u64) -> u64 {
        super::event_boot_ticks(timestamp_ns)
    }
}

/// What opening a source yields.
pub(crate) type Opened = Result<Box<dyn EventSource>, SysError>;

/// Opens the monitor's source, once, when the first unit wants it.
pub(crate) type OpenEvents =
    Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Opened> + Send>> + Send>;

/// How long the actor waits for the kernel's answer to `LISTEN`. The
/// answer is queued by the time the request's `send` returns (the
/// connector's callback runs in the sender's context), so the whole open
/// takes microseconds as root in the initial namespaces, and every refusal
/// known is immediate too (`bind` without `CAP_NET_ADMIN`, the namespace
/// check). This bounds the stall of the actor, which opens the socket
/// between two commands, for a kernel that stays silent some other way.
const ACK_TIMEOUT: Duration = Duration::from_millis(250);

/// The process connector as the monitor's source.
pub(crate) fn connector() -> OpenEvents {
    Box::new(|| {
        Box::pin(async {
            let options = Options {
                ack_timeout: ACK_TIMEOUT,
                ..Options::default()
            };
            Connector::open(options)
                .await
                .map(|connector| Box::new(connector) as Box<dyn EventSource>)
        })
    })
}
