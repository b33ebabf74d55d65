//! Where a client finds the daemon: its socket when nothing names one,
//! and the lock file next to it that holds the serving daemon's pid.

use std::path::{Path, PathBuf};

/// The socket file's name in its directory.
const SOCKET_NAME: &str = "pidguard.sock";

/// The socket path used when no flag, environment variable or config file
/// names one: `/run/pidguard/pidguard.sock` for root,
/// `$XDG_RUNTIME_DIR/pidguard/pidguard.sock` for a user, or
/// `/tmp/pidguard-<uid>/pidguard.sock` when that variable is unset.
pub fn default_socket() -> PathBuf {
    let uid = rustix::process::getuid();
    if uid.is_root() {
        return Path::new("/run/pidguard").join(SOCKET_NAME);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("pidguard").join(SOCKET_NAME),
        None => std::env::temp_dir()
            .join(format!("pidguard-{}", uid.as_raw()))
            .join(SOCKET_NAME),
    }
}

/// The lock file a daemon holds while it serves `socket` (`SOCKET.lock`);
/// it holds the daemon's pid.
pub fn lock_file(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_sits_next_to_the_socket() {
        assert_eq!(
            lock_file(Path::new("/run/x/pidguard.sock")),
            Path::new("/run/x/pidguard.sock.lock")
        );
    }

    #[test]
    fn the_default_socket_is_in_a_runtime_directory() {
        let socket = default_socket();
        assert_eq!(socket.file_name(), Some(SOCKET_NAME.as_ref()));
        if rustix::process::getuid().is_root() {
            assert_eq!(socket, Path::new("/run/pidguard/pidguard.sock"));
        }
    }
}
