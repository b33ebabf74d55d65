//! Where the daemon's files live by default, and the private directory
//! that holds its socket.
//!
//! The socket, its lock file, the state file and the autostart log all sit
//! in one directory. By default that is a runtime directory (`/run` for
//! root, `$XDG_RUNTIME_DIR` for a user), which lives exactly as long as the
//! processes the state file names: after a reboot none of them exists, so
//! nothing of value is lost with it.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

// Where a client finds the daemon is part of the protocol: the client
// crate resolves the same default socket and lock file.
pub(crate) use pidguard_protocol::{default_socket, lock_file};

/// The directory holding `socket`.
pub(crate) fn socket_dir(socket: &Path) -> PathBuf {
    match socket.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The default state file: `state.json` next to the socket.
pub(crate) fn default_state(socket: &Path) -> PathBuf {
    socket_dir(socket).join("state.json")
}

/// Where an autostarted daemon writes its log.
pub(crate) fn autostart_log(socket: &Path) -> PathBuf {
    socket_dir(socket).join("daemon.log")
}

/// Makes sure the socket's directory exists and only its user (and, with
/// `group`, that group) can enter it.
///
/// A missing directory is created with mode 0700 (0710 and the group when
/// one is given). An existing one is used as it is, but only if this user
/// owns it and nobody else may write to it: a directory others can write
/// to (such as `/tmp` itself) would let them replace the socket.
pub(crate) fn private_dir(dir: &Path, group: Option<u32>) -> anyhow::Result<()> {
    let mode = if group.is_some() { 0o710 } else { 0o700 };
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {
            // The umask may have narrowed the mode; set it exactly.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("chmod {mode:o} {}", dir.display()))?;
            if let Some(gid) = group {
                chown_group(dir, gid)?;
            }
            return Ok(());
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            bail!(
                "cannot create {}: its parent directory does not exist",
                dir.display()
            )
        }
        Err(error) => {
            return Err(error).with_context(|| format!("cannot create {}", dir.display()));
        }
    }
    // Not `metadata`: a symlink would send the socket (and the state)
    // wherever it points, past these checks.
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.file_type().is_symlink() {
        bail!(
            "{} is a symbolic link; name the directory itself",
            dir.display()
        );
    }
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    if meta.uid() != me {
        bail!(
            "{} belongs to uid {}, not to this user (uid {me}); refusing to put the socket there",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "{} can be written by others (mode {:o}); choose a private directory for the socket",
            dir.display(),
            meta.mode() & 0o777
        );
    }
    Ok(())
}

/// Gives `path` to group `gid`, keeping its owner.
pub(crate) fn chown_group(path: &Path, gid: u32) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, None, Some(gid))
        .with_context(|| format!("chown :{gid} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_sit_next_to_the_socket() {
        let socket = Path::new("/run/x/pidguard.sock");
        assert_eq!(default_state(socket), Path::new("/run/x/state.json"));
        assert_eq!(lock_file(socket), Path::new("/run/x/pidguard.sock.lock"));
        assert_eq!(autostart_log(socket), Path::new("/run/x/daemon.log"));
        assert_eq!(socket_dir(Path::new("bare.sock")), Path::new("."));
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let base = std::env::temp_dir().join(format!("pidguard-paths-{}", std::process::id()));
        std::fs::create_dir_all(&base).expect("create test dir");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let error = private_dir(&base, None).expect_err("world-writable dir refused");
        assert!(error.to_string().contains("written by others"), "{error}");
        let inner = base.join("inner");
        private_dir(&inner, None).expect("a new dir is created");
        let mode = std::fs::metadata(&inner).expect("stat").mode() & 0o777;
        assert_eq!(mode, 0o700);
        private_dir(&inner, None).expect("an existing private dir is accepted");
        std::fs::remove_dir_all(&base).expect("clean up");
    }
}
