//! The daemon's settings: the config file's shape, and how flags, the
//! environment and the file combine (flag > environment > file > default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::limits::Limits;
use crate::exit::{Code, Failure};
use crate::paths;
use crate::safe_file::{self, Trusted};

/// The config file (`config/pidguard.toml` documents every key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// The socket path. Default: see [`paths::default_socket`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) socket: Option<PathBuf>,
    /// A group (gid or name) that may use the socket too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) socket_group: Option<GroupSpec>,
    /// The state file. Default: `state.json` next to the socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<PathBuf>,
    /// The longest request line accepted, in bytes.
    pub(crate) max_request_bytes: usize,
    /// Connections of all non-root clients together.
    pub(crate) max_connections: usize,
    /// Connections of one non-root uid.
    pub(crate) max_connections_per_uid: usize,
    /// Registrations of all non-root clients together.
    pub(crate) max_registrations: usize,
    /// Registrations of one non-root uid.
    pub(crate) max_registrations_per_uid: usize,
    /// How long a connection may wait between two requests.
    #[serde(with = "humantime_serde")]
    pub(crate) idle_timeout: Duration,
    /// How long one request line may take to arrive (and one response to
    /// be written).
    #[serde(with = "humantime_serde")]
    pub(crate) line_timeout: Duration,
    /// Log line format on stderr.
    pub(crate) log_format: LogFormat,
    /// Where `/metrics` is served (off when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// A metrics series per unit (unbounded: one per registration).
    pub(crate) metrics_per_unit: bool,
    /// The monitor's settings.
    pub(crate) monitor: monitor_core::Config,
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            socket: None,
            socket_group: None,
            state: None,
            max_request_bytes: 64 * 1024,
            max_connections: 256,
            max_connections_per_uid: 32,
            max_registrations: 4096,
            max_registrations_per_uid: 1024,
            idle_timeout: Duration::from_secs(5 * 60),
            line_timeout: Duration::from_secs(10),
            log_format: LogFormat::Auto,
            metrics_listen: None,
            metrics_per_unit: false,
            monitor: monitor_core::Config::default(),
        }
    }
}

impl FileConfig {
    /// The resource limits this file sets.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_request_bytes: self.max_request_bytes,
            max_connections: self.max_connections,
            max_connections_per_uid: self.max_connections_per_uid,
            max_registrations: self.max_registrations,
            max_registrations_per_uid: self.max_registrations_per_uid,
            idle_timeout: self.idle_timeout,
            line_timeout: self.line_timeout,
        }
    }
}

/// A group named by number or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum GroupSpec {
    /// A gid.
    Id(u32),
    /// A group name from the group database.
    Name(String),
}

impl GroupSpec {
    /// The gid.
    fn resolve(&self) -> anyhow::Result<u32> {
        match self {
            Self::Id(gid) => Ok(*gid),
            Self::Name(name) => nix::unistd::Group::from_name(name)
                .with_context(|| format!("looking up group `{name}`"))?
                .map(|group| group.gid.as_raw())
                .with_context(|| format!("no group named `{name}`")),
        }
    }
}

/// Where and how log lines go (`log_format`, `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogFormat {
    /// The journal when `JOURNAL_STREAM` says stderr goes there, text
    /// otherwise.
    Auto,
    /// Human-readable lines on stderr.
    Text,
    /// One JSON object per line on stderr.
    Json,
    /// The systemd journal, each tracing field a journal field
    /// (`PIDGUARD_PID`, `PIDGUARD_SIGNAL`, ...).
    Journald,
}

/// What the command line (and the environment, through clap) gave.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    /// `--config` / `PIDGUARD_CONFIG`.
    pub(crate) config: Option<PathBuf>,
    /// `--socket` / `PIDGUARD_SOCKET`.
    pub(crate) socket: Option<PathBuf>,
    /// `--state` / `PIDGUARD_STATE`.
    pub(crate) state: Option<PathBuf>,
    /// `--check-interval`.
    pub(crate) check_interval: Option<Duration>,
    /// `--grace`.
    pub(crate) grace: Option<Duration>,
    /// `--log-format` / `PIDGUARD_LOG_FORMAT`.
    pub(crate) log_format: Option<LogFormat>,
    /// `--metrics-listen` / `PIDGUARD_METRICS_LISTEN`.
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// `--metrics-per-unit` / `PIDGUARD_METRICS_PER_UNIT` (on beats the
    /// file; off leaves it to the file).
    pub(crate) metrics_per_unit: bool,
}

/// The daemon's settings after every source was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The socket path.
    pub(crate) socket: PathBuf,
    /// The gid that may use the socket too.
    pub(crate) socket_group: Option<u32>,
    /// The state file.
    pub(crate) state: PathBuf,
    /// The resource limits.
    pub(crate) limits: Limits,
    /// Log format.
    pub(crate) log_format: LogFormat,
    /// Where `/metrics` is served, if anywhere.
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// A metrics series per unit.
    pub(crate) metrics_per_unit: bool,
    /// The monitor's config.
    pub(crate) monitor: monitor_core::Config,
}

/// Reads the config file (if any) and applies the overrides. Every error
/// names the file and the key, and exits with the usage code.
pub(crate) fn resolve(overrides: &Overrides) -> Result<Settings, Failure> {
    let usage = |error: anyhow::Error| Failure::new(Code::Usage, error);
    let file = match &overrides.config {
        Some(path) => load(path).map_err(usage)?,
        None => FileConfig::default(),
    };
    let limits = file.limits();
    let mut monitor = file.monitor;
    if let Some(interval) = overrides.check_interval {
        monitor.check_interval = interval;
    }
    if let Some(grace) = overrides.grace {
        monitor.grace = grace;
    }
    let origin = overrides.config.as_deref().map_or_else(
        || "the command line".to_owned(),
        |p| p.display().to_string(),
    );
    monitor
        .validate()
        .with_context(|| format!("in {origin}: [monitor]"))
        .map_err(usage)?;
    limits
        .validate()
        .with_context(|| format!("in {origin}"))
        .map_err(usage)?;
    let socket = overrides
        .socket
        .clone()
        .or(file.socket)
        .unwrap_or_else(paths::default_socket);
    let state = overrides
        .state
        .clone()
        .or(file.state)
        .unwrap_or_else(|| paths::default_state(&socket));
    let socket_group = file
        .socket_group
        .as_ref()
        .map(GroupSpec::resolve)
        .transpose()
        .with_context(|| format!("in {origin}: `socket_group`"))
        .map_err(usage)?;
    Ok(Settings {
        socket,
        socket_group,
        state,
        limits,
        log_format: overrides.log_format.unwrap_or(file.log_format),
        metrics_listen: overrides.metrics_listen.or(file.metrics_listen),
        metrics_per_unit: overrides.metrics_per_unit || file.metrics_per_unit,
        monitor,
    })
}

/// The largest config file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Parses a config file; the error names the file and, through the TOML
/// error, the key and line. The file is read like the state file (see
/// [`safe_file`]): a regular file, not through a symlink, owned by root or
/// the daemon's user and writable by nobody else, at most a mebibyte.
pub(crate) fn load(path: &Path) -> anyhow::Result<FileConfig> {
    let me = rustix::process::geteuid().as_raw();
    let trusted = Trusted {
        owners: &[0, me],
        what: "config file",
    };
    let bytes = safe_file::read(path, MAX_CONFIG_BYTES, trusted)?
        .with_context(|| format!("config file {} does not exist", path.display()))?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("config file {} is not UTF-8", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "pidguard-config-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write test config");
        path
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let path = write(
            "precedence",
            "socket = \"/x/file.sock\"\n[monitor]\ncheck_interval = \"7s\"\ngrace = \"3s\"\n",
        );
        let from_file = resolve(&Overrides {
            config: Some(path.clone()),
            ..Overrides::default()
        })
        .expect("valid");
        assert_eq!(from_file.socket, Path::new("/x/file.sock"));
        assert_eq!(from_file.state, Path::new("/x/state.json"));
        assert_eq!(from_file.monitor.check_interval, Duration::from_secs(7));
        let flagged = resolve(&Overrides {
            config: Some(path.clone()),
            socket: Some("/y/flag.sock".into()),
            grace: Some(Duration::from_secs(1)),
            ..Overrides::default()
        })
        .expect("valid");
        assert_eq!(flagged.socket, Path::new("/y/flag.sock"));
        assert_eq!(flagged.monitor.grace, Duration::from_secs(1));
        assert_eq!(flagged.monitor.check_interval, Duration::from_secs(7));
        std::fs::remove_file(path).expect("clean up");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_and_key() {
        for (name, text, key) in [
            ("unknown", "sockett = \"/x\"\n", "sockett"),
            ("nested", "[monitor]\ngracee = \"1s\"\n", "gracee"),
            ("bad", "[monitor]\ngrace = \"soon\"\n", "grace"),
            (
                "zero",
                "[monitor]\ncheck_interval = \"0s\"\n",
                "check_interval",
            ),
            ("small", "max_request_bytes = 3\n", "max_request_bytes"),
            (
                "huge",
                "max_request_bytes = 314572800\n",
                "max_request_bytes",
            ),
            ("long_grace", "[monitor]\ngrace = \"3years\"\n", "grace"),
            (
                "long_kill",
                "[monitor]\nkill_timeout = \"3years\"\n",
                "kill_timeout",
            ),
            (
                "per_uid",
                "max_connections = 4\nmax_connections_per_uid = 5\n",
                "max_connections_per_uid",
            ),
        ] {
            let path = write(name, text);
            let failure = resolve(&Overrides {
                config: Some(path.clone()),
                ..Overrides::default()
            })
            .expect_err(text);
            assert_eq!(failure.code, Code::Usage);
            let message = failure.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(key), "{message}");
            std::fs::remove_file(path).expect("clean up");
        }
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    const EXAMPLE: &str =
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/config/pidguard.toml"));

    #[test]
    fn the_example_parses_to_the_defaults() {
        let parsed: FileConfig = toml::from_str(EXAMPLE).expect("config/pidguard.toml parses");
        assert_eq!(parsed, FileConfig::default());
    }

    #[test]
    fn the_example_names_every_key() {
        let example: toml::Table = EXAMPLE.parse().expect("TOML");
        let monitor = example["monitor"].as_table().expect("[monitor] table");
        let defaults: toml::Table = toml::to_string(&FileConfig::default())
            .expect("serializes")
            .parse()
            .expect("TOML");
        for key in defaults.keys().filter(|k| *k != "monitor") {
            assert!(
                example.contains_key(key),
                "config/pidguard.toml lacks `{key}`"
            );
        }
        let monitor_keys: toml::Table = toml::to_string(&monitor_core::Config::default())
            .expect("serializes")
            .parse()
            .expect("TOML");
        for key in monitor_keys.keys() {
            assert!(
                monitor.contains_key(key),
                "config/pidguard.toml lacks `monitor.{key}`"
            );
        }
        // The keys without a fixed default are documented as comments.
        for key in ["socket", "socket_group", "state", "metrics_listen"] {
            assert!(
                EXAMPLE.contains(&format!("\n# {key} = ")),
                "config/pidguard.toml documents `{key}`"
            );
        }
    }
}
