//! The `pidguard daemon` and its client commands, run as the real binary
//! against real processes. Each test starts its own daemon on a socket in
//! its own directory and kills it on drop.
//!
//! # Layout
//!
//! - `access.rs`: `SO_PEERCRED` rules against a client running as uid 65534.
//! - `cli.rs`: the client commands, autostart and the single-daemon race.
//! - `fixture.rs`: the temporary directory, the daemon guard, a raw client.
//! - `load.rs`: 100 clients x 100 requests, nothing lost.
//! - `orphans.rs`: the central scenario (a killed shell's `sleep`).
//! - `persistence.rs`: `kill -9`, restart, a corrupt state file.
//! - `protocol.rs`: every request and every bad input.
//! - `signals.rs`: SIGTERM and SIGHUP.
//! - `startup.rs`: socket precedence, bad config, a second daemon.
//! - `units.rs`: an unprivileged registrant's group and tree targets never
//!   reach root's processes.

#![allow(clippy::unwrap_used)]
#![allow(clippy::print_stderr)]

#[path = "../common/mod.rs"]
mod common;

mod access;
mod cli;
mod fixture;
mod load;
mod orphans;
mod persistence;
mod protocol;
mod signals;
mod startup;
mod units;
