//! The listening socket: its private directory, the lock that makes one
//! daemon per socket, and its permissions.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use rustix::fs::FlockOperation;
use tokio::net::UnixListener;

use crate::exit::{Code, Failure};
use crate::{paths, safe_file};

/// Holds the socket's lock for as long as it lives.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

/// Takes the exclusive lock next to `socket` (and writes our pid into it).
/// Another daemon holding it is [`Code::AlreadyRunning`].
///
/// The lock file is opened without following a symlink and without
/// blocking (a FIFO), and must be a regular file of ours: it is truncated
/// and written, so anything else planted there would be damaged.
pub(crate) fn lock(socket: &Path) -> Result<Lock, Failure> {
    let path = paths::lock_file(socket);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|error| {
            if error.raw_os_error() == Some(libc::ELOOP) {
                anyhow::anyhow!(
                    "lock file {} is a symbolic link; refusing to follow it",
                    path.display()
                )
            } else {
                anyhow::Error::from(error)
                    .context(format!("cannot open lock file {}", path.display()))
            }
        })?;
    safe_file::check_own_regular(
        &file,
        &path,
        "lock file",
        rustix::process::geteuid().as_raw(),
    )?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => {
            return Err(Failure::new(
                Code::AlreadyRunning,
                anyhow::anyhow!(
                    "another pidguard daemon already serves {} (it holds {})",
                    socket.display(),
                    path.display()
                ),
            ));
        }
        Err(errno) => {
            return Err(Failure::from(
                anyhow::Error::from(std::io::Error::from(errno))
                    .context(format!("cannot lock {}", path.display())),
            ));
        }
    }
    // Readable by the socket's group too (the directory lets them in), so
    // a client can name the daemon's pid when it does not answer; only
    // informative, like the pid itself.
    let _ = rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(0o644));
    // Only informative (the lock is the truth); a failure changes nothing.
    let _ = file.set_len(0).and_then(|()| {
        std::io::Write::write_all(&mut &file, format!("{}\n", std::process::id()).as_bytes())
    });
    Ok(Lock { _file: file })
}

/// Binds `socket` (replacing a stale socket file: we hold the lock, so no
/// daemon is behind it) with mode 0600, or 0660 and `group`. Only a socket
/// is ever removed: anything else at the path is refused, by name.
pub(crate) fn bind(socket: &Path, group: Option<u32>) -> anyhow::Result<UnixListener> {
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => match std::fs::remove_file(socket) {
            Ok(()) => tracing::info!(socket = %socket.display(), "removed a stale socket"),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot remove stale socket {}", socket.display()));
            }
        },
        Ok(meta) => bail!(
            "{} exists and is {}, not a socket; refusing to replace it",
            socket.display(),
            safe_file::describe(rustix::fs::FileType::from_raw_mode(meta.mode()))
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot stat {}", socket.display()));
        }
    }
    let listener =
        UnixListener::bind(socket).with_context(|| format!("cannot bind {}", socket.display()))?;
    restrict(socket, group)?;
    Ok(listener)
}

/// Gives a socket the service manager created (`LISTEN_FDS`) the mode and
/// group of one we bind, so socket activation keeps the access rules: a
/// unit's `SocketMode=` default is 0666. Only a socket is touched.
pub(crate) fn adopt(socket: &Path, group: Option<u32>) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(socket)
        .with_context(|| format!("cannot stat the passed socket {}", socket.display()))?;
    if !meta.file_type().is_socket() {
        bail!(
            "{} (the passed socket's path) is {}, not a socket",
            socket.display(),
            safe_file::describe(rustix::fs::FileType::from_raw_mode(meta.mode()))
        );
    }
    restrict(socket, group)
}

/// Mode 0600, or 0660 and `group`.
fn restrict(socket: &Path, group: Option<u32>) -> anyhow::Result<()> {
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", socket.display()))?;
    if let Some(gid) = group {
        paths::chown_group(socket, gid)?;
    }
    Ok(())
}
