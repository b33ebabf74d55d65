//! The daemon's log: text or JSON lines on stderr, or the systemd journal
//! with every tracing field as a journal field.
//!
//! `auto` (the default) writes to the journal when `JOURNAL_STREAM` says
//! stderr already goes there (systemd sets it to the device and inode of
//! the stream it connected), and text otherwise. Text gets colours only on
//! a terminal (see `log_style`), so `daemon.log`, a pipe or the journal
//! never hold escape codes.

use std::os::fd::AsFd;

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::Layer;
use tracing_subscriber::prelude::*;

use super::config::LogFormat;
use crate::log_style::Color;

/// The journal field prefix: `pid` becomes `PIDGUARD_PID`, `signal`
/// `PIDGUARD_SIGNAL`. A prefix keeps them apart from systemd's own fields
/// (`UNIT=`, for one, means a systemd unit to `journalctl -u`).
const JOURNAL_PREFIX: &str = "PIDGUARD";

/// What was installed, for the one line the daemon logs about it.
#[derive(Debug)]
pub(crate) struct Installed {
    /// The format in use (`auto` resolved).
    pub(crate) format: LogFormat,
    /// Why the journal was asked for but not used, if it was.
    pub(crate) journal_error: Option<std::io::Error>,
}

/// Installs the subscriber (filter: `RUST_LOG`, default `info`).
pub(crate) fn init(format: LogFormat, color: Color) -> Installed {
    let mut format = match format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        chosen => chosen,
    };
    let mut journal_error = None;
    let layer: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(journal) => journal
                .with_syslog_identifier("pidguard".to_owned())
                .with_field_prefix(Some(JOURNAL_PREFIX.to_owned()))
                // syslog's meaning: every registration is routine
                // (info, 6), not "normal but significant" (notice, 5).
                .with_priority_mappings(PriorityMappings {
                    info: Priority::Informational,
                    debug: Priority::Debug,
                    ..PriorityMappings::new()
                })
                .boxed(),
            Err(error) => {
                // Said once the subscriber exists (see `Installed`).
                journal_error = Some(error);
                format = LogFormat::Text;
                text(color)
            }
        },
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text | LogFormat::Auto => text(color),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Only the first subscriber counts; there is only ever one here.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
    Installed {
        format,
        journal_error,
    }
}

fn text(color: Color) -> Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> {
    tracing_subscriber::fmt::layer()
        .with_ansi(color.ansi())
        .with_writer(std::io::stderr)
        .boxed()
}

/// Whether stderr is the stream systemd connected to the journal:
/// `JOURNAL_STREAM` is `<device>:<inode>` of that stream, and only counts
/// if stderr is still it (a redirect in between makes it stale).
pub(crate) fn stderr_is_journal() -> bool {
    names(
        std::env::var_os("JOURNAL_STREAM").as_deref(),
        std::io::stderr().as_fd(),
    )
}

/// Whether `stream` (a `JOURNAL_STREAM` value) names the file `fd` is.
fn names(stream: Option<&std::ffi::OsStr>, fd: std::os::fd::BorrowedFd<'_>) -> bool {
    let Some((device, inode)) = stream.and_then(|s| s.to_str()?.split_once(':')) else {
        return false;
    };
    let (Ok(device), Ok(inode)) = (device.parse::<u64>(), inode.parse::<u64>()) else {
        return false;
    };
    rustix::fs::fstat(fd).is_ok_and(|stat| stat.st_dev == device && stat.st_ino == inode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_the_file_itself() {
        let file = std::fs::File::open("/dev/null").expect("open /dev/null");
        let stat = rustix::fs::fstat(&file).expect("fstat");
        let check = |value: &str| names(Some(std::ffi::OsStr::new(value)), file.as_fd());
        assert!(check(&format!("{}:{}", stat.st_dev, stat.st_ino)));
        assert!(!check(&format!("{}:{}", stat.st_dev, stat.st_ino + 1)));
        assert!(!check(&format!("{}:{}", stat.st_dev + 1, stat.st_ino)));
        assert!(!check("garbage"));
        assert!(!check(""));
        assert!(!names(None, file.as_fd()));
    }
}
