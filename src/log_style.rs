//! How log lines on stderr look: plain text or JSON, and whether text gets
//! colours. Shared by `run`, the daemon and the client commands, and small
//! on purpose: the static `run` build carries it.
//!
//! Colours are escape codes: they belong on a terminal, never in a log
//! file, a pipe or the journal. So `auto` colours only a terminal, and
//! `NO_COLOR` (set and not empty, <https://no-color.org>) turns `auto` off;
//! only an explicit `--color always` beats it.

use std::io::IsTerminal;

/// When text log lines get ANSI colours (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Color {
    /// Only when stderr is a terminal and `NO_COLOR` is unset or empty.
    #[default]
    Auto,
    /// Always, even into a file or a pipe.
    Always,
    /// Never.
    Never,
}

impl Color {
    /// Whether to write escape codes to stderr.
    pub(crate) fn ansi(self) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => {
                std::io::stderr().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
            }
        }
    }
}

/// The shape of log lines (`--log-format` of `run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Format {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`,
    /// `fields` (with `message`), and the span the event happened in.
    Json,
}
