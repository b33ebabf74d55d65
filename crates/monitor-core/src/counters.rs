//! The monitor's running totals as a metrics crate reads them: a list of
//! named values ([`Counters::each`]) and a live, lock-free view
//! ([`LiveCounters`]) that never waits for the actor.
//!
//! The actor keeps its [`Counters`] as a plain struct (no atomics on its hot
//! paths) and copies it into the shared atomics once per message it
//! handles; a reader sees each counter as of the last message, never a
//! value that goes backwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::{Counters, ErrorKind};

/// Failures by kind (each also counted in [`Counters::errors`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorCounts {
    /// Signals refused with `EPERM` ([`ErrorKind::PermissionDenied`]).
    pub permission_denied: u64,
    /// Signals that failed otherwise ([`ErrorKind::Signal`]).
    pub signal: u64,
    /// Processes that outlived `SIGKILL` ([`ErrorKind::Unkillable`]).
    pub unkillable: u64,
    /// Owned processes that could not be reaped ([`ErrorKind::Reap`]).
    pub reap: u64,
    /// Scans that could not run ([`ErrorKind::Scan`]).
    pub scan: u64,
}

impl ErrorCounts {
    /// Each kind with its count, in a fixed order; the names are
    /// [`ErrorKind`]'s serialized names (`permission_denied`, `signal`,
    /// `unkillable`, `reap`, `scan`).
    pub fn each(&self) -> [(&'static str, u64); 5] {
        [
            ("permission_denied", self.permission_denied),
            ("signal", self.signal),
            ("unkillable", self.unkillable),
            ("reap", self.reap),
            ("scan", self.scan),
        ]
    }

    fn slot(&mut self, kind: ErrorKind) -> &mut u64 {
        match kind {
            ErrorKind::PermissionDenied => &mut self.permission_denied,
            ErrorKind::Signal => &mut self.signal,
            ErrorKind::Unkillable => &mut self.unkillable,
            ErrorKind::Reap => &mut self.reap,
            ErrorKind::Scan => &mut self.scan,
        }
    }
}

/// One counter as a metrics crate registers it: a stable name (snake case,
/// without a prefix or a `_total` suffix), what it counts, an optional
/// label, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterValue {
    /// The counter's name, e.g. `orphans_killed`. Entries that share a
    /// name differ by their label.
    pub name: &'static str,
    /// What it counts, one sentence.
    pub help: &'static str,
    /// A label telling apart entries of the same name: `("kind", "scan")`
    /// for the failures by kind.
    pub label: Option<(&'static str, &'static str)>,
    /// The running total.
    pub value: u64,
}

impl Counters {
    /// Counts one failure of `kind` (and, for `EPERM`, one permission
    /// denial).
    pub(crate) fn count_error(&mut self, kind: ErrorKind) {
        self.errors += 1;
        *self.errors_by_kind.slot(kind) += 1;
        if kind == ErrorKind::PermissionDenied {
            self.permission_denied += 1;
        }
    }

    /// Every counter, for a metrics crate to register by name without
    /// knowing this struct's fields: a counter added later shows up here
    /// with no change to the caller. Failures come once per kind (label
    /// `kind`); their sum is [`Counters::errors`], which is not listed
    /// again.
    pub fn each(&self) -> Vec<CounterValue> {
        let plain = |name, help, value| CounterValue {
            name,
            help,
            label: None,
            value,
        };
        let mut all = vec![
            plain(
                "scans",
                "Scans of the tracked processes completed.",
                self.scans,
            ),
            plain(
                "full_scans",
                "Of the scans, full ones: every tracked process read, watched or not.",
                self.full_scans,
            ),
            plain(
                "unit_scans",
                "Unit scans (children lists of units contained by scanning) completed.",
                self.unit_scans,
            ),
            plain(
                "fork_event_overruns",
                "Times fork events were lost (the socket's buffer overflowed) and the units that follow them read their children lists instead.",
                self.fork_event_overruns,
            ),
            plain(
                "orphans_found",
                "Tracked processes found orphaned (their recorded parent died).",
                self.orphans_found,
            ),
            plain(
                "orphans_terminated",
                "Orphans that exited after the termination signal, before SIGKILL.",
                self.orphans_terminated,
            ),
            plain(
                "orphans_killed",
                "Orphans sent SIGKILL (the grace period ran out, or the action was kill).",
                self.orphans_killed,
            ),
            plain(
                "stops_requested",
                "Terminations asked for through terminate or kill.",
                self.stops_requested,
            ),
            plain("reaped", "Children reaped.", self.reaped),
            plain("exited", "Tracked processes that exited.", self.exited),
            plain(
                "permission_denied",
                "Signals refused with EPERM.",
                self.permission_denied,
            ),
            plain(
                "refused",
                "Processes refused as unit members, or signals withheld, because they belong to another uid than the unit's owner.",
                self.refused,
            ),
        ];
        all.extend(
            self.errors_by_kind
                .each()
                .into_iter()
                .map(|(kind, value)| CounterValue {
                    name: "errors",
                    help: "Failures, by kind.",
                    label: Some(("kind", kind)),
                    value,
                }),
        );
        all
    }
}

/// How many plain counters and error kinds [`Published`] holds.
const PLAIN: usize = 13;
const KINDS: usize = 5;

/// The shared atomics the actor publishes into.
#[derive(Debug, Default)]
pub(crate) struct Published {
    plain: [AtomicU64; PLAIN],
    kinds: [AtomicU64; KINDS],
}

impl Published {
    /// Copies `counters` in. Relaxed is enough: each counter only grows,
    /// and no reader relies on two counters being from the same instant.
    pub(crate) fn store(&self, counters: &Counters) {
        for (slot, value) in self.plain.iter().zip(plain_values(counters)) {
            slot.store(value, Ordering::Relaxed);
        }
        for (slot, (_, value)) in self.kinds.iter().zip(counters.errors_by_kind.each()) {
            slot.store(value, Ordering::Relaxed);
        }
    }

    fn load(&self) -> Counters {
        let [
            scans,
            full_scans,
            unit_scans,
            fork_event_overruns,
            orphans_found,
            orphans_terminated,
            orphans_killed,
            stops_requested,
            reaped,
            exited,
            permission_denied,
            refused,
            errors,
        ] = self
            .plain
            .each_ref()
            .map(|slot| slot.load(Ordering::Relaxed));
        let [permission_denied_errors, signal, unkillable, reap, scan] = self
            .kinds
            .each_ref()
            .map(|slot| slot.load(Ordering::Relaxed));
        Counters {
            scans,
            full_scans,
            unit_scans,
            fork_event_overruns,
            orphans_found,
            orphans_terminated,
            orphans_killed,
            stops_requested,
            reaped,
            exited,
            permission_denied,
            refused,
            errors,
            errors_by_kind: ErrorCounts {
                permission_denied: permission_denied_errors,
                signal,
                unkillable,
                reap,
                scan,
            },
        }
    }
}

/// The plain counters in [`Published`]'s order (the order `load` reads).
fn plain_values(c: &Counters) -> [u64; PLAIN] {
    [
        c.scans,
        c.full_scans,
        c.unit_scans,
        c.fork_event_overruns,
        c.orphans_found,
        c.orphans_terminated,
        c.orphans_killed,
        c.stops_requested,
        c.reaped,
        c.exited,
        c.permission_denied,
        c.refused,
        c.errors,
    ]
}

/// A live view of a monitor's [`Counters`], from [`crate::Monitor::counters`].
///
/// Cheap to clone and to read (a few atomic loads), and reading never
/// waits for the monitor's actor: a metrics exporter can read it on every
/// scrape, even while the monitor is busy. Each counter is as of the last
/// message the actor handled. After the monitor stops, it keeps its last
/// values.
#[derive(Debug, Clone)]
pub struct LiveCounters {
    shared: Arc<Published>,
}

impl LiveCounters {
    pub(crate) fn new(shared: Arc<Published>) -> Self {
        Self { shared }
    }

    /// The counters now.
    pub fn snapshot(&self) -> Counters {
        self.shared.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_survives_publication() {
        let mut counters = Counters::default();
        // Distinct values per field, so a swapped pair would show.
        let values = (1..=u64::try_from(PLAIN).expect("small")).collect::<Vec<_>>();
        let [a, b, c, d, e, f, g, h, i, j, k, l, m] = values[..] else {
            unreachable!("PLAIN values")
        };
        counters.scans = a;
        counters.full_scans = l;
        counters.unit_scans = b;
        counters.fork_event_overruns = m;
        counters.orphans_found = c;
        counters.orphans_terminated = d;
        counters.orphans_killed = e;
        counters.stops_requested = f;
        counters.reaped = g;
        counters.exited = h;
        counters.permission_denied = i;
        counters.refused = j;
        counters.errors = k;
        counters.errors_by_kind = ErrorCounts {
            permission_denied: 21,
            signal: 22,
            unkillable: 23,
            reap: 24,
            scan: 25,
        };
        let published = Arc::new(Published::default());
        published.store(&counters);
        assert_eq!(LiveCounters::new(published).snapshot(), counters);
    }

    /// The live view follows the actor without asking it: after an orphan
    /// was killed and a signal refused, it reads what `status` reports.
    #[tokio::test(start_paused = true)]
    async fn the_live_view_matches_the_status() {
        use crate::fake::FakeProc;
        use crate::harness::{CHILD, Harness, PARENT, config, stubborn};
        use crate::{Event, ProcessState};

        let (mut h, _) = Harness::with_tracked_child(config(), stubborn()).await;
        let live = h.monitor.counters();
        assert_eq!(live.snapshot().orphans_found, 0);
        h.os.kill_parent(PARENT);
        h.next(|e| matches!(e, Event::Killed { .. })).await;
        h.next(|e| matches!(e, Event::Exited { .. })).await;
        h.os.spawn(300, 1);
        h.os.spawn_with(
            301,
            FakeProc {
                ppid: 300,
                signal_denied: true,
                ..FakeProc::default()
            },
        );
        h.handle.track(301).await.expect("track");
        h.os.kill_parent(300);
        h.next(|e| matches!(e, Event::Error { .. })).await;
        let status = h.handle.status().await.expect("status");
        let counters = live.snapshot();
        // Read after the status: never behind it. The periodic scans may
        // have ticked in between; everything else this scenario pins.
        for (now, then) in counters.each().iter().zip(status.counters.each()) {
            assert_eq!((now.name, now.label), (then.name, then.label));
            if matches!(now.name, "scans" | "full_scans" | "unit_scans") {
                assert!(now.value >= then.value, "{now:?} behind {then:?}");
            } else {
                assert_eq!(now.value, then.value, "{now:?}");
            }
        }
        assert_eq!(
            (counters.orphans_found, counters.orphans_killed),
            (2, 1),
            "{counters:?}"
        );
        assert_eq!(counters.errors_by_kind.permission_denied, 1);
        assert_eq!(counters.permission_denied, 1);
        assert!(status.tracked.iter().all(|t| t.id.pid != CHILD));
        assert!(
            status
                .tracked
                .iter()
                .any(|t| t.id.pid == 301 && t.state != ProcessState::Running)
        );
        // After shutdown the view keeps the last values.
        h.monitor.shutdown().await;
        assert_eq!(live.snapshot(), counters);
    }

    #[test]
    fn each_names_every_counter_once_and_errors_by_kind() {
        let mut counters = Counters::default();
        counters.count_error(ErrorKind::PermissionDenied);
        counters.count_error(ErrorKind::Scan);
        counters.count_error(ErrorKind::Scan);
        let each = counters.each();
        let plain: Vec<_> = each.iter().filter(|c| c.label.is_none()).collect();
        assert_eq!(plain.len(), PLAIN - 1, "every plain counter but `errors`");
        let value = |name: &str, label| {
            each.iter()
                .find(|c| c.name == name && c.label == label)
                .map(|c| c.value)
        };
        assert_eq!(value("permission_denied", None), Some(1));
        assert_eq!(value("errors", Some(("kind", "scan"))), Some(2));
        assert_eq!(
            value("errors", Some(("kind", "permission_denied"))),
            Some(1)
        );
        assert_eq!(value("errors", Some(("kind", "reap"))), Some(0));
        assert_eq!(value("errors", None), None, "the sum is not listed again");
        let by_kind: u64 = each
            .iter()
            .filter(|c| c.name == "errors")
            .map(|c| c.value)
            .sum();
        assert_eq!(by_kind, counters.errors);
        // Serialized names of ErrorKind are the labels.
        for (label, kind) in [("scan", ErrorKind::Scan), ("reap", ErrorKind::Reap)] {
            assert_eq!(
                serde_json::to_value(kind).expect("serializes"),
                serde_json::json!(label)
            );
        }
    }
}
