//! The `pidguard` command: a thin dispatcher. It parses the command line,
//! hands each subcommand to its own module, and turns the outcome into the
//! process's exit code. Everything a subcommand does lives in its module:
//! `run` (the supervisor), `daemon` (the monitoring service) and `client`
//! (the commands that talk to it).
//!
//! The `daemon` feature (on by default) builds the daemon and the client
//! commands; the static container build leaves it out, so the binary holds
//! `run` alone (see `docs/run.md`).

#![cfg(target_os = "linux")]

#[cfg(feature = "daemon")]
mod client;
#[cfg(feature = "daemon")]
mod daemon;
// Only the usage code is used without the daemon and the client commands.
#[cfg_attr(not(feature = "daemon"), allow(dead_code))]
mod exit;
#[cfg(all(test, feature = "daemon"))]
mod fuzz_tests;
#[cfg(feature = "daemon")]
mod generate;
mod log_style;
#[cfg(feature = "daemon")]
mod metrics;
#[cfg(feature = "daemon")]
mod paths;
// The wire protocol's types live in their own crate, shared with the
// client crate; the daemon and the client commands name them as before.
#[cfg(feature = "daemon")]
use pidguard_protocol as protocol;
mod run;
#[cfg(feature = "daemon")]
mod safe_file;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A process guardian for Linux: supervise a command as its init, or run a
/// monitoring service that cleans up the processes whose parent died.
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
    /// Run the monitoring service on a Unix socket.
    #[cfg(feature = "daemon")]
    Daemon(daemon::DaemonArgs),
    /// Register processes: when a process's parent dies, it is cleaned up.
    #[cfg(feature = "daemon")]
    Track(client::TrackArgs),
    /// Drop a registration.
    #[cfg(feature = "daemon")]
    Untrack(client::UntrackArgs),
    /// Show the registrations this user may see.
    #[cfg(feature = "daemon")]
    Status(client::StatusArgs),
    /// Print the daemon's events about this user's registrations as they happen.
    #[cfg(feature = "daemon")]
    Events(client::EventsArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    #[cfg(feature = "daemon")]
    Completions(generate::CompletionsArgs),
    /// Write a man page per subcommand into DIR (for packagers).
    #[cfg(feature = "daemon")]
    #[command(hide = true)]
    ManPages(generate::ManPagesArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // `--help` and `--version` come through here too, as "errors"
            // printed to stdout; only real usage errors get a usage code.
            let _ = error.print();
            return if !error.use_stderr() {
                ExitCode::SUCCESS
            } else if std::env::args().nth(1).as_deref() == Some("run") {
                // `run` passes CMD's own codes through, so its usage errors
                // need a code no CMD is likely to mean (see docs/run.md).
                ExitCode::from(run::exit_code::OWN_FAILURE)
            } else {
                ExitCode::from(exit::Code::Usage as u8)
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
        #[cfg(feature = "daemon")]
        Command::Daemon(args) => exit::report(daemon::main(&args)),
        #[cfg(feature = "daemon")]
        Command::Track(args) => exit::report(client_command(|| client::track(&args))),
        #[cfg(feature = "daemon")]
        Command::Untrack(args) => exit::report(client_command(|| client::untrack(&args))),
        #[cfg(feature = "daemon")]
        Command::Status(args) => exit::report(client_command(|| client::status(&args))),
        #[cfg(feature = "daemon")]
        Command::Events(args) => exit::report(client_command(|| client::events(&args))),
        #[cfg(feature = "daemon")]
        Command::Completions(args) => exit::report(generate::completions(
            &args,
            <Cli as clap::CommandFactory>::command(),
        )),
        #[cfg(feature = "daemon")]
        Command::ManPages(args) => exit::report(generate::man_pages(
            &args,
            <Cli as clap::CommandFactory>::command(),
        )),
    }
}

#[cfg(feature = "daemon")]
fn client_command(run: impl FnOnce() -> Result<(), exit::Failure>) -> Result<(), exit::Failure> {
    client::init_logging();
    run()
}
