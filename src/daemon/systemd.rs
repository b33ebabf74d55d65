//! The daemon under systemd (or any manager speaking its protocols, through
//! the `sd-notify` crate): readiness and status on `NOTIFY_SOCKET`, the
//! watchdog, and a listening socket passed in (`LISTEN_FDS`).
//!
//! - `READY=1` goes out once the socket is bound (or adopted) and the saved
//!   registrations are restored: a client that connects then is served.
//!   `STATUS=` says how much is held; `RELOADING=1` and `READY=1` frame a
//!   SIGHUP; `STOPPING=1` starts a shutdown.
//! - `WATCHDOG=1` is sent every half `WATCHDOG_USEC`, and only after a
//!   probe went through the service actor to the monitor's actor and came
//!   back: a wedged actor stops the pings, and systemd restarts the daemon,
//!   even though its runtime (and `ping`) still answer.
//! - A socket passed with `LISTEN_FDS=1` (and `LISTEN_PID` naming us) is
//!   used instead of binding one; it must be a listening Unix stream
//!   socket with a path. Access control is unchanged: every connection's
//!   peer credentials are read as on a socket of our own, and the socket's
//!   file gets the same mode and group as one we bind.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use sd_notify::NotifyState;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use super::service::{Health, ServiceHandle};

/// How often `STATUS=` is refreshed when no watchdog asks for more.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Tells the service manager `states`, if one listens (`NOTIFY_SOCKET`).
/// A manager that went away is not worth failing over: logged only.
pub(crate) fn notify(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "could not notify the service manager");
    }
}

/// `STATUS=` text for `health`.
pub(crate) fn status_line(health: Health) -> String {
    format!(
        "{} registration(s), {} process(es) tracked",
        health.registrations, health.tracked
    )
}

/// Whether a service manager listens for notifications.
pub(crate) fn notifying() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for us).
pub(crate) fn watchdog() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|interval| !interval.is_zero())
}

/// Pings the watchdog (every half `interval`) and refreshes `STATUS=`,
/// each time only after the service and the monitor answered a probe;
/// until `stop`. Without a watchdog, only the status is refreshed.
pub(crate) async fn keep_alive(
    service: ServiceHandle,
    interval: Option<Duration>,
    stop: CancellationToken,
) {
    let period = interval.map_or(STATUS_EVERY, |interval| interval / 2);
    // A probe that takes longer than a quarter of the interval is a
    // wedge: the next ping must still make it within the interval.
    let patience = interval.map_or(STATUS_EVERY, |interval| interval / 4);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        match tokio::time::timeout(patience, service.health()).await {
            Ok(Ok(health)) => {
                let status = status_line(health);
                let mut states = vec![NotifyState::Status(&status)];
                if interval.is_some() {
                    states.push(NotifyState::Watchdog);
                }
                notify(&states);
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "the service could not answer the watchdog's probe; no ping");
            }
            Err(_) => tracing::error!(
                ?patience,
                "the service (or the monitor behind it) did not answer the watchdog's probe; no ping"
            ),
        }
    }
}

/// A listening socket the service manager passed, and its path.
#[derive(Debug)]
pub(crate) struct Inherited {
    /// The socket (non-blocking, close-on-exec).
    pub(crate) listener: std::os::unix::net::UnixListener,
    /// Its file.
    pub(crate) path: PathBuf,
}

impl Inherited {
    /// The socket, registered with the runtime.
    pub(crate) fn into_tokio(self) -> anyhow::Result<UnixListener> {
        UnixListener::from_std(self.listener).context("registering the passed socket")
    }
}

/// The listening socket the service manager passed; `None` when none was
/// passed (`LISTEN_PID` unset or naming another process). Needs no
/// runtime: it is read before the config, whose socket it replaces.
pub(crate) fn inherited_socket() -> anyhow::Result<Option<Inherited>> {
    let fds: Vec<_> = sd_notify::listen_fds()
        .context("reading LISTEN_FDS")?
        .collect();
    let fd = match fds[..] {
        [] => return Ok(None),
        [fd] => fd,
        _ => bail!(
            "the service manager passed {} sockets (LISTEN_FDS); pidguard listens on exactly one",
            fds.len()
        ),
    };
    // SAFETY: `listen_fds` checked that LISTEN_PID names this process, so
    // the service manager passed `fd` to us alone; nothing else in this
    // process owns it (it is taken exactly once, here, at start).
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let family = rustix::net::sockopt::socket_domain(&fd)
        .map_err(std::io::Error::from)
        .with_context(|| format!("descriptor {fd:?} passed in LISTEN_FDS is not a socket"))?;
    let kind = rustix::net::sockopt::socket_type(&fd).map_err(std::io::Error::from)?;
    let listening = rustix::net::sockopt::socket_acceptconn(&fd).map_err(std::io::Error::from)?;
    if family != rustix::net::AddressFamily::UNIX
        || kind != rustix::net::SocketType::STREAM
        || !listening
    {
        bail!(
            "the socket passed in LISTEN_FDS must be a listening Unix stream socket (ListenStream=/path); got family {family:?}, type {kind:?}, listening {listening}"
        );
    }
    let listener = std::os::unix::net::UnixListener::from(fd);
    let path = listener
        .local_addr()
        .context("the passed socket's address")?
        .as_pathname()
        .map(PathBuf::from)
        .context("the socket passed in LISTEN_FDS has no path (abstract or unnamed); pidguard needs a socket file")?;
    listener
        .set_nonblocking(true)
        .context("making the passed socket non-blocking")?;
    Ok(Some(Inherited { listener, path }))
}
