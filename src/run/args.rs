//! The command line of `pidguard run`.

use std::ffi::OsString;
use std::time::Duration;

use clap::{ArgAction, Args};

/// `pidguard run [OPTIONS] -- CMD [ARGS...]`
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Forward signals to CMD's whole process group (CMD leads its own
    /// group), not only to CMD.
    #[arg(short = 'g', long)]
    pub(crate) signal_group: bool,

    /// Time a leftover descendant gets between SIGTERM and SIGKILL once CMD
    /// has exited, e.g. `500ms`, `10s`, `1m`; `0` kills at once.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_grace)]
    pub(crate) grace: Duration,

    /// When CMD exits, leave its live descendants running and exit at once
    /// (what tini does).
    #[arg(long)]
    pub(crate) leave_orphans: bool,

    /// Log more to stderr: -v what happens to each leftover, -vv every
    /// reaped child, -vvv everything. `RUST_LOG` overrides it.
    #[arg(short, long, action = ArgAction::Count)]
    pub(crate) verbose: u8,

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
