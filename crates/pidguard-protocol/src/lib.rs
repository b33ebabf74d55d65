//! `pidguard-protocol`: the wire protocol of `pidguard daemon`, defined
//! once for both of its ends.
//!
//! The daemon speaks newline-delimited JSON on a Unix stream socket: one
//! request object a line, one response line per request, in order, and
//! after an `events` request a stream of event lines. The project's
//! `docs/protocol.md` documents every request, answer and error. This
//! crate holds the types both ends serialize, so the daemon (the
//! `pidguard` binary) and its clients (the `pidguard` client commands and
//! the `pidguard-client` crate) cannot drift apart.
//!
//! Most programs want the `pidguard-client` crate, which speaks this
//! protocol over a socket with timeouts and a check of who listens; it
//! re-exports this crate as `pidguard_client::protocol`.
//!
//! # Usage
//!
//! ```
//! use pidguard_protocol::{Envelope, Request, Response, VERSION};
//!
//! let line = serde_json::to_string(&Envelope {
//!     version: VERSION,
//!     id: 1,
//!     request: &Request::Ping {},
//! })?;
//! assert_eq!(line, r#"{"version":1,"id":1,"request":"ping"}"#);
//!
//! let answer: Response = serde_json::from_str(r#"{"version":1,"id":1,"ok":true,"result":{"pid":42}}"#)?;
//! assert!(answer.ok);
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! # Strictness
//!
//! Requests are strict: every line carries `"version": 1`, names a known
//! `request`, and has no field that request does not define, so a client
//! that sends a field from a later version is told at once by a daemon that
//! does not know it, instead of having it ignored. Answers only ever gain
//! fields (a client reading an older daemon's answer finds them absent), so
//! the answer types accept what they do not know.
//!
//! # Durations
//!
//! Every duration on the wire (`grace` in a `track` request and in a
//! registration, `check_interval` in a status, the durations of the
//! monitor's status) is a JSON string in the `humantime` format:
//!
//! - **Written** as the sum of its non-zero parts, largest first, each an
//!   integer and a unit, separated by spaces: `"5s"`, `"1m 30s"`,
//!   `"725ms 297us 847ns"`; zero is `"0s"`. The units written are `year`
//!   and `years` (365.25 days), `month` and `months` (30.44 days), `day`
//!   and `days`, `h`, `m` (minutes), `s`, `ms`, `us` and `ns`.
//! - **Read**: one or more parts, each a number followed by a unit, with or
//!   without spaces between the parts (`"1h30m"`, `"1h 30m"`, `"1m 30s"`).
//!   The number is a non-negative integer or a decimal fraction (`"1.5s"`,
//!   `"0.25h"`; a fraction of a nanosecond is refused). The units are
//!   `ns`, `nsec`, `nanos`; `us`, `usec`, `µs`; `ms`, `msec`, `millis`;
//!   `s`, `sec`, `secs`, `second`, `seconds`; `m`, `min`, `mins`,
//!   `minute`, `minutes`; `h`, `hr`, `hrs`, `hour`, `hours`; `d`, `day`,
//!   `days`; `w`, `wk`, `wks`, `week`, `weeks`; `M`, `month`, `months`;
//!   `y`, `yr`, `yrs`, `year`, `years`. Units are case-sensitive: `"1M"`
//!   is a month, `"1m"` a minute.
//! - **Refused**: a JSON number (`5`), a number without a unit (`"5"`,
//!   `"1h30"`), a negative value, an unknown unit (`"5 fortnights"`),
//!   ISO 8601 (`"PT5S"`), an empty string. The daemon answers these with
//!   `invalid_request` naming the field.
//!
//! A value that reads fine may still lie outside what its field allows:
//! `grace` runs from `"0s"` to `"1h"` ([`monitor_core::GRACE_RANGE`]), and
//! [`parse`] refuses a longer one by name.
//!
//! # Layout
//!
//! - `request`: [`Request`], [`TrackRequest`], [`Envelope`], [`RequestKind`].
//! - `response`: [`Response`], [`ErrorBody`], [`ErrorKind`], and
//!   [`encode`], how the daemon writes a response line.
//! - `answers`: what each request is answered with ([`Pong`],
//!   [`VersionInfo`], [`Registration`], [`Untracked`], [`StatusReport`],
//!   [`Streaming`]) and the lines of an event stream ([`EventLine`]).
//! - `counters`: [`DaemonCounters`], the daemon's own figures.
//! - `parse`: [`parse`], how the daemon reads a request line.
//! - `paths`: [`default_socket`] and [`lock_file`], where a client finds
//!   the daemon.

#![cfg(target_os = "linux")]

use std::time::Duration;

mod answers;
mod counters;
mod parse;
mod paths;
mod request;
mod response;

pub use answers::{
    EventLine, Pong, Registration, RegistrationStatus, RegistrationUnit, StatusReport, Streaming,
    Untracked, VersionInfo,
};
pub use counters::{DaemonCounters, HistogramCounts, RequestCount};
pub use parse::parse;
pub use paths::{default_socket, lock_file};
pub use request::{Envelope, Request, RequestKind, TrackRequest};
pub use response::{ErrorBody, ErrorKind, RequestId, Response, encode};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// How long an event stream stays quiet at most: after this long without a
/// line, the daemon sends a keepalive (an event line with neither `event`
/// nor `lagged`), so a client can tell a quiet daemon from a stopped one.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

#[cfg(test)]
mod duration_tests;
