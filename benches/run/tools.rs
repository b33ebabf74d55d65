//! The supervisors under comparison and how each is started.

use std::process::{Command, Stdio};

/// A supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    /// `pidguard run --grace <grace> --`
    Pidguard,
    /// `tini -s --` (a subreaper when not PID 1)
    Tini,
    /// `dumb-init` (its default: CMD in a new session, signals to the group)
    DumbInit,
}

impl Tool {
    /// Every tool, pidguard first.
    pub(crate) const ALL: [Tool; 3] = [Tool::Pidguard, Tool::Tini, Tool::DumbInit];

    /// The name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tool::Pidguard => "pidguard run",
            Tool::Tini => "tini -s",
            Tool::DumbInit => "dumb-init",
        }
    }

    /// The command line that starts `cmd` under this tool.
    pub(crate) fn argv(self, grace: &str, cmd: &[String]) -> Vec<String> {
        let mut argv: Vec<String> = match self {
            Tool::Pidguard => vec![
                env!("CARGO_BIN_EXE_pidguard").into(),
                "run".into(),
                "--grace".into(),
                grace.into(),
                "--".into(),
            ],
            Tool::Tini => vec!["tini".into(), "-s".into(), "--".into()],
            Tool::DumbInit => vec!["dumb-init".into()],
        };
        argv.extend(cmd.iter().cloned());
        argv
    }

    /// Whether the tool can be run here; if not, why.
    pub(crate) fn available(self) -> Result<(), String> {
        let program = match self {
            Tool::Pidguard => return Ok(()),
            Tool::Tini => "tini",
            Tool::DumbInit => "dumb-init",
        };
        match Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(_) => Ok(()),
            Err(error) => Err(format!(
                "{program} not found ({error}); `apt-get install {program}` to compare"
            )),
        }
    }
}
