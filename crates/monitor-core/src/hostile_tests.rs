//! Paused-time tests of what hostile or broken input does to the monitor:
//! durations out of range, thread ids, a task that dies, and a deadline
//! queue left empty for years.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::util::SubscriberInitExt;

use crate::fake::FakeProc;
use crate::harness::{CHILD, Harness, PARENT, config, is_orphaned, stubborn};
use crate::{Config, Error, Event, Signal, TrackOptions};

const THREAD: i32 = 202;
const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A grace period past its range is refused when tracked, naming the key
/// and the limit, and nothing is tracked.
#[tokio::test(start_paused = true)]
async fn a_grace_beyond_its_range_is_refused_at_track() {
    let h = Harness::start(config()).await;
    h.os.spawn(PARENT, 1);
    h.os.spawn(CHILD, PARENT);
    let options = TrackOptions::new().grace(3 * YEAR);
    let error = h
        .handle
        .track_with(CHILD, options)
        .await
        .expect_err("three years of grace");
    assert!(
        matches!(error, Error::OutOfRange { key: "grace", .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("1h"), "{error}");
    let status = h.handle.status().await.expect("status");
    assert_eq!(status.tracked_count, 0);
}

/// A thread id is refused by name, as the tracked pid and as a parent.
#[tokio::test(start_paused = true)]
async fn thread_ids_are_refused_as_processes_and_as_parents() {
    let h = Harness::start(config()).await;
    h.os.spawn(PARENT, 1);
    h.os.spawn(CHILD, PARENT);
    h.os.spawn_with(
        THREAD,
        FakeProc {
            start_time: 9,
            ppid: 1,
            tgid: PARENT,
            ..FakeProc::default()
        },
    );
    let error = h.handle.track(THREAD).await.expect_err("a thread");
    assert!(
        matches!(
            error,
            Error::ThreadId {
                pid: THREAD,
                tgid: PARENT
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("thread"), "{error}");
    let error = h
        .handle
        .track_with(CHILD, TrackOptions::new().parent(THREAD))
        .await
        .expect_err("a thread as the parent");
    assert!(
        matches!(
            error,
            Error::ThreadId {
                pid: THREAD,
                tgid: PARENT
            }
        ),
        "{error:?}"
    );
}

/// Log lines written by the monitor, for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

/// The actor panics while handling a request: the caller gets
/// `MonitorGone` (never a hang), later calls too, the monitor's token is
/// cancelled, and the last log line says which task died.
#[tokio::test(start_paused = true)]
async fn a_dead_actor_is_monitor_gone_and_a_final_log_line() {
    let log = Captured::default();
    let writer = log.clone();
    // A current-thread runtime polls every task on this thread, so the
    // thread's default subscriber sees the monitor's lines.
    let _guard = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .set_default();
    let (h, _) = Harness::with_tracked_child(
        config(),
        FakeProc {
            signal_panics: true,
            ..FakeProc::default()
        },
    )
    .await;
    let error = h.handle.kill(CHILD).await.expect_err("the actor died");
    assert!(matches!(error, Error::MonitorGone), "{error:?}");
    h.monitor.cancellation_token().cancelled().await;
    let status = h.handle.status().await;
    assert!(matches!(status, Err(Error::MonitorGone)), "{status:?}");
    // Every watcher has had its say once the tasks are all done.
    h.monitor.join().await;
    let text = log.text();
    assert!(
        text.contains("a monitor task died") && text.contains("actor"),
        "the death is logged:\n{text}"
    );
}

/// After three quiet years (the deadline queue empty all along, its clock
/// never advanced), an orphan's grace period is armed and runs as usual.
#[tokio::test(start_paused = true)]
async fn an_escalation_after_years_of_quiet_still_runs() {
    let (mut h, id) = Harness::with_tracked_child(
        Config {
            check_interval: Duration::from_secs(24 * 60 * 60),
            ..config()
        },
        stubborn(),
    )
    .await;
    tokio::time::advance(3 * YEAR).await;
    h.os.kill_parent(PARENT);
    h.next(is_orphaned).await;
    let (_, killed) = h.next(|e| matches!(e, Event::Killed { .. })).await;
    assert_eq!(killed, Event::Killed { id });
    let signals: Vec<Signal> = h.sent().into_iter().map(|(_, _, s)| s).collect();
    assert_eq!(signals, [Signal::TERM, Signal::KILL]);
}
