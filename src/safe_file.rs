//! Opening the files the daemon and its clients read (config, state, lock)
//! as if someone had planted something at their paths: never through a
//! symbolic link, never blocking on a FIFO or a device, never reading more
//! than a bound, and only files owned by someone who may write them.
//!
//! Every open is `O_NOFOLLOW | O_NONBLOCK`: a symlink fails with `ELOOP`,
//! and a FIFO opens at once instead of waiting for a writer. The file type
//! is then checked on the open descriptor (`fstat`), so nothing can be
//! swapped in between the check and the read.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, bail};
use rustix::fs::{FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

/// The flags of every read-only open here.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC);

/// What a file type is called in an error message.
pub(crate) fn describe(file_type: FileType) -> &'static str {
    match file_type {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of an unknown type",
    }
}

/// Who may have written a file: its owner must be one of `owners`, and
/// nobody else may write to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trusted<'a> {
    /// The uids allowed to own it.
    pub(crate) owners: &'a [u32],
    /// What the file is, for messages ("state file", "config file").
    pub(crate) what: &'static str,
}

impl Trusted<'_> {
    fn check(&self, path: &Path, stat: &Stat) -> anyhow::Result<()> {
        let file_type = FileType::from_raw_mode(stat.st_mode);
        if file_type != FileType::RegularFile {
            bail!(
                "{} {} is {}, not a regular file; refusing to read it",
                self.what,
                path.display(),
                describe(file_type)
            );
        }
        if !self.owners.contains(&stat.st_uid) {
            bail!(
                "{} {} belongs to uid {}, which may not write it (allowed: uid {}); refusing to read it",
                self.what,
                path.display(),
                stat.st_uid,
                list(self.owners)
            );
        }
        if stat.st_mode & 0o022 != 0 {
            bail!(
                "{} {} can be written by others (mode {:o}); refusing to read it",
                self.what,
                path.display(),
                stat.st_mode & 0o777
            );
        }
        Ok(())
    }
}

fn list(uids: &[u32]) -> String {
    let names: Vec<String> = uids.iter().map(u32::to_string).collect();
    names.join(" or ")
}

/// The error for an open that failed, naming the path.
fn open_error(what: &str, path: &Path, errno: Errno) -> anyhow::Error {
    if errno == Errno::LOOP {
        return anyhow::anyhow!(
            "{what} {} is a symbolic link; refusing to follow it (name the file itself)",
            path.display()
        );
    }
    anyhow::Error::from(std::io::Error::from(errno))
        .context(format!("cannot open {what} {}", path.display()))
}

/// Reads `name` in the directory `dir` (an open directory, or `None` for a
/// path of its own), at most `max` bytes. `Ok(None)`: no such file.
pub(crate) fn read_at(
    dir: Option<&OwnedFd>,
    name: &Path,
    shown_as: &Path,
    max: u64,
    trusted: Trusted<'_>,
) -> anyhow::Result<Option<Vec<u8>>> {
    let opened = match dir {
        Some(dir) => rustix::fs::openat(dir, name, READ_FLAGS, Mode::empty()),
        None => rustix::fs::open(name, READ_FLAGS, Mode::empty()),
    };
    let fd = match opened {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(errno) => return Err(open_error(trusted.what, shown_as, errno)),
    };
    let stat = rustix::fs::fstat(&fd)
        .with_context(|| format!("cannot stat {} {}", trusted.what, shown_as.display()))?;
    trusted.check(shown_as, &stat)?;
    if u64::try_from(stat.st_size).unwrap_or(u64::MAX) > max {
        bail!(
            "{} {} is {} bytes, more than the limit of {max}; refusing to read it",
            trusted.what,
            shown_as.display(),
            stat.st_size
        );
    }
    // The file may grow after the fstat: read one byte past the bound to
    // notice, never more.
    let mut bytes = Vec::new();
    File::from(fd)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {} {}", trusted.what, shown_as.display()))?;
    if bytes.len() as u64 > max {
        bail!(
            "{} {} grew past the limit of {max} bytes while it was read",
            trusted.what,
            shown_as.display()
        );
    }
    Ok(Some(bytes))
}

/// [`read_at`] for a path of its own.
pub(crate) fn read(path: &Path, max: u64, trusted: Trusted<'_>) -> anyhow::Result<Option<Vec<u8>>> {
    read_at(None, path, path, max, trusted)
}

/// Whether `fd` is a regular file owned by `uid`; the error names `path`.
pub(crate) fn check_own_regular(
    fd: impl AsFd,
    path: &Path,
    what: &str,
    uid: u32,
) -> anyhow::Result<()> {
    let stat =
        rustix::fs::fstat(fd).with_context(|| format!("cannot stat {what} {}", path.display()))?;
    let file_type = FileType::from_raw_mode(stat.st_mode);
    if file_type != FileType::RegularFile {
        bail!(
            "{what} {} is {}, not a regular file; refusing to use it",
            path.display(),
            describe(file_type)
        );
    }
    if stat.st_uid != uid {
        bail!(
            "{what} {} belongs to uid {}, not to this user (uid {uid}); refusing to use it",
            path.display(),
            stat.st_uid
        );
    }
    Ok(())
}

/// The last component of `path`, for opening it relative to its directory.
pub(crate) fn file_name(path: &Path) -> anyhow::Result<&OsStr> {
    path.file_name()
        .with_context(|| format!("{} does not name a file", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn me() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pidguard-safe-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create test dir");
        dir
    }

    #[test]
    fn only_small_regular_trusted_files_are_read() {
        let dir = dir("kinds");
        let trusted = Trusted {
            owners: &[me()],
            what: "test file",
        };
        let file = dir.join("file");
        std::fs::write(&file, b"hello").expect("write");
        assert_eq!(
            read(&file, 5, trusted).expect("read"),
            Some(b"hello".to_vec())
        );
        let large = read(&file, 4, trusted).expect_err("too large");
        assert!(large.to_string().contains("limit of 4"), "{large}");
        assert_eq!(read(&dir.join("missing"), 5, trusted).expect("read"), None);

        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let error = read(&link, 5, trusted).expect_err("a symlink");
        assert!(error.to_string().contains("symbolic link"), "{error}");

        let fifo = dir.join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o600)).expect("mkfifo");
        let error = read(&fifo, 5, trusted).expect_err("a FIFO");
        assert!(error.to_string().contains("a FIFO"), "{error}");

        let error = read(Path::new("/dev/zero"), 5, trusted).expect_err("a device");
        assert!(error.to_string().contains("character device"), "{error}");

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let error = read(&file, 5, trusted).expect_err("writable by others");
        assert!(error.to_string().contains("written by others"), "{error}");
        let stranger = Trusted {
            owners: &[me() + 1],
            what: "test file",
        };
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = read(&file, 5, stranger).expect_err("another owner");
        assert!(error.to_string().contains("belongs to uid"), "{error}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
