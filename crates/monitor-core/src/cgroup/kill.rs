//! Ending every process of a leaf, including the ones forked while it
//! ends.
//!
//! The order is freeze, kill, thaw, wait. A frozen process cannot fork or
//! exec, so the list read after `frozen 1` is complete and every uid read
//! from it stays true until the signal. `cgroup.kill` then signals the
//! whole leaf in the kernel (and fails any fork racing with it); where it
//! is missing (before Linux 5.14) or some member belongs to another user,
//! each listed process gets `SIGKILL` through a pidfd opened for it, round
//! after round until no listed process is left unsignalled. Fatal signals
//! reach frozen processes, so the thaw only matters for members that were
//! refused: they go on running.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
use tokio::time::Instant;

use super::{Leaf, pidfd_exited};
use crate::sys_error::SysError;

/// How the members were killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KillMethod {
    /// One write to `cgroup.kill`.
    CgroupKill,
    /// `SIGKILL` to each listed process through its pidfd.
    Pidfds,
}

/// A member left alone because it belongs to another user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Its pid.
    pub(crate) pid: i32,
    /// Its real uid.
    pub(crate) uid: u32,
}

/// What [`Leaf::kill_all`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KillReport {
    /// How the members were killed.
    pub(crate) method: KillMethod,
    /// The leaf read `frozen 1` before the kill.
    pub(crate) frozen: bool,
    /// Processes signalled through a pidfd (0 with `cgroup.kill`).
    pub(crate) signalled: usize,
    /// Members of another uid, never signalled (owner other than root).
    pub(crate) refused: Vec<Refused>,
    /// The leaf read `populated 0` at the end.
    pub(crate) empty: bool,
}

impl Leaf {
    /// Kills every process in the leaf and waits, at most `timeout` in
    /// all, until it is empty.
    ///
    /// `owner` is the unit owner's uid: unless it is 0 (root), a member
    /// whose real uid differs is never signalled, and the kill goes process
    /// by process so it can leave that member out. Errors are the cgroup
    /// files failing; a timeout is not an error but `empty: false`.
    pub(crate) async fn kill_all(
        &self,
        owner: u32,
        timeout: Duration,
    ) -> Result<KillReport, SysError> {
        let method = if self.features.kill {
            KillMethod::CgroupKill
        } else {
            KillMethod::Pidfds
        };
        self.kill_all_with(method, owner, timeout).await
    }

    /// [`Leaf::kill_all`] with the method chosen by the caller (tests run
    /// the fallback on kernels that have `cgroup.kill`). `CgroupKill` is
    /// still replaced by `Pidfds` when a member must be left out.
    pub(crate) async fn kill_all_with(
        &self,
        mut method: KillMethod,
        owner: u32,
        timeout: Duration,
    ) -> Result<KillReport, SysError> {
        let deadline = Instant::now() + timeout;
        let mut frozen = false;
        if self.features.freeze {
            self.set_frozen(true)?;
            // Freezing takes each task to a safe point; one stuck in the
            // kernel can delay it. Do not spend the whole budget on it: the
            // kill works unfrozen too.
            let events = self
                .wait_events(timeout / 4, |e| e.frozen || !e.populated)
                .await?;
            frozen = events.frozen;
        }
        let mut refused = Vec::new();
        if owner != 0 {
            for pid in self.procs()? {
                if let Some((_, uid)) = pin_member(pid)
                    && uid != owner
                {
                    refused.push(Refused { pid, uid });
                }
            }
        }
        if !refused.is_empty() {
            method = KillMethod::Pidfds;
        }
        let signalled = match method {
            KillMethod::CgroupKill => {
                self.kill()?;
                0
            }
            KillMethod::Pidfds => self.kill_each(owner, &mut refused, deadline).await?,
        };
        if frozen {
            self.set_frozen(false)?;
        }
        let empty = if refused.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            !self.wait_events(left, |e| !e.populated).await?.populated
        } else {
            false
        };
        Ok(KillReport {
            method,
            frozen,
            signalled,
            refused,
            empty,
        })
    }

    /// Rounds of "list, pin, check, `SIGKILL`" until every listed process
    /// was signalled (or refused), or the deadline. Returns how many were
    /// signalled.
    async fn kill_each(
        &self,
        owner: u32,
        refused: &mut Vec<Refused>,
        deadline: Instant,
    ) -> Result<usize, SysError> {
        // Pidfds of the processes signalled so far: a listed pid whose pidfd
        // still runs is dying already; one whose pidfd has exited was
        // reused inside the leaf and is signalled again.
        let mut signalled: HashMap<i32, OwnedFd> = HashMap::new();
        let mut count = 0;
        loop {
            let mut fresh = 0;
            for pid in self.procs()? {
                if refused.iter().any(|r| r.pid == pid)
                    || signalled
                        .get(&pid)
                        .is_some_and(|fd| pidfd_exited(fd.as_fd()).is_ok_and(|exited| !exited))
                {
                    continue;
                }
                // Pinned first, uid read second, checked right before the
                // signal: the pidfd can only ever reach this process.
                let Some((pidfd, uid)) = pin_member(pid) else {
                    continue;
                };
                if owner != 0 && uid != owner {
                    refused.push(Refused { pid, uid });
                    continue;
                }
                match pidfd_send_signal(&pidfd, Signal::KILL) {
                    Ok(()) => {
                        fresh += 1;
                        signalled.insert(pid, pidfd);
                    }
                    Err(Errno::SRCH) => {}
                    Err(Errno::PERM) => refused.push(Refused { pid, uid }),
                    Err(e) => {
                        return Err(SysError::call("pidfd_send_signal(SIGKILL)", e.into()));
                    }
                }
            }
            count += fresh;
            if fresh == 0 || Instant::now() >= deadline {
                return Ok(count);
            }
            // New pids may still appear (an unfrozen fork storm): look again
            // once the leaf changes, or soon.
            let soon = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(10));
            self.wait_events(soon, |e| !e.populated).await?;
        }
    }
}

/// Pins `pid` by a pidfd, then reads its real uid. `None` when it is gone
/// (or exited while being read, so the uid may have been another's).
fn pin_member(pid: i32) -> Option<(OwnedFd, u32)> {
    let pidfd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
    let uid = real_uid(pid).ok()?;
    match pidfd_exited(pidfd.as_fd()) {
        Ok(false) => Some((pidfd, uid)),
        _ => None,
    }
}

/// The real uid from `/proc/<pid>/status`.
fn real_uid(pid: i32) -> io::Result<u32> {
    procfs::process::Process::new(pid)
        .and_then(|process| process.status())
        .map(|status| status.ruid)
        .map_err(|e| io::Error::other(e.to_string()))
}
