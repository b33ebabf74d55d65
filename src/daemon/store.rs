//! The state file: every registration, written atomically and fsynced
//! before a request that changed it is answered.
//!
//! A write goes to a temporary file next to the state file, is fsynced,
//! renamed over it, and the directory is fsynced, so after a crash (even
//! `kill -9` or a power cut) the file holds either the old set or the new
//! one, never a mix. A file that cannot be parsed is moved aside and
//! reported; the daemon then starts empty instead of refusing to run.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::protocol::Registration;

/// The state file's format version.
const FORMAT: u32 = 1;

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

/// Reads the state file; a corrupt one is renamed aside (never fatal).
pub(crate) fn load(path: &Path) -> anyhow::Result<Loaded> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read state file {}", path.display()));
        }
    };
    let parsed = serde_json::from_slice::<StateFile>(&bytes)
        .map_err(anyhow::Error::from)
        .and_then(|state| {
            if state.format == FORMAT {
                Ok(state.registrations)
            } else {
                Err(anyhow::anyhow!(
                    "state format {} is not {FORMAT}",
                    state.format
                ))
            }
        });
    match parsed {
        Ok(registrations) => Ok(Loaded::Found(registrations)),
        Err(error) => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".corrupt-{stamp}"));
            let moved_to = PathBuf::from(name);
            std::fs::rename(path, &moved_to).with_context(|| {
                format!(
                    "state file {} is corrupt ({error}) and could not be moved to {}",
                    path.display(),
                    moved_to.display()
                )
            })?;
            Ok(Loaded::Corrupt { moved_to, error })
        }
    }
}

/// Replaces the state file with `registrations`, durably.
pub(crate) fn save(path: &Path, registrations: &[Registration]) -> anyhow::Result<()> {
    let state = StateFile {
        format: FORMAT,
        registrations: registrations.to_vec(),
    };
    let bytes = serde_json::to_vec(&state).context("serializing the state")?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The rename is durable only once the directory entry is.
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("cannot fsync directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use monitor_core::{OrphanAction, OrphanTarget, ProcessId, Signal};

    use super::*;

    fn registration(pid: i32) -> Registration {
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
        std::fs::create_dir_all(&dir).expect("create test dir");
        dir.join("state.json")
    }

    #[test]
    fn saved_registrations_load_back() {
        let path = temp_path("roundtrip");
        assert!(matches!(load(&path).expect("load"), Loaded::Missing));
        let saved = vec![registration(10), registration(11)];
        save(&path, &saved).expect("save");
        match load(&path).expect("load") {
            Loaded::Found(loaded) => assert_eq!(loaded, saved),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(path.parent().expect("dir")).expect("clean up");
    }

    #[test]
    fn a_corrupt_file_is_moved_aside() {
        let path = temp_path("corrupt");
        std::fs::write(&path, b"{\"format\":1,\"registrations\":[{\"id\"").expect("write");
        match load(&path).expect("load") {
            Loaded::Corrupt { moved_to, .. } => {
                assert!(moved_to.exists(), "moved to {}", moved_to.display());
                assert!(!path.exists(), "the bad file is gone from the state path");
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(path.parent().expect("dir")).expect("clean up");
    }
}
