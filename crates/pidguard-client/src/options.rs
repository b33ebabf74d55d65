//! What a `track` asks for beyond the process, and the settings a client
//! takes from its environment (as the `pidguard` client commands do).

use std::path::PathBuf;
use std::time::Duration;

use monitor_core::{DurationRange, OrphanAction, OrphanTarget, Signal};
use pidguard_protocol::TrackRequest;

use crate::Error;

/// The variable naming the daemon's socket, as for the client commands.
pub const SOCKET_ENV: &str = "PIDGUARD_SOCKET";

/// The variable setting the client timeout, as for the client commands.
pub const TIMEOUT_ENV: &str = "PIDGUARD_TIMEOUT";

/// How long each step of a call may take when nothing else is said.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The timeouts a client accepts: from 1 ms to a day. Zero would mean
/// "wait forever" to the socket calls, which is what a timeout is there
/// to prevent.
pub const TIMEOUT_RANGE: DurationRange = DurationRange {
    key: "timeout",
    min: Duration::from_millis(1),
    max: Duration::from_secs(24 * 60 * 60),
};

/// `timeout`, if it lies in [`TIMEOUT_RANGE`].
pub(crate) fn checked_timeout(timeout: Duration) -> Result<Duration, Error> {
    TIMEOUT_RANGE
        .check(timeout)
        .map(|()| timeout)
        .map_err(|_| Error::InvalidTimeout { timeout })
}

/// Reads a timeout as the client commands' `--timeout` does: a duration
/// such as `"500ms"` or `"10s"` (the format of the crate docs,
/// "Durations"), within [`TIMEOUT_RANGE`]. The error says what is wrong.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    checked_timeout(timeout).map_err(|error| error.to_string())
}

/// The socket the client commands use without `--socket`: `PIDGUARD_SOCKET`
/// if it is set and not empty, else [`pidguard_protocol::default_socket`].
pub fn socket_from_env() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .filter(|value| !value.is_empty())
        .map_or_else(pidguard_protocol::default_socket, PathBuf::from)
}

/// The timeout the client commands use without `--timeout`:
/// `PIDGUARD_TIMEOUT` if it is set and not empty, else [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> Result<Duration, Error> {
    let Some(value) = std::env::var_os(TIMEOUT_ENV).filter(|value| !value.is_empty()) else {
        return Ok(DEFAULT_TIMEOUT);
    };
    let invalid = |reason: String| Error::Environment {
        var: TIMEOUT_ENV,
        value: value.to_string_lossy().into_owned(),
        reason,
    };
    let text = value
        .to_str()
        .ok_or_else(|| invalid("not UTF-8".to_owned()))?;
    parse_timeout(text).map_err(invalid)
}

/// What a registration asks for beyond the process. Every field left
/// unset takes the daemon's configured default (`pidguard daemon`'s
/// `orphan_action`, `grace`, `term_signal`, `tree`, `orphan_target`).
///
/// The daemon-side counterpart of `monitor_core::TrackOptions`; import it
/// under another name (`use pidguard_client::TrackOptions as DaemonTrack;`)
/// where both are in scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackOptions {
    parent: Option<i32>,
    action: Option<OrphanAction>,
    grace: Option<Duration>,
    signal: Option<Signal>,
    tree: Option<bool>,
    target: Option<OrphanTarget>,
}

impl TrackOptions {
    /// Every field at the daemon's default.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process whose death orphans the registered one (resolved to its
    /// identity by the daemon now). Default: its real parent now.
    pub fn parent(mut self, pid: i32) -> Self {
        self.parent = Some(pid);
        self
    }

    /// What happens when it is orphaned: terminate, kill, or only an
    /// `orphaned` event (`notify`).
    pub fn action(mut self, action: OrphanAction) -> Self {
        self.action = Some(action);
        self
    }

    /// Time between the termination signal and `SIGKILL` (0 s to 1 h;
    /// the daemon refuses anything else, naming the field).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// The signal that starts termination.
    pub fn signal(mut self, signal: Signal) -> Self {
        self.signal = Some(signal);
        self
    }

    /// Whether the process's descendants, present and future, are part of
    /// its unit (`true`) or it is a unit of one.
    pub fn tree(mut self, tree: bool) -> Self {
        self.tree = Some(tree);
        self
    }

    /// What the orphan action reaches: the process, its whole unit, or its
    /// process group.
    pub fn target(mut self, target: OrphanTarget) -> Self {
        self.target = Some(target);
        self
    }

    /// The `track` request for `pid` (expected to have `start_time`).
    pub(crate) fn request(&self, pid: i32, start_time: Option<u64>) -> TrackRequest {
        TrackRequest {
            pid,
            start_time,
            parent: self.parent,
            action: self.action,
            grace: self.grace,
            signal: self.signal,
            tree: self.tree,
            target: self.target,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_outside_the_range_are_refused_by_name() {
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        let zero = parse_timeout("0s").expect_err("zero waits forever");
        assert!(zero.contains("1ms") && zero.contains("1day"), "{zero}");
        assert!(parse_timeout("2days").is_err());
        assert!(parse_timeout("soon").is_err());
    }

    #[test]
    fn unset_options_are_left_to_the_daemon() {
        let request = TrackOptions::new().request(5, None);
        let json = serde_json::to_value(&request).expect("serializes");
        assert_eq!(json, serde_json::json!({"pid": 5}));
        let request = TrackOptions::new()
            .grace(Duration::from_millis(1500))
            .action(OrphanAction::Kill)
            .tree(true)
            .request(5, Some(77));
        let json = serde_json::to_value(&request).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"pid": 5, "start_time": 77, "grace": "1s 500ms", "action": "kill", "tree": true})
        );
    }
}
