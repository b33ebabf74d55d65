//! Resource figures a leaf gives for nothing: the files the kernel keeps
//! anyway. `cpu.stat` exists in every cgroup v2 directory; `memory.*` and
//! `pids.current` only where the manager of our cgroup enabled those
//! controllers for it (the monitor never does). Whatever is missing is
//! `None`, never an error.

use std::io;
use std::path::Path;

use super::Leaf;
use crate::sys_error::SysError;

/// A leaf's resource figures, each `None` where this system does not keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    /// Memory in use now, in bytes (`memory.current`).
    pub(crate) memory_current: Option<u64>,
    /// The most memory ever in use, in bytes (`memory.peak`, Linux 5.19).
    pub(crate) memory_peak: Option<u64>,
    /// Processes and threads now (`pids.current`).
    pub(crate) pids_current: Option<u64>,
    /// CPU time of every process that ran in the leaf, exited ones
    /// included, in microseconds (`cpu.stat` `usage_usec`).
    pub(crate) cpu_usage_usec: Option<u64>,
    /// Its user-mode part (`user_usec`).
    pub(crate) cpu_user_usec: Option<u64>,
    /// Its kernel-mode part (`system_usec`).
    pub(crate) cpu_system_usec: Option<u64>,
}

impl Leaf {
    /// Reads every figure the leaf has. An error only when a file that
    /// exists cannot be read or parsed.
    pub(crate) fn usage(&self) -> Result<Usage, SysError> {
        let cpu = read_optional(&self.file("cpu.stat"))?;
        let cpu_field = |name: &str| cpu.as_deref().and_then(|text| keyed(text, name));
        Ok(Usage {
            memory_current: read_number(&self.file("memory.current"))?,
            memory_peak: read_number(&self.file("memory.peak"))?,
            pids_current: read_number(&self.file("pids.current"))?,
            cpu_usage_usec: cpu_field("usage_usec"),
            cpu_user_usec: cpu_field("user_usec"),
            cpu_system_usec: cpu_field("system_usec"),
        })
    }
}

/// A file's text, `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, SysError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SysError::at("read", path, e)),
    }
}

/// A file holding one number, `None` when it does not exist.
fn read_number(path: &Path) -> Result<Option<u64>, SysError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    text.trim().parse().map(Some).map_err(|e| {
        SysError::at(
            "parse",
            path,
            io::Error::new(io::ErrorKind::InvalidData, format!("{text:?}: {e}")),
        )
    })
}

/// The value of `name` in a `name value` per line text.
fn keyed(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod parse_tests {
    use super::{keyed, read_number};

    #[test]
    fn reads_cpu_stat_fields_by_name() {
        let text = "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\nnr_periods 0\n";
        assert_eq!(keyed(text, "usage_usec"), Some(1234));
        assert_eq!(keyed(text, "system_usec"), Some(234));
        assert_eq!(keyed(text, "usage"), None);
        assert_eq!(keyed("usage_usec x\n", "usage_usec"), None);
    }

    /// A figure file present (as `memory.current` is where the memory
    /// controller is on) reads as its number; a missing one as `None`; a
    /// garbled one is an error naming the file.
    #[test]
    fn reads_one_number_files() {
        let dir = std::env::temp_dir().join(format!("pidguard-usage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let present = dir.join("memory.current");
        std::fs::write(&present, "1048576\n").expect("write");
        assert_eq!(read_number(&present).expect("readable"), Some(1_048_576));
        assert_eq!(
            read_number(&dir.join("pids.current")).expect("absent"),
            None
        );
        std::fs::write(&present, "lots\n").expect("write");
        let error = read_number(&present).expect_err("not a number");
        assert!(error.to_string().contains("memory.current"), "{error}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
