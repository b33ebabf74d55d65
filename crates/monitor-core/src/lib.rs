//! `monitor-core`: an embedded process monitor for Tokio on Linux.
//!
//! It tracks processes by identity (pid plus start time, pinned by a
//! pidfd), notices when the process that started one dies and cleans the
//! orphan up (signal, grace period, `SIGKILL`), reaps the children it owns
//! the moment `SIGCHLD` arrives, and never steals another `Child`'s exit
//! status.
//!
//! # Usage
//!
//! ```
//! use std::time::Duration;
//! use monitor_core::{Event, ExitStatus, Monitor, SpawnOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let monitor = Monitor::builder()
//!     .check_interval(Duration::from_secs(1))
//!     .grace(Duration::from_millis(500))
//!     .spawn()?;
//! let handle = monitor.handle();
//! let mut events = handle.subscribe().await?;
//!
//! // Start a child through the monitor (a tokio or a std `Command`): it
//! // owns the child and everything the child starts (its *unit*), reaps
//! // it, and hands back an `OwnedChild` that works like tokio's `Child`.
//! let mut command = tokio::process::Command::new("sh");
//! command.args(["-c", "exit 3"]);
//! let mut child = handle.spawn(command).await?;
//! assert_eq!(child.wait().await?, ExitStatus::Exited(3));
//!
//! // `wait` is cancel-safe: bound it with a timeout, then end the unit
//! // (its signal, the grace period, then SIGKILL). The drop guard ends it
//! // too if this code returns early and drops `job`.
//! let mut sleeper = tokio::process::Command::new("sleep");
//! sleeper.arg("30");
//! let options = SpawnOptions::new().terminate_on_drop(true);
//! let mut job = handle.spawn_with(sleeper, options).await?;
//! if tokio::time::timeout(Duration::from_millis(100), job.wait()).await.is_err() {
//!     let status = job.terminate().await?;
//!     assert_eq!(status.signal(), Some(15));
//! }
//!
//! // Or watch a process started elsewhere (here by us, for the example):
//! // when the process that started it dies, the monitor terminates it.
//! let mut other = tokio::process::Command::new("sleep").arg("30").spawn()?;
//! let pid = other.id().expect("running") as i32;
//! let tracked = handle.track(pid).await?;
//! println!("tracking {} (parent {})", tracked.id, tracked.parent);
//! // Control calls take the identity (pid and start time), so a pid that
//! // names another process by now is never signalled.
//! handle.terminate(tracked.id).await?;
//! other.wait().await?; // our child: we reap it, the monitor never does
//!
//! while let Ok(event) = events.try_recv() {
//!     println!("{event}");
//!     if let Event::Orphaned { id, .. } = event {
//!         println!("{id} was orphaned");
//!     }
//! }
//! monitor.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Code ported from the original Python tool can use the blocking
//! functions [`start_monitor`], [`track_process`], [`untrack_process`],
//! [`get_monitor`] and [`stop_monitor`] instead. Like the `*_blocking`
//! methods, they never panic inside async code (see [`Error::InsideRuntime`]).
//!
//! # Owned children: waiting, cancelling, dropping
//!
//! - [`OwnedChild::wait`] is cancel-safe and keeps the status once received;
//!   [`OwnedChild::try_wait`] never waits.
//! - [`OwnedChild::kill`] and [`OwnedChild::terminate`] end the child's whole
//!   unit and return once it is empty; [`OwnedChild::start_kill`] only
//!   starts it. [`MonitorHandle::kill`], [`MonitorHandle::terminate`] and
//!   [`MonitorHandle::stop`] do the same for any tracked process, named by
//!   its [`ProcessId`] (see [`ProcessRef`]).
//! - Dropping an [`OwnedChild`] leaves the child running by default (as
//!   tokio's `Child` without `kill_on_drop`); the monitor still reaps it.
//!   [`SpawnOptions::terminate_on_drop`] or [`SpawnOptions::kill_on_drop`]
//!   (a tokio `Command`'s own `kill_on_drop(true)` maps to the latter) end
//!   the unit on drop instead.
//! - Stopping the monitor ([`Monitor::shutdown`], or cancelling the token
//!   given to [`Monitor::spawn_with_token`]) happens at once: the shutdown
//!   policy ([`ShutdownPolicy`]) is applied to the units the monitor owns
//!   (by default they are terminated, in one grace period), and nothing
//!   else is waited for. To let work finish first, wait for it before
//!   cancelling: the owned children's `wait`, or `MonitorHandle::drain`
//!   (terminate every unit and wait until none is left).
//! - Events arrive on a `tokio::sync::broadcast::Receiver<Event>` (see
//!   [`MonitorHandle::subscribe`]); a subscriber that falls behind misses
//!   the oldest events (`RecvError::Lagged`) and never slows the monitor.
//!
//! # Testing code that uses the monitor
//!
//! Code that drives a monitor (deadlines, terminations, drains) is tested
//! on paused time against a fake process table: [`testing`], behind the
//! `test-util` feature, runs the real monitor over it, so every instant a
//! test asserts is exact ("SIGTERM at 30 s, SIGKILL at 35 s"). Real
//! processes are tested on real time with short durations instead: paused
//! time cannot drive them, because tokio moves the clock to the next
//! timer whenever no task is ready, without waiting for a real child to
//! exit (the [`testing`] docs say more).
//!
//! # Theory of operation
//!
//! One **actor** task owns all state and takes commands from
//! [`MonitorHandle`]s over a bounded channel, each answered on a `oneshot`.
//! Event sources only forward to it:
//!
//! - **pidfd watches**: every tracked process's pidfd, and each recorded
//!   parent's, is registered with the reactor; readiness (an exit) wakes
//!   the actor with that watch's key alone, so exits and orphans are
//!   handled at once, with no task per process;
//! - the **scanner** (a `tokio::time::interval`, missed ticks delayed, not
//!   bursted), the safety net: it asks the actor for a snapshot of the
//!   tracked set, reads `/proc/<pid>/stat` of each process no watch covers
//!   (and of every one once per `full_scan_interval`) on the blocking
//!   pool, and sends back what the actor must act on: exits, orphans,
//!   adoptions; quiet processes cost the actor nothing. A second interval
//!   reads the children lists of the members of units contained by
//!   scanning, to find new members;
//! - **fork events**: where a unit gets no cgroup and the monitor may
//!   listen (root in the initial namespaces), one netlink socket (the
//!   kernel's process connector, opened by the first unit that wants it)
//!   reports every fork on the machine; the actor reads them in bounded
//!   batches, and a fork by a member makes the child a member at once
//!   (pinned, checked by its start time, authorized);
//! - the **SIGCHLD forwarder** turns the signal into "sweep the owned set"
//!   wake-ups through a capacity-1 channel (coalesced, never counted);
//! - the **deadline queue** (a `DelayQueue` inside the actor) wakes
//!   escalations: `SIGKILL` when the grace period ends, the bounded wait
//!   after it (and re-checks for processes without a pidfd).
//!
//! A process is an **orphan** when its recorded parent has exited (its ppid
//! changed, or a parent named by the caller is gone), not when its ppid is 1
//! or differs from ours. Every signal goes through the pidfd opened before
//! the process's start time was read, so it can never reach a process that
//! reused the pid. The monitor reaps only what it owns (children handed
//! over with [`MonitorHandle::track_child`], and tracked processes adopted
//! while this process is a subreaper), each by its own pid or pidfd; other
//! exited children are reported, never reaped, unless
//! [`ReapPolicy::AllChildren`] is chosen.
//!
//! # Layout
//!
//! Every public item lives at the crate root; by topic:
//!
//! - Starting and stopping: [`Monitor`], [`MonitorBuilder`], [`Config`]
//!   with [`OrphanAction`], [`OrphanTarget`], [`ReapPolicy`],
//!   [`ShutdownPolicy`], [`Containment`], and each duration's range
//!   ([`DurationRange`], [`GRACE_RANGE`], ...).
//! - Tracking: [`MonitorHandle`] (track, control, status, events),
//!   [`TrackOptions`], [`ParentSpec`], [`Tracked`], [`ProcessRef`].
//! - Children the monitor owns: [`MonitorHandle::spawn`],
//!   [`SpawnCommand`], [`SpawnOptions`], [`DropAction`], [`OwnedChild`];
//!   children handed over: [`MonitorHandle::track_child`],
//!   [`ChildProcess`], [`TrackChildError`].
//! - Identity and outcomes: [`ProcessId`], [`ExitStatus`], [`Signal`].
//! - Waiting: [`MonitorHandle::wait_for`] ([`ExitInfo`]),
//!   [`MonitorHandle::drain`] ([`DrainReport`]),
//!   [`MonitorHandle::subscribe_unit`].
//! - Users' tests on paused time: the `testing` module (feature
//!   `test-util`).
//! - What it reports: [`Event`], [`ErrorKind`], [`Status`],
//!   [`TrackedStatus`], [`ProcessState`], [`UnitStatus`],
//!   [`UnitResources`], [`Counters`], [`ScanSummary`], and the live
//!   counters for metrics ([`LiveCounters`], [`CounterValue`],
//!   [`ErrorCounts`]).
//! - Errors: [`Error`].
//! - Ported code: [`start_monitor`], [`start_monitor_with`],
//!   [`track_process`], [`untrack_process`], [`get_monitor`],
//!   [`stop_monitor`].
//!
//! How the source is organized (one concept per private module) is
//! described in the repository's `docs/architecture.md`.

#![cfg(target_os = "linux")]

mod actor;
mod blocking;
// The cgroup layer has parts the actor does not use (yet): moving a
// running process into a leaf, the termination that reports each member.
#[allow(dead_code, unused_imports)]
mod cgroup;
mod child;
mod compat;
mod config;
mod connector;
mod counters;
mod error;
mod event;
mod handle;
mod id;
mod limits;
mod lineage;
mod monitor;
mod os;
mod process_ref;
mod reap;
mod scan;
mod spawn;
mod status;
mod supervisor;
mod sys_error;
#[cfg(any(test, doc, feature = "test-util"))]
pub mod testing;
mod track;
mod unit;
mod waiting;
mod watch;

#[cfg(test)]
mod control_tests;
// The fake process table: this crate's tests use it, and the `testing`
// module gives it to users' tests.
#[cfg(any(test, doc, feature = "test-util"))]
mod fake;
#[cfg(test)]
mod fallback_tests;
#[cfg(test)]
mod fork_event_overrun_tests;
#[cfg(test)]
mod fork_event_tests;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod refusal_tests;
#[cfg(test)]
mod requires;
#[cfg(test)]
mod timing_tests;
#[cfg(test)]
mod unit_tests;
#[cfg(test)]
mod waiting_tests;

pub use child::OwnedChild;
pub use compat::{
    get_monitor, start_monitor, start_monitor_with, stop_monitor, track_process, untrack_process,
};
pub use config::{Config, OrphanAction, OrphanTarget, ReapPolicy, ShutdownPolicy};
pub use counters::{CounterValue, ErrorCounts, LiveCounters};
pub use error::Error;
pub use event::{ErrorKind, Event};
pub use handle::MonitorHandle;
pub use id::{ExitStatus, ProcessId, Signal, UnknownSignal};
pub use limits::{
    CHECK_INTERVAL_RANGE, DurationRange, FULL_SCAN_INTERVAL_RANGE, GRACE_RANGE, KILL_TIMEOUT_RANGE,
    UNIT_SCAN_INTERVAL_RANGE,
};
pub use monitor::{Monitor, MonitorBuilder};
pub use process_ref::ProcessRef;
pub use spawn::{DropAction, SpawnCommand, SpawnOptions};
pub use status::{Counters, ProcessState, ScanSummary, Status, TrackedStatus};
pub use track::{ChildProcess, ParentSpec, TrackChildError, TrackOptions, Tracked};
pub use unit::{Containment, UnitResources, UnitStatus};
pub use waiting::{DrainReport, ExitInfo};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
