//! Connecting to the daemon, starting one in the background when none
//! answers.
//!
//! The new daemon is this very executable with `daemon --socket PATH`, in
//! its own session (so it outlives the client and its terminal), stdin
//! from /dev/null, output appended to `daemon.log` next to the socket.
//! Two clients racing to start one both spawn a daemon; the daemons take
//! an exclusive lock before binding, the loser exits with code 4, and both
//! clients simply wait until the socket answers a `ping`.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use pidguard_client::Client;

use crate::exit::{Code, Failure};
use crate::paths;

/// How long a client waits for a daemon it started.
const STARTUP: Duration = Duration::from_secs(10);

/// How often it asks.
const POLL: Duration = Duration::from_millis(10);

/// Connects to the daemon on `socket`, starting one first if none answers
/// and `autostart` is set. Each step waits at most `timeout`; something
/// listening there that is not to be trusted is refused at once.
pub(crate) async fn connect(
    socket: &Path,
    autostart: bool,
    timeout: Duration,
) -> Result<Client, Failure> {
    let first = match Client::connect_with_timeout(socket, timeout).await {
        Ok(client) => return Ok(client),
        Err(error) if error.is_unreachable() => error,
        // An impostor, or a listener whose credentials cannot be read:
        // never start a daemon over it, never talk to it.
        Err(error) => return Err(Failure::new(Code::Failure, error)),
    };
    if !autostart {
        return Err(unreachable(socket, first.into()));
    }
    let mut child = Some(start(socket)?);
    let deadline = Instant::now() + STARTUP;
    loop {
        match Client::connect_with_timeout(socket, timeout).await {
            Ok(mut client) => {
                if client.ping().await.is_ok() {
                    return Ok(client);
                }
            }
            Err(error) if error.is_unreachable() => {}
            Err(error) => return Err(Failure::new(Code::Failure, error)),
        }
        // Our daemon leaving with "already running" is fine: the other
        // one is coming up. Any other exit means it could not start.
        if let Some(process) = child.as_mut() {
            match process.try_wait() {
                Ok(Some(status)) if status.code() == Some(Code::AlreadyRunning as i32) => {
                    child = None;
                }
                Ok(Some(status)) => {
                    return Err(Failure::new(
                        Code::Unreachable,
                        anyhow::anyhow!(
                            "the daemon started for {} exited ({status}); see {}",
                            socket.display(),
                            paths::autostart_log(socket).display()
                        ),
                    ));
                }
                Ok(None) | Err(_) => {}
            }
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(
                Code::Unreachable,
                anyhow::anyhow!(
                    "no daemon answered on {} within {STARTUP:?} of starting one; see {}",
                    socket.display(),
                    paths::autostart_log(socket).display()
                ),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn unreachable(socket: &Path, error: anyhow::Error) -> Failure {
    Failure::new(
        Code::Unreachable,
        error.context(format!(
            "no pidguard daemon answers on {} (autostart is off)",
            socket.display()
        )),
    )
}

/// Spawns a detached daemon for `socket`.
fn start(socket: &Path) -> Result<std::process::Child, Failure> {
    paths::private_dir(&paths::socket_dir(socket), None)?;
    let log_path = paths::autostart_log(socket);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open the daemon log {}", log_path.display()))?;
    let err_log = log.try_clone().context("duplicating the log descriptor")?;
    let exe = std::env::current_exe().context("cannot find the pidguard executable")?;
    let mut command = Command::new(exe);
    command
        .arg("daemon")
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the
    // parent; it is the only thing run between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let child = command.spawn().context("cannot start a pidguard daemon")?;
    tracing::info!(pid = child.id(), socket = %socket.display(), "started a daemon");
    Ok(child)
}
