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
//! - `limits`: the resource limits and the connection caps.
//! - `accept`: admitting connections under the caps; accept back-off.
//! - `connection`, `lines`: one client connection and its bounded lines.
//! - `service`: the actor owning the registrations (handle, events, commit).
//! - `access`: peer credentials and process owners.
//! - `memory`: giving freed memory back after a flood.
//! - `logging`: text, JSON or the journal.
//! - `metrics_http`: `/metrics` over HTTP (`--metrics-listen`).
//! - `store`: the state file.
//! - `stats`: the daemon's own counters.
//! - `systemd`: readiness, status and watchdog notifications; a socket
//!   passed by the service manager.
//! - `test_wedge` (debug builds only): wedges the service actor on
//!   request, for the watchdog test.

mod accept;
mod access;
mod config;
mod connection;
mod limits;
mod lines;
mod logging;
mod memory;
mod metrics_http;
mod service;
mod socket;
mod stats;
mod store;
mod systemd;
#[cfg(debug_assertions)]
mod test_wedge;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use accept::{Admission, Backoff};
use config::{LogFormat, Overrides, Settings};
use connection::Shared;
use limits::ConnectionCounts;
use service::TrackDefaults;
use stats::DaemonStats;
use store::Store;

use crate::exit::{Code, Failure};
use crate::log_style::Color;
use crate::paths;

/// What the fuzz and property harness (`src/fuzz_tests.rs`) drives.
#[cfg(test)]
pub(crate) mod fuzz_entry {
    use super::{config, limits::Limits, store};
    use crate::protocol::Registration;

    /// A state file's bytes, parsed.
    pub(crate) fn parse_state(bytes: &[u8]) -> anyhow::Result<Vec<Registration>> {
        store::parse(bytes)
    }

    /// The bytes of a state file holding `registrations`.
    pub(crate) fn state_bytes(registrations: &[Registration]) -> Vec<u8> {
        store::encode(registrations).expect("registrations serialize")
    }

    /// A config text, parsed and checked as the daemon does.
    pub(crate) fn parse_config(text: &str) -> anyhow::Result<(Limits, monitor_core::Config)> {
        let file: config::FileConfig = toml::from_str(text)?;
        let limits = file.limits();
        limits.validate()?;
        file.monitor.validate()?;
        Ok((limits, file.monitor))
    }
}

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
    /// Where log lines go: text or json on stderr, journald, or auto (the
    /// journal when JOURNAL_STREAM says stderr goes there, else text)
    /// [default: the config's log_format, auto].
    #[arg(long, value_name = "FORMAT", env = "PIDGUARD_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Colours in text log lines: auto (only on a terminal, and not when
    /// NO_COLOR is set), always or never.
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    color: Color,
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g.
    /// 127.0.0.1:9417 (no authentication: keep it on loopback)
    /// [default: the config's metrics_listen; off].
    #[arg(long, value_name = "ADDR", env = "PIDGUARD_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Add a metrics series per unit (labelled by its root pid): one per
    /// registration, so many on a busy host [default: the config's
    /// metrics_per_unit; off].
    #[arg(
        long,
        env = "PIDGUARD_METRICS_PER_UNIT",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::SetTrue
    )]
    metrics_per_unit: bool,
}

impl DaemonArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            socket: self.socket.clone(),
            state: self.state.clone(),
            check_interval: self.check_interval,
            grace: self.grace,
            log_format: self.log_format,
            metrics_listen: self.metrics_listen,
            metrics_per_unit: self.metrics_per_unit,
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub(crate) fn main(args: &DaemonArgs) -> Result<(), Failure> {
    let inherited = systemd::inherited_socket()?;
    let mut overrides = args.overrides();
    let configured = config::resolve(&overrides)?;
    // A socket passed by the service manager is the socket, whatever the
    // flag, the variable or the file say (its directory then holds the
    // lock and, by default, the state file).
    let settings = match &inherited {
        Some(passed) => {
            overrides.socket = Some(passed.path.clone());
            config::resolve(&overrides)?
        }
        None => configured.clone(),
    };
    let logs = logging::init(settings.log_format, args.color);
    if inherited.is_some() && configured.socket != settings.socket {
        tracing::warn!(
            configured = %configured.socket.display(),
            passed = %settings.socket.display(),
            "the service manager passed a socket at another path than configured; serving the passed one"
        );
    }
    match &logs.journal_error {
        Some(error) => {
            tracing::warn!(%error, "the journal is not reachable; logging text to stderr");
        }
        None => tracing::debug!(log_format = ?logs.format, "logging"),
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(&overrides, settings, inherited))
}

/// Each tracked process costs the monitor two descriptors (its pidfd and
/// its open `stat`), so the daemon lifts its soft descriptor limit to the
/// hard one: a default soft limit of 1024 would cap it near 500 processes.
/// Returns the soft limit in force afterwards.
fn raise_descriptor_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::debug!(from = ?limit.current, to = ?limit.maximum, "raised RLIMIT_NOFILE");
                return limit.maximum.unwrap_or(u64::MAX);
            }
            Err(error) => tracing::warn!(%error, "could not raise RLIMIT_NOFILE"),
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

/// Runs `work` on the blocking pool, so file I/O never holds up the
/// runtime thread (a slow filesystem would stall orphan handling).
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| Err(anyhow::anyhow!("a file task failed: {error}")))
}

async fn run(
    overrides: &Overrides,
    mut settings: Settings,
    inherited: Option<systemd::Inherited>,
) -> Result<(), Failure> {
    settings.limits = settings.limits.fit_descriptors(raise_descriptor_limit());
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

    let state_path = settings.state.clone();
    let store = Arc::new(off_thread(move || Store::open(&state_path)).await?);
    let monitor = monitor_core::Monitor::spawn(settings.monitor.clone())
        .context("cannot start the monitor")?;
    let stats = Arc::new(DaemonStats::default());
    let (service, service_task) = service::start(
        monitor.handle(),
        Arc::clone(&store),
        TrackDefaults::from(&settings.monitor),
        settings.limits,
        settings.monitor.check_interval,
        Arc::clone(&stats),
    )
    .await?;
    let loading = Arc::clone(&store);
    match off_thread(move || loading.load()).await? {
        store::Loaded::Missing => {}
        store::Loaded::Found(registrations) => service.restore(registrations).await,
        store::Loaded::Corrupt { moved_to, error } => tracing::error!(
            state = %settings.state.display(),
            moved_to = %moved_to.display(),
            error = %format!("{error:#}"),
            "the state file was corrupt and was moved aside; starting with no registrations"
        ),
    }

    let passed = inherited.is_some();
    let listener = match inherited {
        Some(inherited) => {
            socket::adopt(&socket_path, settings.socket_group)?;
            inherited.into_tokio()?
        }
        None => socket::bind(&socket_path, settings.socket_group)?,
    };
    tracing::info!(
        socket = %socket_path.display(),
        passed_by_service_manager = passed,
        state = %settings.state.display(),
        check_interval = ?settings.monitor.check_interval,
        max_connections = settings.limits.max_connections,
        max_registrations = settings.limits.max_registrations,
        pid = std::process::id(),
        "pidguard daemon listening"
    );
    let metrics_stop = CancellationToken::new();
    if let Some(addr) = settings.metrics_listen {
        let listener = metrics_http::bind(addr).await?;
        let local = listener.local_addr().map_or(addr, |local| local);
        tracing::info!(addr = %local, per_unit = settings.metrics_per_unit, "serving metrics at /metrics");
        tokio::spawn(metrics_http::serve(
            listener,
            metrics_http::Exporter {
                service: service.clone(),
                counters: monitor.counters(),
                per_unit: settings.metrics_per_unit,
            },
            metrics_stop.clone(),
        ));
    }
    // Bound (or adopted) and restored: a client connecting now is served.
    let ready_status = match service.health().await {
        Ok(health) => systemd::status_line(health),
        Err(error) => format!("starting: {error}"),
    };
    systemd::notify(&[NotifyState::Ready, NotifyState::Status(&ready_status)]);
    let keep_alive = CancellationToken::new();
    if systemd::notifying() {
        let watchdog = systemd::watchdog();
        tracing::info!(?watchdog, "notifying the service manager");
        tokio::spawn(systemd::keep_alive(
            service.clone(),
            watchdog,
            keep_alive.clone(),
        ));
    }
    #[cfg(debug_assertions)]
    test_wedge::arm(&service);
    let mut admission = Admission {
        shared: Arc::new(Shared {
            service: service.clone(),
            limits: RwLock::new(settings.limits),
            stats: Arc::clone(&stats),
        }),
        counts: ConnectionCounts::default(),
        connections: TaskTracker::new(),
        stop: CancellationToken::new(),
        refusals: accept::Quiet::default(),
    };
    let mut backoff = Backoff::default();
    let monitor_stopped = monitor.cancellation_token();
    let mut service_task = Some(service_task);
    let mut died: Option<&'static str> = None;
    let mut current = settings;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.reset();
                    admission.admit(stream);
                }
                // E.g. EMFILE: keep serving the connections we have.
                Err(error) => {
                    stats.accept_error();
                    backoff.wait(&error).await;
                }
            },
            // A dead task is a dead daemon: its service manager restarts
            // it, instead of a daemon that answers `ping` and guards nothing.
            () = monitor_stopped.cancelled() => {
                tracing::error!("the monitor stopped unexpectedly (see above); the daemon exits");
                died = Some("the monitor stopped unexpectedly");
                break;
            }
            ended = async { service_task.as_mut().expect("the loop ends when it does").await }, if service_task.is_some() => {
                service_task = None;
                tracing::error!(outcome = ?ended, "the service task ended unexpectedly; the daemon exits");
                died = Some("the service task ended unexpectedly");
                break;
            }
            _ = terminate.recv() => { tracing::info!("SIGTERM: shutting down"); break }
            _ = interrupt.recv() => { tracing::info!("SIGINT: shutting down"); break }
            _ = hangup.recv() => {
                reloading();
                current = reload(overrides, current, &admission.shared).await;
                systemd::notify(&[NotifyState::Ready]);
            }
        }
    }

    // Stop accepting, let in-flight requests finish, then write the state.
    systemd::notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    keep_alive.cancel();
    metrics_stop.cancel();
    drop(listener);
    admission.stop.cancel();
    admission.connections.close();
    if tokio::time::timeout(DRAIN, admission.connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {DRAIN:?}");
    }
    // The last state write; connections still stuck (a client that does
    // not read) are dropped with the runtime. A service that does not stop
    // in time is wedged: every answered change is on disk already, so exit
    // (1) rather than hang until the service manager's kill.
    if tokio::time::timeout(DRAIN, service.shutdown())
        .await
        .is_err()
    {
        tracing::error!("the service did not stop within {DRAIN:?}; exiting without it");
        died = died.or(Some("the service did not stop"));
    } else if let Some(task) = service_task {
        let _ = task.await;
    }
    // The tracked processes stay as they are: the next daemon resumes them.
    monitor.shutdown().await;
    // A passed socket belongs to the service manager, which keeps it (and
    // the connections queued on it) for the next daemon.
    if !passed && let Err(error) = std::fs::remove_file(&socket_path) {
        tracing::warn!(socket = %socket_path.display(), %error, "could not remove the socket");
    }
    if let Some(reason) = died {
        // Logged above already; exit 1 without saying it a second time.
        return Err(Failure::new(Code::Failure, anyhow::anyhow!(reason)).logged());
    }
    tracing::info!("pidguard daemon stopped");
    Ok(())
}

/// Tells the service manager a reload started (`RELOADING=1` with the
/// monotonic time, as `Type=notify-reload` wants it).
fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => systemd::notify(&[NotifyState::Reloading, now]),
        Err(error) => tracing::warn!(%error, "no monotonic clock for RELOADING=1"),
    }
}

/// SIGHUP: re-reads the config (on the blocking pool: a slow file must
/// not stall the daemon). The defaults for new registrations and every
/// limit change at once; a change to anything else (socket, state, group,
/// scan interval, monitor internals) is logged as needing a restart. A bad
/// file changes nothing.
async fn reload(overrides: &Overrides, current: Settings, shared: &Shared) -> Settings {
    let overrides = overrides.clone();
    let new = match tokio::task::spawn_blocking(move || config::resolve(&overrides)).await {
        Ok(Ok(new)) => new,
        Ok(Err(failure)) => {
            tracing::error!(error = %failure, "SIGHUP: config not reloaded");
            return current;
        }
        Err(error) => {
            tracing::error!(%error, "SIGHUP: config not reloaded");
            return current;
        }
    };
    let mut kept = current.clone();
    let defaults = TrackDefaults::from(&new.monitor);
    let limits = new.limits.fit_descriptors(raise_descriptor_limit());
    shared.service.reload(defaults, limits).await;
    kept.monitor.orphan_action = new.monitor.orphan_action;
    kept.monitor.grace = new.monitor.grace;
    kept.monitor.term_signal = new.monitor.term_signal;
    *shared
        .limits
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    kept.limits = new.limits;
    if kept != new {
        tracing::warn!(
            "SIGHUP: some changed settings apply only after a restart (socket, state, socket_group, log_format, metrics_listen, metrics_per_unit, and monitor settings other than orphan_action, grace and term_signal)"
        );
    }
    tracing::info!("SIGHUP: config reloaded");
    kept
}
