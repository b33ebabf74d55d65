//! The SIGCHLD forwarder: turns the process-wide signal into "sweep the
//! owned set" wake-ups for the actor.
//!
//! SIGCHLD is coalesced by the kernel and by Tokio, so it is a trigger,
//! never a count: the forwarder pushes into a capacity-1 channel with
//! `try_send`, and a full channel means a sweep is already pending.
//!
//! Sweeps are spaced by what they cost. Every `waitid(P_ALL)` that finds
//! nothing walks the kernel's whole list of the process's children, so a
//! sweep's last call costs about 2 us with 100 children running, 11 us
//! with 1,000 and 1.5 ms with 10,000 (measured on a 2-core VM: the walk
//! stops fitting in the caches); reaping a zombie near the head of that
//! list costs little. After a sweep whose empty walk took `c` (the actor
//! times that call alone: averaged over a sweep's calls, a sweep that
//! reaped hundreds looked cheap however long its walk, and in a burst the
//! sweeps ran back to back), the next SIGCHLD-triggered sweep starts no
//! sooner than [`DUTY_FACTOR`] times `c` after the previous one, so
//! walking for nothing takes at most about a ninth of the time in a burst
//! of thousands of exits, and each sweep reaps many children instead of
//! one. A spacing shorter than Tokio's timer resolution (1 ms) is skipped:
//! the sweep runs at once, so an exit among a few hundred children is
//! reaped within microseconds, not at the next timer tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// The next sweep waits this many times as long as the last one took.
const DUTY_FACTOR: u32 = 8;

/// Spacings shorter than this are not worth a timer: Tokio's timer fires
/// on millisecond ticks, so it would add up to a millisecond of lag.
const SHORTEST_SPACING: Duration = Duration::from_millis(1);

/// The longest wait between two sweeps, whatever the last one cost.
const LONGEST_SPACING: Duration = Duration::from_millis(10);

/// Registers the SIGCHLD listener. Must run before the first sweep: a
/// listener never sees signals sent before it existed.
pub(crate) fn listen() -> Result<Signal, Error> {
    signal(SignalKind::child()).map_err(|source| Error::Os {
        syscall: "sigaction(SIGCHLD)",
        pid: std::process::id() as i32,
        source,
    })
}

/// The wait between two sweeps after one that took `cost`.
fn spacing(cost: Duration) -> Duration {
    let spacing = cost.saturating_mul(DUTY_FACTOR);
    if spacing < SHORTEST_SPACING {
        Duration::ZERO
    } else {
        spacing.min(LONGEST_SPACING)
    }
}

/// Forwards each SIGCHLD as one pending sweep; `cost` holds what the
/// actor's last sweep published (its empty walk, in nanoseconds).
pub(crate) async fn forward(
    mut sigchld: Signal,
    to_actor: mpsc::Sender<()>,
    cost: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    // The first sweep, for children that exited before the listener existed.
    let _ = to_actor.try_send(());
    let mut last = Instant::now();
    while let Some(Some(())) = cancel.run_until_cancelled(sigchld.recv()).await {
        let wait = spacing(Duration::from_nanos(cost.load(Ordering::Relaxed)));
        if !wait.is_zero() {
            // Signals meanwhile are kept (coalesced) by the listener; the
            // sweep after the wait sees every exit they stand for.
            let spaced = tokio::time::sleep_until(last + wait);
            if cancel.run_until_cancelled(spaced).await.is_none() {
                break;
            }
        }
        // Full: a sweep is already pending and will see this exit too.
        let _ = to_actor.try_send(());
        last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheap_sweeps_are_not_spaced_and_costly_ones_are_bounded() {
        assert_eq!(spacing(Duration::from_micros(2)), Duration::ZERO);
        assert_eq!(spacing(Duration::from_micros(100)), Duration::ZERO);
        assert_eq!(
            spacing(Duration::from_micros(500)),
            Duration::from_millis(4)
        );
        assert_eq!(spacing(Duration::from_millis(5)), LONGEST_SPACING);
    }
}
