//! The monitor's tasks, each watched: a task that panics, or ends while the
//! monitor is meant to run, is logged as an error and stops the whole
//! monitor. Its handles then fail with [`crate::Error::MonitorGone`] and
//! its cancellation token is cancelled, so an embedding program (or the
//! daemon) sees the failure instead of a monitor that has silently gone
//! quiet while still looking alive.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Spawns `task` on the runtime and a watcher for it on `tasks`.
///
/// The watcher awaits the task's `JoinHandle`: a panic surfaces there as an
/// error (Tokio caught it), and a return before `cancel` fired means the
/// task gave up on its own. Either way the watcher logs it and cancels the
/// monitor, which ends the other tasks too.
pub(crate) fn spawn_watched<F>(
    tasks: &TaskTracker,
    name: &'static str,
    cancel: &CancellationToken,
    task: F,
) where
    F: Future<Output = ()> + Send + 'static,
{
    let join = tokio::spawn(task);
    let cancel = cancel.clone();
    tasks.spawn(async move {
        match join.await {
            // An orderly stop: shutdown, the caller's token, or (for the
            // actor) the last handle dropped, which cancels too.
            Ok(()) if cancel.is_cancelled() => {}
            Ok(()) => {
                tracing::error!(
                    task = name,
                    "a monitor task ended unexpectedly; the monitor stops"
                );
            }
            Err(error) => {
                tracing::error!(task = name, %error, "a monitor task died; the monitor stops");
            }
        }
        cancel.cancel();
    });
}
