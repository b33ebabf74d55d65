//! The state file: every registration, written atomically and fsynced
//! before a request that changed it is answered.
//!
//! The state file's directory gets the same checks as the socket's (owned
//! by the daemon's user, writable by nobody else, not a symlink) and is
//! then held open: every later file operation is relative to that open
//! directory, so the checked directory is the one written, whatever
//! happens to its path.
//!
//! A write goes to a new temporary file (`O_CREAT | O_EXCL | O_NOFOLLOW`,
//! a fresh name each time, so nothing planted at that name is followed or
//! reused), is fsynced, renamed over the state file, and the directory is
//! fsynced: after a crash (even `kill -9` or a power cut) the file holds
//! either the old set or the new one. One descriptor is held in reserve so
//! a write still works when connections or pidfds took all the others.
//!
//! Reading it back is bounded ([`MAX_STATE_BYTES`]), never follows a
//! symlink, never blocks on a FIFO, and needs a regular file owned by the
//! daemon's user that nobody else can write. A file that cannot be parsed
//! is moved aside under a name no other file has, and reported.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::paths;
use crate::protocol::Registration;
use crate::safe_file::{self, Trusted};

/// The state file's format version.
const FORMAT: u32 = 1;

/// The largest state file read back: about 50,000 registrations, far more
/// than `max_registrations` allows.
pub(crate) const MAX_STATE_BYTES: u64 = 16 * 1024 * 1024;

/// The state file's contents.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: u32,
    registrations: Vec<Registration>,
}

/// What was found at the state path.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// No state file yet.
    Missing,
    /// The registrations it held.
    Found(Vec<Registration>),
    /// It could not be parsed and was moved to `moved_to`.
    Corrupt {
        /// Where the bad file is now.
        moved_to: PathBuf,
        /// Why it could not be parsed.
        error: anyhow::Error,
    },
}

/// The state file and its open directory.
#[derive(Debug)]
pub(crate) struct Store {
    /// The directory, open since the checks.
    dir: OwnedFd,
    /// The file's name in it.
    name: OsString,
    /// The full path, for messages.
    path: PathBuf,
    /// The daemon's uid: the only owner a state file may have.
    uid: u32,
    /// A descriptor (`/dev/null`) closed to make room for a write when the
    /// process is out of descriptors, and reopened after it.
    reserve: Mutex<Option<OwnedFd>>,
}

/// Tells temporary files of one daemon apart.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

fn open_reserve() -> Option<OwnedFd> {
    rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()
}

impl Store {
    /// Checks (or creates, mode 0700) the directory of `path` like the
    /// socket's, and opens it.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Self> {
        let name = safe_file::file_name(path)?.to_owned();
        let dir_path = paths::socket_dir(path);
        paths::private_dir(&dir_path, None)
            .with_context(|| format!("the state file's directory {}", dir_path.display()))?;
        let dir = rustix::fs::open(
            &dir_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(std::io::Error::from)
        .with_context(|| format!("cannot open the state directory {}", dir_path.display()))?;
        let uid = rustix::process::geteuid().as_raw();
        // The checks again, on what was opened: the path may have changed.
        let stat = rustix::fs::fstat(&dir).context("fstat of the state directory")?;
        if stat.st_uid != uid || stat.st_mode & 0o022 != 0 {
            bail!(
                "the state directory {} changed while it was checked (uid {}, mode {:o})",
                dir_path.display(),
                stat.st_uid,
                stat.st_mode & 0o777
            );
        }
        Ok(Self {
            dir,
            name,
            path: path.to_path_buf(),
            uid,
            reserve: Mutex::new(open_reserve()),
        })
    }

    /// The state file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state file; a corrupt one is moved aside (never fatal).
    /// One that is not a regular file of ours, or too large, is an error:
    /// it was planted or misconfigured, and moving a device aside (say,
    /// `/dev/zero`) would be worse than refusing to start.
    pub(crate) fn load(&self) -> anyhow::Result<Loaded> {
        let trusted = Trusted {
            owners: &[self.uid],
            what: "state file",
        };
        let Some(bytes) = safe_file::read_at(
            Some(&self.dir),
            Path::new(&self.name),
            &self.path,
            MAX_STATE_BYTES,
            trusted,
        )?
        else {
            return Ok(Loaded::Missing);
        };
        match parse(&bytes) {
            Ok(registrations) => Ok(Loaded::Found(registrations)),
            Err(error) => {
                let moved_to = self.move_aside().with_context(|| {
                    format!(
                        "state file {} is corrupt ({error:#}) and could not be moved aside",
                        self.path.display()
                    )
                })?;
                Ok(Loaded::Corrupt { moved_to, error })
            }
        }
    }

    /// Renames the state file to `<name>.corrupt-<unix time>[-N]`, a name
    /// no file has (`RENAME_NOREPLACE`), so two corrupt files moved aside
    /// in the same second both stay.
    fn move_aside(&self) -> anyhow::Result<PathBuf> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for attempt in 0..1000u32 {
            let mut new_name = self.name.clone();
            new_name.push(format!(".corrupt-{stamp}"));
            if attempt > 0 {
                new_name.push(format!("-{attempt}"));
            }
            match rustix::fs::renameat_with(
                &self.dir,
                &self.name,
                &self.dir,
                &new_name,
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => return Ok(self.path.with_file_name(new_name)),
                Err(Errno::EXIST) => {}
                Err(errno) => return Err(std::io::Error::from(errno).into()),
            }
        }
        bail!("a thousand names for the corrupt file are taken")
    }

    /// Replaces the state file with `registrations`, durably.
    pub(crate) fn save(&self, registrations: &[Registration]) -> anyhow::Result<()> {
        let bytes = encode(registrations)?;
        let (tmp, fd) = self.create_tmp()?;
        let tmp_path = self.path.with_file_name(&tmp);
        let written = {
            let mut file = std::fs::File::from(fd);
            file.write_all(&bytes).and_then(|()| file.sync_all())
        };
        let renamed = written
            .with_context(|| format!("cannot write {}", tmp_path.display()))
            .and_then(|()| {
                rustix::fs::renameat(&self.dir, &tmp, &self.dir, &self.name)
                    .map_err(std::io::Error::from)
                    .with_context(|| {
                        format!(
                            "cannot rename {} to {}",
                            tmp_path.display(),
                            self.path.display()
                        )
                    })
            });
        if let Err(error) = renamed {
            // Best effort: the write already failed; a leftover temporary
            // file is only clutter (its name is never reused).
            let _ = rustix::fs::unlinkat(&self.dir, &tmp, AtFlags::empty());
            return Err(error);
        }
        // The rename is durable only once the directory entry is.
        rustix::fs::fsync(&self.dir)
            .map_err(std::io::Error::from)
            .with_context(|| format!("cannot fsync the directory of {}", self.path.display()))
    }

    /// A new temporary file next to the state file, created exclusively
    /// and never through a symlink; the reserve descriptor makes room when
    /// the process has none left.
    fn create_tmp(&self) -> anyhow::Result<(OsString, OwnedFd)> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut used_reserve = false;
        for _ in 0..100 {
            let mut tmp = self.name.clone();
            tmp.push(format!(
                ".tmp-{}-{}",
                std::process::id(),
                NEXT_TMP.fetch_add(1, Ordering::Relaxed)
            ));
            match rustix::fs::openat(&self.dir, &tmp, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => {
                    if used_reserve {
                        self.refill_reserve();
                    }
                    return Ok((tmp, fd));
                }
                // Taken (a leftover, or something planted): another name.
                Err(Errno::EXIST) => {}
                Err(Errno::MFILE | Errno::NFILE) if !used_reserve => {
                    used_reserve = true;
                    let reserve = self.reserve.lock().map(|mut r| r.take());
                    tracing::warn!(
                        "out of file descriptors; using the reserved one for the state file"
                    );
                    drop(reserve);
                }
                Err(errno) => {
                    if used_reserve {
                        self.refill_reserve();
                    }
                    return Err(std::io::Error::from(errno)).with_context(|| {
                        format!(
                            "cannot create a temporary file next to {}",
                            self.path.display()
                        )
                    });
                }
            }
        }
        bail!(
            "a hundred temporary names next to {} are taken",
            self.path.display()
        )
    }

    fn refill_reserve(&self) {
        if let Ok(mut reserve) = self.reserve.lock()
            && reserve.is_none()
        {
            *reserve = open_reserve();
        }
    }
}

/// The bytes of a state file holding `registrations`.
pub(crate) fn encode(registrations: &[Registration]) -> anyhow::Result<Vec<u8>> {
    let state = StateFile {
        format: FORMAT,
        registrations: registrations.to_vec(),
    };
    serde_json::to_vec(&state).context("serializing the state")
}

/// Parses state file bytes (also the fuzz harness's entry point).
pub(crate) fn parse(bytes: &[u8]) -> anyhow::Result<Vec<Registration>> {
    let state: StateFile = serde_json::from_slice(bytes)?;
    if state.format != FORMAT {
        bail!("state format {} is not {FORMAT}", state.format);
    }
    Ok(state.registrations)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use monitor_core::{OrphanAction, OrphanTarget, ProcessId, Signal};

    use super::*;

    pub(crate) fn registration(pid: i32) -> Registration {
        Registration {
            id: ProcessId::new(pid, 100),
            parent: ProcessId::new(1000, 50),
            uid: 0,
            action: OrphanAction::Terminate,
            grace: Duration::from_millis(1500),
            signal: Signal::TERM,
            tree: true,
            target: OrphanTarget::Tree,
        }
    }

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pidguard-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("state.json")
    }

    #[test]
    fn saved_registrations_load_back() {
        let path = temp_path("roundtrip");
        let store = Store::open(&path).expect("open");
        assert!(matches!(store.load().expect("load"), Loaded::Missing));
        let saved = vec![registration(10), registration(11)];
        store.save(&saved).expect("save");
        store.save(&saved).expect("save again");
        match store.load().expect("load") {
            Loaded::Found(loaded) => assert_eq!(loaded, saved),
            other => panic!("{other:?}"),
        }
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["state.json"], "no temporary file is left");
        std::fs::remove_dir_all(path.parent().expect("dir")).expect("clean up");
    }

    #[test]
    fn corrupt_files_are_moved_aside_under_unique_names() {
        let path = temp_path("corrupt");
        let store = Store::open(&path).expect("open");
        let mut moved = Vec::new();
        for round in 0..3 {
            std::fs::write(&path, format!("{{\"format\":1,\"registrations\":[{round}"))
                .expect("write");
            match store.load().expect("load") {
                Loaded::Corrupt { moved_to, .. } => moved.push(moved_to),
                other => panic!("{other:?}"),
            }
            assert!(!path.exists(), "the bad file is gone from the state path");
        }
        moved.sort();
        moved.dedup();
        assert_eq!(moved.len(), 3, "three rounds, three files: {moved:?}");
        for (round, file) in moved.iter().enumerate() {
            let text = std::fs::read_to_string(file).expect("kept");
            assert!(text.ends_with(&round.to_string()), "{text}");
        }
        std::fs::remove_dir_all(path.parent().expect("dir")).expect("clean up");
    }
}
