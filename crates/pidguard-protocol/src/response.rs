//! The responses: one line per request, and how the daemon writes one.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::VERSION;

/// Why a request line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
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
pub struct ErrorBody {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A readable description naming what was wrong.
    pub message: String,
}

impl ErrorBody {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
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
pub struct Response {
    /// Always [`VERSION`].
    pub version: u32,
    /// The request's `id`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// Whether the request succeeded.
    pub ok: bool,
    /// The answer, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// What went wrong, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
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
pub type RequestId = Box<RawValue>;

/// One response line (with its newline) for `outcome`.
pub fn encode<T: Serialize>(id: Option<&RawValue>, outcome: Result<T, ErrorBody>) -> Vec<u8> {
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

impl ErrorKind {
    /// Its name on the wire (and as a metric label).
    pub fn name(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::InvalidJson => "invalid_json",
            Self::UnsupportedVersion => "unsupported_version",
            Self::InvalidRequest => "invalid_request",
            Self::PermissionDenied => "permission_denied",
            Self::Refused => "refused",
            Self::Internal => "internal",
            Self::LimitReached => "limit_reached",
        }
    }
}
