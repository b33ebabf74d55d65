//! Starting a monitor for a test: tracing set up, the monitor spawned, and
//! an [`EventLog`] recording its events from the start.

use std::time::Duration;

use monitor_core::{Monitor, MonitorBuilder, MonitorHandle};

use super::events::EventLog;

/// The scan interval of [`fast_monitor`].
pub(crate) const FAST_SCAN: Duration = Duration::from_millis(50);

/// A monitor scanning every [`FAST_SCAN`] with this grace period, its
/// handle, and a log of its events from the start. Tracing is set up too.
pub(crate) async fn fast_monitor(grace: Duration) -> (Monitor, MonitorHandle, EventLog) {
    spawn_monitor(Monitor::builder().check_interval(FAST_SCAN).grace(grace)).await
}

/// The monitor `builder` configures, its handle, and a log of its events
/// from the start. Tracing is set up too.
pub(crate) async fn spawn_monitor(builder: MonitorBuilder) -> (Monitor, MonitorHandle, EventLog) {
    init_tracing();
    let monitor = builder.spawn().expect("monitor starts");
    let handle = monitor.handle();
    let log = EventLog::subscribe(&handle).await;
    (monitor, handle, log)
}

/// Logs the library's tracing output when `RUST_LOG` is set.
pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The negative control of an escape test, where units are off: the
/// root's `terminate` ends the root alone. Waits for the root's exit,
/// then checks that `escaped` still runs and that nothing is tracked.
pub(crate) async fn terminate_root_alone(
    handle: &MonitorHandle,
    log: &mut EventLog,
    root: &super::Proc,
    escaped: &super::Proc,
    case: &str,
) {
    handle
        .terminate(root.pid)
        .await
        .expect("terminate the root");
    let id = root.id();
    log.wait_for(
        super::SOON,
        "the root's exit",
        |e| matches!(e, monitor_core::Event::Exited { id: exited, .. } if *exited == id),
    )
    .await;
    assert!(escaped.is_running(), "{case}: the control did not escape");
    assert_eq!(handle.status().await.expect("status").tracked_count, 0);
}
