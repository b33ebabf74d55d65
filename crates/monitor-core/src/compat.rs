//! The original tool's functions, for code ported from it: one global
//! monitor on its own thread and runtime, driven by blocking calls from any
//! thread.
//!
//! Call these from synchronous code. Inside async code, spawn a [`Monitor`]
//! in your own runtime and use its [`MonitorHandle`] instead (or use the
//! global monitor's handle, from [`get_monitor`], with its async methods).
//!
//! None of them panics inside a Tokio runtime. The ones that wait for the
//! monitor ([`track_process`], [`untrack_process`], [`stop_monitor`]) block
//! through `tokio::task::block_in_place` on a `multi_thread` runtime, and
//! on a `current_thread` runtime (where blocking would stall every task)
//! return [`Error::InsideRuntime`] naming the async call to use, before
//! they touch the global monitor. [`start_monitor`] and [`get_monitor`]
//! never wait on the monitor and work anywhere.

use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::blocking::block;
use crate::{Config, Error, Monitor, MonitorHandle, ProcessRef, Tracked};

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
///
/// Inside a `current_thread` Tokio runtime: [`Error::InsideRuntime`]
/// (see the module docs), and no monitor is started.
pub fn track_process(pid: i32) -> Result<Tracked, Error> {
    block(
        "track_process",
        "get_monitor() or Monitor::spawn, then MonitorHandle::track",
        || {
            let handle = match get_monitor() {
                Some(handle) => handle,
                None => start_monitor_with(Config::default())?,
            };
            handle.track_blocking(pid)
        },
    )
}

/// Untracks a process on the global monitor (a [`crate::ProcessId`], or a
/// bare pid; see [`ProcessRef`]).
///
/// Inside a `current_thread` Tokio runtime: [`Error::InsideRuntime`].
pub fn untrack_process(process: impl Into<ProcessRef>) -> Result<Tracked, Error> {
    let process = process.into();
    block(
        "untrack_process",
        "get_monitor(), then MonitorHandle::untrack",
        || {
            get_monitor()
                .ok_or(Error::MonitorGone)?
                .untrack_blocking(process)
        },
    )
}

/// Stops the global monitor and waits for its thread. Does nothing if it
/// is not running.
///
/// Inside a `current_thread` Tokio runtime: [`Error::InsideRuntime`], and
/// the monitor keeps running.
pub fn stop_monitor() -> Result<(), Error> {
    block(
        "stop_monitor",
        "get_monitor(), then MonitorHandle::shutdown",
        || {
            let Some(Global { handle, thread }) = global().take() else {
                return Ok(());
            };
            handle.shutdown_blocking()?;
            drop(handle);
            // The thread ends once the actor has stopped; a panic there was
            // already reported.
            let _ = thread.join();
            Ok(())
        },
    )
}
