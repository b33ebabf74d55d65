//! The limits that bound how many processes the bench can start and track:
//! the descriptor limit (raised to fit when it can be), and the task limits
//! (`pid_max`, `threads-max`, `RLIMIT_NPROC`, cgroup `pids.max`) that decide
//! the size the large phases run at.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::{BIG, LARGEST};

/// Descriptors per tracked process: the monitor's pidfd and open
/// `/proc/<pid>/stat`, and the pool's pidfd.
pub(crate) const FDS_PER_PROCESS: u64 = 3;
/// Descriptors besides those: stdio, the runtime, pipes, a transient
/// `/proc/<ppid>` while tracking.
pub(crate) const FD_HEADROOM: u64 = 256;
/// Tasks (each takes a pid) left free under every process limit: this
/// process's threads, `python3`, `sh`s, and whatever else starts meanwhile.
const PID_MARGIN: u64 = 2_000;
/// Pids below this are not handed out again after the counter wraps.
const RESERVED_PIDS: u64 = 300;

/// Each tracked process holds a pidfd and an open `/proc/<pid>/stat` in the
/// monitor, and one pidfd in the pool: raise the soft limit if that does
/// not fit.
pub(crate) fn raise_nofile(needed: u64) -> String {
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= needed {
        return format!("RLIMIT_NOFILE soft limit {soft} >= {needed} needed, unchanged");
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= needed,
        "RLIMIT_NOFILE hard limit {hard} < {needed} needed"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .expect("raise RLIMIT_NOFILE to the hard limit");
    format!(
        "RLIMIT_NOFILE soft limit raised from {soft} to the hard limit {hard} ({needed} needed)"
    )
}

/// How many more processes (each tracked, so with [`FDS_PER_PROCESS`]
/// descriptors) the limits here leave room for, with [`PID_MARGIN`] spare
/// tasks and [`FD_HEADROOM`] spare descriptors; with the limit that binds
/// and a line listing them all.
pub(crate) fn room() -> (u64, String, String) {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let number = |path: &str| read(path).and_then(|text| text.trim().parse::<u64>().ok());
    // Every thread of every process takes a pid: the kernel's count of them
    // is the fourth field of /proc/loadavg ("running/total").
    let tasks = read("/proc/loadavg")
        .and_then(|text| {
            let field = text.split_ascii_whitespace().nth(3)?;
            field.split_once('/')?.1.parse::<u64>().ok()
        })
        .unwrap_or(0);
    let free = |limit: u64, used: u64| limit.saturating_sub(used + PID_MARGIN);
    let mut limits: Vec<(u64, String)> = Vec::new();
    if let Some(pid_max) = number("/proc/sys/kernel/pid_max") {
        limits.push((
            free(pid_max.saturating_sub(RESERVED_PIDS), tasks),
            format!("kernel.pid_max {pid_max} ({RESERVED_PIDS} reserved)"),
        ));
    }
    if let Some(threads_max) = number("/proc/sys/kernel/threads-max") {
        limits.push((
            free(threads_max, tasks),
            format!("kernel.threads-max {threads_max}"),
        ));
    }
    // Counted against every task running, an upper bound on this user's.
    if let Some(nproc) = getrlimit(Resource::Nproc).current {
        limits.push((free(nproc, tasks), format!("RLIMIT_NPROC {nproc}")));
    }
    if let Some((max, current, path)) = cgroup_pids() {
        limits.push((free(max, current), format!("cgroup {path} pids.max {max}")));
    }
    let hard = getrlimit(Resource::Nofile).maximum.unwrap_or(u64::MAX);
    limits.push((
        hard.saturating_sub(FD_HEADROOM) / FDS_PER_PROCESS,
        format!(
            "RLIMIT_NOFILE hard limit {hard} ({FDS_PER_PROCESS} descriptors per tracked process: \
             the monitor's pidfd and /proc/<pid>/stat, the pool's pidfd; {FD_HEADROOM} spare)"
        ),
    ));
    let listed = limits
        .iter()
        .map(|(room, limit)| format!("{limit}: room for {room}"))
        .collect::<Vec<_>>()
        .join("; ");
    let summary = format!("{tasks} tasks running at start, {PID_MARGIN} kept spare; {listed}");
    let (room, binding) = limits
        .into_iter()
        .min_by_key(|(room, _)| *room)
        .expect("the descriptor limit is always listed");
    (room, binding, summary)
}

/// This process's cgroup `pids.max` (v2, or the v1 pids controller) when it
/// is set: the limit, the current count, the cgroup.
fn cgroup_pids() -> Option<(u64, u64, String)> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let dir = match controllers {
            "" => format!("/sys/fs/cgroup{path}"),
            c if c.split(',').any(|c| c == "pids") => format!("/sys/fs/cgroup/pids{path}"),
            _ => return None,
        };
        let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).ok();
        let max = read("pids.max")?.trim().parse().ok()?;
        let current = read("pids.current")?.trim().parse().ok()?;
        Some((max, current, path.to_owned()))
    })
}

/// The size the large phases run at, and why.
pub(crate) struct Plan {
    /// [`BIG`] if it fits, else the largest multiple of 1,000 above
    /// [`LARGEST`] that does, else none.
    pub(crate) big: Option<usize>,
    /// Why the large phases run smaller or not at all, when they do.
    pub(crate) note: Option<String>,
    /// Every limit and the room it leaves, for the report.
    pub(crate) limits: String,
}

/// Plans the large phases by the [`room`] the limits leave.
pub(crate) fn plan_big() -> Plan {
    let (room, binding, limits) = room();
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    if room >= BIG {
        return Plan {
            big: Some(BIG),
            note: None,
            limits,
        };
    }
    let fallback = room / 1_000 * 1_000;
    let why = format!("N = {BIG} does not fit here: {binding} leaves room for {room}");
    let (big, note) = if fallback > LARGEST {
        let note = format!(
            "{why}; the large-N measurements below ran at N = {fallback} instead, the largest \
             multiple of 1,000 that fits"
        );
        (Some(fallback), note)
    } else {
        (None, format!("{why}; the large-N measurements are skipped"))
    };
    Plan {
        big,
        note: Some(note),
        limits,
    }
}
