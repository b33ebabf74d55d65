//! Monitor configuration: one strict, serde-friendly struct whose defaults
//! live in [`Config::default`] and nowhere else.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Containment, Error, Signal};

/// What the monitor does to a tracked process whose recorded parent died.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanAction {
    /// Send the termination signal, wait up to the grace period, then
    /// `SIGKILL`, then wait (bounded) for the process to go.
    Terminate,
    /// Send `SIGKILL` at once.
    Kill,
    /// Only report it: an `Orphaned` event, and the state in `status()`.
    Notify,
}

impl std::fmt::Display for OrphanAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Terminate => "terminate",
            Self::Kill => "kill",
            Self::Notify => "notify",
        })
    }
}

/// Which processes an orphan action (or a requested stop) reaches.
///
/// As an orphan setting (`Config::orphan_target`, `TrackOptions::target`)
/// it takes effect only when a process is orphaned, so it has none for a
/// child the monitor owns (spawned, or handed over with `track_child`): its
/// parent is this process, which outlives the monitor, so it is never
/// orphaned, unless a parent was named (`TrackOptions::parent`). An owned
/// child's unit is ended whole by [`crate::OwnedChild::kill`] and
/// [`crate::OwnedChild::terminate`]; [`crate::MonitorHandle::stop`] names a
/// target for one stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanTarget {
    /// The orphan alone. The rest of its unit follows when it exits: a
    /// unit whose root is gone is ended (its members get the same action).
    Process,
    /// The orphan's whole unit: the root and every member, after a last
    /// look for new ones, all signalled in the same instant.
    Tree,
    /// Every process in the orphan's process group at that moment that the
    /// unit's owner may signal (never the monitor's own group). Each is
    /// made a member of the unit first.
    Group,
}

impl std::fmt::Display for OrphanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Process => "process",
            Self::Tree => "tree",
            Self::Group => "group",
        })
    }
}

/// Which exited children the monitor reaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReapPolicy {
    /// Reap only what the monitor owns: children handed over with
    /// `track_child`, and tracked processes adopted while the process is a
    /// subreaper. Every other child belongs to somebody else in this process
    /// (a `std` or `tokio` `Child`), which keeps its own exit status.
    Owned,
    /// Reap every child of this process (`waitid(P_ALL)`), like tini.
    ///
    /// Only for a process that spawns nothing else itself (an init, a
    /// supervisor): every `std::process::Child` and `tokio::process::Child`
    /// in this process then gets `ECHILD` instead of its status, and with pid
    /// reuse a `tokio` child can even be handed another process's status.
    AllChildren,
}

/// What happens to still-tracked processes when the monitor shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownPolicy {
    /// Leave every process running; owned children are neither signalled nor
    /// waited for.
    Leave,
    /// Terminate every unit whose root the monitor spawned or was handed
    /// (`spawn`, `track_child`), members included: each member gets its
    /// termination signal, then `SIGKILL` after the grace period, and
    /// shutdown completes once every one is gone (or the kill timeout
    /// passed). Units of processes that are only watched (`track`) are left
    /// alone. The default. (`terminate_owned`, its name before units, is
    /// read as this.)
    #[serde(alias = "terminate_owned")]
    TerminateUnits,
}

/// Monitor settings.
///
/// Every key has a default (see [`Config::default`]); a config file only
/// names what it changes, and an unknown key is an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// A disabled monitor answers `status()` and refuses `track`.
    pub enabled: bool,
    /// How often the safety-net scan reads the tracked processes whose
    /// exit or orphaning no pidfd watch reports (no pidfd, a parent that
    /// cannot be watched), and looks for unowned zombies.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// How often the scan reads every tracked process, watched or not: the
    /// net under the watches. The first check after this long is a full
    /// one, so a value shorter than `check_interval` makes every check full.
    #[serde(with = "humantime_serde")]
    pub full_scan_interval: Duration,
    /// Time between the termination signal and `SIGKILL`.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// How long to wait for a process to vanish after `SIGKILL` before
    /// reporting it as unkillable (it may be stuck in the kernel).
    #[serde(with = "humantime_serde")]
    pub kill_timeout: Duration,
    /// The default action for orphans; a track can override it.
    pub orphan_action: OrphanAction,
    /// Which processes the orphan action reaches; a track can override it.
    /// No effect on children the monitor owns (see [`OrphanTarget`]).
    pub orphan_target: OrphanTarget,
    /// Make every tracked process the root of a unit that holds its
    /// descendants, present and future, found by the strongest mechanism
    /// available (see [`crate::Containment`]); a track can override it.
    /// `false`: a tracked process is a unit of one.
    pub tree: bool,
    /// How often the units contained by scanning (no cgroup, no fork
    /// events) read their members' children lists for new members. Kept
    /// apart from `check_interval`: it bounds the window in which a double
    /// fork can escape such a unit.
    #[serde(with = "humantime_serde")]
    pub unit_scan_interval: Duration,
    /// The strongest mechanism units may use to find their members, a
    /// ceiling (`cgroup` > `fork-events` > `scan`): `cgroup` (the default:
    /// spawned children in cgroup leaves where the monitor may write a
    /// cgroup subtree, fork events for every other unit where it may
    /// listen to them, scanning otherwise), `fork-events` (no cgroups),
    /// or `scan` (children lists only). Each unit gets the strongest one
    /// allowed that is available to it; status reports which.
    pub containment: Containment,
    /// The signal that starts a `terminate` action; a track can override it.
    pub term_signal: Signal,
    /// Which exited children to reap.
    pub reap_policy: ReapPolicy,
    /// Make this process a child subreaper (`PR_SET_CHILD_SUBREAPER`), so
    /// orphaned descendants are reparented to it. Process-wide and one-way.
    pub subreaper: bool,
    /// What happens to tracked processes at shutdown.
    pub shutdown: ShutdownPolicy,
    /// Events kept for each subscriber before a slow one starts missing
    /// them (it then sees `Lagged`; the monitor never waits for it).
    pub event_capacity: usize,
    /// Requests that may queue on the command channel before senders wait.
    pub command_capacity: usize,
}

/// The largest `event_capacity`: the event channel allocates all of its
/// slots at once (about 80 bytes each), so this bounds that at about 80 MiB.
const MAX_EVENT_CAPACITY: usize = 1 << 20;

impl Default for Config {
    fn default() -> Self {
        Self {
            enabled: true,
            check_interval: Duration::from_secs(60),
            full_scan_interval: Duration::from_secs(60),
            grace: Duration::from_secs(5),
            kill_timeout: Duration::from_secs(5),
            orphan_action: OrphanAction::Terminate,
            orphan_target: OrphanTarget::Tree,
            tree: true,
            unit_scan_interval: Duration::from_secs(1),
            containment: Containment::Cgroup,
            term_signal: Signal::TERM,
            reap_policy: ReapPolicy::Owned,
            subreaper: false,
            shutdown: ShutdownPolicy::TerminateUnits,
            event_capacity: 1024,
            command_capacity: 64,
        }
    }
}

impl Config {
    /// Checks the values that parse but cannot work.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid =
            |key: &'static str, reason: &'static str| Err(Error::InvalidConfig { key, reason });
        if self.check_interval.is_zero() {
            return invalid("check_interval", "must be longer than zero");
        }
        if self.unit_scan_interval.is_zero() {
            return invalid("unit_scan_interval", "must be longer than zero");
        }
        if self.containment == Containment::None {
            return invalid(
                "containment",
                "must be \"cgroup\", \"fork-events\" or \"scan\"; turn units off with tree = false",
            );
        }
        if self.kill_timeout.is_zero() {
            return invalid("kill_timeout", "must be longer than zero");
        }
        check_grace_signal("term_signal", self.term_signal, self.orphan_action)?;
        if self.event_capacity == 0 {
            return invalid("event_capacity", "must be at least 1");
        }
        if self.event_capacity > MAX_EVENT_CAPACITY {
            // The channel allocates every slot when the first subscriber
            // comes, inside the running monitor: refuse it here instead.
            return invalid("event_capacity", "must be at most 1048576");
        }
        if self.command_capacity == 0 {
            return invalid("command_capacity", "must be at least 1");
        }
        crate::limits::check_config(self)
    }
}

/// The one rule for the signal that starts termination, for the config
/// (`term_signal`) and per process (`TrackOptions::signal`): with the
/// `terminate` action it may not be `SIGKILL`. Not wrong as such, but the
/// grace period would never apply, which is surely not what was meant; the
/// `kill` action says it plainly.
pub(crate) fn check_grace_signal(
    key: &'static str,
    signal: Signal,
    action: OrphanAction,
) -> Result<(), Error> {
    if signal == Signal::KILL && action == OrphanAction::Terminate {
        return Err(Error::InvalidConfig {
            key,
            reason: "SIGKILL cannot be the grace signal (the grace period would never apply); use the \"kill\" action instead",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let config = Config::default();
        assert!(config.enabled);
        assert_eq!(config.check_interval, Duration::from_secs(60));
        assert_eq!(config.grace, Duration::from_secs(5));
        assert_eq!(config.orphan_action, OrphanAction::Terminate);
        assert_eq!(config.reap_policy, ReapPolicy::Owned);
        assert!(!config.subreaper);
        config.validate().expect("defaults are valid");
    }

    #[test]
    fn empty_toml_gives_defaults_and_unknown_keys_fail() {
        let config: Config = toml::from_str("").expect("empty config parses");
        assert_eq!(config, Config::default());
        let err = toml::from_str::<Config>("check_intervall = \"1s\"").expect_err("typo rejected");
        assert!(err.to_string().contains("check_intervall"), "{err}");
    }

    #[test]
    fn durations_and_signals_read_naturally() {
        let config: Config = toml::from_str(
            "check_interval = \"500ms\"\ngrace = \"2s\"\nterm_signal = \"INT\"\norphan_action = \"kill\"",
        )
        .expect("parses");
        assert_eq!(config.check_interval, Duration::from_millis(500));
        assert_eq!(config.grace, Duration::from_secs(2));
        assert_eq!(config.term_signal, Signal::INT);
        assert_eq!(config.orphan_action, OrphanAction::Kill);
        let bad = toml::from_str::<Config>("grace = \"soon\"").expect_err("bad duration");
        assert!(bad.to_string().contains("grace"), "{bad}");
    }

    #[test]
    fn event_capacity_is_bounded_both_ways() {
        for (capacity, valid) in [
            (0, false),
            (1, true),
            (1 << 20, true),
            ((1 << 20) + 1, false),
        ] {
            let config = Config {
                event_capacity: capacity,
                ..Config::default()
            };
            match config.validate() {
                Ok(()) => assert!(valid, "{capacity} accepted"),
                Err(Error::InvalidConfig { key, .. }) => {
                    assert!(!valid, "{capacity} refused");
                    assert_eq!(key, "event_capacity");
                }
                Err(other) => panic!("{capacity}: {other}"),
            }
        }
    }

    #[test]
    fn zero_interval_is_refused_by_name() {
        let config = Config {
            check_interval: Duration::ZERO,
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(Error::InvalidConfig {
                key: "check_interval",
                ..
            })
        ));
    }
}
