//! Process identity, exit statuses and signals: the small value types every
//! other module speaks in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The identity of a process: its pid plus its start time.
///
/// A bare pid can be reused by an unrelated process as soon as the old one is
/// reaped; the start time (clock ticks since boot, field 22 of
/// `/proc/<pid>/stat`) tells two holders of the same pid apart in practice.
/// It is the serializable, loggable name of a process. It is not proof of
/// identity on its own (a pid forced to be reused within one tick gets the
/// same pair), so the monitor signals through a pidfd opened before the start
/// time was read, never through the pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProcessId {
    /// The process id.
    pub pid: i32,
    /// Start time in clock ticks since boot (`USER_HZ`, usually 100 per second).
    pub start_time: u64,
}

impl ProcessId {
    /// Builds an identity from its parts.
    pub fn new(pid: i32, start_time: u64) -> Self {
        Self { pid, start_time }
    }

    /// The identity `pid` names now, read from `/proc/<pid>/stat`; `None`
    /// when there is no such process. A snapshot: to act on the process
    /// later, track it (the monitor pins it), or compare identities.
    pub fn of(pid: i32) -> Option<Self> {
        let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
        Some(Self::new(pid, stat.starttime))
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.pid, self.start_time)
    }
}

/// How a process ended, as reported by `waitid`/`waitpid`.
///
/// Only the reaper of a process learns this; the monitor reports it for the
/// processes it owns (see [`crate::MonitorHandle::track_child`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// The process called `exit` with this code.
    Exited(i32),
    /// The process was killed by a signal.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl ExitStatus {
    /// The exit code, if the process exited normally.
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Exited(code) => Some(*code),
            Self::Signaled { .. } => None,
        }
    }

    /// The signal number, if a signal killed the process.
    pub fn signal(&self) -> Option<i32> {
        match self {
            Self::Exited(_) => None,
            Self::Signaled { signal, .. } => Some(*signal),
        }
    }

    /// Whether the process exited with code 0.
    pub fn success(&self) -> bool {
        matches!(self, Self::Exited(0))
    }
}

impl From<std::process::ExitStatus> for ExitStatus {
    fn from(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Self::Exited(code),
            (None, Some(signal)) => Self::Signaled {
                signal,
                core_dumped: status.core_dumped(),
            },
            // Stopped/continued statuses never come out of a reaping wait;
            // keep the raw value rather than inventing a meaning.
            (None, None) => Self::Exited(status.into_raw()),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited(code) => write!(f, "exit code {code}"),
            Self::Signaled {
                signal,
                core_dumped,
            } => {
                let name = Signal::try_from(*signal)
                    .map_or_else(|_| signal.to_string(), |s| s.to_string());
                write!(f, "killed by {name}")?;
                if *core_dumped {
                    write!(f, " (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// A Unix signal, named the usual way (`SIGTERM`, `TERM` or `15` all parse).
///
/// Serialized as its name (`"SIGTERM"`), so config files read naturally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(nix::sys::signal::Signal);

impl Signal {
    /// `SIGTERM`: ask the process to terminate.
    pub const TERM: Self = Self(nix::sys::signal::Signal::SIGTERM);
    /// `SIGKILL`: end the process; it cannot be caught or ignored.
    pub const KILL: Self = Self(nix::sys::signal::Signal::SIGKILL);
    /// `SIGINT`: interrupt, as Ctrl-C sends.
    pub const INT: Self = Self(nix::sys::signal::Signal::SIGINT);
    /// `SIGHUP`: hang-up.
    pub const HUP: Self = Self(nix::sys::signal::Signal::SIGHUP);
    /// `SIGQUIT`: quit with a core dump.
    pub const QUIT: Self = Self(nix::sys::signal::Signal::SIGQUIT);
    /// `SIGUSR1`: user-defined signal 1.
    pub const USR1: Self = Self(nix::sys::signal::Signal::SIGUSR1);
    /// `SIGUSR2`: user-defined signal 2.
    pub const USR2: Self = Self(nix::sys::signal::Signal::SIGUSR2);

    /// The signal number.
    pub fn as_raw(self) -> i32 {
        self.0 as i32
    }

    /// The conventional name, e.g. `"SIGTERM"`.
    pub fn name(self) -> &'static str {
        self.0.as_str()
    }

    pub(crate) fn to_nix(self) -> nix::sys::signal::Signal {
        self.0
    }

    pub(crate) fn to_rustix(self) -> Option<rustix::process::Signal> {
        rustix::process::Signal::from_named_raw(self.as_raw())
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text was not a signal name or number that Linux knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal {0:?} (expected a name like SIGTERM or TERM, or a number like 15)")]
pub struct UnknownSignal(pub String);

impl TryFrom<i32> for Signal {
    type Error = UnknownSignal;

    fn try_from(raw: i32) -> Result<Self, Self::Error> {
        nix::sys::signal::Signal::try_from(raw)
            .map(Self)
            .map_err(|_| UnknownSignal(raw.to_string()))
    }
}

impl FromStr for Signal {
    type Err = UnknownSignal;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if let Ok(raw) = trimmed.parse::<i32>() {
            return Self::try_from(raw).map_err(|_| UnknownSignal(text.to_owned()));
        }
        let upper = trimmed.to_ascii_uppercase();
        let full = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        nix::sys::signal::Signal::from_str(&full)
            .map(Self)
            .map_err(|_| UnknownSignal(text.to_owned()))
    }
}

impl Serialize for Signal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Number(i32),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Name(name) => name.parse().map_err(serde::de::Error::custom),
            Raw::Number(raw) => Signal::try_from(raw).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers_parse() {
        assert_eq!("SIGTERM".parse::<Signal>(), Ok(Signal::TERM));
        assert_eq!("term".parse::<Signal>(), Ok(Signal::TERM));
        assert_eq!("9".parse::<Signal>(), Ok(Signal::KILL));
        assert_eq!(
            "SIGNOPE".parse::<Signal>(),
            Err(UnknownSignal("SIGNOPE".into()))
        );
        assert!("0".parse::<Signal>().is_err());
    }

    #[test]
    fn exit_status_from_std() {
        use std::os::unix::process::ExitStatusExt;
        let exited = std::process::ExitStatus::from_raw(7 << 8);
        assert_eq!(ExitStatus::from(exited), ExitStatus::Exited(7));
        let killed = std::process::ExitStatus::from_raw(9);
        assert_eq!(
            ExitStatus::from(killed),
            ExitStatus::Signaled {
                signal: 9,
                core_dumped: false
            }
        );
        assert_eq!(ExitStatus::from(killed).to_string(), "killed by SIGKILL");
    }
}
