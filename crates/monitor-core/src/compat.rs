//! The original tool's functions, for code ported from it: one global
//! monitor on its own thread and runtime, driven by blocking calls from any
//! thread.
//!
//! Call these from synchronous code. Inside async code, spawn a [`Monitor`]
//! in your own runtime and use its [`MonitorHandle`] instead.

use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Config, Error, Monitor, MonitorHandle, Tracked};

struct Global {
    handle: MonitorHandle,
    thread: JoinHandle<()>,
}

/// The one global monitor, if started.
static GLOBAL: Mutex<Option<Global>> = Mutex::new(None);

fn global() -> std::sync::MutexGuard<'static, Option<Global>> {
    // A panic while holding the lock leaves the Option itself intact.
    GLOBAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the global monitor with this interval (the original's
/// `start_monitor(check_interval=60, enabled=True)`), or returns the one
/// already running, whatever its settings.
pub fn start_monitor(check_interval: Duration, enabled: bool) -> Result<MonitorHandle, Error> {
    let config = Config {
        check_interval,
        enabled,
        ..Config::default()
    };
    start_monitor_with(config)
}

/// Starts the global monitor from a full config, or returns the running one.
pub fn start_monitor_with(config: Config) -> Result<MonitorHandle, Error> {
    let mut global = global();
    if let Some(running) = global.as_ref().filter(|g| !g.handle.is_closed()) {
        return Ok(running.handle.clone());
    }
    config.validate()?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("pidguard-monitor".into())
        .spawn(move || run_global(config, ready_tx))
        .map_err(|source| Error::Os {
            syscall: "spawn monitor thread",
            pid: std::process::id() as i32,
            source,
        })?;
    let handle = ready_rx.recv().map_err(|_| Error::MonitorGone)??;
    *global = Some(Global {
        handle: handle.clone(),
        thread,
    });
    Ok(handle)
}

fn run_global(config: Config, ready: std::sync::mpsc::Sender<Result<MonitorHandle, Error>>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(source) => {
            let _ = ready.send(Err(Error::Os {
                syscall: "build Tokio runtime",
                pid: std::process::id() as i32,
                source,
            }));
            return;
        }
    };
    runtime.block_on(async move {
        let monitor = match Monitor::spawn(config) {
            Ok(monitor) => monitor,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        // If the starter is gone, nobody holds a handle and join returns at once.
        let _ = ready.send(Ok(monitor.handle()));
        monitor.join().await;
    });
}

/// The global monitor's handle, if it is running.
pub fn get_monitor() -> Option<MonitorHandle> {
    global()
        .as_ref()
        .filter(|g| !g.handle.is_closed())
        .map(|g| g.handle.clone())
}

/// Tracks `pid` on the global monitor, starting it with the defaults if it
/// is not running (as the original tool starts its monitor on first use).
pub fn track_process(pid: i32) -> Result<Tracked, Error> {
    let handle = match get_monitor() {
        Some(handle) => handle,
        None => start_monitor_with(Config::default())?,
    };
    handle.track_blocking(pid)
}

/// Untracks `pid` on the global monitor.
pub fn untrack_process(pid: i32) -> Result<Tracked, Error> {
    get_monitor()
        .ok_or(Error::MonitorGone)?
        .untrack_blocking(pid)
}

/// Stops the global monitor and waits for its thread. Does nothing if it
/// is not running.
pub fn stop_monitor() -> Result<(), Error> {
    let Some(Global { handle, thread }) = global().take() else {
        return Ok(());
    };
    handle.shutdown_blocking()?;
    drop(handle);
    // The thread ends once the actor has stopped; a panic there was already reported.
    let _ = thread.join();
    Ok(())
}
