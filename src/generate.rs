//! Shell completions and man pages, generated from the command line's own
//! definition (clap_complete, clap_mangen), so they never drift from it.
//!
//! `pidguard completions SHELL` prints a completion script;
//! `pidguard man-pages DIR` (hidden: it is for packagers) writes one page
//! per subcommand, `pidguard.1`, `pidguard-run.1`, `pidguard-daemon.1`...

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::exit::Failure;

/// The shells a completion script is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Shell {
    /// Bash (source it, or install it as
    /// /usr/share/bash-completion/completions/pidguard).
    Bash,
    /// Zsh (install it as `_pidguard` in a directory of `$fpath`).
    Zsh,
    /// Fish (install it as ~/.config/fish/completions/pidguard.fish).
    Fish,
}

/// `pidguard completions` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh or fish.
    #[arg(value_enum)]
    shell: Shell,
}

/// `pidguard man-pages` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct ManPagesArgs {
    /// Where to write the pages (an existing directory).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Prints the completion script for `args.shell` on stdout.
pub(crate) fn completions(
    args: &CompletionsArgs,
    mut command: clap::Command,
) -> Result<(), Failure> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "pidguard", &mut script);
    std::io::stdout()
        .lock()
        .write_all(&script)
        .context("writing to stdout")?;
    Ok(())
}

/// Writes a man page per subcommand into `args.dir`.
pub(crate) fn man_pages(args: &ManPagesArgs, command: clap::Command) -> Result<(), Failure> {
    clap_mangen::generate_to(command, &args.dir)
        .with_context(|| format!("writing man pages into {}", args.dir.display()))?;
    Ok(())
}
