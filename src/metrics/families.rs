//! What is exported: every metric family, computed from the monitor's
//! counters and status and the daemon's counters. Plain data; `mod.rs`
//! hands it to prometheus-client to write.
//!
//! Labels take values from fixed sets only (containment, state, error
//! kind, request kind, outcome, limit), so the number of series does not
//! grow with what is tracked; the one exception, a series per unit, is
//! behind `per_unit` (`--metrics-per-unit`).

use std::collections::BTreeMap;

use monitor_core::{Counters, ProcessState, Status, UnitResources};

use super::Scrape;
use crate::protocol::{DaemonCounters, HistogramCounts};

/// A family's type.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets: `(upper bound, count)` per bucket (not
    /// cumulative), every observation's count, their sum.
    Histogram {
        buckets: Vec<(f64, u64)>,
        count: u64,
        sum: f64,
    },
}

/// One metric family: its name (without the `pidguard_` prefix, the unit
/// suffix or the counter's `_total`), what it means, and its samples.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Family {
    pub(super) name: String,
    pub(super) help: &'static str,
    pub(super) kind: Kind,
    /// Its unit, if any (the name gets `_seconds` or `_bytes`).
    pub(super) unit: Option<MetricUnit>,
    pub(super) samples: Vec<Sample>,
}

/// A family's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MetricUnit {
    Seconds,
    Bytes,
}

/// One series: its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sample {
    pub(super) labels: Vec<(&'static str, String)>,
    pub(super) value: Value,
}

/// A sample's value: a count, written as an integer, or a measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value {
    /// A count.
    Count(u64),
    /// Seconds, or anything else with a fraction.
    Measure(f64),
}

impl Family {
    fn new(name: impl Into<String>, help: &'static str, kind: Kind) -> Self {
        Self {
            name: name.into(),
            help,
            kind,
            unit: None,
            samples: Vec::new(),
        }
    }

    fn seconds(mut self) -> Self {
        self.unit = Some(MetricUnit::Seconds);
        self
    }

    fn bytes(mut self) -> Self {
        self.unit = Some(MetricUnit::Bytes);
        self
    }

    fn sample(mut self, labels: Vec<(&'static str, String)>, value: Value) -> Self {
        self.samples.push(Sample { labels, value });
        self
    }

    fn one(self, value: Value) -> Self {
        self.sample(Vec::new(), value)
    }
}

fn value(count: u64) -> Value {
    Value::Count(count)
}

fn usize_value(count: usize) -> Value {
    value(u64::try_from(count).unwrap_or(u64::MAX))
}

fn flag(on: bool) -> Value {
    value(u64::from(on))
}

fn seconds(value: f64) -> Value {
    Value::Measure(value)
}

/// Every family `scrape` has data for.
pub(super) fn all(scrape: &Scrape<'_>) -> Vec<Family> {
    let mut families = Vec::new();
    if let Some(counters) = scrape.counters {
        families.extend(monitor_counters(counters));
    }
    if let Some(status) = scrape.monitor {
        families.extend(monitor_gauges(status));
        if scrape.per_unit {
            families.extend(per_unit(status));
        }
    }
    if let Some(daemon) = scrape.daemon {
        families.extend(daemon_families(daemon));
    }
    families
}

/// The library's counters, as it lists them ([`Counters::each`]): a
/// counter the library adds later is exported with no change here.
fn monitor_counters(counters: &Counters) -> Vec<Family> {
    let mut families: Vec<Family> = Vec::new();
    for counter in counters.each() {
        let labels = counter
            .label
            .map(|(key, value)| vec![(key, value.to_owned())])
            .unwrap_or_default();
        let name = format!("monitor_{}", counter.name);
        match families.iter_mut().find(|family| family.name == name) {
            Some(family) => family.samples.push(Sample {
                labels,
                value: value(counter.value),
            }),
            None => families.push(
                Family::new(name, counter.help, Kind::Counter).sample(labels, value(counter.value)),
            ),
        }
    }
    families
}

/// The containments every build knows, so their series exist from the
/// start (others seen in a status are added).
const CONTAINMENTS: [&str; 4] = ["cgroup", "fork-events", "scan", "none"];

/// Every process state, by its serialized name.
const STATES: [(ProcessState, &str); 5] = [
    (ProcessState::Running, "running"),
    (ProcessState::Orphaned, "orphaned"),
    (ProcessState::Terminating, "terminating"),
    (ProcessState::Killing, "killing"),
    (ProcessState::Unkillable, "unkillable"),
];

fn state_name(state: ProcessState) -> &'static str {
    STATES
        .iter()
        .find(|(known, _)| *known == state)
        .map_or("unknown", |(_, name)| name)
}

fn monitor_gauges(status: &Status) -> Vec<Family> {
    let mut tracked: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    let mut units: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for containment in CONTAINMENTS {
        for (_, state) in STATES {
            tracked.insert((containment.to_owned(), state), 0);
        }
        units.insert(containment.to_owned(), (0, 0));
    }
    for process in &status.tracked {
        *tracked
            .entry((process.containment.to_string(), state_name(process.state)))
            .or_default() += 1;
    }
    let mut largest = 0;
    let mut rootless = 0;
    // Resource figures exist for cgroup units only; summed over the units
    // alive now, by containment (so a unit's end lowers them).
    let mut usage: BTreeMap<String, Usage> = BTreeMap::new();
    usage.insert("cgroup".to_owned(), Usage::default());
    for unit in &status.units {
        let entry = units.entry(unit.containment.to_string()).or_default();
        entry.0 += 1;
        entry.1 += unit.members;
        largest = largest.max(unit.members);
        if !unit.root_running {
            rootless += 1;
        }
        if let Some(resources) = unit.resources {
            usage
                .entry(unit.containment.to_string())
                .or_default()
                .add(&resources);
        }
    }
    let mut families = vec![
        tracked.into_iter().fold(
            Family::new(
                "monitor_tracked",
                "Tracked processes, by their unit's containment and their state.",
                Kind::Gauge,
            ),
            |family, ((containment, state), count)| {
                family.sample(
                    vec![("containment", containment), ("state", state.to_owned())],
                    usize_value(count),
                )
            },
        ),
        Family::new(
            "monitor_scan_only",
            "Tracked processes whose exit only the scan notices (no pidfd).",
            Kind::Gauge,
        )
        .one(usize_value(status.scan_only)),
    ];
    let (unit_counts, member_counts): (Vec<_>, Vec<_>) = units
        .into_iter()
        .map(|(containment, (count, members))| {
            (
                Sample {
                    labels: vec![("containment", containment.clone())],
                    value: usize_value(count),
                },
                Sample {
                    labels: vec![("containment", containment)],
                    value: usize_value(members),
                },
            )
        })
        .unzip();
    let mut unit_family = Family::new(
        "monitor_units",
        "Units (a tracked root and its descendants), by containment.",
        Kind::Gauge,
    );
    unit_family.samples = unit_counts;
    let mut member_family = Family::new(
        "monitor_unit_members",
        "Processes in units (roots included while they run), by containment.",
        Kind::Gauge,
    );
    member_family.samples = member_counts;
    families.push(unit_family);
    families.push(member_family);
    families.extend([
        Family::new(
            "monitor_unit_members_max",
            "Members of the largest unit.",
            Kind::Gauge,
        )
        .one(usize_value(largest)),
        Family::new(
            "monitor_units_rootless",
            "Units whose root exited while members live on.",
            Kind::Gauge,
        )
        .one(usize_value(rootless)),
        Family::new(
            "monitor_unowned_zombies",
            "Exited children nobody in the daemon's process reaped yet.",
            Kind::Gauge,
        )
        .one(usize_value(status.unowned_zombies.len())),
        Family::new(
            "monitor_running",
            "Whether the monitor runs (1) or is disabled or stopped (0).",
            Kind::Gauge,
        )
        .one(flag(status.running)),
        Family::new(
            "monitor_pidfd_supported",
            "Whether every tracked process got a pidfd (0: some fell back to start-time checks).",
            Kind::Gauge,
        )
        .one(flag(status.pidfd_supported)),
        Family::new(
            "monitor_check_interval",
            "The safety-net scan's interval.",
            Kind::Gauge,
        )
        .seconds()
        .one(seconds(status.check_interval.as_secs_f64())),
    ]);
    families.extend(usage_families(usage));
    if let Some(scan) = status.last_scan {
        families.push(
            Family::new(
                "monitor_last_scan_duration",
                "How long the last scan took.",
                Kind::Gauge,
            )
            .seconds()
            .one(seconds(scan.duration.as_secs_f64())),
        );
        families.push(
            Family::new(
                "monitor_last_scan_processes",
                "How many processes the last scan read.",
                Kind::Gauge,
            )
            .one(usize_value(scan.processes)),
        );
    }
    families
}

/// Resource figures summed over units (where a figure is known).
#[derive(Debug, Default)]
struct Usage {
    cpu_usec: u64,
    memory_bytes: u64,
    memory_peak_max: u64,
    pids: u64,
}

impl Usage {
    fn add(&mut self, resources: &UnitResources) {
        self.cpu_usec += resources.cpu_usec.unwrap_or(0);
        self.memory_bytes += resources.memory_bytes.unwrap_or(0);
        self.memory_peak_max = self
            .memory_peak_max
            .max(resources.memory_peak_bytes.unwrap_or(0));
        self.pids += resources.pids.unwrap_or(0);
    }
}

/// Microseconds as seconds.
#[allow(clippy::cast_precision_loss)] // CPU time far below 2^53 us
fn usec(value: u64) -> Value {
    seconds(value as f64 / 1e6)
}

fn usage_families(usage: BTreeMap<String, Usage>) -> Vec<Family> {
    let mut cpu = Family::new(
        "monitor_units_cpu",
        "CPU time used by the units alive now (cgroup units: the figures come with the cgroup).",
        Kind::Gauge,
    )
    .seconds();
    let mut memory = Family::new(
        "monitor_units_memory",
        "Memory in use by the units alive now (cgroup units).",
        Kind::Gauge,
    )
    .bytes();
    let mut peak = Family::new(
        "monitor_unit_memory_peak_max",
        "The highest memory peak of a unit alive now (cgroup units).",
        Kind::Gauge,
    )
    .bytes();
    let mut pids = Family::new(
        "monitor_units_pids",
        "Processes in the units alive now, as their cgroups count them.",
        Kind::Gauge,
    );
    for (containment, figures) in usage {
        let labels = vec![("containment", containment)];
        cpu = cpu.sample(labels.clone(), usec(figures.cpu_usec));
        memory = memory.sample(labels.clone(), value(figures.memory_bytes));
        peak = peak.sample(labels.clone(), value(figures.memory_peak_max));
        pids = pids.sample(labels, value(figures.pids));
    }
    vec![cpu, memory, peak, pids]
}

/// A series per unit, labelled by its root (`pid@start_time`), owner and
/// containment: as many series as units, hence opt-in. Resource figures
/// only where the unit has them (a cgroup unit).
fn per_unit(status: &Status) -> Vec<Family> {
    let mut members = Family::new(
        "unit_members",
        "Processes in this unit (--metrics-per-unit).",
        Kind::Gauge,
    );
    let mut running = Family::new(
        "unit_root_running",
        "Whether this unit's root still runs (--metrics-per-unit).",
        Kind::Gauge,
    );
    let mut cpu = Family::new(
        "unit_cpu",
        "CPU time this unit used (--metrics-per-unit; cgroup units).",
        Kind::Counter,
    )
    .seconds();
    let mut memory = Family::new(
        "unit_memory",
        "Memory this unit uses (--metrics-per-unit; cgroup units).",
        Kind::Gauge,
    )
    .bytes();
    let mut peak = Family::new(
        "unit_memory_peak",
        "The most memory this unit used (--metrics-per-unit; cgroup units).",
        Kind::Gauge,
    )
    .bytes();
    let mut pids = Family::new(
        "unit_pids",
        "Processes in this unit's cgroup (--metrics-per-unit; cgroup units).",
        Kind::Gauge,
    );
    for unit in &status.units {
        let labels = vec![
            ("root", unit.root.to_string()),
            ("owner", unit.owner.to_string()),
            ("containment", unit.containment.to_string()),
        ];
        members = members.sample(labels.clone(), usize_value(unit.members));
        running = running.sample(labels.clone(), flag(unit.root_running));
        let resources = unit.resources.unwrap_or_default();
        if let Some(used) = resources.cpu_usec {
            cpu = cpu.sample(labels.clone(), usec(used));
        }
        if let Some(bytes) = resources.memory_bytes {
            memory = memory.sample(labels.clone(), value(bytes));
        }
        if let Some(bytes) = resources.memory_peak_bytes {
            peak = peak.sample(labels.clone(), value(bytes));
        }
        if let Some(count) = resources.pids {
            pids = pids.sample(labels, value(count));
        }
    }
    vec![members, running, cpu, memory, peak, pids]
}

/// The buckets with a last one for what exceeds every bound: OpenMetrics
/// requires the `+Inf` bucket to be written out.
fn with_overflow(histogram: &HistogramCounts) -> Vec<(f64, u64)> {
    let bounded: u64 = histogram.buckets.iter().map(|(_, count)| count).sum();
    let mut buckets = histogram.buckets.clone();
    buckets.push((f64::INFINITY, histogram.count.saturating_sub(bounded)));
    buckets
}

fn daemon_families(daemon: &DaemonCounters) -> Vec<Family> {
    let requests = daemon.requests.iter().fold(
        Family::new(
            "daemon_requests",
            "Requests answered, by kind and outcome (ok, or the error's kind).",
            Kind::Counter,
        ),
        |family, count| {
            family.sample(
                vec![
                    ("request", count.request.name().to_owned()),
                    (
                        "outcome",
                        count.outcome.map_or("ok", |kind| kind.name()).to_owned(),
                    ),
                ],
                value(count.count),
            )
        },
    );
    vec![
        Family::new(
            "daemon_start_time",
            "When the daemon started, since the Unix epoch.",
            Kind::Gauge,
        )
        .seconds()
        .one(seconds(daemon.started_at)),
        Family::new("daemon_registrations", "Registrations held.", Kind::Gauge)
            .one(usize_value(daemon.registrations)),
        Family::new("daemon_connections", "Connections admitted.", Kind::Counter)
            .one(value(daemon.connections)),
        Family::new(
            "daemon_connections_open",
            "Connections open now.",
            Kind::Gauge,
        )
        .one(value(daemon.connections_open)),
        Family::new(
            "daemon_connections_refused",
            "Connections refused at a cap, by the config key of the cap.",
            Kind::Counter,
        )
        .sample(
            vec![("limit", "max_connections_per_uid".to_owned())],
            value(daemon.connections_refused_per_uid),
        )
        .sample(
            vec![("limit", "max_connections".to_owned())],
            value(daemon.connections_refused_total),
        ),
        Family::new(
            "daemon_accept_errors",
            "Failed accepts (e.g. out of descriptors).",
            Kind::Counter,
        )
        .one(value(daemon.accept_errors)),
        requests,
        Family::new(
            "daemon_state_writes",
            "State file writes, by outcome (a failed one's changes were rolled back).",
            Kind::Counter,
        )
        .sample(
            vec![("outcome", "ok".to_owned())],
            value(daemon.state_writes),
        )
        .sample(
            vec![("outcome", "failed".to_owned())],
            value(daemon.state_write_failures),
        ),
        Family::new(
            "daemon_state_write_duration",
            "How long state file writes took, fsyncs included.",
            Kind::Histogram {
                buckets: with_overflow(&daemon.state_write_seconds),
                count: daemon.state_write_seconds.count,
                sum: daemon.state_write_seconds.sum,
            },
        )
        .seconds(),
        Family::new(
            "daemon_monitor_events_missed",
            "Monitor events the daemon missed (it reconciled with the monitor's status each time).",
            Kind::Counter,
        )
        .one(value(daemon.monitor_events_missed)),
    ]
}
