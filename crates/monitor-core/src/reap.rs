//! The SIGCHLD forwarder: turns the process-wide signal into "sweep the
//! owned set" wake-ups for the actor.
//!
//! SIGCHLD is coalesced by the kernel and by Tokio, so it is a trigger,
//! never a count: the forwarder pushes into a capacity-1 channel with
//! `try_send`, and a full channel means a sweep is already pending.
//!
//! Sweeps are also spaced: the first SIGCHLD after a quiet spell sweeps at
//! once, and further ones at most every [`SWEEP_SPACING`]. In a burst of
//! thousands of exits, each sweep then reaps many children instead of one,
//! and fewer sweeps walk the kernel's list of still-running children
//! (every `waitid` that finds nothing walks all of them).

use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// The shortest time between two sweeps triggered by SIGCHLD.
const SWEEP_SPACING: Duration = Duration::from_millis(1);

/// Registers the SIGCHLD listener. Must run before the first sweep: a
/// listener never sees signals sent before it existed.
pub(crate) fn listen() -> Result<Signal, Error> {
    signal(SignalKind::child()).map_err(|source| Error::Os {
        syscall: "sigaction(SIGCHLD)",
        pid: std::process::id() as i32,
        source,
    })
}

/// Forwards each SIGCHLD as one pending sweep.
pub(crate) async fn forward(
    mut sigchld: Signal,
    to_actor: mpsc::Sender<()>,
    cancel: CancellationToken,
) {
    // The first sweep, for children that exited before the listener existed.
    let _ = to_actor.try_send(());
    while let Some(Some(())) = cancel.run_until_cancelled(sigchld.recv()).await {
        // Full: a sweep is already pending and will see this exit too.
        let _ = to_actor.try_send(());
        // Signals meanwhile are kept (coalesced) by the listener, so the
        // next `recv` returns at once if any came.
        let spacing = tokio::time::sleep(SWEEP_SPACING);
        if cancel.run_until_cancelled(spacing).await.is_none() {
            break;
        }
    }
}
