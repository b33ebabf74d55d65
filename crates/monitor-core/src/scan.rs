//! The interval scan: the safety net that reads tracked processes through
//! procfs, off the actor's task.
//!
//! The scanner task owns the `Interval`. On each tick it asks the actor for
//! a snapshot of the tracked set (cheap `Arc` clones), reads `/proc` on the
//! blocking pool, and sends the observations back. The actor never waits for
//! a scan, so a scan of 10,000 processes never delays a command.
//!
//! What a tick reads: a process whose exit and orphaning pidfd watches
//! report (`ScanTarget::watched`) is read only by a *full* scan, at most
//! every `full_scan_interval`; every other process (no pidfd, a parent that
//! cannot be watched, a member this process may adopt) is read on every
//! tick. So a quiet tick over 1,000 watched processes reads nothing, and
//! the idle cost follows events, not tracked processes times ticks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::ProcessId;
use crate::os::{Os, ProcHandle};

/// One tracked process as the scan needs it.
#[derive(Debug)]
pub(crate) struct ScanTarget {
    pub(crate) handle: Arc<ProcHandle>,
    pub(crate) parent: ProcessId,
    /// The parent was named by the caller and is not the real parent, so
    /// its liveness is read directly instead of inferred from our ppid.
    pub(crate) named_parent: bool,
    /// Not our child at track time: becoming one means we adopted it.
    pub(crate) adoptable: bool,
    /// A unit member, not a root: it is orphaned with its unit, never by
    /// its own parent, so only an exit or an adoption is news.
    pub(crate) member: bool,
    /// Everything a scan could tell about it comes through pidfd watches
    /// (its exit, and its recorded parent's death or a parent that never
    /// dies first), so only full scans read it.
    pub(crate) watched: bool,
}

/// What the actor hands the scanner on each tick.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Shared with the actor, which rebuilds it only when the set changes.
    pub(crate) targets: Arc<[ScanTarget]>,
    /// The monitor's pid, to recognise adoptions.
    pub(crate) my_pid: i32,
    /// Also list exited children nobody owns.
    pub(crate) find_zombies: bool,
    /// Children the monitor owns: reaped by the actor, not zombies to report.
    pub(crate) owned: HashSet<i32>,
}

/// What the scan saw of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observation {
    /// Reaped already, or its pid names another process now.
    Gone,
    /// Exited, waiting to be reaped.
    Exited,
    /// Running.
    Alive {
        /// Its parent now.
        ppid: i32,
        /// Whether its recorded parent is still alive.
        parent_alive: bool,
    },
}

/// A finished scan.
#[derive(Debug)]
pub(crate) struct ScanReport {
    /// Only what the actor must act on: exits, orphans, adoptions. A process
    /// running as before is left out, so applying a report costs the actor
    /// nothing per quiet process.
    pub(crate) observations: Vec<(ProcessId, Observation)>,
    /// How many tracked processes were read.
    pub(crate) processes: usize,
    /// Whether it read every tracked process, watched or not.
    pub(crate) full: bool,
    pub(crate) zombies: Vec<ProcessId>,
    pub(crate) duration: Duration,
}

/// Messages from the scanner to the actor.
#[derive(Debug)]
pub(crate) enum ScanMsg {
    /// "Tick: what is tracked now?"
    Snapshot(oneshot::Sender<Snapshot>),
    /// The observations of that tick.
    Report(ScanReport),
    /// "Unit tick: which members do units contained by scanning have?"
    UnitSnapshot(oneshot::Sender<UnitSnapshot>),
    /// What the unit scan found.
    Children(UnitReport),
}

/// What a unit scan reads.
#[derive(Debug, Clone)]
pub(crate) struct UnitSnapshot {
    /// The members of units contained by scanning.
    pub(crate) members: Arc<[Arc<ProcHandle>]>,
    /// Also list this process's own children: orphans reparented here join
    /// a unit.
    pub(crate) adopt: bool,
}

/// What a unit scan found.
#[derive(Debug, Default)]
pub(crate) struct UnitReport {
    /// The children of each member (tracked ones included; the actor skips
    /// those).
    pub(crate) members: Vec<(ProcessId, Vec<i32>)>,
    /// This process's own children, when asked for.
    pub(crate) own: Vec<i32>,
}

/// Scans of up to this many processes (or children lists, for a unit
/// scan) run on the scanner's own task: at about 10 us a read, that is
/// less than waking a blocking-pool thread costs, and a monitor tracking
/// a handful of processes (`pidguard run` tracks one) then needs no thread
/// besides the runtime's.
const INLINE_TARGETS: usize = 8;

/// Whether a tick reads `target`: a full one reads every target.
fn reads(target: &ScanTarget, full: bool) -> bool {
    full || !target.watched
}

/// Reads every target once (`full`), or those that are not watched. Runs
/// on the blocking pool (inline when small).
pub(crate) fn scan(os: &dyn Os, snapshot: Snapshot, full: bool) -> ScanReport {
    let started = std::time::Instant::now();
    let mut processes = 0;
    // Many tracked processes share one parent; read each named parent once.
    let mut parents: HashMap<ProcessId, bool> = HashMap::new();
    let observations: Vec<_> = snapshot
        .targets
        .iter()
        .filter(|target| reads(target, full))
        .filter_map(|target| {
            processes += 1;
            let observation = match os.stat(&target.handle) {
                None => Observation::Gone,
                Some(info) if info.exited => Observation::Exited,
                Some(info) => {
                    let parent_alive = if target.member {
                        true
                    } else if target.named_parent {
                        *parents.entry(target.parent).or_insert_with(|| {
                            os.stat_pid(target.parent.pid).is_some_and(|p| {
                                !p.exited && p.start_time == target.parent.start_time
                            })
                        })
                    } else {
                        // Children are reparented when their parent exits,
                        // so an unchanged ppid means the parent lives.
                        info.ppid == target.parent.pid
                    };
                    let adopted = target.adoptable && info.ppid == snapshot.my_pid;
                    if parent_alive && !adopted {
                        return None;
                    }
                    Observation::Alive {
                        ppid: info.ppid,
                        parent_alive,
                    }
                }
            };
            Some((target.handle.id, observation))
        })
        .collect();
    let zombies = if snapshot.find_zombies {
        os.child_zombies(&snapshot.owned)
    } else {
        Vec::new()
    };
    ScanReport {
        processes,
        full,
        observations,
        zombies,
        duration: started.elapsed(),
    }
}

/// Reads the children lists of every member of the units contained by
/// scanning (and this process's own, to adopt). Runs on the blocking pool.
pub(crate) fn unit_scan(os: &dyn Os, snapshot: &UnitSnapshot) -> UnitReport {
    UnitReport {
        members: snapshot
            .members
            .iter()
            .map(|member| (member.id, os.children(member)))
            .filter(|(_, children)| !children.is_empty())
            .collect(),
        own: if snapshot.adopt {
            os.own_children()
        } else {
            Vec::new()
        },
    }
}

/// The scanner's periods.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Periods {
    /// The safety-net scan of the tracked processes that are not watched.
    pub(crate) check: Duration,
    /// The full scan of every tracked process, watched or not: the first
    /// check tick at least this long after the last full scan is one.
    pub(crate) full: Duration,
    /// The unit scan of the members of units contained by scanning.
    pub(crate) unit: Duration,
}

/// The scanner task: two intervals. The check interval reads the tracked
/// processes that are not watched, and every one of them once the full
/// period has passed (the safety net); the unit interval reads the
/// children lists of the members of units contained by scanning (their
/// only way to find new members between exits), and so does `rescan`,
/// which the actor notifies when such a member exits. Each asks the actor
/// for a snapshot, reads on the blocking pool, and reports.
pub(crate) async fn run(
    os: Arc<dyn Os>,
    periods: Periods,
    rescan: Arc<Notify>,
    to_actor: mpsc::Sender<ScanMsg>,
    cancel: CancellationToken,
) {
    let mut interval = time::interval_at(Instant::now(), periods.check);
    // A stalled runtime must not be followed by a burst of scans: one scan
    // sees everything a burst would.
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut unit_interval = time::interval_at(Instant::now() + periods.unit, periods.unit);
    unit_interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick (at start) is a full scan.
    let mut last_full: Option<Instant> = None;
    loop {
        let check_tick = tokio::select! {
            () = cancel.cancelled() => break,
            at = interval.tick() => Some(at),
            _ = unit_interval.tick() => None,
            () = rescan.notified() => None,
        };
        let Some(at) = check_tick else {
            if !scan_units(&os, &to_actor).await {
                break;
            }
            continue;
        };
        // `at` is the tick's scheduled instant, so a full period that is a
        // multiple of the check interval falls exactly on a tick.
        let full = last_full.is_none_or(|last| at.saturating_duration_since(last) >= periods.full);
        if full {
            last_full = Some(at);
        }
        let (reply, snapshot) = oneshot::channel();
        if to_actor.send(ScanMsg::Snapshot(reply)).await.is_err() {
            break;
        }
        let Ok(snapshot) = snapshot.await else { break };
        let os = Arc::clone(&os);
        let reading = snapshot
            .targets
            .iter()
            .filter(|target| reads(target, full))
            .take(INLINE_TARGETS + 1)
            .count();
        let small = reading <= INLINE_TARGETS && !snapshot.find_zombies;
        let report = if small {
            scan(os.as_ref(), snapshot, full)
        } else {
            match tokio::task::spawn_blocking(move || scan(os.as_ref(), snapshot, full)).await {
                Ok(report) => report,
                Err(error) => {
                    tracing::error!(%error, "scan task failed; the next tick retries");
                    continue;
                }
            }
        };
        if to_actor.send(ScanMsg::Report(report)).await.is_err() {
            break;
        }
    }
}

/// One unit tick; `false` once the actor is gone.
async fn scan_units(os: &Arc<dyn Os>, to_actor: &mpsc::Sender<ScanMsg>) -> bool {
    let (reply, snapshot) = oneshot::channel();
    if to_actor.send(ScanMsg::UnitSnapshot(reply)).await.is_err() {
        return false;
    }
    let Ok(snapshot) = snapshot.await else {
        return false;
    };
    // No unit to look into: nothing to read, and no blocking-pool thread.
    // (Units that follow fork events are never in the snapshot.)
    if snapshot.members.is_empty() && !snapshot.adopt {
        return true;
    }
    // A few lists read faster than a blocking-pool thread wakes, as for
    // the checks: `pidguard run`'s one unit needs no second thread.
    let lists = snapshot.members.len() + usize::from(snapshot.adopt);
    let found = if lists <= INLINE_TARGETS {
        unit_scan(os.as_ref(), &snapshot)
    } else {
        let os = Arc::clone(os);
        match tokio::task::spawn_blocking(move || unit_scan(os.as_ref(), &snapshot)).await {
            Ok(found) => found,
            Err(error) => {
                tracing::error!(%error, "unit scan task failed; the next tick retries");
                return true;
            }
        }
    };
    // Sent even when nothing was found: the actor counts unit scans.
    to_actor.send(ScanMsg::Children(found)).await.is_ok()
}
