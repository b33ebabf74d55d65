//! cgroup v2 containment: a unit's processes live in a leaf cgroup the
//! monitor created, so membership is the kernel's own list and nothing a
//! member forks can leave it.
//!
//! # Layout on disk
//!
//! ```text
//! <our cgroup>/                 found from /proc/self/{mountinfo,cgroup}; never written
//!   pidguard.<pid>.<n>/         the Subtree, one per monitor (mkdir is our only touch above)
//!     unit.<n>/                 a Leaf, one per unit
//! ```
//!
//! The monitor never writes into a cgroup it did not create: creating the
//! subtree (a `mkdir` in our own cgroup) is the only operation on a cgroup
//! it found, and it enables no controllers. So whatever manages our cgroup
//! (systemd with `Delegate=yes`, a container runtime) keeps its rules:
//! memory, pid and CPU figures appear only where that manager enabled the
//! controllers for us.
//!
//! # Theory of operation
//!
//! - **Spawn into a leaf.** [`Leaf::prepare_spawn`] opens the leaf's
//!   `cgroup.procs` before the fork; the child writes `0` to it between
//!   fork and exec (one `write`, async-signal-safe, no allocation), so it
//!   runs the program already inside the leaf and cannot fork outside it.
//! - **Membership** is [`Leaf::procs`]; **emptiness** is `populated 0` in
//!   `cgroup.events`, which the kernel signals as `POLLPRI`:
//!   [`EventsWatch`] registers it with the reactor and wakes the actor with
//!   a key, like the pidfd watches.
//! - **Termination** ([`Leaf::kill_all`]): freeze, wait for `frozen 1`,
//!   `cgroup.kill` (or, before Linux 5.14, `SIGKILL` to every listed pid
//!   through a pidfd, repeated until the list is empty), thaw, wait for
//!   `populated 0`. A frozen process cannot fork, so a fork storm cannot
//!   outrun the kill either way.
//! - **Removal**: `rmdir` of each leaf when its unit ends and of the
//!   subtree (leaves first) at shutdown; `Drop` tries the same, so a
//!   panicking caller leaves no directory behind when the leaf is empty.

mod events;
mod kill;
mod mount;
mod usage;

#[cfg(test)]
mod kill_tests;
#[cfg(test)]
mod tests;

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub(crate) use events::{Events, EventsWatch};
pub(crate) use kill::{KillMethod, KillReport, Refused};
pub(crate) use usage::Usage;

use crate::sys_error::SysError;

/// This process's place in the cgroup v2 hierarchy.
#[derive(Debug, Clone)]
pub(crate) struct Hierarchy {
    /// Our own cgroup's directory. Read-only to us except for one `mkdir`.
    own: PathBuf,
}

/// Subtrees created by this process so far: several monitors in one
/// process each get their own.
static SUBTREES: AtomicU32 = AtomicU32::new(0);

/// How many names `create_subtree` tries when one exists already (left
/// behind by a crashed process that had our pid).
const NAME_ATTEMPTS: u32 = 64;

impl Hierarchy {
    /// Finds the cgroup2 mount and our cgroup in it. Fails, naming the
    /// file, where there is no cgroup v2 hierarchy.
    pub(crate) fn discover() -> Result<Self, SysError> {
        Ok(Self {
            own: mount::discover()?,
        })
    }

    /// Our own cgroup's directory.
    pub(crate) fn own_cgroup(&self) -> &Path {
        &self.own
    }

    /// Creates the monitor's subtree `pidguard.<pid>.<n>` below our cgroup.
    /// An error here (`EACCES`, `EROFS`, `EPERM`, ...) means "no cgroup
    /// containment"; it names the directory and the cause.
    pub(crate) fn create_subtree(&self) -> Result<Subtree, SysError> {
        let pid = std::process::id();
        for _ in 0..NAME_ATTEMPTS {
            let n = SUBTREES.fetch_add(1, Ordering::Relaxed);
            let path = self.own.join(format!("pidguard.{pid}.{n}"));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let features = Features::of(&path);
                    tracing::debug!(path = %path.display(), kill = features.kill, freeze = features.freeze, "cgroup subtree created");
                    return Ok(Subtree {
                        path,
                        features,
                        next_leaf: AtomicU64::new(0),
                        removed: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(SysError::at("mkdir", &path, e)),
            }
        }
        Err(SysError::at(
            "mkdir",
            &self.own,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{NAME_ATTEMPTS} subtree names pidguard.{pid}.* exist already"),
            ),
        ))
    }
}

/// Which optional cgroup files the kernel offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Features {
    /// `cgroup.kill` (Linux 5.14).
    pub(crate) kill: bool,
    /// `cgroup.freeze` (Linux 5.2).
    pub(crate) freeze: bool,
}

impl Features {
    fn of(dir: &Path) -> Self {
        Self {
            kill: dir.join("cgroup.kill").exists(),
            freeze: dir.join("cgroup.freeze").exists(),
        }
    }
}

/// The monitor's own cgroup subtree. Leaves are created in it; removing it
/// removes them first.
#[derive(Debug)]
pub(crate) struct Subtree {
    path: PathBuf,
    features: Features,
    next_leaf: AtomicU64,
    /// Set by [`Subtree::remove`], so `Drop` does not try again.
    removed: bool,
}

impl Subtree {
    /// Its directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The optional files this kernel offers.
    pub(crate) fn features(&self) -> Features {
        self.features
    }

    /// A fresh, empty leaf for one unit.
    pub(crate) fn create_leaf(&self) -> Result<Leaf, SysError> {
        let n = self.next_leaf.fetch_add(1, Ordering::Relaxed);
        let path = self.path.join(format!("unit.{n}"));
        std::fs::create_dir(&path).map_err(SysError::on("mkdir", &path))?;
        let id = std::fs::metadata(&path)
            .map_err(SysError::on("stat", &path))?
            .ino();
        Ok(Leaf {
            path,
            id,
            features: self.features,
            removed: false,
        })
    }

    /// Removes every leaf left and then the subtree. Fails with `EBUSY`
    /// naming the first leaf that still has processes (kill them and call
    /// it again); the empty ones are removed anyway.
    pub(crate) fn remove(&mut self) -> Result<(), SysError> {
        remove_tree(&self.path)?;
        self.removed = true;
        Ok(())
    }
}

impl Drop for Subtree {
    fn drop(&mut self) {
        if !self.removed
            && let Err(error) = remove_tree(&self.path)
        {
            tracing::warn!(%error, "cgroup subtree left behind");
        }
    }
}

/// `rmdir` depth first: a cgroup directory goes only once it has no
/// children (its files are the kernel's and need no unlinking).
fn remove_tree(dir: &Path) -> Result<(), SysError> {
    let mut first_error = None;
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir())
                    && let Err(e) = remove_tree(&entry.path())
                {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SysError::at("read_dir", dir, e)),
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            first_error.get_or_insert(SysError::at("rmdir", dir, e));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One unit's leaf cgroup.
#[derive(Debug)]
pub(crate) struct Leaf {
    path: PathBuf,
    /// The cgroup id (the directory's inode), as in `PIDFD_INFO_CGROUPID`.
    id: u64,
    features: Features,
    /// Set by [`Leaf::remove`], so `Drop` does not try again.
    removed: bool,
}

impl Leaf {
    /// Its directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The kernel's cgroup id of this leaf (its directory's inode number).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The optional files this kernel offers.
    pub(crate) fn features(&self) -> Features {
        self.features
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Makes `command`'s child join this leaf before it runs the program.
    ///
    /// The leaf's `cgroup.procs` is opened here, before the fork (close on
    /// exec, so the program never sees it); between fork and exec the child
    /// writes `0` ("myself") to it. If the write fails, the spawn fails
    /// with that error and no process runs outside the leaf.
    pub(crate) fn prepare_spawn(&self, command: &mut Command) -> Result<(), SysError> {
        let path = self.file("cgroup.procs");
        let procs: OwnedFd = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(SysError::on("open", &path))?
            .into();
        let procs = Arc::new(procs);
        // SAFETY: the closure runs in the forked child before exec. It makes
        // one `write` system call on a descriptor opened above (kept open by
        // the `Arc` the closure owns), allocates nothing, takes no lock, and
        // builds its error from a raw errno, so it is async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                rustix::io::write(&*procs, b"0")
                    .map(drop)
                    .map_err(io::Error::from)
            });
        }
        Ok(())
    }

    /// Moves a running process into this leaf.
    ///
    /// `cgroup.procs` takes a pid number, not a pidfd, so the caller passes
    /// the process's pidfd too: it must still run before the write and
    /// after it. If it exited in between, the pid may have named another
    /// process by the time of the write; that is reported (`ESRCH`, naming
    /// the pid) and the caller must treat the leaf's list with suspicion.
    /// Whether the monitor may move a process it did not start at all (a
    /// cgroup another manager owns) is the caller's policy.
    pub(crate) fn move_process(&self, pidfd: BorrowedFd<'_>, pid: i32) -> Result<(), SysError> {
        let path = self.file("cgroup.procs");
        let exited = |when: &str| -> Result<(), SysError> {
            if pidfd_exited(pidfd).map_err(|e| SysError::at("poll pidfd of", &path, e))? {
                return Err(SysError::at(
                    "move into",
                    &path,
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("process {pid} exited {when} the move"),
                    ),
                ));
            }
            Ok(())
        };
        exited("before")?;
        write_file(&path, pid.to_string().as_bytes())?;
        exited("during")
    }

    /// The pids of the leaf's processes (`cgroup.procs`). Pids outside our
    /// pid namespace read as 0 and are left out.
    pub(crate) fn procs(&self) -> Result<Vec<i32>, SysError> {
        let path = self.file("cgroup.procs");
        let text = std::fs::read_to_string(&path).map_err(SysError::on("read", &path))?;
        Ok(text
            .split_ascii_whitespace()
            .filter_map(|pid| pid.parse::<i32>().ok())
            .filter(|pid| *pid > 0)
            .collect())
    }

    /// `cgroup.freeze`: stops (or thaws) every process in the leaf. Freezing
    /// takes effect asynchronously; `frozen 1` in [`Leaf::events`] says when.
    pub(crate) fn set_frozen(&self, frozen: bool) -> Result<(), SysError> {
        write_file(
            &self.file("cgroup.freeze"),
            if frozen { b"1" } else { b"0" },
        )
    }

    /// `cgroup.kill`: `SIGKILL` to every process in the leaf, including any
    /// forked while the kill runs (Linux 5.14; `ENOENT` before).
    pub(crate) fn kill(&self) -> Result<(), SysError> {
        write_file(&self.file("cgroup.kill"), b"1")
    }

    /// Removes the leaf. `EBUSY` while it has processes (kill them and
    /// call it again).
    pub(crate) fn remove(&mut self) -> Result<(), SysError> {
        match std::fs::remove_dir(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(SysError::at("rmdir", &self.path, e))
            }
            _ => {
                self.removed = true;
                Ok(())
            }
        }
    }
}

impl Drop for Leaf {
    fn drop(&mut self) {
        if !self.removed
            && let Err(e) = std::fs::remove_dir(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            // The subtree's removal tries again at shutdown.
            tracing::debug!(path = %self.path.display(), error = %e, "cgroup leaf not removed on drop");
        }
    }
}

/// Writes `content` to a cgroup file in one `write`, without creating or
/// truncating it (a missing file is `ENOENT`, not a new regular file).
fn write_file(path: &Path, content: &[u8]) -> Result<(), SysError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut file| file.write_all(content))
        .map_err(SysError::on("write", path))
}

/// Whether a pidfd reads as exited (readable), without waiting.
fn pidfd_exited(pidfd: BorrowedFd<'_>) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::from_borrowed_fd(pidfd, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&zero))?;
    Ok(fds[0].revents().contains(PollFlags::IN))
}
