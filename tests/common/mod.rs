//! Shared fixtures for the real-process integration tests.
//!
//! - [`Procs`]: a guard that owns every process a test starts and
//!   `SIGKILL`s it on drop through a pidfd opened when the process was
//!   spawned or discovered (so a reused pid is never signalled), then waits
//!   for its direct `std::process::Child`ren.
//! - [`Proc`]: one process pinned by such a pidfd, with exact liveness
//!   checks (a zombie counts as dead: PID 1 is a slow reaper here).
//! - [`Procs::spawn_shell`]: `sh -c '... & echo $!; ...'` double-fork
//!   fixtures whose grandchild pids are read from stdout.
//! - [`exit_on_eof`]: a child that exits with a given code once its stdin
//!   is closed.
//! - [`wait_until`] / [`wait_until_blocking`]: poll a condition up to a
//!   deadline, then panic; never a fixed sleep.
//! - [`EventLog`]: timestamps every event of a monitor as it arrives and
//!   waits for a specific one with a deadline.
//! - [`fast_monitor`] / [`spawn_monitor`]: a monitor, its handle and an
//!   [`EventLog`] of it, with tracing set up.
//! - [`rerun_as_nobody`]: the current test, run again as uid 65534.
//!
//! # Layout
//!
//! - `procfs.rs`: reading `/proc` ([`read_stat`], [`children_of`],
//!   [`pid_max`], [`my_pid`]).
//! - `procs.rs`: the process guards and shell fixtures.
//! - `wait.rs`: the polling wait helpers and their [`POLL`] and [`SOON`].
//! - `events.rs`: [`EventLog`].
//! - `pipes.rs`: reading an owned child's tokio pipes ([`lines_of`],
//!   [`pids_of`]).
//! - `monitor.rs`: starting a monitor for a test.
//! - `privileges.rs`: re-running a test unprivileged.
//! - `cgroups.rs`: the cgroup directories a monitor of a process made.
//!
//! Everything is re-exported here, so tests name it `common::X`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

mod cgroups;
mod events;
mod monitor;
mod pipes;
mod privileges;
mod procfs;
mod procs;
mod wait;

// Each test binary names a different subset of these, too.
#[allow(unused_imports)]
pub(crate) use self::{
    cgroups::{cgroup_dirs_of, remove_cgroups_of},
    events::{EventLog, recv_matching},
    monitor::{FAST_SCAN, fast_monitor, init_tracing, spawn_monitor, terminate_root_alone},
    pipes::{lines_of, pids_of},
    privileges::{NOBODY, rerun_as_nobody},
    procfs::{ProcStat, children_of, my_pid, pid_max, read_stat},
    procs::{Proc, Procs, Shell, Spawned, exit_on_eof},
    wait::{POLL, SOON, wait_for_more_scans, wait_for_status, wait_until, wait_until_blocking},
};
