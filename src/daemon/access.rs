//! Access control: who is on the other end of a connection, and who owns a
//! process.
//!
//! A client may register only processes whose real uid is its own (root:
//! any), and see or drop only the registrations it made (root: all).

use std::io;

use monitor_core::ProcessId;

/// The client on a connection, from `SO_PEERCRED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    /// Its uid.
    pub(crate) uid: u32,
    /// Its pid, when the kernel reports one.
    pub(crate) pid: Option<i32>,
}

impl Peer {
    /// Root may act on every process and registration.
    pub(crate) fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether this peer may see or drop a registration made by `uid`.
    pub(crate) fn may_see(&self, uid: u32) -> bool {
        self.is_root() || self.uid == uid
    }
}

/// The real uid of `pid`, from `/proc/<pid>/status`.
pub(crate) fn owner(pid: i32) -> io::Result<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().next())
        .and_then(|real| real.parse().ok())
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/status has no readable Uid line")))
}

/// Whether `id` is still that process and owned by `uid`: the check made
/// after tracking, so a pid reused between the first owner check and the
/// track cannot slip another user's process in.
pub(crate) fn still_owned_by(id: ProcessId, uid: u32) -> bool {
    let owned = owner(id.pid).is_ok_and(|owner| owner == uid);
    owned && ProcessId::of(id.pid) == Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_owned_by_its_uid() {
        let me = i32::try_from(std::process::id()).expect("pid fits");
        let uid = rustix::process::getuid().as_raw();
        assert_eq!(owner(me).expect("own status"), uid);
        let id = ProcessId::of(me).expect("own stat");
        assert!(still_owned_by(id, uid));
        assert!(!still_owned_by(ProcessId::new(me, id.start_time + 1), uid));
        assert!(
            !Peer {
                uid: 1000,
                pid: None
            }
            .may_see(0)
        );
        assert!(Peer { uid: 0, pid: None }.may_see(1000));
    }
}
