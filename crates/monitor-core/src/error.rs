//! The library's one error type.

use std::io;
use std::time::Duration;

use crate::ProcessId;

/// Everything that can go wrong when talking to the monitor.
///
/// Each variant names the pid (or key, or syscall) involved, so a caller can
/// act on it without parsing the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Pid 0 names no process (to `kill` it means "my process group").
    #[error("pid 0 is not a process (it would mean the caller's process group)")]
    PidZero,
    /// A negative pid names a process group or "every process", never one process.
    #[error("pid {pid} is negative: negative pids address process groups, not a process")]
    NegativePid {
        /// The pid that was given.
        pid: i32,
    },
    /// Pid 1 is the init process: never tracked, never signalled.
    #[error("pid 1 is the init process and is never tracked")]
    InitProcess,
    /// The monitor refuses to track the process it runs in.
    #[error("pid {pid} is the monitor's own process")]
    OwnProcess {
        /// The monitor's pid.
        pid: i32,
    },
    /// No process has this pid.
    #[error("no process with pid {pid}")]
    NoSuchProcess {
        /// The pid that was given.
        pid: i32,
    },
    /// The process has already exited and is waiting to be reaped.
    #[error("process {pid} has already exited (zombie)")]
    AlreadyExited {
        /// The pid that was given.
        pid: i32,
    },
    /// This process may not signal that one, so tracking it would be a lie.
    #[error("not permitted to signal process {pid} (EPERM); it belongs to another user")]
    PermissionDenied {
        /// The pid that was given.
        pid: i32,
    },
    /// The caller expected another start time: the pid now names a different process.
    #[error("process {pid} started at tick {actual}, not {expected}: the pid was reused")]
    IdentityMismatch {
        /// The pid that was given.
        pid: i32,
        /// The start time the caller expected.
        expected: u64,
        /// The start time the process has.
        actual: u64,
    },
    /// The parent named for a tracked process cannot be one.
    #[error("pid {parent} cannot be the parent of {pid}: {reason}")]
    InvalidParent {
        /// The process being tracked.
        pid: i32,
        /// The parent that was named.
        parent: i32,
        /// Why it cannot be.
        reason: &'static str,
    },
    /// The process is already tracked.
    #[error("process {id} is already tracked")]
    AlreadyTracked {
        /// The tracked identity.
        id: ProcessId,
    },
    /// The process belongs to another uid than the owner it would be
    /// tracked for (see [`crate::TrackOptions::owner`]).
    #[error(
        "process {pid} belongs to uid {uid}, not to uid {owner} on whose behalf it would be tracked"
    )]
    NotOwner {
        /// The process.
        pid: i32,
        /// Its real uid.
        uid: u32,
        /// The owner asked for.
        owner: u32,
    },
    /// The process is a member of a unit, not a unit's root: it can only
    /// leave the monitor with its unit.
    #[error("process {pid} is a member of the unit of {root}; untrack the unit's root instead")]
    UnitMember {
        /// The member.
        pid: i32,
        /// Its unit's root.
        root: ProcessId,
    },
    /// Orphans already join another unit (`SpawnOptions::adopt_orphans`).
    #[error("orphans reparented to this process already join the unit of {root}")]
    AdoptionTaken {
        /// The root of the unit they join.
        root: ProcessId,
    },
    /// A control call (untrack, stop) named a pid that is not tracked.
    #[error("pid {pid} is not tracked")]
    NotTracked {
        /// The pid that was given.
        pid: i32,
    },
    /// The process was untracked (or left its unit) before it ended, so
    /// the end a [`crate::MonitorHandle::wait_for`] waited for will never
    /// be reported.
    #[error("process {id} was untracked before it ended; nothing reports its end now")]
    Untracked {
        /// The process.
        id: ProcessId,
    },
    /// A control call named a process by identity ([`crate::ProcessId`]),
    /// and that process is gone: it exited, and its pid is free or names
    /// another process now. Nothing was signalled.
    #[error("process {id} is gone: {}", stale_detail(*now))]
    Stale {
        /// The identity that was given.
        id: ProcessId,
        /// The process that holds the pid now, if any.
        now: Option<ProcessId>,
    },
    /// `track_child` got a child whose exit status was already collected.
    #[error("the child was already waited for; there is no process left to own")]
    ChildAlreadyReaped,
    /// The monitor was configured with `enabled = false`.
    #[error("the monitor is disabled (enabled = false); nothing can be tracked")]
    Disabled,
    /// The monitor has shut down; its handle can no longer do anything.
    #[error("the monitor is not running (it was shut down or its task ended)")]
    MonitorGone,
    /// A config value parses but cannot work.
    #[error("invalid config value for `{key}`: {reason}")]
    InvalidConfig {
        /// The config key.
        key: &'static str,
        /// Why the value cannot work.
        reason: &'static str,
    },
    /// A child could not be started through [`crate::MonitorHandle::spawn`].
    /// `source.kind()` tells a missing program (`NotFound`) from one that
    /// cannot be executed (`PermissionDenied`).
    #[error("could not spawn `{program}`: {source}")]
    Spawn {
        /// The program that was to run.
        program: String,
        /// Why it did not start.
        #[source]
        source: io::Error,
    },
    /// `Monitor::spawn` was called outside a Tokio runtime.
    #[error("no Tokio runtime: spawn the monitor from inside a runtime with I/O and time enabled")]
    NoRuntime,
    /// A blocking call (a `*_blocking` method, `OwnedChild::wait_blocking`,
    /// or a compat function such as [`crate::track_process`]) was made on
    /// a thread of a `current_thread` Tokio runtime, where blocking would
    /// stall every task of that runtime (Tokio's own blocking calls panic
    /// there). On a `multi_thread` runtime these calls work, through
    /// `tokio::task::block_in_place`.
    #[error(
        "`{call}` blocks, and was called inside a current_thread Tokio runtime (where it would stall every task): use `{instead}` there, or call it from a thread outside the runtime"
    )]
    InsideRuntime {
        /// The blocking call, e.g. `"track_process"`.
        call: &'static str,
        /// The async call to use instead.
        instead: &'static str,
    },
    /// A duration outside the range its setting allows (see
    /// [`crate::DurationRange`]): refused where it enters, so no timer is
    /// ever armed with it.
    #[error(
        "`{key}` = {} is out of range: it must be between {} and {}",
        humantime(*value),
        humantime(*min),
        humantime(*max)
    )]
    OutOfRange {
        /// The setting, e.g. `"grace"`.
        key: &'static str,
        /// The value that was given.
        value: Duration,
        /// The shortest value allowed.
        min: Duration,
        /// The longest value allowed.
        max: Duration,
    },
    /// The pid names a thread, not a process: signals and pidfds address
    /// its thread group, whose leader is `tgid`.
    #[error("pid {pid} is a thread of process {tgid}, not a process; track {tgid} instead")]
    ThreadId {
        /// The thread id that was given.
        pid: i32,
        /// The process (thread group) it belongs to.
        tgid: i32,
    },
    /// A system call failed.
    #[error("{syscall} failed for pid {pid}")]
    Os {
        /// The call that failed, e.g. `"pidfd_open"`.
        syscall: &'static str,
        /// The pid it was about (the monitor's own pid for process-wide calls).
        pid: i32,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
}

/// The end of [`Error::Stale`]'s message.
fn stale_detail(now: Option<ProcessId>) -> String {
    match now {
        Some(now) => format!(
            "it exited, and pid {} now belongs to another process ({now})",
            now.pid
        ),
        None => "it exited".to_owned(),
    }
}

/// A duration as people write it (`"1h"`, `"3years 2months"`).
fn humantime(duration: Duration) -> humantime_serde::re::humantime::FormattedDuration {
    humantime_serde::re::humantime::format_duration(duration)
}
