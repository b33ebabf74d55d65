//! The compat functions called from async code never panic (Tokio's
//! blocking calls would, with "Cannot block the current thread from within
//! a runtime"):
//!
//! - on a `current_thread` runtime, `track_process`, `untrack_process` and
//!   `stop_monitor` return `Error::InsideRuntime` naming the async call to
//!   use, before touching the global monitor (none is started, a running
//!   one keeps running);
//! - on a `multi_thread` runtime they work, from the runtime's own thread
//!   and from a task on a worker.
//!
//! A binary of its own: the monitor is global to the process, and this is
//! its one test.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Procs, SOON};
use monitor_core::{
    Error, get_monitor, start_monitor, stop_monitor, track_process, untrack_process,
};

fn assert_inside_runtime<T: std::fmt::Debug>(result: Result<T, Error>, expected_call: &str) {
    match result {
        Err(Error::InsideRuntime { call, instead }) => {
            assert_eq!(call, expected_call);
            assert!(instead.contains("MonitorHandle::"), "{instead}");
            let message = Error::InsideRuntime { call, instead }.to_string();
            assert!(message.contains(expected_call), "{message}");
            assert!(message.contains(instead), "{message}");
        }
        other => panic!("{expected_call}: expected InsideRuntime, got {other:?}"),
    }
}

#[test]
fn compat_functions_never_panic_inside_a_runtime() {
    common::init_tracing();
    let mut procs = Procs::new();
    let sleep = procs.sleep("300");

    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    current.block_on(async {
        assert_inside_runtime(track_process(sleep.pid), "track_process");
        assert!(get_monitor().is_none(), "a refused track started a monitor");
        assert_inside_runtime(untrack_process(sleep.pid), "untrack_process");
        // Starting does not wait on the monitor: it works anywhere.
        start_monitor(Duration::from_millis(100), true).unwrap();
        assert_inside_runtime(stop_monitor(), "stop_monitor");
        let handle = get_monitor().expect("a refused stop leaves the monitor running");
        // The async handle is the way in from here.
        let tracked = handle.track(sleep.pid).await.unwrap();
        assert_eq!(tracked.id, sleep.id());
        assert_eq!(handle.untrack(sleep.id()).await.unwrap().id, sleep.id());
    });
    drop(current);

    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    multi.block_on(async {
        // From the runtime's own thread (inside `block_on`).
        assert_eq!(track_process(sleep.pid).unwrap().id, sleep.id());
        assert_eq!(untrack_process(sleep.id()).unwrap().id, sleep.id());
        // From a task on the one worker thread.
        let pid = sleep.pid;
        let on_worker = tokio::spawn(async move {
            let tracked = track_process(pid)?;
            untrack_process(tracked.id)?;
            stop_monitor()
        });
        tokio::time::timeout(SOON, on_worker)
            .await
            .expect("the compat calls on a worker hung")
            .unwrap()
            .unwrap();
    });
    assert!(
        get_monitor().is_none(),
        "stop_monitor on a worker stopped it"
    );
    assert!(sleep.is_running(), "untracked processes are left alone");
}
