//! The cgroup directories a monitor of a given process made
//! (`pidguard.<pid>.*`, wherever cgroup v2 is mounted): to check that none
//! is left behind, and to remove those of a monitor a test had to kill.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::wait::wait_until_blocking;

/// Every `pidguard.<pid>.*` directory in the cgroup v2 tree.
pub(crate) fn cgroup_dirs_of(pid: u32) -> Vec<PathBuf> {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let prefix = format!("pidguard.{pid}.");
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount) = left
            .split(' ')
            .nth(4)
            .filter(|_| right.starts_with("cgroup2 "))
        else {
            continue;
        };
        let mut stack = vec![PathBuf::from(mount)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    found.push(entry.path());
                } else {
                    stack.push(entry.path());
                }
            }
        }
    }
    found
}

/// Kills whatever is left in the cgroups a killed monitor of `pid` made
/// (`cgroup.kill`), waits until they are empty, and removes them.
pub(crate) fn remove_cgroups_of(pid: u32) {
    for subtree in cgroup_dirs_of(pid) {
        remove_tree(&subtree);
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    // Only the test's own leftovers are in it: its CMD's descendants.
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    wait_until_blocking(
        Duration::from_secs(10),
        "a leftover cgroup is empty",
        || {
            std::fs::read_to_string(dir.join("cgroup.events"))
                .map_or(true, |events| events.contains("populated 0"))
        },
    );
    let _ = std::fs::remove_dir(dir);
}
