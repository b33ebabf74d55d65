//! The `pidguard` command: the monitoring daemon and the client commands
//! that talk to it. Each subcommand lives in its own module; this file
//! only parses the command line, dispatches, and turns the result into an
//! exit code (see `exit`).

#![cfg(target_os = "linux")]

mod client;
mod daemon;
mod exit;
mod paths;
mod protocol;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A process guardian: cleans up the processes whose parent died.
#[derive(Debug, Parser)]
#[command(name = "pidguard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the monitoring service on a Unix socket.
    Daemon(daemon::DaemonArgs),
    /// Register processes: when a process's parent dies, it is cleaned up.
    Track(client::TrackArgs),
    /// Drop a registration.
    Untrack(client::UntrackArgs),
    /// Show the registrations this user may see.
    Status(client::StatusArgs),
    /// Print the daemon's events about this user's registrations as they happen.
    Events(client::EventsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Daemon(args) => daemon::main(args),
        Command::Track(args) => client_command(|| client::track(args)),
        Command::Untrack(args) => client_command(|| client::untrack(args)),
        Command::Status(args) => client_command(|| client::status(args)),
        Command::Events(args) => client_command(|| client::events(args)),
    };
    exit::report(result)
}

fn client_command(run: impl FnOnce() -> Result<(), exit::Failure>) -> Result<(), exit::Failure> {
    client::init_logging();
    run()
}
