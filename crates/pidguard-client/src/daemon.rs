//! Naming the daemon in an error: its socket and its pid.
//!
//! The pid comes from the lock file the daemon holds next to its socket
//! (`SOCKET.lock`), read the way a file someone may have planted is read:
//! never through a symbolic link, never blocking on a FIFO, only a small
//! regular file that root or this user owns and nobody else may write. A
//! daemon started by systemd's socket activation is not the process that
//! called `listen`, so the listener's credentials would name systemd; the
//! lock file names the daemon itself. Without a readable lock file (another
//! user's daemon in a directory this user may not list), the listener's pid
//! from `SO_PEERCRED` is named instead, marked as such.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

/// The longest lock file read: a pid and a newline.
const MAX_LOCK_BYTES: u64 = 32;

/// The daemon a client talks to, as its errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonRef {
    /// Its socket.
    pub socket: PathBuf,
    /// Its pid, and where it was learned.
    pub pid: DaemonPid,
}

/// Where a daemon's pid was learned, if anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaemonPid {
    /// From the daemon's lock file.
    LockFile {
        /// The pid.
        pid: i32,
        /// The lock file.
        lock: PathBuf,
    },
    /// From the credentials of the socket's listener (`SO_PEERCRED`): the
    /// process that called `listen`, which is the daemon unless a service
    /// manager made the socket.
    Listener {
        /// The pid.
        pid: i32,
    },
    /// Neither the lock file nor the connection said.
    Unknown {
        /// The lock file that was tried.
        lock: PathBuf,
    },
}

impl DaemonRef {
    /// The daemon on `socket` as far as can be told now: the pid from its
    /// lock file, else `listener` (the pid the connection's credentials
    /// gave, if a connection was made).
    pub fn find(socket: &Path, listener: Option<i32>) -> Self {
        let lock = pidguard_protocol::lock_file(socket);
        let pid = match (read_lock(&lock), listener) {
            (Some(pid), _) => DaemonPid::LockFile { pid, lock },
            (None, Some(pid)) => DaemonPid::Listener { pid },
            (None, None) => DaemonPid::Unknown { lock },
        };
        Self {
            socket: socket.to_path_buf(),
            pid,
        }
    }

    /// The daemon's pid, if known.
    pub fn pid(&self) -> Option<i32> {
        match self.pid {
            DaemonPid::LockFile { pid, .. } | DaemonPid::Listener { pid } => Some(pid),
            DaemonPid::Unknown { .. } => None,
        }
    }
}

impl fmt::Display for DaemonRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let socket = self.socket.display();
        match &self.pid {
            DaemonPid::LockFile { pid, lock } => write!(
                f,
                "the pidguard daemon on {socket} (pid {pid}, from {})",
                lock.display()
            ),
            DaemonPid::Listener { pid } => {
                write!(f, "the pidguard daemon on {socket} (listener pid {pid})")
            }
            DaemonPid::Unknown { lock } => write!(
                f,
                "the pidguard daemon on {socket} (its pid is not in {})",
                lock.display()
            ),
        }
    }
}

/// The pid in the lock file at `lock`, if it is a small regular file of
/// root or this user that nobody else may write, holding a positive pid.
fn read_lock(lock: &Path) -> Option<i32> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(lock, flags, Mode::empty()).ok()?;
    let stat = rustix::fs::fstat(&fd).ok()?;
    let me = rustix::process::geteuid().as_raw();
    let trusted = FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
        && (stat.st_uid == 0 || stat.st_uid == me)
        && stat.st_mode & 0o022 == 0;
    if !trusted {
        return None;
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_LOCK_BYTES + 1)
        .read_to_string(&mut text)
        .ok()?;
    if text.len() as u64 > MAX_LOCK_BYTES {
        return None;
    }
    text.trim().parse::<i32>().ok().filter(|pid| *pid > 0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A scratch directory, removed on drop (also when the test fails).
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "pidguard-client-daemon-{}-{name}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create test dir");
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_pid_comes_from_a_trusted_lock_file_only() {
        let scratch = Scratch::new("lock");
        let dir = &scratch.0;
        let socket = dir.join("pidguard.sock");
        let lock = pidguard_protocol::lock_file(&socket);
        assert_eq!(
            DaemonRef::find(&socket, None).pid,
            DaemonPid::Unknown { lock: lock.clone() }
        );
        assert_eq!(
            DaemonRef::find(&socket, Some(9)).pid,
            DaemonPid::Listener { pid: 9 }
        );
        std::fs::write(&lock, "4242\n").expect("write lock");
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let found = DaemonRef::find(&socket, Some(9));
        assert_eq!(found.pid(), Some(4242));
        assert!(found.to_string().contains("(pid 4242, from "), "{found}");
        // Writable by others: anyone could have put any pid there.
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert_eq!(DaemonRef::find(&socket, None).pid(), None);
        // A symbolic link is never followed.
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let elsewhere = dir.join("elsewhere.sock");
        std::os::unix::fs::symlink(&lock, pidguard_protocol::lock_file(&elsewhere))
            .expect("symlink");
        assert_eq!(DaemonRef::find(&elsewhere, None).pid(), None);
        // Garbage is no pid.
        std::fs::write(&lock, "x".repeat(100)).expect("write lock");
        assert_eq!(DaemonRef::find(&socket, None).pid(), None);
    }
}
