//! The `pidguard` command: a thin dispatcher. It parses the command line,
//! hands each subcommand to its own module, and turns the outcome into the
//! process's exit code. Everything a subcommand does lives in its module.

#![cfg(target_os = "linux")]

mod run;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A process guardian for Linux: supervise a command as its init, reap every
/// zombie, and clean up what it leaves behind.
#[derive(Debug, Parser)]
#[command(name = "pidguard", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run CMD as its init: reap every child, forward signals, exit with
    /// CMD's status, then terminate every descendant CMD left behind.
    Run(run::RunArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // `--help` and `--version` come through here too, as "errors"
            // printed to stdout; only real usage errors get the usage code.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(run::exit_code::OWN_FAILURE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Run(args) => match run::main(args) {
            Ok(code) => ExitCode::from(code),
            Err(error) => {
                // Printed once, with every cause, and a code of its own.
                let _ = writeln!(std::io::stderr(), "pidguard: {error:#}");
                ExitCode::from(run::exit_code::OWN_FAILURE)
            }
        },
    }
}
