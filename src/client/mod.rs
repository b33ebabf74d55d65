//! The client commands: `track`, `untrack`, `status`, `events`. Each
//! talks to the daemon over its socket through the `pidguard-client` crate
//! (its timeouts, its check of who listens, its bound on answer lines),
//! and starts a daemon when none answers (unless `--no-autostart`).
//!
//! # Layout
//!
//! - `autostart`: connecting, and starting a detached daemon if needed.
//! - `commands`: the commands and how they print their results.

mod autostart;
mod commands;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pidguard_client::Client;

pub(crate) use commands::{
    EventsArgs, StatusArgs, TrackArgs, UntrackArgs, events, status, track, untrack,
};

use crate::exit::{Code, Failure};
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
    /// How long to wait for the daemon at each step (connect, send, each
    /// answer), e.g. "10s"; a daemon that does not answer in time is
    /// reported with its pid (exit code 3).
    #[arg(
        long,
        value_name = "DURATION",
        env = "PIDGUARD_TIMEOUT",
        default_value = "10s",
        value_parser = pidguard_client::parse_timeout
    )]
    timeout: Duration,
}

impl ClientArgs {
    /// Connects as these options say.
    async fn connect(&self) -> Result<Client, Failure> {
        let socket = self.socket.clone().unwrap_or_else(paths::default_socket);
        autostart::connect(&socket, !self.no_autostart, self.timeout).await
    }
}

/// Runs a command's body on a runtime of its own: one thread, one
/// connection at a time.
fn block_on<T>(command: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the client's runtime")?;
    runtime.block_on(command)
}

/// A client error as the commands report it: "unreachable" (exit code 3)
/// when no daemon answered in time, a plain failure otherwise. A refusal
/// says the daemon's message alone, as it always did.
fn failure(error: pidguard_client::Error) -> Failure {
    if let Some(body) = error.refusal() {
        return Failure::new(Code::Failure, anyhow::anyhow!("{body}"));
    }
    let code = if error.is_unreachable() {
        Code::Unreachable
    } else {
        Code::Failure
    };
    Failure::new(code, error)
}

/// Client-side logging: warnings and errors only, unless `RUST_LOG` says
/// otherwise; colours only on a terminal (and not with `NO_COLOR`).
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Only the first subscriber counts; there is only ever one here.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(crate::log_style::Color::Auto.ansi())
        .with_writer(std::io::stderr)
        .try_init();
}
