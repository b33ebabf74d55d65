//! Parsing a request line: the envelope (`version`, `id`) and the
//! request, with every value kept as raw text until it is needed, so an
//! `id` is echoed exactly as the client wrote it; values the monitor would
//! refuse (a grace out of range) are refused here first, by name.

use std::collections::BTreeMap;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::{ErrorBody, ErrorKind, Request, RequestId, TrackRequest, VERSION};

/// A request line, parsed as the daemon reads it: its `id` (echoed even
/// when the rest is bad) and the request or what is wrong with it (the
/// [`ErrorBody`] to answer with). The line's length is the caller's to
/// bound: the daemon cuts a line at its `max_request_bytes` before it gets
/// here.
pub fn parse(line: &[u8]) -> (Option<RequestId>, Result<Request, ErrorBody>) {
    let invalid_json =
        |message: String| (None, Err(ErrorBody::new(ErrorKind::InvalidJson, message)));
    // Every value stays raw text until it is needed, so an `id` is echoed
    // as written, whatever its size.
    let raw = match serde_json::from_slice::<&RawValue>(line) {
        Ok(raw) => raw,
        Err(error) => return invalid_json(format!("the request is not valid JSON: {error}")),
    };
    if !raw.get().trim_start().starts_with('{') {
        return invalid_json("the request must be a JSON object".to_owned());
    }
    let mut fields: BTreeMap<String, &RawValue> = match serde_json::from_str(raw.get()) {
        Ok(fields) => fields,
        Err(error) => return invalid_json(format!("the request is not valid JSON: {error}")),
    };
    let id = match fields.remove("id").map(checked_id).transpose() {
        Ok(id) => id,
        Err(error) => return (None, Err(error)),
    };
    let version = fields
        .remove("version")
        .map(|raw| serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null));
    if version.as_ref().and_then(Value::as_u64) != Some(u64::from(VERSION)) {
        let message = match version {
            None => format!("the request has no `version` field (this daemon speaks {VERSION})"),
            Some(other) => {
                format!("protocol version {other} is not supported (this daemon speaks {VERSION})")
            }
        };
        return (
            id,
            Err(ErrorBody::new(ErrorKind::UnsupportedVersion, message)),
        );
    }
    let mut object = serde_json::Map::new();
    for (key, raw) in fields {
        // Already checked as JSON above; the fallback cannot be reached.
        object.insert(key, serde_json::from_str(raw.get()).unwrap_or(Value::Null));
    }
    let request = serde_json::from_value(Value::Object(object))
        .map_err(|error| {
            ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!("invalid request: {error}"),
            )
        })
        .and_then(checked_ranges);
    (id, request)
}

/// An `id` that is a JSON string or integer, kept as written.
fn checked_id(raw: &RawValue) -> Result<RequestId, ErrorBody> {
    let text = raw.get();
    let digits = text.strip_prefix('-').unwrap_or(text);
    let integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if text.starts_with('"') || integer {
        return Ok(raw.to_owned());
    }
    let kind = match text.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number with a fraction or an exponent",
    };
    Err(ErrorBody::new(
        ErrorKind::InvalidRequest,
        format!("invalid request: `id` must be a string or an integer, not {kind}"),
    ))
}

/// Values that parse but lie outside what the monitor accepts, refused
/// here by name and limit, before they reach it.
fn checked_ranges(request: Request) -> Result<Request, ErrorBody> {
    if let Request::Track(TrackRequest {
        grace: Some(grace), ..
    }) = &request
    {
        monitor_core::GRACE_RANGE.check(*grace).map_err(|error| {
            ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!("invalid request: {error}"),
            )
        })?;
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use monitor_core::{OrphanAction, OrphanTarget};
    use serde_json::value::RawValue;

    use super::*;
    use crate::{Envelope, Pong, Response, encode};

    fn refused(line: &str) -> ErrorBody {
        parse(line.as_bytes()).1.expect_err(line)
    }

    #[test]
    fn requests_parse_with_their_envelope() {
        let (id, request) = parse(
            br#"{"version":1,"id":7,"request":"track","pid":42,"grace":"2s","action":"kill","tree":true,"target":"group"}"#,
        );
        assert_eq!(id.expect("an id").get(), "7");
        assert_eq!(
            request.expect("valid"),
            Request::Track(TrackRequest {
                pid: 42,
                start_time: None,
                parent: None,
                action: Some(OrphanAction::Kill),
                grace: Some(Duration::from_secs(2)),
                signal: None,
                tree: Some(true),
                target: Some(OrphanTarget::Group),
            })
        );
        let (_, identity) = parse(br#"{"version":1,"request":"track","pid":42,"start_time":9001}"#);
        let Ok(Request::Track(track)) = identity else {
            panic!("a track with a start time: {identity:?}");
        };
        assert_eq!((track.pid, track.start_time), (42, Some(9001)));
        let (_, ping) = parse(br#"{"version":1,"request":"ping"}"#);
        assert_eq!(ping.expect("valid"), Request::Ping {});
    }

    #[test]
    fn a_request_round_trips_through_its_envelope() {
        let request = Request::Untrack { pid: 9 };
        let line = serde_json::to_vec(&Envelope {
            version: VERSION,
            id: 3,
            request: &request,
        })
        .expect("serializes");
        let (id, parsed) = parse(&line);
        assert_eq!(id.expect("an id").get(), "3");
        assert_eq!(parsed.expect("valid"), request);
    }

    #[test]
    fn encoded_responses_parse_back() {
        let id = RawValue::from_string("\"x\"".to_owned()).expect("JSON");
        let line = encode(Some(&id), Ok(Pong { pid: 5 }));
        assert_eq!(line.last(), Some(&b'\n'));
        let response: Response = serde_json::from_slice(&line).expect("a response");
        assert!(response.ok);
        assert_eq!(response.id, Some(Value::from("x")));
        assert_eq!(response.result, Some(serde_json::json!({"pid": 5})));
        let line = encode::<Pong>(None, Err(ErrorBody::new(ErrorKind::Refused, "no")));
        let response: Response = serde_json::from_slice(&line).expect("a response");
        assert!(!response.ok && response.id.is_none());
        assert_eq!(response.error.expect("error").kind, ErrorKind::Refused);
    }

    #[test]
    fn each_bad_input_is_named() {
        assert_eq!(refused("not json").kind, ErrorKind::InvalidJson);
        assert_eq!(refused("[1,2]").kind, ErrorKind::InvalidJson);
        let version = refused(r#"{"request":"ping"}"#);
        assert_eq!(version.kind, ErrorKind::UnsupportedVersion);
        assert!(version.message.contains("version"), "{version}");
        assert_eq!(
            refused(r#"{"version":2,"request":"ping"}"#).kind,
            ErrorKind::UnsupportedVersion
        );
        let unknown = refused(r#"{"version":1,"request":"explode"}"#);
        assert!(unknown.message.contains("explode"), "{unknown}");
        let field = refused(r#"{"version":1,"request":"track","pid":1,"depth":2}"#);
        assert!(field.message.contains("depth"), "{field}");
        let target = refused(r#"{"version":1,"request":"track","pid":1,"target":"cgroup"}"#);
        assert!(target.message.contains("cgroup"), "{target}");
        let missing = refused(r#"{"version":1,"request":"track"}"#);
        assert!(missing.message.contains("pid"), "{missing}");
        let grace = refused(r#"{"version":1,"request":"track","pid":5,"grace":"soon"}"#);
        assert!(
            grace.message.contains("soon") || grace.message.contains("grace"),
            "{grace}"
        );
        let extra = refused(r#"{"version":1,"request":"ping","pid":3}"#);
        assert!(extra.message.contains("pid"), "{extra}");
        let untrack = refused(r#"{"version":1,"request":"untrack","pid":3,"force":true}"#);
        assert!(untrack.message.contains("force"), "{untrack}");
        let long = refused(r#"{"version":1,"request":"track","pid":3,"grace":"3years"}"#);
        assert!(
            long.message.contains("grace") && long.message.contains("1h"),
            "{long}"
        );
        for id in ["1.5", "null", "true", "[1]", "{\"a\":1}", "1e3"] {
            let line = format!(r#"{{"version":1,"id":{id},"request":"ping"}}"#);
            let (echoed, error) = parse(line.as_bytes());
            assert!(echoed.is_none(), "{id}");
            let error = error.expect_err(&line);
            assert!(error.message.contains("`id`"), "{error}");
        }
    }

    #[test]
    fn ids_are_echoed_verbatim() {
        for id in [
            "18446744073709551617",
            "-99999999999999999999999999",
            "0",
            "\"a \\\"quoted\\\" \\u00e9 id\"",
        ] {
            let line = format!(r#"{{"id":{id},"version":1,"request":"ping"}}"#);
            let (echoed, request) = parse(line.as_bytes());
            assert_eq!(request.expect("valid"), Request::Ping {});
            let echoed = echoed.expect("an id");
            assert_eq!(echoed.get(), id);
            let response = encode(Some(&echoed), Ok(Pong { pid: 1 }));
            let text = String::from_utf8(response).expect("UTF-8");
            assert!(text.contains(&format!("\"id\":{id},")), "{text}");
        }
    }
}
