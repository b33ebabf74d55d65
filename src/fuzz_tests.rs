//! The fuzz and property harness for everything the daemon reads from
//! others: request lines, the state file and the config file. It runs on
//! the stable toolchain (`proptest`), inside `cargo test`, with a bounded
//! number of cases per property: [`DEFAULT_CASES`], or
//! `PIDGUARD_FUZZ_CASES` for a longer run:
//!
//! ```text
//! PIDGUARD_FUZZ_CASES=200000 cargo test --bin pidguard fuzz_tests
//! ```
//!
//! Each property holds for any input: no panic, and every value that is
//! accepted lies within its documented bounds; valid input round-trips.

use std::time::Duration;

use monitor_core::{OrphanAction, OrphanTarget, ProcessId, Signal};
use proptest::prelude::*;
use serde_json::Value;

use crate::daemon::fuzz_entry::{parse_config, parse_state, state_bytes};
use crate::protocol::{self, Envelope, Registration, Request, TrackRequest};

/// Cases per property in a plain `cargo test` (CI): seven properties of
/// 2,000 cases each take a few seconds.
const DEFAULT_CASES: u32 = 2000;

fn cases() -> u32 {
    std::env::var("PIDGUARD_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Failures are reported with their shrunk input; nothing is written
        // into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, nested a few levels, with the keys a request uses
/// mixed among random ones.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("version".to_owned()),
        Just("id".to_owned()),
        Just("request".to_owned()),
        Just("pid".to_owned()),
        Just("grace".to_owned()),
        Just("parent".to_owned()),
        Just("action".to_owned()),
        Just("signal".to_owned()),
        Just("target".to_owned()),
        Just("tree".to_owned()),
        "[a-z]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("track"),
            Just("ping"),
            Just("untrack"),
            Just("status"),
            Just("events"),
            Just("version"),
            Just("kill"),
            Just("SIGTERM"),
            Just("3years"),
            Just("5s"),
        ]
        .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        (0u64..10_000, "(ns|us|ms|s|m|h|d|w|y|years|months)")
            .prop_map(|(n, unit)| Value::from(format!("{n}{unit}"))),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn signal() -> impl Strategy<Value = Signal> {
    prop_oneof![
        Just(Signal::TERM),
        Just(Signal::INT),
        Just(Signal::HUP),
        Just(Signal::QUIT),
        Just(Signal::USR1),
        Just(Signal::USR2),
    ]
}

fn action() -> impl Strategy<Value = OrphanAction> {
    prop_oneof![
        Just(OrphanAction::Terminate),
        Just(OrphanAction::Kill),
        Just(OrphanAction::Notify)
    ]
}

fn target() -> impl Strategy<Value = OrphanTarget> {
    prop_oneof![
        Just(OrphanTarget::Process),
        Just(OrphanTarget::Tree),
        Just(OrphanTarget::Group)
    ]
}

fn grace() -> impl Strategy<Value = Duration> {
    (
        0..=monitor_core::GRACE_RANGE.max.as_secs(),
        0u32..1_000_000_000,
    )
        .prop_map(|(secs, nanos)| Duration::new(secs, nanos).min(monitor_core::GRACE_RANGE.max))
}

/// A request the daemon must accept.
fn request() -> impl Strategy<Value = Request> {
    let track = (
        any::<i32>(),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<i32>()),
        proptest::option::of(action()),
        proptest::option::of(grace()),
        proptest::option::of(signal()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(target()),
    )
        .prop_map(
            |(pid, start_time, parent, action, grace, signal, tree, target)| {
                Request::Track(TrackRequest {
                    pid,
                    start_time,
                    parent,
                    action,
                    grace,
                    signal,
                    tree,
                    target,
                })
            },
        );
    prop_oneof![
        Just(Request::Ping {}),
        Just(Request::Version {}),
        Just(Request::Status {}),
        Just(Request::Events {}),
        any::<i32>().prop_map(|pid| Request::Untrack { pid }),
        track,
    ]
}

fn registration() -> impl Strategy<Value = Registration> {
    (
        (any::<i32>(), any::<u64>(), any::<i32>(), any::<u64>()),
        any::<u32>(),
        action(),
        (0u64..1 << 40, 0u32..1_000_000_000),
        signal(),
        any::<bool>(),
        target(),
    )
        .prop_map(
            |((pid, start, ppid, pstart), uid, action, (secs, nanos), signal, tree, target)| {
                Registration {
                    id: ProcessId::new(pid, start),
                    parent: ProcessId::new(ppid, pstart),
                    uid,
                    action,
                    grace: Duration::new(secs, nanos),
                    signal,
                    tree,
                    target,
                }
            },
        )
}

/// A TOML text made of the config's keys (and some others) with values
/// of every shape, durations beyond their limits included.
fn config_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("max_request_bytes"),
        Just("max_connections"),
        Just("max_connections_per_uid"),
        Just("max_registrations"),
        Just("max_registrations_per_uid"),
        Just("idle_timeout"),
        Just("line_timeout"),
        Just("log_format"),
        Just("socket"),
        Just("socket_group"),
        Just("monitor.grace"),
        Just("monitor.kill_timeout"),
        Just("monitor.check_interval"),
        Just("monitor.event_capacity"),
        Just("unknown_key"),
    ];
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (0u64..100_000_000, "(ns|ms|s|m|h|d|years)").prop_map(|(n, u)| format!("\"{n}{u}\"")),
        "\\PC{0,10}".prop_map(|s| format!("{s:?}")),
        Just("true".to_owned()),
        Just("\"json\"".to_owned()),
    ];
    prop::collection::vec((key, value), 0..8).prop_map(|pairs| {
        let (monitor, top): (Vec<_>, Vec<_>) = pairs
            .into_iter()
            .partition(|(k, _)| k.starts_with("monitor."));
        let mut text = String::new();
        for (key, value) in top {
            text.push_str(&format!("{key} = {value}\n"));
        }
        text.push_str("[monitor]\n");
        for (key, value) in monitor {
            let key = key.trim_start_matches("monitor.");
            text.push_str(&format!("{key} = {value}\n"));
        }
        text
    })
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes: an answer, never a panic.
    #[test]
    fn any_bytes_are_answered(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let (id, request) = protocol::parse(&bytes);
        if request.is_ok() || id.is_some() {
            prop_assert!(serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes).is_ok());
        }
    }

    /// Any JSON: an `id` comes back only if it is a string or an integer,
    /// and an accepted track's grace lies within its range.
    #[test]
    fn any_json_is_answered_within_bounds(value in json()) {
        let line = serde_json::to_vec(&value).expect("serializes");
        let (id, request) = protocol::parse(&line);
        if let Some(id) = id {
            let text = id.get();
            let digits = text.strip_prefix('-').unwrap_or(text);
            prop_assert!(
                text.starts_with('"') || digits.bytes().all(|b| b.is_ascii_digit()),
                "{text}"
            );
        }
        if let Ok(Request::Track(TrackRequest { grace: Some(grace), .. })) = request {
            prop_assert!(grace <= monitor_core::GRACE_RANGE.max);
        }
    }

    /// Every valid request survives its envelope, and any string or
    /// integer id (of any size) comes back byte for byte.
    #[test]
    fn valid_requests_round_trip_with_their_id(
        request in request(),
        digits in "-?[1-9][0-9]{0,60}",
        text in "\\PC{0,20}",
    ) {
        let line = serde_json::to_vec(&Envelope { version: protocol::VERSION, id: 1, request: &request })
            .expect("serializes");
        let (_, parsed) = protocol::parse(&line);
        prop_assert_eq!(parsed.expect("valid"), request.clone());
        let quoted = serde_json::to_string(&text).expect("a JSON string");
        for id in [digits.as_str(), quoted.as_str()] {
            let line = format!(r#"{{"version":1,"id":{id},"request":"ping"}}"#);
            let (echoed, _) = protocol::parse(line.as_bytes());
            let echoed = echoed.expect("an id");
            prop_assert_eq!(echoed.get(), id);
        }
    }

    /// Any bytes as a state file: parsed or refused, never a panic.
    #[test]
    fn any_state_file_is_parsed_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_state(&bytes);
    }

    /// Saved registrations load back exactly.
    #[test]
    fn saved_registrations_load_back(registrations in prop::collection::vec(registration(), 0..8)) {
        let bytes = state_bytes(&registrations);
        prop_assert_eq!(parse_state(&bytes).expect("valid"), registrations);
    }

    /// A state file with one byte changed: parsed or refused, and what is
    /// parsed still has a known format.
    #[test]
    fn a_damaged_state_file_is_parsed_or_refused(
        registrations in prop::collection::vec(registration(), 1..4),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = state_bytes(&registrations);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = parse_state(&bytes);
    }

    /// Any config text: accepted only with every limit and duration in
    /// range; never a panic.
    #[test]
    fn any_config_is_refused_or_within_bounds(text in config_text()) {
        if let Ok((limits, monitor)) = parse_config(&text) {
            prop_assert!(limits.max_request_bytes <= 1024 * 1024);
            prop_assert!(limits.max_connections_per_uid <= limits.max_connections);
            prop_assert!(monitor.grace <= monitor_core::GRACE_RANGE.max);
            prop_assert!(monitor.kill_timeout <= monitor_core::KILL_TIMEOUT_RANGE.max);
            prop_assert!(monitor.check_interval >= monitor_core::CHECK_INTERVAL_RANGE.min);
        }
    }
}
