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
use std::time::Duration;

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
    /// How long to wait for the daemon at each step (connect, send, each
    /// answer), e.g. "10s"; a daemon that does not answer in time is
    /// reported with its pid (exit code 3).
    #[arg(
        long,
        value_name = "DURATION",
        env = "PIDGUARD_TIMEOUT",
        default_value = "10s",
        value_parser = parse_timeout
    )]
    timeout: Duration,
}

/// A timeout between 1 ms and a day: zero would mean "wait forever" to the
/// socket calls, which is exactly what the timeout is there to prevent.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if timeout < Duration::from_millis(1) || timeout > Duration::from_secs(24 * 60 * 60) {
        return Err(format!(
            "{text} is out of range: the timeout must be between 1ms and 1day"
        ));
    }
    Ok(timeout)
}

impl ClientArgs {
    /// Connects as these options say.
    fn connect(&self) -> Result<connection::Connection, Failure> {
        let socket = self.socket.clone().unwrap_or_else(paths::default_socket);
        autostart::connect(&socket, !self.no_autostart, self.timeout)
    }

    /// How long each step may take.
    fn timeout(&self) -> Duration {
        self.timeout
    }
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
