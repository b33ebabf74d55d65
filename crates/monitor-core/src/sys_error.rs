//! The error of the kernel layer below the actor (cgroups, the process
//! connector): what was tried, on which file, and what the kernel said.
//!
//! These facilities are optional: when one is refused the monitor falls
//! back to a weaker mechanism and says why. So the error has to name the
//! operation and the path exactly (a user fixes `EACCES` on
//! `/sys/fs/cgroup/app.slice` differently from `EROFS` on a read-only
//! mount), and has to tell "not available here" from "broke".

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A kernel facility refused or failed.
#[derive(Debug)]
pub(crate) struct SysError {
    /// What was tried: a system call or a file operation, e.g. `"mkdir"`.
    pub(crate) op: &'static str,
    /// The file or directory it was about, when there is one.
    pub(crate) path: Option<PathBuf>,
    /// What the kernel (or the parse of what it wrote) said.
    pub(crate) source: io::Error,
}

impl SysError {
    /// An error about `path`.
    pub(crate) fn at(op: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            op,
            path: Some(path.to_owned()),
            source,
        }
    }

    /// An error about no file in particular (a socket, a process).
    pub(crate) fn call(op: &'static str, source: io::Error) -> Self {
        Self {
            op,
            path: None,
            source,
        }
    }

    /// A closure for `map_err` that names `op` and `path`.
    pub(crate) fn on<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| Self::at(op, path, source)
    }

    /// Whether this means "the facility is not available to this process"
    /// (no permission, a read-only or missing file system, an old kernel,
    /// another namespace), as opposed to a failure of something that was
    /// available. Callers log the first at `info` and fall back, the second
    /// at `warn`.
    pub(crate) fn is_unavailable(&self) -> bool {
        use rustix::io::Errno;
        let unavailable = [
            Errno::ACCESS,
            Errno::PERM,
            Errno::ROFS,
            Errno::NOENT,
            Errno::NOSYS,
            Errno::NOTDIR,
            Errno::PROTONOSUPPORT,
            Errno::AFNOSUPPORT,
            Errno::OPNOTSUPP,
        ];
        match self.source.raw_os_error() {
            Some(raw) => unavailable.iter().any(|e| e.raw_os_error() == raw),
            None => matches!(
                self.source.kind(),
                io::ErrorKind::NotFound
                    | io::ErrorKind::PermissionDenied
                    | io::ErrorKind::Unsupported
            ),
        }
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{} {}: {}", self.op, path.display(), self.source),
            None => write!(f, "{}: {}", self.op, self.source),
        }
    }
}

impl std::error::Error for SysError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_operation_the_path_and_the_cause() {
        let error = SysError::at(
            "mkdir",
            Path::new("/sys/fs/cgroup/x"),
            io::Error::from_raw_os_error(rustix::io::Errno::ROFS.raw_os_error()),
        );
        let text = error.to_string();
        assert!(text.starts_with("mkdir /sys/fs/cgroup/x: "), "{text}");
        assert!(text.contains("Read-only file system"), "{text}");
        assert!(error.is_unavailable());
    }

    #[test]
    fn a_failure_of_something_available_is_not_unavailability() {
        let busy = SysError::call(
            "rmdir",
            io::Error::from_raw_os_error(rustix::io::Errno::BUSY.raw_os_error()),
        );
        assert!(!busy.is_unavailable());
        let unsupported = SysError::call(
            "listen",
            io::Error::new(io::ErrorKind::Unsupported, "not the initial pid namespace"),
        );
        assert!(unsupported.is_unavailable());
        assert_eq!(
            unsupported.to_string(),
            "listen: not the initial pid namespace"
        );
    }
}
