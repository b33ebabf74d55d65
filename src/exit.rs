//! Exit codes, and the error type that carries one to `main`.
//!
//! Every subcommand returns `Result<(), Failure>`; `main` prints the error
//! once, with its causes, and exits with its code. The codes are documented
//! in `docs/operations.md`.

use std::fmt;
use std::process::ExitCode;

/// Why the command failed, as its exit code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// A request was refused, or something failed at run time.
    Failure = 1,
    /// Bad command line or bad config (clap also uses 2 for usage errors).
    Usage = 2,
    /// No daemon answers on the socket (and none could be started).
    Unreachable = 3,
    /// Another daemon already holds the socket's lock; this one left.
    AlreadyRunning = 4,
}

/// An error with the exit code it deserves.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The exit code.
    pub(crate) code: Code,
    /// What went wrong, with its causes.
    pub(crate) error: anyhow::Error,
    /// Already said through the log: [`report`] only exits with the code.
    logged: bool,
}

impl Failure {
    /// Wraps `error` with `code`.
    pub(crate) fn new(code: Code, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            error: error.into(),
            logged: false,
        }
    }

    /// Marks it as said already (a daemon logs its fatal errors), so it
    /// is not printed a second time on exit.
    pub(crate) fn logged(mut self) -> Self {
        self.logged = true;
        self
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::new(Code::Failure, error)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Self::new(Code::Failure, error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

/// Prints a failure once (with its causes) and turns the result into the
/// process's exit code.
pub(crate) fn report(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            use std::io::Write as _;
            if !failure.logged {
                // stderr may be closed; there is nowhere else to say it then.
                let _ = writeln!(std::io::stderr().lock(), "pidguard: {failure}");
            }
            ExitCode::from(failure.code as u8)
        }
    }
}
