//! `pidguard daemon`: the monitoring service.
//!
//! A thin layer over a `monitor-core` monitor: the socket and its
//! protocol, access control from the peer's credentials, the state file,
//! signals and config reload. The monitoring itself, including the parent
//! watches that make the orphan action immediate, stays in the library.
//!
//! # Layout
//!
//! - `config`: the config file, flags and environment, merged.
//! - `socket`: the private directory, the single-daemon lock, the listener.
//! - `connection`, `lines`: one client connection and its bounded lines.
//! - `service`: the actor owning the registrations (handle, events, commit).
//! - `access`: peer credentials and process owners.
//! - `store`: the state file.

mod access;
mod config;
mod connection;
mod lines;
mod service;
mod socket;
mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use config::{LogFormat, Overrides, Settings};
use connection::Shared;
use service::TrackDefaults;

use crate::exit::{Code, Failure};
use crate::paths;

/// How long in-flight requests get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// `pidguard daemon` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct DaemonArgs {
    /// Config file (TOML; see config/pidguard.toml).
    #[arg(long, value_name = "FILE", env = "PIDGUARD_CONFIG")]
    config: Option<PathBuf>,
    /// Socket path [default: /run/pidguard/pidguard.sock for root,
    /// $XDG_RUNTIME_DIR/pidguard/pidguard.sock otherwise].
    #[arg(long, value_name = "PATH", env = "PIDGUARD_SOCKET")]
    socket: Option<PathBuf>,
    /// Safety-net scan interval, e.g. "60s".
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    check_interval: Option<Duration>,
    /// Default grace period between the signal and SIGKILL, e.g. "5s".
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
    /// State file [default: state.json next to the socket].
    #[arg(long, value_name = "FILE", env = "PIDGUARD_STATE")]
    state: Option<PathBuf>,
}

impl DaemonArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            socket: self.socket.clone(),
            state: self.state.clone(),
            check_interval: self.check_interval,
            grace: self.grace,
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub(crate) fn main(args: &DaemonArgs) -> Result<(), Failure> {
    let settings = config::resolve(&args.overrides())?;
    init_logging(settings.log_format);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(args, settings))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Only the first subscriber counts; there is only ever one here.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Each tracked process costs the monitor two descriptors (its pidfd and
/// its open `stat`), so the daemon lifts its soft descriptor limit to the
/// hard one: a default soft limit of 1024 would cap it near 500 processes.
fn raise_descriptor_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::debug!(from = ?limit.current, to = ?limit.maximum, "raised RLIMIT_NOFILE")
            }
            Err(error) => tracing::warn!(%error, "could not raise RLIMIT_NOFILE"),
        }
    }
}

async fn run(args: &DaemonArgs, settings: Settings) -> Result<(), Failure> {
    raise_descriptor_limit();
    let socket_path = settings.socket.clone();
    paths::private_dir(&paths::socket_dir(&socket_path), settings.socket_group)?;
    let _lock = socket::lock(&socket_path).inspect_err(|failure| {
        if failure.code == Code::AlreadyRunning {
            tracing::info!(socket = %socket_path.display(), "another daemon serves this socket; leaving");
        }
    })?;
    // Catch the signals before the socket exists: a client may ask us to
    // stop as soon as it can connect.
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;

    let monitor = monitor_core::Monitor::spawn(settings.monitor.clone())
        .context("cannot start the monitor")?;
    let (service, service_task) = service::start(
        monitor.handle(),
        settings.state.clone(),
        TrackDefaults::from(&settings.monitor),
        settings.monitor.check_interval,
    )
    .await?;
    match store::load(&settings.state)? {
        store::Loaded::Missing => {}
        store::Loaded::Found(registrations) => service.restore(registrations).await,
        store::Loaded::Corrupt { moved_to, error } => tracing::error!(
            state = %settings.state.display(),
            moved_to = %moved_to.display(),
            error = %format!("{error:#}"),
            "the state file was corrupt and was moved aside; starting with no registrations"
        ),
    }

    let listener = socket::bind(&socket_path, settings.socket_group)?;
    tracing::info!(
        socket = %socket_path.display(),
        state = %settings.state.display(),
        check_interval = ?settings.monitor.check_interval,
        pid = std::process::id(),
        "pidguard daemon listening"
    );
    let shared = Arc::new(Shared {
        service: service.clone(),
        max_request_bytes: settings.max_request_bytes.into(),
    });
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut current = settings;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match stream.peer_cred() {
                    Ok(cred) => {
                        let peer = access::Peer { uid: cred.uid(), pid: cred.pid() };
                        connections.spawn(connection::serve(stream, peer, Arc::clone(&shared), stop.clone()));
                    }
                    Err(error) => tracing::warn!(%error, "no peer credentials; connection dropped"),
                },
                // E.g. EMFILE: keep serving the connections we have.
                Err(error) => {
                    tracing::error!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = terminate.recv() => { tracing::info!("SIGTERM: shutting down"); break }
            _ = interrupt.recv() => { tracing::info!("SIGINT: shutting down"); break }
            _ = hangup.recv() => current = reload(args, current, &shared).await,
        }
    }

    // Stop accepting, let in-flight requests finish, then write the state.
    drop(listener);
    stop.cancel();
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {DRAIN:?}");
    }
    // The last state write; connections still stuck (a client that does
    // not read) are dropped with the runtime.
    service.shutdown().await;
    let _ = service_task.await;
    // The tracked processes stay as they are: the next daemon resumes them.
    monitor.shutdown().await;
    if let Err(error) = std::fs::remove_file(&socket_path) {
        tracing::warn!(socket = %socket_path.display(), %error, "could not remove the socket");
    }
    tracing::info!("pidguard daemon stopped");
    Ok(())
}

/// SIGHUP: re-reads the config. The defaults for new registrations and
/// the request size limit change at once; a change to anything else
/// (socket, state, group, scan interval, monitor internals) is logged as
/// needing a restart. A bad file changes nothing.
async fn reload(args: &DaemonArgs, current: Settings, shared: &Shared) -> Settings {
    let new = match config::resolve(&args.overrides()) {
        Ok(new) => new,
        Err(failure) => {
            tracing::error!(error = %failure, "SIGHUP: config not reloaded");
            return current;
        }
    };
    let mut kept = current.clone();
    let defaults = TrackDefaults::from(&new.monitor);
    if defaults != TrackDefaults::from(&current.monitor) {
        shared.service.set_defaults(defaults).await;
        kept.monitor.orphan_action = new.monitor.orphan_action;
        kept.monitor.grace = new.monitor.grace;
        kept.monitor.term_signal = new.monitor.term_signal;
    }
    shared
        .max_request_bytes
        .store(new.max_request_bytes, Ordering::Relaxed);
    kept.max_request_bytes = new.max_request_bytes;
    if kept != new {
        tracing::warn!(
            "SIGHUP: some changed settings apply only after a restart (socket, state, socket_group, log_format, and monitor settings other than orphan_action, grace and term_signal)"
        );
    }
    tracing::info!("SIGHUP: config reloaded");
    kept
}
