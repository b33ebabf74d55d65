//! The tracing subscriber of `pidguard run`: quiet by default (warnings and
//! errors only), more with each `-v`, or exactly what `RUST_LOG` says.
//!
//! `RUST_LOG` takes `target=level` directives (`pidguard=debug,warn`), read
//! by `tracing_subscriber`'s `Targets`: its full `EnvFilter` syntax (span
//! and field filters) needs a regular-expression engine that would be a
//! quarter of the static binary.

use std::io::IsTerminal;
use std::io::Write as _;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Installs the subscriber, writing to stderr (stdout belongs to CMD).
pub(crate) fn init(verbose: u8) {
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
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                // Colours only for a person at a terminal, not for a log file.
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .init();
}
