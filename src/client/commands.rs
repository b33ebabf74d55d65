//! What each client command sends and prints.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use monitor_core::{OrphanAction, OrphanTarget, Signal};
use pidguard_client::TrackOptions;

use super::{ClientArgs, block_on, failure};
use crate::exit::{Code, Failure};

/// `pidguard track` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct TrackArgs {
    /// The processes to register.
    #[arg(required = true, value_name = "PID")]
    pids: Vec<i32>,
    /// The process whose death orphans them [default: each one's parent now].
    #[arg(long, value_name = "PID")]
    parent: Option<i32>,
    /// What happens to an orphan: terminate, kill or notify [default: the daemon's].
    #[arg(long, value_parser = parse_action)]
    action: Option<OrphanAction>,
    /// Time between the signal and SIGKILL, e.g. "5s" [default: the daemon's].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
    /// The signal that starts termination, e.g. TERM [default: the daemon's].
    #[arg(long)]
    signal: Option<Signal>,
    /// Also follow each one's descendants, so its children are orphans
    /// when it dies [default: the daemon's].
    #[arg(long)]
    tree: bool,
    /// What the orphan action reaches: process, tree or group [default: the daemon's].
    #[arg(long, value_parser = parse_target)]
    target: Option<OrphanTarget>,
    #[command(flatten)]
    client: ClientArgs,
}

fn parse_action(text: &str) -> Result<OrphanAction, String> {
    match text {
        "terminate" => Ok(OrphanAction::Terminate),
        "kill" => Ok(OrphanAction::Kill),
        "notify" => Ok(OrphanAction::Notify),
        other => Err(format!("`{other}` is not terminate, kill or notify")),
    }
}

/// `pidguard untrack` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct UntrackArgs {
    /// The registered process.
    #[arg(value_name = "PID")]
    pid: i32,
    #[command(flatten)]
    client: ClientArgs,
}

/// `pidguard status` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct StatusArgs {
    /// How to print it: text, json (the daemon's answer) or prometheus (the
    /// metrics of /metrics, for node_exporter's textfile collector; root or
    /// the daemon's own user only).
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "text",
        conflicts_with = "json"
    )]
    format: StatusFormat,
    /// Same as --format json.
    #[arg(long)]
    json: bool,
    /// With --format prometheus: a series per unit too (as the daemon's
    /// --metrics-per-unit).
    #[arg(long)]
    metrics_per_unit: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// How `pidguard status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StatusFormat {
    /// A line per registration.
    Text,
    /// The daemon's answer, as JSON.
    Json,
    /// The Prometheus text format.
    Prometheus,
}

/// `pidguard events` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct EventsArgs {
    /// Print each event line as the daemon sends it (JSON).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

fn parse_target(text: &str) -> Result<OrphanTarget, String> {
    match text {
        "process" => Ok(OrphanTarget::Process),
        "tree" => Ok(OrphanTarget::Tree),
        "group" => Ok(OrphanTarget::Group),
        other => Err(format!("`{other}` is not process, tree or group")),
    }
}

impl TrackArgs {
    /// The options every pid is registered with.
    fn options(&self) -> TrackOptions {
        let mut options = TrackOptions::new();
        if let Some(parent) = self.parent {
            options = options.parent(parent);
        }
        if let Some(action) = self.action {
            options = options.action(action);
        }
        if let Some(grace) = self.grace {
            options = options.grace(grace);
        }
        if let Some(signal) = self.signal {
            options = options.signal(signal);
        }
        if self.tree {
            options = options.tree(true);
        }
        if let Some(target) = self.target {
            options = options.target(target);
        }
        options
    }
}

/// Registers each pid; reports every refusal and fails if any was refused.
pub(crate) fn track(args: &TrackArgs) -> Result<(), Failure> {
    block_on(async {
        let mut client = args.client.connect().await?;
        let mut out = std::io::stdout().lock();
        let mut failures = Vec::new();
        for &pid in &args.pids {
            match client.track(pid, args.options()).await {
                Ok(r) => writeln!(
                    out,
                    "tracking {} (parent {}; when orphaned: {}, {} then SIGKILL after {})",
                    r.id,
                    r.parent,
                    r.action,
                    r.signal,
                    humantime::format_duration(r.grace)
                )
                .context("writing to stdout")?,
                Err(error) => match error.refusal() {
                    Some(body) => failures.push(about(pid, &body.message)),
                    None => return Err(failure(error)),
                },
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Failure::new(
                Code::Failure,
                anyhow::anyhow!(failures.join("; ")),
            ))
        }
    })
}

/// `message` about `pid`, naming it once: the daemon's refusals mostly
/// name the pid already ("pid 1 is the init process ..."), and a prefix
/// would say it twice.
fn about(pid: i32, message: &str) -> String {
    let number = pid.to_string();
    let named = message
        .split(|c: char| !c.is_ascii_digit() && c != '-')
        .any(|word| word == number);
    if named {
        message.to_owned()
    } else {
        format!("pid {pid}: {message}")
    }
}

/// Drops a registration.
pub(crate) fn untrack(args: &UntrackArgs) -> Result<(), Failure> {
    block_on(async {
        let mut client = args.client.connect().await?;
        let untracked = client.untrack(args.pid).await.map_err(failure)?;
        writeln!(std::io::stdout().lock(), "untracked {}", untracked.id)
            .context("writing to stdout")?;
        Ok(())
    })
}

/// Prints the caller's registrations.
pub(crate) fn status(args: &StatusArgs) -> Result<(), Failure> {
    let report = block_on(async {
        let mut client = args.client.connect().await?;
        client.status().await.map_err(failure)
    })?;
    let mut out = std::io::stdout().lock();
    let format = if args.json {
        StatusFormat::Json
    } else {
        args.format
    };
    if format == StatusFormat::Json {
        let text = serde_json::to_string_pretty(&report).context("formatting the status")?;
        writeln!(out, "{text}").context("writing to stdout")?;
        return Ok(());
    }
    if format == StatusFormat::Prometheus {
        let (Some(monitor), Some(daemon)) = (&report.monitor, &report.daemon) else {
            return Err(Failure::new(
                Code::Failure,
                anyhow::anyhow!(
                    "the daemon (pid {}) shares its counters with root and its own user only, not uid {}",
                    report.daemon_pid,
                    report.peer_uid
                ),
            ));
        };
        let text = crate::metrics::render(
            &crate::metrics::Scrape {
                counters: Some(&monitor.counters),
                monitor: Some(monitor),
                daemon: Some(daemon),
                per_unit: args.metrics_per_unit,
            },
            crate::metrics::Format::Prometheus,
        );
        out.write_all(text.as_bytes())
            .context("writing to stdout")?;
        return Ok(());
    }
    writeln!(
        out,
        "pidguard daemon {} (pid {}), scan every {}; {} registration(s) visible to uid {}",
        report.daemon_version,
        report.daemon_pid,
        humantime::format_duration(report.check_interval),
        report.tracked_count,
        report.peer_uid
    )
    .context("writing to stdout")?;
    for entry in &report.tracked {
        let r = &entry.registration;
        let state = entry
            .state
            .map_or_else(|| "gone".to_owned(), |s| format!("{s:?}").to_lowercase());
        // Its unit: how members are found, and how many it holds.
        let unit = entry.unit.map_or_else(String::new, |unit| {
            format!("  unit {} ({} processes)", unit.containment, unit.members)
        });
        writeln!(
            out,
            "  {:<20} parent {:<20} uid {:<6} {:<10} {:<9} {} {}{unit}",
            r.id.to_string(),
            r.parent.to_string(),
            r.uid,
            state,
            r.action.to_string(),
            r.signal,
            humantime::format_duration(r.grace)
        )
        .context("writing to stdout")?;
    }
    Ok(())
}

/// Prints events as they come, until the daemon goes away.
pub(crate) fn events(args: &EventsArgs) -> Result<(), Failure> {
    block_on(async {
        let client = args.client.connect().await?;
        let socket = client.socket().to_path_buf();
        // A quiet stream still gets a keepalive line every 15 s; the
        // client crate gives up after that plus the timeout (the daemon
        // is gone then).
        let mut events = client.events().await.map_err(failure)?;
        let mut out = std::io::stdout().lock();
        loop {
            let Some(line) = events.next_line().await.map_err(failure)? else {
                return Err(Failure::from(anyhow::anyhow!(
                    "the daemon on {} closed the connection",
                    socket.display()
                )));
            };
            let text = match (&line.event, line.lagged, args.json) {
                (_, _, true) => serde_json::to_string(&line).context("formatting an event")?,
                (Some(event), _, false) => event.to_string(),
                (None, Some(missed), false) => format!("(missed {missed} events)"),
                (None, None, false) => continue,
            };
            writeln!(out, "{text}").context("writing to stdout")?;
            out.flush().context("writing to stdout")?;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::about;

    #[test]
    fn a_refusal_names_its_pid_once() {
        assert_eq!(
            about(1, "pid 1 is the init process and is never tracked"),
            "pid 1 is the init process and is never tracked"
        );
        assert_eq!(
            about(42, "process 42 is already tracked"),
            "process 42 is already tracked"
        );
        assert_eq!(
            about(42, "process 4242@77 is already tracked"),
            "pid 42: process 4242@77 is already tracked"
        );
        assert_eq!(
            about(7, "the daemon is shutting down"),
            "pid 7: the daemon is shutting down"
        );
    }
}
