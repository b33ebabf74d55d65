//! `pidguard-client`: an async client for `pidguard daemon`, on Tokio.
//!
//! The daemon is a monitor that outlives your program. Register a process
//! with it and, when the process's parent dies (your program, SIGKILL and
//! panics included), the daemon terminates the process and everything it
//! started. An in-process monitor (`monitor-core`) cannot promise that: it
//! dies with the program.
//!
//! # Usage
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use monitor_core::ProcessId;
//! use pidguard_client::{Client, StreamItem, TrackOptions};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // The socket and timeout the `pidguard` commands use: PIDGUARD_SOCKET,
//! // else /run/pidguard/pidguard.sock (root) or
//! // $XDG_RUNTIME_DIR/pidguard/pidguard.sock; PIDGUARD_TIMEOUT, else 10 s.
//! let mut client = Client::connect_default().await?;
//! println!("daemon pid {}", client.ping().await?.pid);
//!
//! // A worker that starts children of its own.
//! let mut worker = tokio::process::Command::new("sh")
//!     .args(["-c", "sleep 600 & sleep 600 & wait"])
//!     .spawn()?;
//! // Our child, not yet reaped: its pid cannot have been reused.
//! let pid = i32::try_from(worker.id().ok_or("exited already")?)?;
//! let id = ProcessId::of(pid).ok_or("exited already")?;
//!
//! // If this program dies, the daemon ends the worker and its children:
//! // SIGTERM, 2 s, SIGKILL.
//! let registration = client
//!     .track_unit(id, TrackOptions::new().grace(Duration::from_secs(2)))
//!     .await?;
//! println!("registered {} (orphaned when {} dies)", registration.id, registration.parent);
//!
//! // Follow what happens to this user's registrations on a second connection.
//! let mut events = Client::connect_default().await?.events().await?;
//! tokio::select! {
//!     status = worker.wait() => println!("worker ended: {}", status?),
//!     item = events.next() => if let Some(StreamItem::Event(event)) = item? {
//!         println!("{event}");
//!     },
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # In-process, daemon, or both
//!
//! - **In-process** (`monitor-core` alone): the monitor spawns and owns
//!   your children, reaps them, hands back their exit statuses, enforces
//!   timeouts, drains on shutdown, and ends each child's unit when it is
//!   done. Fast (pidfds, no IPC) and needs no service. It dies with your
//!   program: after a SIGKILL, an OOM kill or an abort, whatever your
//!   children started is left running (a parent-death signal reaches the
//!   children, not the grandchildren).
//! - **Daemon** (this crate): registrations live in a separate process,
//!   written to disk before they are answered, and survive your program
//!   and a restart of the daemon. The daemon ends a registered unit when
//!   its recorded parent dies, and when its root exits. It owns nothing of
//!   yours: it cannot reap your children or return their statuses, and
//!   each registration costs a round trip and an fsync.
//! - **Both**, for a program that must not leak even when it crashes:
//!   spawn through the in-process monitor (it reaps, reports, applies
//!   timeouts, drains), and register each child with the daemon as the
//!   crash net. While your program lives, the in-process monitor does the
//!   work; when it dies, the daemon ends what it left.
//!
//! ```no_run
//! use monitor_core::Monitor;
//! use pidguard_client::{Client, TrackOptions};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let monitor = Monitor::builder().spawn()?;
//! let mut client = Client::connect_default().await?;
//! let mut command = std::process::Command::new("sh");
//! command.args(["-c", "sleep 600 & sleep 600 & wait"]);
//! let child = monitor.handle().spawn(command).await?;
//! client.track_unit(child.tracked().id, TrackOptions::new()).await?;
//! // ... the app's own monitor reaps the child and reports its status;
//! // if the app is killed first, the daemon ends the child's unit.
//! # Ok(())
//! # }
//! ```
//!
//! What to know about a daemon registration:
//!
//! - The registered process is orphaned when its recorded parent dies:
//!   by default its real parent at registration, so register your own
//!   children. The daemon acts on any death of the parent, a clean exit
//!   included: a program that wants its children to outlive it untracks
//!   them first ([`Client::untrack`]).
//! - A unit ends with its root too: when the registered process exits,
//!   whatever it left running is ended with the registration's action,
//!   and the registration is dropped.
//! - The daemon finds the members of a unit it did not spawn by reading
//!   children lists: when the unit is made, when a member exits, and
//!   every `unit_scan_interval` (1 s). A grandchild forked and orphaned
//!   between two looks (a double fork within a second, with no member
//!   exiting) escapes the unit.
//! - The daemon registers only processes of the caller's own uid (root:
//!   any) and never makes another user's process a member.
//!
//! # Theory of operation
//!
//! A [`Client`] is one Unix stream connection carrying one request at a
//! time: a JSON line out, a JSON line back (the protocol of
//! `docs/protocol.md`, types in [`protocol`]). Every step is bounded by the
//! client's timeout ([`DEFAULT_TIMEOUT`], or `PIDGUARD_TIMEOUT`, or
//! [`Client::connect_with_timeout`]):
//!
//! - connecting, including a listener whose queue is full (a stopped
//!   daemon), which a plain `connect` would wait on forever;
//! - sending each request, and each answer;
//! - on an event stream, each line: the daemon sends a keepalive after
//!   15 s of quiet, so a stream silent for 15 s plus the timeout belongs to
//!   a daemon that is stopped or gone.
//!
//! Before a byte is sent, the client checks who listens (`SO_PEERCRED`):
//! root or this user, or the connection is refused with
//! [`Error::Untrusted`]; anyone else at the socket path is an impostor and
//! learns nothing. An answer line longer than [`MAX_RESPONSE_BYTES`]
//! (32 MiB) is an error, not an allocation without end. Errors name the
//! socket, the daemon's pid (from its lock file, or the listener's
//! credentials) and the request. The `pidguard` client commands are built
//! on this crate, so they behave the same way.
//!
//! # Durations
//!
//! Durations travel as strings in the `humantime` format: written as the
//! sum of their non-zero parts, largest first (`"5s"`, `"1m 30s"`,
//! `"725ms 297us 847ns"`, `"0s"`), read as one or more parts of a number
//! (integer or decimal) and a unit, with or without spaces (`"1h30m"`,
//! `"1.5s"`). Units are case-sensitive (`"1M"` is a month, `"1m"` a
//! minute); a bare number (`5`, `"5"`) is refused. The full list is in the
//! [`protocol`] crate's docs, section "Durations".
//!
//! # Layout
//!
//! - `client`: [`Client`], its requests.
//! - `events`: [`Events`], the event stream, and [`StreamItem`].
//! - `options`: [`TrackOptions`], and the settings read from the
//!   environment ([`SOCKET_ENV`], [`TIMEOUT_ENV`]).
//! - `connect`: connecting within the timeout, the check of the listener.
//! - `lines`: bounded, cancel-safe line reading.
//! - `daemon`: [`DaemonRef`], the daemon as errors name it.
//! - `error`: [`Error`].

#![cfg(target_os = "linux")]

mod client;
mod connect;
mod daemon;
mod error;
mod events;
mod lines;
mod options;

pub use client::Client;
pub use daemon::{DaemonPid, DaemonRef};
pub use error::{Error, Step};
pub use events::{Events, StreamItem};
pub use lines::MAX_RESPONSE_BYTES;
pub use options::{
    DEFAULT_TIMEOUT, SOCKET_ENV, TIMEOUT_ENV, TIMEOUT_RANGE, TrackOptions, parse_timeout,
    socket_from_env, timeout_from_env,
};
/// The wire protocol's types (requests, answers, events, errors), as the
/// daemon defines them.
pub use pidguard_protocol as protocol;
