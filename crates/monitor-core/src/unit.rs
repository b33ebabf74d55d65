//! Units: a tracked process and everything it starts, as one thing with a
//! membership, an owner and a lifetime. The public face of the concept;
//! the actor's bookkeeping is in `actor/units.rs`.

use serde::{Deserialize, Serialize};

use crate::ProcessId;

/// How a unit learns of its members: the strongest mechanism the monitor
/// had when the unit was made.
///
/// What each lets escape is in `docs/architecture.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Containment {
    /// The unit lives in a cgroup v2 leaf the monitor created, and its
    /// root was spawned into it: membership is the kernel's own list
    /// (`cgroup.procs`), nothing a member forks can leave it, emptiness is
    /// `populated 0` (watched, not polled), and a kill is `cgroup.kill`,
    /// which a process forking meanwhile cannot outrun. Only for children
    /// the monitor spawns, where it may write a cgroup subtree (root, a
    /// systemd service with `Delegate=yes`, a container with a writable
    /// cgroup namespace). The strongest; the default ceiling
    /// ([`crate::Config::containment`]).
    Cgroup,
    /// Members are followed through the kernel's fork events (the process
    /// connector, one netlink socket for the whole monitor): a fork by a
    /// member makes the child a member at once, pinned by its pidfd and
    /// checked by its start time, however fast it forks on and whoever
    /// reaps its parent, so a double fork is followed link by link. For
    /// every unit that gets no cgroup (tracked processes the monitor did
    /// not spawn, `track_child`, spawns without a cgroup) where the monitor
    /// may listen: root (`CAP_NET_ADMIN`) in the initial user and pid
    /// namespaces. What the root forked before it was tracked is found in
    /// children lists when the unit is made; what was forked and orphaned
    /// among events lost to an overrun escapes (the unit then rescans its
    /// children lists).
    ForkEvents,
    /// Members are found in their parents' children lists
    /// (`/proc/<pid>/task/*/children`): when the unit is made, whenever a
    /// member exits, and every `unit_scan_interval`. A process forked and
    /// orphaned between two looks (a double fork) escapes. The fallback
    /// where neither of the above is available, e.g. without root.
    Scan,
    /// The unit is its root alone (`tree` off): its descendants are not
    /// followed.
    None,
}

impl std::fmt::Display for Containment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cgroup => "cgroup",
            Self::ForkEvents => "fork-events",
            Self::Scan => "scan",
            Self::None => "none",
        })
    }
}

impl Containment {
    /// How strong it is: what each lets escape is a subset of what the
    /// next weaker one lets escape.
    fn strength(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Scan => 1,
            Self::ForkEvents => 2,
            Self::Cgroup => 3,
        }
    }

    /// Whether a ceiling of `self` ([`crate::Config::containment`]) allows
    /// `mechanism`.
    pub(crate) fn allows(self, mechanism: Self) -> bool {
        mechanism.strength() <= self.strength()
    }

    /// Whether members are found by parentage: children lists (and fork
    /// events), not a cgroup's list.
    pub(crate) fn follows_children(self) -> bool {
        matches!(self, Self::ForkEvents | Self::Scan)
    }
}

/// One unit, as [`crate::Status::units`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UnitStatus {
    /// The tracked process the unit grew from. It may have exited while
    /// members live on.
    pub root: ProcessId,
    /// Whether the root still runs.
    pub root_running: bool,
    /// The uid on whose behalf the unit is tracked: no process of another
    /// uid is ever a member or signalled, unless this is root (0).
    pub owner: u32,
    /// How members are found.
    pub containment: Containment,
    /// How many processes the unit holds now, the root included while it
    /// runs.
    pub members: usize,
    /// The monitor spawned the root or was handed it (`spawn`,
    /// `track_child`): shutdown under [`crate::ShutdownPolicy::TerminateUnits`]
    /// ends this unit.
    pub owned: bool,
    /// What the unit has used, where its containment gives the figures for
    /// nothing (a cgroup); `None` otherwise.
    pub resources: Option<UnitResources>,
}

/// What a unit has used, from its cgroup's files. A figure is `None` where
/// the controller that provides it is not enabled for the monitor's
/// cgroup (the monitor never enables one itself).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UnitResources {
    /// CPU time, user and system, in microseconds (`cpu.stat`).
    pub cpu_usec: Option<u64>,
    /// Memory in use now, in bytes (`memory.current`).
    pub memory_bytes: Option<u64>,
    /// The most memory it ever used, in bytes (`memory.peak`).
    pub memory_peak_bytes: Option<u64>,
    /// Processes now (`pids.current`).
    pub pids: Option<u64>,
}
