//! The daemon's wire protocol: newline-delimited JSON over a Unix stream
//! socket, one request per line, one response line per request (plus event
//! lines after an `events` request). `docs/protocol.md` documents every
//! request and response; this module is the one definition both the daemon
//! and the client commands use.
//!
//! Requests are strict: every line carries `"version": 1`, names a known
//! `request`, and has no fields that request does not define, so fields
//! added later are refused by a daemon
//! that would otherwise ignore them.

use std::time::Duration;

use monitor_core::{Event, OrphanAction, OrphanTarget, ProcessId, ProcessState, Signal};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// The protocol version this build speaks.
pub(crate) const VERSION: u32 = 1;

/// How long an event stream stays quiet at most: after this long without a
/// line, the daemon sends a keepalive (an event line with neither `event`
/// nor `lagged`), so a client can tell a quiet daemon from a stopped one.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(15);

/// One request, without its envelope (`version`, `id`).
///
/// The variants without fields are empty structs, not unit variants: serde
/// ignores extra fields next to a unit variant's tag, and a request with a
/// field it does not define must be refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Request {
    /// Is the daemon there? Answered with [`Pong`].
    Ping {},
    /// Which versions does it speak? Answered with [`VersionInfo`].
    Version {},
    /// Register a process. Answered with a [`Registration`].
    Track(TrackRequest),
    /// Drop a registration. Answered with [`Untracked`].
    Untrack {
        /// The registered process's pid.
        pid: i32,
    },
    /// The caller's registrations. Answered with [`StatusReport`].
    Status {},
    /// Stream the monitor's events about the caller's registrations.
    /// Answered with [`Streaming`], then one [`EventLine`] per event.
    Events {},
}

/// The fields of a `track` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrackRequest {
    /// The process to register.
    pub(crate) pid: i32,
    /// The process whose death orphans it. Default: its parent now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parent: Option<i32>,
    /// What happens when it is orphaned. Default: the daemon's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) action: Option<OrphanAction>,
    /// Time between the signal and `SIGKILL`. Default: the daemon's config.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) grace: Option<Duration>,
    /// The signal that starts termination. Default: the daemon's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) signal: Option<Signal>,
    /// Follow its descendants. Default: the daemon's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tree: Option<bool>,
    /// What the orphan action reaches. Default: the daemon's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) target: Option<OrphanTarget>,
}

/// A request with its envelope, as a client writes it.
#[derive(Debug, Serialize)]
pub(crate) struct Envelope<'a> {
    /// Always [`VERSION`].
    pub(crate) version: u32,
    /// Echoed back in the response.
    pub(crate) id: u64,
    /// The request itself.
    #[serde(flatten)]
    pub(crate) request: &'a Request,
}

/// Why a request line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorKind {
    /// The line was longer than the daemon's `max_request_bytes`.
    TooLarge,
    /// The line was not a JSON object.
    InvalidJson,
    /// `version` was missing or not one this daemon speaks.
    UnsupportedVersion,
    /// Unknown request, missing or unknown field, or a field of the wrong
    /// type or value.
    InvalidRequest,
    /// The caller may not do this (another user's process or registration).
    PermissionDenied,
    /// The monitor refused (no such process, already tracked, not tracked...).
    Refused,
    /// The daemon could not do it (e.g. the state file could not be written).
    Internal,
    /// A resource limit was reached (connections or registrations of this
    /// uid, or of every non-root client); the message names the config key.
    LimitReached,
}

/// The error part of a failed response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    /// What kind of failure.
    pub(crate) kind: ErrorKind,
    /// A readable description naming what was wrong.
    pub(crate) message: String,
}

impl ErrorBody {
    /// An error of `kind` saying `message`.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Response {
    /// Always [`VERSION`].
    pub(crate) version: u32,
    /// The request's `id`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<Value>,
    /// Whether the request succeeded.
    pub(crate) ok: bool,
    /// The answer, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) result: Option<Value>,
    /// What went wrong, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<ErrorBody>,
}

/// A response as the daemon writes it: the result is serialized in place,
/// not through an intermediate [`Value`] (a `status` listing thousands of
/// registrations would otherwise be built twice).
#[derive(Debug, Serialize)]
struct Outgoing<'a, T> {
    version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RawValue>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

/// A request's `id`, exactly as the client wrote it: a JSON string or an
/// integer of any size, echoed byte for byte (an integer beyond 64 bits is
/// never turned into a float).
pub(crate) type RequestId = Box<RawValue>;

/// One response line (with its newline) for `outcome`.
pub(crate) fn encode<T: Serialize>(
    id: Option<&RawValue>,
    outcome: Result<T, ErrorBody>,
) -> Vec<u8> {
    let (ok, result, error) = match outcome {
        Ok(result) => (true, Some(result), None),
        Err(error) => (false, None, Some(error)),
    };
    let mut line = serde_json::to_vec(&Outgoing {
        version: VERSION,
        id,
        ok,
        result,
        error,
    })
    .unwrap_or_else(|error| {
        let body = ErrorBody::new(
            ErrorKind::Internal,
            format!("the daemon could not serialize its answer: {error}"),
        );
        // An `ErrorBody` always serializes; the fallback cannot fail.
        serde_json::to_vec(&Outgoing::<()> {
            version: VERSION,
            id,
            ok: false,
            result: None,
            error: Some(body),
        })
        .unwrap_or_default()
    });
    line.push(b'\n');
    line
}

/// The answer to `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pong {
    /// The daemon's pid.
    pub(crate) pid: i32,
}

/// The answer to `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VersionInfo {
    /// The daemon's package version.
    pub(crate) daemon: String,
    /// The protocol version it speaks.
    pub(crate) protocol: u32,
}

/// A registration: what the daemon keeps (and persists) per tracked process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Registration {
    /// The process.
    pub(crate) id: ProcessId,
    /// The parent whose death orphans it.
    pub(crate) parent: ProcessId,
    /// The uid of the client that registered it (access control).
    pub(crate) uid: u32,
    /// What happens when it is orphaned.
    pub(crate) action: OrphanAction,
    /// Time between the signal and `SIGKILL`.
    #[serde(with = "humantime_serde")]
    pub(crate) grace: Duration,
    /// The signal that starts termination.
    pub(crate) signal: Signal,
    /// Whether its descendants are followed (state files written before
    /// this field existed read as `false`).
    #[serde(default)]
    pub(crate) tree: bool,
    /// What the orphan action reaches.
    #[serde(default = "process_target")]
    pub(crate) target: OrphanTarget,
}

fn process_target() -> OrphanTarget {
    OrphanTarget::Process
}

/// The answer to `untrack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Untracked {
    /// The process that is no longer tracked.
    pub(crate) id: ProcessId,
}

/// One registration in a [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RegistrationStatus {
    /// The registration.
    #[serde(flatten)]
    pub(crate) registration: Registration,
    /// Its state in the monitor (`None` if the monitor no longer lists it,
    /// e.g. it exited a moment ago).
    pub(crate) state: Option<ProcessState>,
}

/// The answer to `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatusReport {
    /// The daemon's pid.
    pub(crate) daemon_pid: i32,
    /// The daemon's package version.
    pub(crate) daemon_version: String,
    /// The caller's uid, as the daemon sees it.
    pub(crate) peer_uid: u32,
    /// The safety-net scan interval.
    #[serde(with = "humantime_serde")]
    pub(crate) check_interval: Duration,
    /// How many registrations the caller may see.
    pub(crate) tracked_count: usize,
    /// Those registrations, by pid.
    pub(crate) tracked: Vec<RegistrationStatus>,
    /// The monitor's full status (counters and all): for root only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) monitor: Option<monitor_core::Status>,
}

/// The answer to `events`: event lines follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Streaming {
    /// Always true.
    pub(crate) streaming: bool,
}

/// One line of an event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EventLine {
    /// Always [`VERSION`].
    pub(crate) version: u32,
    /// The event, when one is delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) event: Option<Event>,
    /// How many events this client missed because it read too slowly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lagged: Option<u64>,
}

/// A request line, parsed: its `id` (echoed even when the rest is bad)
/// and the request or what is wrong with it.
pub(crate) fn parse(line: &[u8]) -> (Option<RequestId>, Result<Request, ErrorBody>) {
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
    use super::*;

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
                parent: None,
                action: Some(OrphanAction::Kill),
                grace: Some(Duration::from_secs(2)),
                signal: None,
                tree: Some(true),
                target: Some(OrphanTarget::Group),
            })
        );
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
