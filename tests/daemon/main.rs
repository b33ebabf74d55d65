//! The `pidguard daemon` and its client commands, run as the real binary
//! against real processes. Each test starts its own daemon on a socket in
//! its own directory and kills it on drop.
//!
//! # Layout
//!
//! - `access.rs`: `SO_PEERCRED` rules against a client running as uid 65534.
//! - `bounds.rs`: durations out of range (finding 1 of the hardening issue).
//! - `files.rs`: planted files at the socket, state, lock, config paths
//!   (findings 4, 5, 8).
//! - `impostor.rs`: a fake daemon, an endless answer (finding 6).
//! - `input.rs`: thread ids, request ids, corrupt files (finding 9).
//! - `limits.rs`: one user at its caps, idle and slow clients (finding 2).
//! - `support.rs`: commands with deadlines, memory caps, state files.
//! - `systemd.rs`: `NOTIFY_SOCKET` (ready, status, reload, stopping, the
//!   watchdog and a wedged actor), a socket passed in `LISTEN_FDS`.
//! - `timeouts.rs`: clients of a stopped daemon (finding 3).
//! - `cli.rs`: the client commands, autostart and the single-daemon race.
//! - `client.rs`: the `pidguard-client` crate: every request, the event
//!   stream, a unit handed over and ended with its parent.
//! - `client_faults.rs`: the client crate against a stopped daemon, an
//!   impostor (uid 65534), an endless answer; `connect_default`.
//! - `crash.rs`: a program registers its workers through the client
//!   crate, then SIGKILLs itself; the daemon ends the workers and their
//!   children, and leaves an unregistered worker's alone.
//! - `fixture.rs`: the temporary directory, the daemon guard, a raw client.
//! - `load.rs`: 100 clients x 100 requests, nothing lost.
//! - `logs.rs`: no escape codes in a pipe, JSON lines, the journal's
//!   structured fields, a refusal said once.
//! - `metrics.rs`: `/metrics` after a real orphan, parsed by Python's
//!   `prometheus_client`; `status --format prometheus`; per-unit series.
//! - `orphans.rs`: the central scenario (a killed shell's `sleep`).
//! - `persistence.rs`: `kill -9`, restart, a corrupt state file, an
//!   untrack rolled back (finding 7).
//! - `protocol.rs`: every request and every bad input.
//! - `signals.rs`: SIGTERM and SIGHUP.
//! - `startup.rs`: socket precedence, bad config, a second daemon.
//! - `units.rs`: an unprivileged registrant's group and tree targets never
//!   reach root's processes.

#![allow(clippy::unwrap_used)]
#![allow(clippy::print_stderr)]
// The re-runs as other uids report to the test on their stdout.
#![allow(clippy::print_stdout)]

#[path = "../common/mod.rs"]
mod common;

mod access;
mod bounds;
mod cli;
mod client;
mod client_faults;
mod crash;
mod files;
mod fixture;
mod impostor;
mod input;
mod limits;
mod load;
mod logs;
mod metrics;
mod orphans;
mod persistence;
mod protocol;
mod signals;
mod startup;
mod support;
mod systemd;
mod timeouts;
mod units;
