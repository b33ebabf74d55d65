//! Testing code that drives a monitor, on paused time with exact timings.
//!
//! **Needs the `test-util` feature**, which only tests should turn on:
//!
//! ```toml
//! [dev-dependencies]
//! monitor-core = { version = "0.1", features = ["test-util"] }
//! tokio = { version = "1", features = ["macros", "rt", "test-util"] }
//! ```
//!
//! [`spawn_fake_monitor`] starts the real monitor (the actor, its
//! deadlines and escalations, units, scans) over a fake process table
//! ([`FakeOs`]) instead of the kernel. [`crate::MonitorHandle::spawn`]
//! then starts the [`FakeProgram`] registered under the command's name, a
//! signal is recorded with the instant it was sent ([`FakeOs::signals`]),
//! and a fake process dies as its program says: on `SIGKILL`, on the
//! termination signal unless it ignores it, or on its own after a while.
//! Your code gets an ordinary [`crate::MonitorHandle`] and cannot tell.
//!
//! # The pattern
//!
//! Run the test on paused time (`#[tokio::test(start_paused = true)]`):
//! the clock stands still while anything can run and jumps to the next
//! timer when nothing can, so a test of a 30 s deadline takes
//! microseconds, and every instant it asserts is exact. Register the
//! programs your code spawns, run your code, then assert on when each
//! signal went out and on what your code got back.
//!
//! ```
//! use std::process::Command;
//! use std::time::Duration;
//!
//! use monitor_core::testing::{FakeProgram, spawn_fake_monitor};
//! use monitor_core::{Error, ExitInfo, ExitStatus, Monitor, MonitorHandle, Signal};
//! use tokio::time::{Instant, timeout};
//!
//! /// The code under test: runs a job; past its deadline, the job's unit
//! /// is terminated (its signal, its grace period, then SIGKILL).
//! async fn run_job(handle: &MonitorHandle, program: &str, deadline: Duration) -> Result<ExitInfo, Error> {
//!     let worker = handle.spawn(Command::new(program)).await?;
//!     match timeout(deadline, handle.wait_for(worker.process_id())).await {
//!         Ok(end) => end,
//!         Err(_overrun) => {
//!             handle.terminate(worker.process_id()).await?;
//!             handle.wait_for(worker.process_id()).await
//!         }
//!     }
//! }
//!
//! # async fn test() {
//! // #[tokio::test(start_paused = true)]
//! let (monitor, os) = spawn_fake_monitor(Monitor::builder().grace(Duration::from_secs(5)))
//!     .expect("monitor");
//! os.program("worker", FakeProgram::new().ignores_term());
//! let start = Instant::now();
//! let end = run_job(&monitor.handle(), "worker", Duration::from_secs(30)).await.expect("job");
//! assert_eq!(start.elapsed(), Duration::from_secs(35));
//! let sent: Vec<_> = os.signals().iter().map(|s| (s.at - start, s.signal)).collect();
//! assert_eq!(
//!     sent,
//!     [(Duration::from_secs(30), Signal::TERM), (Duration::from_secs(35), Signal::KILL)]
//! );
//! assert_eq!(end.status, Some(ExitStatus::Signaled { signal: Signal::KILL.as_raw(), core_dumped: false }));
//! monitor.shutdown().await;
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true)
//! #     .build().expect("runtime").block_on(test());
//! ```
//!
//! # Paused time cannot drive real processes
//!
//! Keep real processes out of paused-time tests. On paused time, when no
//! task can run, tokio does not wait for I/O: it moves the clock straight
//! to the next timer. A real child's exit reaches the monitor as I/O (its
//! pidfd turning readable, `SIGCHLD`) and takes real time, so while a real
//! child is dying every pending timer fires first: the grace period ends
//! before the child could react to `SIGTERM`, a `timeout` elapses before
//! the exit is seen, and the clock may run on by minutes. A 30 s deadline
//! test against a real `sleep` measured 30, 35, 40, 60, 120 or 480 s of
//! virtual time on different runs. Test real processes on real time with
//! short durations (milliseconds of grace), with a monitor from
//! [`crate::Monitor::spawn`].
//!
//! # What the fake does not do
//!
//! - It reads no `Command` but its program name: arguments, environment
//!   and stdio are ignored, and the `OwnedChild` has no pipes.
//! - Fake processes have no pidfds. The monitor's own children are reaped
//!   the instant they die (the fake raises `SIGCHLD`), but the end of a
//!   process it only tracks is seen by the next re-check of a termination
//!   in progress (within milliseconds) or the next check
//!   (`check_interval`), as for a process without a pidfd.
//! - There are no cgroups: units are found by scanning the fake table,
//!   every `unit_scan_interval`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fake::{self, Sent};
use crate::{Config, Error, ExitStatus, Monitor, ProcessId, Signal};

/// The pid of the process the fake monitor runs in: the parent of every
/// process it spawns.
pub const MONITOR_PID: i32 = fake::MY_PID;

/// Starts a monitor over a fake process table, on the current Tokio
/// runtime (usually a paused `current_thread` one). Takes a [`Config`] or
/// a [`crate::MonitorBuilder`]; the config is checked as
/// [`Monitor::spawn`] checks it.
///
/// The monitor is the real one; only its view of the kernel is fake (see
/// the [module docs](self)). Stop it with [`Monitor::shutdown`], which
/// applies the shutdown policy to the fake processes.
///
/// # Errors
///
/// [`Error::InvalidConfig`] (or another config error) for a config that
/// cannot work, [`Error::NoRuntime`] outside a Tokio runtime.
pub fn spawn_fake_monitor(config: impl Into<Config>) -> Result<(Monitor, FakeOs), Error> {
    let config = config.into();
    config.validate()?;
    tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
    let table = fake::FakeOs::new();
    // The table raises SIGCHLD here when a child of the monitor dies, as
    // the kernel would; it holds the sender as long as it lives.
    let (sigchld, sweeps) = mpsc::channel(1);
    table.set_sigchld(sigchld);
    let monitor = Monitor::start(
        config,
        Arc::clone(&table) as Arc<dyn crate::os::Os>,
        CancellationToken::new(),
        sweeps,
        // A fake table has no cgroups and no fork events: units scan it.
        crate::actor::Mechanisms::default(),
    )?;
    Ok((monitor, FakeOs { table }))
}

/// The fake process table a monitor from [`spawn_fake_monitor`] sees.
/// Cheap to clone; every clone is the same table.
#[derive(Debug, Clone)]
pub struct FakeOs {
    table: Arc<fake::FakeOs>,
}

impl FakeOs {
    /// From now on, a spawn of a command whose program is `name` (the
    /// whole program string, or else its file name: `"worker"` also
    /// matches `/usr/bin/worker`) starts `program`. A spawn of a program
    /// with no name registered fails as a missing program does
    /// ([`Error::Spawn`] with `NotFound`).
    pub fn program(&self, name: impl Into<String>, program: FakeProgram) {
        self.table.set_program(name.into(), program);
    }

    /// Starts `program` as a child of `parent`, as some other process
    /// would (pass 1 for a process whose parent is init). For
    /// [`crate::MonitorHandle::track`]: the process is orphaned when
    /// `parent` ends ([`FakeOs::exit`]).
    pub fn start(&self, parent: i32, program: FakeProgram) -> ProcessId {
        self.table.start(parent, &program)
    }

    /// Ends the process now with `status`. A child of the monitor stays a
    /// zombie until the monitor reaps it (at once: `SIGCHLD` is raised);
    /// any other process is reaped by its parent. Its children go to init.
    pub fn exit(&self, pid: i32, status: ExitStatus) {
        self.table.exit_with(pid, status);
    }

    /// Whether the process runs (it exists and has not ended).
    pub fn is_running(&self, pid: i32) -> bool {
        self.table.is_running(pid)
    }

    /// The children of `pid`, sorted by pid.
    pub fn children(&self, pid: i32) -> Vec<ProcessId> {
        self.table.children_of(pid)
    }

    /// Every signal the monitor sent, in the order it sent them.
    pub fn signals(&self) -> Vec<SentSignal> {
        self.table
            .sent()
            .into_iter()
            .map(|Sent { at, id, signal }| SentSignal { at, id, signal })
            .collect()
    }
}

/// What a fake process does: by default it runs until a signal ends it
/// (the termination signal or `SIGKILL`) and starts no children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeProgram {
    pub(crate) ignores_term: bool,
    pub(crate) exits_after: Option<(Duration, ExitStatus)>,
    pub(crate) children: Vec<FakeProgram>,
}

impl FakeProgram {
    /// A program that runs until it is signalled.
    pub fn new() -> Self {
        Self::default()
    }

    /// It ignores the termination signal (whichever the monitor uses):
    /// only `SIGKILL` ends it.
    pub fn ignores_term(mut self) -> Self {
        self.ignores_term = true;
        self
    }

    /// It ends on its own with `status`, `after` it started (if nothing
    /// ended it first).
    pub fn exits_after(mut self, after: Duration, status: ExitStatus) -> Self {
        self.exits_after = Some((after, status));
        self
    }

    /// It starts a child running `child` as it starts (one call per
    /// child). The children are members of its unit.
    pub fn child(mut self, child: FakeProgram) -> Self {
        self.children.push(child);
        self
    }
}

/// A signal the monitor sent to a fake process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SentSignal {
    /// When, on the runtime's clock.
    pub at: Instant,
    /// To which process.
    pub id: ProcessId,
    /// Which signal.
    pub signal: Signal,
}
