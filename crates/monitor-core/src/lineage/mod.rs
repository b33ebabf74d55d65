//! Unit membership learnt from the kernel's fork, exec and exit events,
//! applied in the order the connector delivers them. Pure: no kernel, no
//! clock, tested on made-up events.
//!
//! # Rules
//!
//! - A **fork** whose parent process (`parent_tgid`) is a member makes the
//!   new process a member at once. The event is applied when it is read,
//!   which may be long after: the parent may have exited since, and a
//!   double fork with `setsid` that finished in microseconds is still
//!   followed link by link, because the events arrive in the order the
//!   tasks made them.
//! - Every fork hands out an id (`child_pid`) that was free: a member still
//!   holding it must have exited unseen (events were lost), so it is
//!   dropped as **stale**. That is also what clears a member whose exit
//!   was missed before its pid went to an unrelated process.
//! - **Time** decides which process an event is about. Every member
//!   carries the `CLOCK_MONOTONIC` time from which it is known to hold its
//!   pid (the caller's pinning time for a root, the fork event's time for
//!   a joined child). Events about that pid from before it (the member's
//!   own fork, read after the caller inserted it; an earlier holder's
//!   exit, read late) change nothing. The kernel stamps events with the
//!   same clock (`ktime_get_ns`).
//! - The **exit** of a member's thread group leader (`pid == tgid`) ends
//!   its membership (`Left`). Usually the process has ended. Not always:
//!   when a thread other than the leader calls `execve`, the kernel ends
//!   the leader first and then hands its pid to the exec'ing thread; and a
//!   leader may `pthread_exit` while other threads go on (and fork). So a
//!   member that left is remembered for a while (the last
//!   [`DEPARTED_KEPT`] that left), and an exec event for it, or a fork by
//!   it, brings it back (`Revived`) before its child is judged.
//! - Thread creation and thread exits change nothing else.
//!
//! A pid belongs to at most one unit. The caller seeds each unit with its
//! root ([`Lineage::insert`]), pins and checks every `Joined` process (its
//! pidfd, start time and uid), and after an overrun rescans: it inserts
//! what it finds and removes what it proves dead.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

use crate::connector::{Exec, Exit, Fork, ProcEvent};

/// How many members that left are remembered, for a revival by exec or
/// fork. The two events of an exec from a non-leader thread are
/// microseconds apart; a few thousand other exits in between is already
/// far more than a unit sees.
pub(crate) const DEPARTED_KEPT: usize = 4096;

/// What an event changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change<U> {
    /// `pid` was forked by member `parent` and is now a member of `unit`.
    Joined {
        /// The unit.
        unit: U,
        /// The new process.
        pid: i32,
        /// Its parent process.
        parent: i32,
    },
    /// Member `pid`'s thread group leader exited: normally the process
    /// ended (its pidfd confirms); a `Revived` follows if it lives on.
    Left {
        /// The unit.
        unit: U,
        /// The process.
        pid: i32,
    },
    /// `pid`, which had left, showed it lives on (it exec'd or forked):
    /// it is a member again.
    Revived {
        /// The unit.
        unit: U,
        /// The process.
        pid: i32,
    },
    /// Member `pid` must have exited unseen: its id was just given to a new
    /// task. It is no longer a member (its identity is stale).
    Stale {
        /// The unit.
        unit: U,
        /// The pid.
        pid: i32,
    },
}

/// A member: its unit, and since when its pid is known to be this process.
#[derive(Debug, Clone, Copy)]
struct Member<U> {
    unit: U,
    since_ns: u64,
}

/// A member that left: what it was, and the number of its departure.
#[derive(Debug, Clone, Copy)]
struct Departed<U> {
    member: Member<U>,
    number: u64,
}

/// Every unit's members, and the members that left recently.
#[derive(Debug)]
pub(crate) struct Lineage<U> {
    unit_of: HashMap<i32, Member<U>>,
    members: HashMap<U, HashSet<i32>>,
    /// Members that left.
    departed: HashMap<i32, Departed<U>>,
    /// Departures, oldest first. An entry is outdated when its pid was
    /// revived, reused or departed again since (its number no longer
    /// matches); each remembered pid has exactly one current entry.
    departed_order: VecDeque<(i32, u64)>,
    departures: u64,
}

impl<U: Copy + Eq + Hash> Default for Lineage<U> {
    fn default() -> Self {
        Self {
            unit_of: HashMap::new(),
            members: HashMap::new(),
            departed: HashMap::new(),
            departed_order: VecDeque::new(),
            departures: 0,
        }
    }
}

impl<U: Copy + Eq + Hash> Lineage<U> {
    /// No units.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Makes `pid` a member of `unit` (a root, or a process a scan found),
    /// known to be that process since `since_ns` (`CLOCK_MONOTONIC`; take
    /// it after pinning the process by its pidfd). `Err(other)`: it is a
    /// member of another unit already, unchanged. Inserting a member again
    /// keeps its earlier time.
    pub(crate) fn insert(&mut self, unit: U, pid: i32, since_ns: u64) -> Result<(), U> {
        match self.unit_of.entry(pid) {
            Entry::Occupied(held) if held.get().unit != unit => return Err(held.get().unit),
            Entry::Occupied(_) => return Ok(()),
            Entry::Vacant(slot) => {
                slot.insert(Member { unit, since_ns });
            }
        }
        self.departed.remove(&pid);
        self.members.entry(unit).or_default().insert(pid);
        Ok(())
    }

    /// Ends `pid`'s membership (the caller proved it dead, or moved it).
    pub(crate) fn remove(&mut self, pid: i32) -> Option<U> {
        self.departed.remove(&pid);
        self.take(pid).map(|member| member.unit)
    }

    /// Removes `pid` from the members (not from the departed).
    fn take(&mut self, pid: i32) -> Option<Member<U>> {
        let member = self.unit_of.remove(&pid)?;
        if let Entry::Occupied(mut set) = self.members.entry(member.unit) {
            set.get_mut().remove(&pid);
            if set.get().is_empty() {
                set.remove();
            }
        }
        Some(member)
    }

    /// Forgets `unit`, returning its members.
    pub(crate) fn remove_unit(&mut self, unit: U) -> Vec<i32> {
        let pids: Vec<i32> = self
            .members
            .remove(&unit)
            .map(|set| set.into_iter().collect())
            .unwrap_or_default();
        for pid in &pids {
            self.unit_of.remove(pid);
        }
        self.departed
            .retain(|_, departed| departed.member.unit != unit);
        pids
    }

    /// The unit `pid` is a member of.
    pub(crate) fn unit_of(&self, pid: i32) -> Option<U> {
        self.unit_of.get(&pid).map(|member| member.unit)
    }

    /// Since when `pid` is known to be the member it is (`CLOCK_MONOTONIC`
    /// ns): for a `Joined` child, its fork event's time.
    #[cfg(test)]
    pub(crate) fn since_ns(&self, pid: i32) -> Option<u64> {
        self.unit_of.get(&pid).map(|member| member.since_ns)
    }

    /// How many members `unit` has.
    #[cfg(test)]
    pub(crate) fn member_count(&self, unit: U) -> usize {
        self.members.get(&unit).map_or(0, HashSet::len)
    }

    /// `unit`'s members, in no order.
    #[cfg(test)]
    pub(crate) fn members(&self, unit: U) -> impl Iterator<Item = i32> + '_ {
        self.members.get(&unit).into_iter().flatten().copied()
    }

    /// Applies one event; returns what changed (nothing, for the many
    /// events about other processes: no allocation then). An overrun
    /// changes nothing here: the caller rescans.
    pub(crate) fn apply(&mut self, event: &ProcEvent) -> Vec<Change<U>> {
        match event {
            ProcEvent::Fork(fork) => self.fork(fork),
            ProcEvent::Exec(exec) => self.exec(exec).into_iter().collect(),
            ProcEvent::Exit(exit) => self.exit(exit).into_iter().collect(),
            ProcEvent::Overrun => Vec::new(),
        }
    }

    fn fork(&mut self, fork: &Fork) -> Vec<Change<U>> {
        let mut changes = Vec::new();
        let at = fork.timestamp_ns;
        // The new task's id was free at `at`: whoever held it before is
        // gone. (A member known only since later is the new task itself.)
        if self
            .unit_of
            .get(&fork.child_pid)
            .is_some_and(|member| at > member.since_ns)
            && let Some(member) = self.take(fork.child_pid)
        {
            changes.push(Change::Stale {
                unit: member.unit,
                pid: fork.child_pid,
            });
        }
        if self
            .departed
            .get(&fork.child_pid)
            .is_some_and(|departed| at > departed.member.since_ns)
        {
            self.departed.remove(&fork.child_pid);
        }
        // A fork (of a thread or a process) proves its process runs.
        if let Some(unit) = self.revive(fork.parent_tgid) {
            changes.push(Change::Revived {
                unit,
                pid: fork.parent_tgid,
            });
        }
        if fork.is_process()
            && let Some(unit) = self.unit_of(fork.parent_tgid)
            && self.insert(unit, fork.child_pid, at).is_ok()
        {
            changes.push(Change::Joined {
                unit,
                pid: fork.child_pid,
                parent: fork.parent_tgid,
            });
        }
        changes
    }

    fn exec(&mut self, exec: &Exec) -> Option<Change<U>> {
        let unit = self.revive(exec.tgid)?;
        Some(Change::Revived {
            unit,
            pid: exec.tgid,
        })
    }

    fn exit(&mut self, exit: &Exit) -> Option<Change<U>> {
        // An exit from before the member held the pid was an earlier
        // holder's, read late.
        self.unit_of
            .get(&exit.pid)
            .filter(|member| exit.timestamp_ns >= member.since_ns)?;
        let member = self.take(exit.pid)?;
        if !exit.is_process() {
            // A thread of another process holds a member's pid: the member
            // is gone (the thread's creation was among lost events).
            return Some(Change::Stale {
                unit: member.unit,
                pid: exit.pid,
            });
        }
        self.depart(exit.pid, member);
        Some(Change::Left {
            unit: member.unit,
            pid: exit.pid,
        })
    }

    /// Remembers a member that left, forgetting the oldest beyond
    /// [`DEPARTED_KEPT`].
    fn depart(&mut self, pid: i32, member: Member<U>) {
        self.departures += 1;
        let number = self.departures;
        self.departed.insert(pid, Departed { member, number });
        self.departed_order.push_back((pid, self.departures));
        // The oldest entry goes while either bound is exceeded; if it is
        // current, its pid is forgotten. Each remembered pid has one
        // current entry, so this ends and keeps both bounds.
        while self.departed.len() > DEPARTED_KEPT || self.departed_order.len() > 2 * DEPARTED_KEPT {
            let Some((oldest, number)) = self.departed_order.pop_front() else {
                break;
            };
            if self
                .departed
                .get(&oldest)
                .is_some_and(|d| d.number == number)
            {
                self.departed.remove(&oldest);
            }
        }
    }

    /// Brings a departed pid back into its unit.
    fn revive(&mut self, pid: i32) -> Option<U> {
        let Departed { member, .. } = self.departed.remove(&pid)?;
        self.insert(member.unit, pid, member.since_ns).ok()?;
        Some(member.unit)
    }
}

#[cfg(test)]
mod tests;
