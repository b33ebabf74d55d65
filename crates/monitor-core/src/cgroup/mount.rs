//! Where this process's cgroup v2 directory is: the `cgroup2` mount from
//! `/proc/self/mountinfo` joined with the `0::` line of `/proc/self/cgroup`.
//!
//! Nothing here is hard-coded: a pure v2 system mounts the hierarchy at
//! `/sys/fs/cgroup`, a hybrid one at `/sys/fs/cgroup/unified`, a container
//! wherever its runtime chose. Both files are read through the parsers
//! below, which are pure so they are tested on text.

use std::io;
use std::path::{Path, PathBuf};

use crate::sys_error::SysError;

/// One `cgroup2` mount: the cgroup shown at its root, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cgroup2Mount {
    /// The cgroup path (from this process's cgroup namespace root) that the
    /// mount's root directory shows; `/` for a whole-hierarchy mount.
    pub(crate) root: String,
    /// Where it is mounted.
    pub(crate) mount_point: PathBuf,
}

/// Every `cgroup2` mount in a `mountinfo` text, in file order.
///
/// A line is `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [TAGS...] - FSTYPE
/// SOURCE SUPER_OPTIONS`; the tags vary in number, so the file system type
/// is the field after the lone `-`.
pub(crate) fn cgroup2_mounts(mountinfo: &str) -> Vec<Cgroup2Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            if fields.get(dash + 1) != Some(&"cgroup2") || dash < 5 {
                return None;
            }
            Some(Cgroup2Mount {
                root: unescape(fields[3]),
                mount_point: PathBuf::from(unescape(fields[4])),
            })
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`,
/// `\134`), so a mount point with a space in it is found.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's cgroup v2 path from a `/proc/self/cgroup` text: the
/// `0::PATH` line. `None` when there is none (a v1-only system).
pub(crate) fn own_cgroup(proc_self_cgroup: &str) -> Option<&str> {
    proc_self_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .filter(|path| path.starts_with('/'))
}

/// The directory of cgroup `own` under the first mount that shows it: the
/// mount point joined with `own` minus the mount's root. `None` when no
/// mount shows it (the hierarchy is mounted only for another subtree).
pub(crate) fn cgroup_dir(mounts: &[Cgroup2Mount], own: &str) -> Option<PathBuf> {
    mounts.iter().find_map(|mount| {
        let rest = Path::new(own).strip_prefix(&mount.root).ok()?;
        Some(mount.mount_point.join(rest))
    })
}

/// Reads both files and returns this process's cgroup v2 directory.
pub(crate) fn discover() -> Result<PathBuf, SysError> {
    let mountinfo_path = Path::new("/proc/self/mountinfo");
    let mountinfo =
        std::fs::read_to_string(mountinfo_path).map_err(SysError::on("read", mountinfo_path))?;
    let mounts = cgroup2_mounts(&mountinfo);
    if mounts.is_empty() {
        return Err(SysError::at(
            "find a cgroup2 mount in",
            mountinfo_path,
            io::Error::new(io::ErrorKind::NotFound, "no cgroup2 file system is mounted"),
        ));
    }
    let cgroup_path = Path::new("/proc/self/cgroup");
    let cgroups =
        std::fs::read_to_string(cgroup_path).map_err(SysError::on("read", cgroup_path))?;
    let own = own_cgroup(&cgroups).ok_or_else(|| {
        SysError::at(
            "find the cgroup v2 (`0::`) line in",
            cgroup_path,
            io::Error::new(
                io::ErrorKind::NotFound,
                "this process is in no cgroup v2 hierarchy",
            ),
        )
    })?;
    cgroup_dir(&mounts, own).ok_or_else(|| {
        SysError::at(
            "find a cgroup2 mount showing our cgroup in",
            mountinfo_path,
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no cgroup2 mount shows {own}"),
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine kind's layout: v1 controllers beside a v2 hierarchy
    /// at `/sys/fs/cgroup/unified`.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A systemd host: pure v2 at `/sys/fs/cgroup`, with optional tags.
    const PURE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn finds_the_hybrid_mount() {
        let mounts = cgroup2_mounts(HYBRID);
        assert_eq!(
            mounts,
            vec![Cgroup2Mount {
                root: "/".into(),
                mount_point: "/sys/fs/cgroup/unified".into()
            }]
        );
        assert_eq!(
            cgroup_dir(&mounts, "/"),
            Some(PathBuf::from("/sys/fs/cgroup/unified/"))
        );
    }

    #[test]
    fn finds_the_pure_v2_mount_past_optional_tags() {
        let mounts = cgroup2_mounts(PURE);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_point, Path::new("/sys/fs/cgroup"));
        assert_eq!(
            cgroup_dir(&mounts, "/system.slice/app.service"),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/app.service"))
        );
    }

    #[test]
    fn a_mount_of_a_subtree_maps_only_paths_below_its_root() {
        // A container runtime bind-mounted only its own subtree.
        let text = "50 40 0:30 /kubepods/pod1 /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n";
        let mounts = cgroup2_mounts(text);
        assert_eq!(
            cgroup_dir(&mounts, "/kubepods/pod1/ctr"),
            Some(PathBuf::from("/sys/fs/cgroup/ctr"))
        );
        // "/kubepods/pod10" is not below "/kubepods/pod1": components count.
        assert_eq!(cgroup_dir(&mounts, "/kubepods/pod10"), None);
        assert_eq!(cgroup_dir(&mounts, "/other"), None);
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        let text = "41 31 0:38 / /mnt/cg\\040two rw - cgroup2 none rw\n";
        assert_eq!(
            cgroup2_mounts(text)[0].mount_point,
            Path::new("/mnt/cg two")
        );
    }

    #[test]
    fn v1_only_and_malformed_lines_give_nothing() {
        assert!(
            cgroup2_mounts("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n")
                .is_empty()
        );
        assert!(cgroup2_mounts("garbage - cgroup2\n\n- cgroup2 x y\n").is_empty());
    }

    #[test]
    fn the_own_cgroup_is_the_0_line() {
        let text = "9:name=systemd:/\n4:memory:/a/b\n0::/user.slice/session-1.scope\n";
        assert_eq!(own_cgroup(text), Some("/user.slice/session-1.scope"));
        assert_eq!(own_cgroup("0::/\n"), Some("/"));
        assert_eq!(own_cgroup("4:memory:/a\n"), None);
        assert_eq!(own_cgroup("0::garbage\n"), None);
    }

    /// On a machine with cgroup v2 at all, discovery finds a directory that
    /// is a cgroup (it has a `cgroup.procs`). Elsewhere it names the file.
    #[test]
    fn discovery_on_this_machine() {
        match discover() {
            Ok(dir) => assert!(dir.join("cgroup.procs").exists(), "{}", dir.display()),
            Err(error) => assert!(error.to_string().contains("/proc/self/"), "{error}"),
        }
    }
}
