//! Reading `/proc`: a process's stat fields, the pid behind a pidfd, the
//! kernel's `pid_max`, and the test process's own pid.

use std::os::fd::{AsRawFd, OwnedFd};

/// The fields of `/proc/<pid>/stat` the tests look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// `R`, `S`, `Z`, ...
    pub(crate) state: char,
    /// The parent's pid.
    pub(crate) ppid: i32,
    /// The process group (field 5).
    pub(crate) pgrp: i32,
    /// Start time in clock ticks since boot (field 22).
    pub(crate) start_time: u64,
}

impl ProcStat {
    /// Exited (zombie or dead), waiting to be reaped or being reaped.
    pub(crate) fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Reads `/proc/<pid>/stat`; `None` when there is no such process.
pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // `fields[0]` is field 3 (state), so field n is `fields[n - 3]`.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The pid a pidfd refers to, from `/proc/self/fdinfo` (`-1` once reaped).
pub(super) fn pidfd_target(fd: &OwnedFd) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("Pid:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// `/proc/sys/kernel/pid_max`.
pub(crate) fn pid_max() -> i32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("read /proc/sys/kernel/pid_max")
        .trim()
        .parse()
        .expect("pid_max is a number")
}

/// This test process's pid.
pub(crate) fn my_pid() -> i32 {
    i32::try_from(std::process::id()).expect("pid fits i32")
}

/// The children of `pid`, from every thread's children list.
pub(crate) fn children_of(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_ascii_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}
