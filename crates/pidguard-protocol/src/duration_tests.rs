//! The duration format as the crate docs describe it ("Durations"): what
//! is written, what is read, what is refused, through a real `track`
//! request line and a real registration.

use std::time::Duration;

use monitor_core::{OrphanAction, OrphanTarget, ProcessId, Signal};

use crate::{ErrorKind, Registration, Request, parse};

/// The grace a `track` line with `grace` (raw JSON) is read as, or the
/// refusal.
fn grace(raw: &str) -> Result<Duration, crate::ErrorBody> {
    let line = format!(r#"{{"version":1,"request":"track","pid":7,"grace":{raw}}}"#);
    match parse(line.as_bytes()).1? {
        Request::Track(track) => Ok(track.grace.expect("a grace was given")),
        other => panic!("{line} parsed as {other:?}"),
    }
}

fn written(duration: Duration) -> String {
    let registration = Registration {
        id: ProcessId::new(7, 1),
        parent: ProcessId::new(6, 1),
        uid: 1000,
        action: OrphanAction::Terminate,
        grace: duration,
        signal: Signal::TERM,
        tree: true,
        target: OrphanTarget::Tree,
    };
    let json = serde_json::to_value(&registration).expect("serializes");
    json["grace"].as_str().expect("a string").to_owned()
}

#[test]
fn durations_are_written_largest_part_first() {
    assert_eq!(written(Duration::ZERO), "0s");
    assert_eq!(written(Duration::from_secs(5)), "5s");
    assert_eq!(written(Duration::from_secs(90)), "1m 30s");
    assert_eq!(
        written(Duration::from_nanos(725_297_847)),
        "725ms 297us 847ns"
    );
    assert_eq!(written(Duration::from_secs(26 * 3600)), "1day 2h");
}

#[test]
fn the_documented_inputs_are_read() {
    let ms = Duration::from_millis;
    for (raw, expected) in [
        (r#""5s""#, ms(5000)),
        (r#""1m 30s""#, ms(90_000)),
        (r#""1m30s""#, ms(90_000)),
        (r#""725ms 297us 847ns""#, Duration::from_nanos(725_297_847)),
        (r#""1.5s""#, ms(1500)),
        (r#""0.25h""#, ms(900_000)),
        (r#""500 ms""#, ms(500)),
        (r#""2 seconds""#, ms(2000)),
        (r#""3min""#, ms(180_000)),
        (r#""1hr""#, ms(3_600_000)),
        (r#""10µs""#, Duration::from_micros(10)),
        (r#""0s""#, Duration::ZERO),
    ] {
        assert_eq!(grace(raw).expect(raw), expected, "{raw}");
    }
}

#[test]
fn the_documented_refusals_are_refused_naming_the_field() {
    for raw in [
        "5",
        r#""5""#,
        r#""1h30""#,
        r#""-5s""#,
        r#""5 fortnights""#,
        r#""PT5S""#,
        r#""""#,
        r#""1.5ns""#,
    ] {
        let error = grace(raw).expect_err(raw);
        assert_eq!(error.kind, ErrorKind::InvalidRequest, "{raw}: {error}");
    }
    let error = grace(r#""5 fortnights""#).expect_err("an unknown unit");
    assert!(error.message.contains("fortnights"), "{error}");
}

#[test]
fn units_are_case_sensitive_and_the_range_is_checked() {
    // "1m" is a minute; "1M" is a month, far beyond grace's 1h.
    assert_eq!(grace(r#""1m""#).expect("a minute"), Duration::from_secs(60));
    let month = grace(r#""1M""#).expect_err("a month is out of range");
    assert!(
        month.message.contains("grace") && month.message.contains("1h"),
        "{month}"
    );
}
