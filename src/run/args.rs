//! The command line of `pidguard run`. Every option can also be set through
//! an environment variable of its own (`PIDGUARD_RUN_*`, shown in `--help`
//! and in `docs/run.md`); the flag wins over the variable.

use std::ffi::OsString;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use super::signal_spec::{self, Rewrite};
use crate::log_style::{Color, Format};

/// `pidguard run [OPTIONS] -- CMD [ARGS...]`
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Forward signals to CMD's whole process group (CMD leads its own
    /// group), not only to CMD.
    #[arg(
        short = 'g',
        long,
        env = "PIDGUARD_RUN_SIGNAL_GROUP",
        value_parser = BoolishValueParser::new(),
        action = ArgAction::SetTrue
    )]
    pub(crate) signal_group: bool,

    /// Time a leftover descendant gets between SIGTERM and SIGKILL once CMD
    /// has exited, e.g. `500ms`, `10s`, `1m`; `0` kills at once.
    #[arg(
        long,
        value_name = "DURATION",
        env = "PIDGUARD_RUN_GRACE",
        default_value = "5s",
        value_parser = parse_grace
    )]
    pub(crate) grace: Duration,

    /// When CMD exits, leave its live descendants running and exit at once
    /// (what tini does).
    #[arg(
        long,
        env = "PIDGUARD_RUN_LEAVE_ORPHANS",
        value_parser = BoolishValueParser::new(),
        action = ArgAction::SetTrue
    )]
    pub(crate) leave_orphans: bool,

    /// Exit with 0 when CMD's exit code (or 128 + N when a signal killed
    /// it) is CODE; may be repeated (tini's -e). The variable takes a
    /// comma-separated list.
    #[arg(
        short = 'e',
        long = "remap-exit",
        value_name = "CODE",
        env = "PIDGUARD_RUN_REMAP_EXIT",
        value_delimiter = ','
    )]
    pub(crate) remap_exit: Vec<u8>,

    /// Handle a received signal S as if it were R (names or numbers, e.g.
    /// `TERM:QUIT`, `15:3`); `S:0` drops S. May be repeated (dumb-init's
    /// -r). The variable takes a comma-separated list.
    #[arg(
        short = 'r',
        long = "rewrite",
        value_name = "S:R",
        env = "PIDGUARD_RUN_REWRITE",
        value_delimiter = ',',
        value_parser = signal_spec::parse_rewrite
    )]
    pub(crate) rewrite: Vec<Rewrite>,

    /// Have the kernel send pidguard SIGNAL when pidguard's parent dies,
    /// handled as if it had been sent (tini's -p), e.g. `TERM`.
    #[arg(
        short = 'p',
        long = "parent-death-signal",
        value_name = "SIGNAL",
        env = "PIDGUARD_RUN_PARENT_DEATH_SIGNAL",
        value_parser = signal_spec::parse_signal
    )]
    pub(crate) parent_death_signal: Option<i32>,

    /// Log more to stderr: -v what happens to each leftover, -vv every
    /// reaped child and forwarded signal, -vvv everything. The variable
    /// takes the count (`2` for -vv). `RUST_LOG` overrides it.
    #[arg(short, long, env = "PIDGUARD_RUN_VERBOSE", action = ArgAction::Count)]
    pub(crate) verbose: u8,

    /// The format of pidguard's own log lines on stderr: `text`, or `json`
    /// (one object per line).
    #[arg(
        long,
        value_name = "FORMAT",
        env = "PIDGUARD_RUN_LOG_FORMAT",
        default_value = "text"
    )]
    pub(crate) log_format: Format,

    /// Colours in text log lines: `auto` (only on a terminal, and not when
    /// NO_COLOR is set), `always` or `never`.
    #[arg(
        long,
        value_name = "WHEN",
        env = "PIDGUARD_RUN_COLOR",
        default_value = "auto"
    )]
    pub(crate) color: Color,

    /// The command to supervise, and its arguments.
    #[arg(
        value_name = "CMD",
        required = true,
        num_args = 1..,
        trailing_var_arg = true

    )]
    pub(crate) command: Vec<OsString>,
}

/// A human duration (`500ms`, `10s`, `1m 30s`); a bare `0` is accepted too.
fn parse_grace(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|error| {
        format!("{error}: expected a duration like 500ms, 10s or 1m (or 0 to kill at once)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_reads_human_durations() {
        assert_eq!(parse_grace("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_grace("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_grace("0"), Ok(Duration::ZERO));
        let error = parse_grace("soon").expect_err("not a duration");
        assert!(error.contains("500ms"), "{error}");
    }
}
