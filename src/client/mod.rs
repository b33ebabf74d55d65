//! The client commands: `track`, `untrack`, `status`, `events`. Each
//! talks to the daemon over its socket and starts one when none answers
//! (unless `--no-autostart`).
//!
//! # Layout
//!
//! - `connection`: one blocking connection, request and response lines.
//! - `autostart`: connecting, and starting a detached daemon if needed.
//! - `commands`: the commands and how they print their results.

mod autostart;
mod commands;
mod connection;

use std::path::PathBuf;

use clap::Args;

pub(crate) use commands::{
    EventsArgs, StatusArgs, TrackArgs, UntrackArgs, events, status, track, untrack,
};

use crate::exit::Failure;
use crate::paths;

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientArgs {
    /// The daemon's socket [default: /run/pidguard/pidguard.sock for
    /// root, $XDG_RUNTIME_DIR/pidguard/pidguard.sock otherwise].
    #[arg(long, value_name = "PATH", env = "PIDGUARD_SOCKET")]
    socket: Option<PathBuf>,
    /// Fail (exit code 3) instead of starting a daemon when none answers.
    #[arg(long)]
    no_autostart: bool,
}

impl ClientArgs {
    /// Connects as these options say.
    fn connect(&self) -> Result<connection::Connection, Failure> {
        let socket = self.socket.clone().unwrap_or_else(paths::default_socket);
        autostart::connect(&socket, !self.no_autostart)
    }
}

/// Client-side logging: warnings and errors only, unless `RUST_LOG` says
/// otherwise.
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Only the first subscriber counts; there is only ever one here.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
