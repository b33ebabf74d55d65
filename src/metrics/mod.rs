//! The Prometheus exposition of the daemon and its monitor, shared by the
//! daemon's `/metrics` and `pidguard status --format prometheus`, so both
//! print the same families from the same data.
//!
//! The formats are prometheus-client's (the Prometheus project's own Rust
//! client): the text format 0.0.4 that every scraper reads, and
//! OpenMetrics 1.0 for a scraper that asks for it. What is exported is in
//! `families`; docs/operations.md lists it.
//!
//! # Layout
//!
//! - `families`: every family, computed from the counters and statuses.
//! - `mod.rs`: formats, content negotiation, and the writing.

mod families;

use monitor_core::{Counters, Status};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::protocol::DaemonCounters;
use families::{Family, Kind, MetricUnit, Value};

/// What one exposition is made of; each part is left out when absent
/// (a client that is not root gets neither the monitor's nor the daemon's
/// counters).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scrape<'a> {
    /// The monitor's counters.
    pub(crate) counters: Option<&'a Counters>,
    /// The monitor's status (tracked processes, units, the last scan).
    pub(crate) monitor: Option<&'a Status>,
    /// The daemon's own counters.
    pub(crate) daemon: Option<&'a DaemonCounters>,
    /// A series per unit (`--metrics-per-unit`).
    pub(crate) per_unit: bool,
}

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The Prometheus text format, version 0.0.4.
    Prometheus,
    /// OpenMetrics text, version 1.0.0.
    OpenMetrics,
}

impl Format {
    /// Its `Content-Type`.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// What a scraper's `Accept` header asks for: OpenMetrics when it
    /// accepts `application/openmetrics-text` at least as much as
    /// anything else it names, the text format otherwise (and without a
    /// header). Prometheus sends
    /// `application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`.
    pub(crate) fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Prometheus;
        };
        let mut openmetrics = 0.0_f64;
        let mut others = 0.0_f64;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let quality = parts
                .filter_map(|param| param.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, q)| q.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            if media == "application/openmetrics-text" {
                openmetrics = openmetrics.max(quality);
            } else {
                others = others.max(quality);
            }
        }
        if openmetrics > 0.0 && openmetrics >= others {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }
}

/// `scrape` written in `format`.
pub(crate) fn render(scrape: &Scrape<'_>, format: Format) -> String {
    let mut registry = Registry::with_prefix("pidguard");
    registry.register(
        "build",
        "The pidguard version that exports these metrics",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
    );
    registry.register_collector(Box::new(Families(families::all(scrape))));
    let mut text = String::new();
    let written = match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, &registry),
    };
    // Writing to a String cannot fail; an encoder error would be a bug in
    // the data (e.g. a bad name), which the tests would catch.
    if let Err(error) = written {
        tracing::error!(%error, "could not encode the metrics");
    }
    text
}

/// The families of one scrape, for prometheus-client to write.
#[derive(Debug)]
struct Families(Vec<Family>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let unit = family.unit.map(|unit| match unit {
                MetricUnit::Seconds => Unit::Seconds,
                MetricUnit::Bytes => Unit::Bytes,
            });
            let metric_type = match family.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram { .. } => MetricType::Histogram,
            };
            // The encoder ends every help text with a full stop itself.
            let help = family.help.trim_end_matches('.');
            let mut metric =
                encoder.encode_descriptor(&family.name, help, unit.as_ref(), metric_type)?;
            if let Kind::Histogram {
                buckets,
                count,
                sum,
            } = &family.kind
            {
                metric.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
                continue;
            }
            for sample in &family.samples {
                if sample.labels.is_empty() {
                    encode_value(&family.kind, sample.value, &mut metric)?;
                } else {
                    let mut labelled = metric.encode_family(&sample.labels)?;
                    encode_value(&family.kind, sample.value, &mut labelled)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(
    kind: &Kind,
    value: Value,
    encoder: &mut prometheus_client::encoding::MetricEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    match (kind, value) {
        (Kind::Counter, Value::Count(count)) => {
            encoder.encode_counter::<NoLabelSet, _, u64>(&count, None)
        }
        (Kind::Counter, Value::Measure(measure)) => {
            encoder.encode_counter::<NoLabelSet, _, u64>(&measure, None)
        }
        (_, Value::Count(count)) => encoder.encode_gauge(&count),
        (_, Value::Measure(measure)) => encoder.encode_gauge(&measure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked_for_at_least_as_much() {
        let prometheus_default = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(
            Format::negotiate(Some(prometheus_default)),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Prometheus
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Format::Prometheus
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0")),
            Format::Prometheus
        );
    }

    /// A status with a cgroup unit (resource figures) and a scan unit
    /// (none), as JSON: `Status` cannot be built outside its crate.
    fn status_with_units() -> Status {
        let unit = |root: i32, containment: &str, resources: serde_json::Value| {
            serde_json::json!({
                "root": {"pid": root, "start_time": 20}, "root_running": true,
                "owner": 1000, "containment": containment, "members": 2,
                "owned": true, "resources": resources,
            })
        };
        let tracked = |pid: i32, state: &str, containment: &str| {
            serde_json::json!({
                "id": {"pid": pid, "start_time": 20}, "parent": {"pid": 1, "start_time": 1},
                "state": state, "since": "1s", "owned": true, "pidfd": true,
                "exit_watch": true, "action": "terminate", "target": "tree", "tree": true,
                "descendant_of": null, "containment": containment,
            })
        };
        serde_json::from_value(serde_json::json!({
            "enabled": true, "running": true, "pid": 7, "check_interval": "1m",
            "grace": "5s", "reap_policy": "owned", "subreaper": false,
            "pidfd_supported": true, "scan_only": 0, "tracked_count": 2,
            "tracked": [tracked(10, "running", "cgroup"), tracked(11, "killing", "scan")],
            "units": [
                unit(10, "cgroup", serde_json::json!({
                    "cpu_usec": 1_500_000, "memory_bytes": 1024,
                    "memory_peak_bytes": 4096, "pids": 3,
                })),
                unit(11, "scan", serde_json::Value::Null),
            ],
            "counters": serde_json::to_value(Counters::default()).expect("serializes"),
            "last_scan": {"processes": 2, "duration": "3ms"},
            "unowned_zombies": [],
        }))
        .expect("a status")
    }

    #[test]
    fn units_are_counted_in_aggregate_and_per_unit_only_when_asked() {
        let status = status_with_units();
        let scrape = |per_unit| Scrape {
            counters: Some(&status.counters),
            monitor: Some(&status),
            daemon: None,
            per_unit,
        };
        let text = render(&scrape(false), Format::Prometheus);
        for line in [
            "pidguard_monitor_tracked{containment=\"cgroup\",state=\"running\"} 1\n",
            "pidguard_monitor_tracked{containment=\"scan\",state=\"killing\"} 1\n",
            "pidguard_monitor_tracked{containment=\"none\",state=\"running\"} 0\n",
            "pidguard_monitor_units{containment=\"fork-events\"} 0\n",
            "pidguard_monitor_units{containment=\"cgroup\"} 1\n",
            "pidguard_monitor_unit_members{containment=\"scan\"} 2\n",
            "pidguard_monitor_units_cpu_seconds{containment=\"cgroup\"} 1.5\n",
            "pidguard_monitor_units_memory_bytes{containment=\"cgroup\"} 1024\n",
            "pidguard_monitor_unit_memory_peak_max_bytes{containment=\"cgroup\"} 4096\n",
            "pidguard_monitor_units_pids{containment=\"cgroup\"} 3\n",
            "pidguard_monitor_last_scan_duration_seconds 0.003\n",
            "pidguard_monitor_last_scan_processes 2\n",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
        assert!(!text.contains("root=\""), "no per-unit series: {text}");
        let text = render(&scrape(true), Format::Prometheus);
        for line in [
            "pidguard_unit_members{root=\"10@20\",owner=\"1000\",containment=\"cgroup\"} 2\n",
            "pidguard_unit_members{root=\"11@20\",owner=\"1000\",containment=\"scan\"} 2\n",
            "pidguard_unit_cpu_seconds_total{root=\"10@20\",owner=\"1000\",containment=\"cgroup\"} 1.5\n",
            "pidguard_unit_memory_peak_bytes{root=\"10@20\",owner=\"1000\",containment=\"cgroup\"} 4096\n",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
        assert!(
            !text.contains("pidguard_unit_cpu_seconds_total{root=\"11@20\""),
            "a scan unit has no figures: {text}"
        );
    }

    #[test]
    fn counters_get_total_and_seconds_get_their_unit() {
        let mut counters = Counters::default();
        counters.orphans_found = 3;
        let scrape = Scrape {
            counters: Some(&counters),
            monitor: None,
            daemon: None,
            per_unit: false,
        };
        let text = render(&scrape, Format::Prometheus);
        assert!(
            text.contains("# TYPE pidguard_monitor_orphans_found_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("\npidguard_monitor_orphans_found_total 3\n"),
            "{text}"
        );
        assert!(
            text.contains("pidguard_monitor_errors_total{kind=\"scan\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("pidguard_build_info{version=\""), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        let open = render(&scrape, Format::OpenMetrics);
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(open.contains("# TYPE pidguard_monitor_orphans_found counter\n"));
    }
}
