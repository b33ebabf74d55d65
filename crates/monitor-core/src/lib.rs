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
//! ```no_run
//! use std::time::Duration;
//! use monitor_core::{Monitor, Event};
//!
//! # async fn demo() -> Result<(), monitor_core::Error> {
//! let monitor = Monitor::builder()
//!     .check_interval(Duration::from_secs(1))
//!     .grace(Duration::from_secs(2))
//!     .spawn()?;
//! let handle = monitor.handle();
//! let mut events = handle.subscribe().await?;
//!
//! // Watch a process somebody else started: if its parent dies, it goes too.
//! let tracked = handle.track(12345).await?;
//! println!("tracking {} (parent {})", tracked.id, tracked.parent);
//!
//! // Or hand over a child: the monitor reaps it and returns its status.
//! let child = std::process::Command::new("true").spawn().expect("spawn true");
//! let status = handle.track_child(child).await?.wait().await?;
//! assert!(status.success());
//!
//! while let Ok(event) = events.try_recv() {
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
//! [`get_monitor`] and [`stop_monitor`] instead.
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
//! - `config`: [`Config`] and its enums, defaults in one place.
//! - `limits`: the range of every duration, and overflow-free deadlines.
//! - `id`: [`ProcessId`], [`ExitStatus`], [`Signal`].
//! - `track`: [`TrackOptions`], [`Tracked`], [`ChildProcess`], [`OwnedChild`].
//! - `unit`: [`Containment`], [`UnitStatus`]: a tracked process and all it
//!   starts, as one thing.
//! - `event`, `status`: what the monitor reports.
//! - `counters`: the running totals as metrics crates read them, and a
//!   live view that never waits for the actor ([`LiveCounters`]).
//! - `monitor`, `handle`: spawning, the handle, shutdown.
//! - `spawn`: [`SpawnOptions`] and the long-lived spawner thread.
//! - `actor`: the state; `actor/escalation`, `actor/watches`,
//!   `actor/units`, `actor/tree`, `actor/fork_events`: orphan actions,
//!   pidfd wake-ups, units and their authorization, finding members in
//!   children lists and through fork events.
//! - `watch`: pidfds registered with the reactor, one waker each.
//! - `scan`, `reap`: the scanner task and the SIGCHLD forwarder.
//! - `supervisor`: every task watched; one that dies stops the monitor.
//! - `os`: the seam to the kernel (procfs, pidfd, `waitid`), faked in tests.
//! - `cgroup`, `connector`, `lineage`: the kernel layer of units: leaf
//!   cgroups the monitor creates, fork and exit events from the process
//!   connector (behind a small `EventSource` seam, scripted in tests), and
//!   the membership those events imply; `sys_error` is their error.
//! - `compat`: the original tool's blocking functions.

#![cfg(target_os = "linux")]

mod actor;
// The cgroup layer has parts the actor does not use (yet): moving a
// running process into a leaf, the termination that reports each member.
#[allow(dead_code, unused_imports)]
mod cgroup;
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
mod reap;
mod scan;
mod spawn;
mod status;
mod supervisor;
mod sys_error;
mod track;
mod unit;
mod watch;

#[cfg(test)]
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
pub use spawn::SpawnOptions;
pub use status::{Counters, ProcessState, ScanSummary, Status, TrackedStatus};
pub use track::{ChildProcess, OwnedChild, ParentSpec, TrackChildError, TrackOptions, Tracked};
pub use unit::{Containment, UnitResources, UnitStatus};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
