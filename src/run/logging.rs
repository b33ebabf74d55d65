//! The tracing subscriber of `pidguard run`: quiet by default (warnings and
//! errors only), more with each `-v`, or exactly what `RUST_LOG` says; text
//! (coloured only on a terminal) or JSON lines (`--log-format`).
//!
//! `RUST_LOG` takes `target=level` directives (`pidguard=debug,warn`), read
//! by `tracing_subscriber`'s `Targets`: its full `EnvFilter` syntax (span
//! and field filters) needs a regular-expression engine that would be a
//! quarter of the static binary.

use std::io::Write as _;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

use super::json_lines::{Fields, JsonFields, JsonLines, Lines};
use crate::log_style::{Color, Format};

/// Installs the subscriber, writing to stderr (stdout belongs to CMD):
/// text lines, coloured as `color` says, or JSON lines.
pub(crate) fn init(verbose: u8, format: Format, color: Color) {
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) => directives.parse::<Targets>().unwrap_or_else(|error| {
            // Bad input is said once, and pidguard goes on with `-v`'s level.
            let _ = writeln!(
                std::io::stderr(),
                "pidguard: RUST_LOG={directives:?}: {error}; expected target=level directives like pidguard=debug,warn"
            );
            Targets::new().with_default(level)
        }),
        Err(_) => Targets::new().with_default(level),
    };
    // One layer type for both formats (see `Lines`).
    let (lines, fields, ansi) = match format {
        Format::Text => (
            Lines::Text(tracing_subscriber::fmt::format::Format::default()),
            Fields::Text(tracing_subscriber::fmt::format::DefaultFields::new()),
            color.ansi(),
        ),
        Format::Json => (Lines::Json(JsonLines), Fields::Json(JsonFields), false),
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .event_format(lines)
                .fmt_fields(fields),
        )
        .with(filter)
        .init();
}
