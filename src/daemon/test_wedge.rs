//! A test-only wedge (debug builds only): with `PIDGUARD_TEST_WEDGE=1` in
//! its environment, the daemon wedges its service actor on SIGUSR2. The
//! actor then never answers again, while the rest of the daemon (accept
//! loop, `ping`) carries on: exactly the failure the watchdog is there to
//! catch, which `tests/daemon/systemd.rs` checks the pings stop for.
//! Release builds have no such hook.

use tokio::signal::unix::{SignalKind, signal};

use super::service::ServiceHandle;

/// Arms the wedge if the environment asks for it.
pub(crate) fn arm(service: &ServiceHandle) {
    if std::env::var_os("PIDGUARD_TEST_WEDGE").is_none() {
        return;
    }
    let mut usr2 = match signal(SignalKind::user_defined2()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "test wedge: no SIGUSR2 handler");
            return;
        }
    };
    let service = service.clone();
    tokio::spawn(async move {
        if usr2.recv().await.is_some() {
            service.wedge().await;
        }
    });
}
