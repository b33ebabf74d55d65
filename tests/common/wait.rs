//! Waiting without fixed sleeps: poll a condition, or the monitor's status,
//! every [`POLL`] until it holds, and panic naming what was awaited once
//! the deadline passes.

use std::time::{Duration, Instant};

use monitor_core::{MonitorHandle, Status};

/// How often the wait helpers poll.
pub(crate) const POLL: Duration = Duration::from_millis(5);

/// Generous bound for things that should take milliseconds.
pub(crate) const SOON: Duration = Duration::from_secs(10);

/// Polls `condition` every few milliseconds until it holds; panics naming
/// `what` after `timeout`. Returns how long it took.
pub(crate) async fn wait_until(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if condition() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_until`] for plain threads.
pub(crate) fn wait_until_blocking(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if condition() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Polls `status()` until `condition` holds; panics after `timeout`.
pub(crate) async fn wait_for_status(
    handle: &MonitorHandle,
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut(&Status) -> bool,
) -> Status {
    let start = Instant::now();
    loop {
        let status = tokio::time::timeout(timeout, handle.status())
            .await
            .unwrap_or_else(|_| panic!("status() hung for {timeout:?}"))
            .expect("status()");
        if condition(&status) {
            return status;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}; last status: {status:#?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the monitor has completed at least `more` scans beyond the
/// number it reports now.
pub(crate) async fn wait_for_more_scans(
    handle: &MonitorHandle,
    more: u64,
    timeout: Duration,
) -> Status {
    let base = handle.status().await.expect("status()").counters.scans;
    wait_for_status(
        handle,
        timeout,
        &format!("{more} more scans after {base}"),
        |s| s.counters.scans >= base + more,
    )
    .await
}
