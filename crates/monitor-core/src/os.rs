//! The seam between the monitor's logic and the kernel.
//!
//! Everything the actor and the scanner ask of the operating system goes
//! through the [`Os`] trait, so the logic runs on paused time against a fake
//! process table in unit tests, and against procfs, pidfds and `waitid` in
//! production ([`LinuxOs`]).

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use procfs::process::Process;
use rustix::process::{Pid, PidfdFlags};

use crate::{ChildProcess, Error, ExitStatus, ProcessId, Signal};

/// The pipe ends a spawned child's command asked for (`Stdio::piped()`).
pub(crate) type Pipes = (
    Option<std::process::ChildStdin>,
    Option<std::process::ChildStdout>,
    Option<std::process::ChildStderr>,
);

/// A child [`Os::spawn`] started.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: i32,
    /// The value that reaps it.
    pub(crate) child: ChildProcess,
    pub(crate) pipes: Pipes,
}

/// What [`Os::spawn`] returns: the real spawn may wait for the spawner
/// thread.
pub(crate) type SpawnFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<Spawned>> + Send>>;

/// What one read of `/proc/<pid>/stat` tells the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcInfo {
    /// Start time in clock ticks since boot.
    pub(crate) start_time: u64,
    /// The parent's pid (its thread group id).
    pub(crate) ppid: i32,
    /// The process has exited (state `Z` or `X`) and waits to be reaped.
    pub(crate) exited: bool,
    /// Its process group.
    pub(crate) pgrp: i32,
}

/// A tracked process pinned for the monitor's lifetime.
///
/// The pidfd (when the kernel gives one) is the process itself: signals sent
/// through it can never reach a later holder of the same pid. Its
/// `/proc/<pid>/stat` is opened right after it and kept open: the open file
/// belongs to that process, so every later read goes to the same process or
/// fails with `ESRCH` once it is reaped, even if the pid was reused. Reading
/// it again with `pread` costs one system call instead of the three of an
/// open, read and close.
#[derive(Debug)]
pub(crate) struct ProcHandle {
    pub(crate) id: ProcessId,
    pidfd: Option<OwnedFd>,
    stat: Option<File>,
}

impl ProcHandle {
    /// A handle with no kernel objects behind it, for the fake table.
    #[cfg(any(test, doc, feature = "test-util"))]
    pub(crate) fn bare(id: ProcessId) -> Self {
        Self {
            id,
            pidfd: None,
            stat: None,
        }
    }

    /// Whether signals go through a pidfd.
    pub(crate) fn has_pidfd(&self) -> bool {
        self.pidfd.is_some()
    }

    /// The pidfd's descriptor number, for registration with the reactor.
    pub(crate) fn pidfd_raw(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(AsRawFd::as_raw_fd)
    }
}

/// Operating-system calls the monitor needs. See the module docs.
pub(crate) trait Os: Send + Sync + 'static {
    /// The pid of the process the monitor runs in.
    fn my_pid(&self) -> i32;

    /// The process group of the process the monitor runs in.
    fn my_pgrp(&self) -> i32;

    /// The real uid of the process the monitor runs in.
    fn my_uid(&self) -> u32;

    /// The real uid of a pinned process, `None` once it has been reaped.
    /// What authorization compares with a unit's owner.
    fn uid(&self, handle: &ProcHandle) -> Option<u32>;

    /// Pins `pid`: opens a pidfd first, then reads its stat, then checks that
    /// this process may signal it. A zombie opens fine (its `exited` is set).
    fn open(&self, pid: i32) -> Result<(ProcHandle, ProcInfo), Error>;

    /// Pins a recorded parent to watch it: a pidfd, then its stat, which
    /// must show `id`'s start time. `None`: that process has exited (or its
    /// pid names another process now). Needs no permission to signal it.
    fn open_parent(&self, id: ProcessId) -> Option<ProcHandle>;

    /// The pids of a pinned process's children (every thread's list).
    /// Empty once it has exited.
    fn children(&self, handle: &ProcHandle) -> Vec<i32>;

    /// The pids of this process's own children (every thread's list).
    fn own_children(&self) -> Vec<i32>;

    /// A pinned process's command name (`/proc/<pid>/comm`), for logs;
    /// `None` once it is reaped.
    fn command_name(&self, handle: &ProcHandle) -> Option<String>;

    /// Every process in process group `pgid`.
    fn group_members(&self, pgid: i32) -> Vec<i32>;

    /// The thread group (process) that task id `pid` belongs to: `pid`
    /// itself for a process, another pid for one of its threads. `None`:
    /// no such task.
    fn tgid(&self, pid: i32) -> Option<i32>;

    /// Re-reads a pinned process. `None`: it has been reaped (or, for the
    /// fake, its pid now names another process).
    fn stat(&self, handle: &ProcHandle) -> Option<ProcInfo>;

    /// Reads any pid, e.g. a recorded parent. `None`: no such process.
    fn stat_pid(&self, pid: i32) -> Option<ProcInfo>;

    /// Sends `signal` to exactly the pinned process. `ESRCH` means it is gone.
    fn signal(&self, handle: &ProcHandle, signal: Signal) -> io::Result<()>;

    /// Reaps the pinned process if it has exited (`Ok(None)`: still running).
    /// Only ever called for processes the monitor owns.
    fn reap(&self, handle: &ProcHandle) -> io::Result<Option<ExitStatus>>;

    /// Reaps any one exited child (`ReapPolicy::AllChildren` only). With
    /// `named`, the zombie's command name is read first (for the log), at
    /// the price of a second wait call.
    fn reap_any(&self, named: bool) -> io::Result<Option<Reaped>>;

    /// The exited children of this process that nobody has reaped yet,
    /// leaving out the pids in `skip` (children the monitor owns).
    fn child_zombies(&self, skip: &HashSet<i32>) -> Vec<ProcessId>;

    /// Makes this process a child subreaper.
    fn set_subreaper(&self) -> io::Result<()>;

    /// Starts `command` as a child of this process, with the parent-death
    /// signal armed if one is given (see `spawn.rs`).
    fn spawn(
        &self,
        command: std::process::Command,
        parent_death_signal: Option<Signal>,
    ) -> SpawnFuture;
}

/// A child reaped by [`Os::reap_any`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reaped {
    pub(crate) pid: i32,
    pub(crate) status: ExitStatus,
    /// Its command name, when asked for and still readable.
    pub(crate) name: Option<String>,
}

/// The production [`Os`]: procfs, pidfds, `pidfd_send_signal`, `waitid`.
#[derive(Debug)]
pub(crate) struct LinuxOs {
    my_pid: i32,
    my_pgrp: i32,
    my_uid: u32,
    /// Off only in tests, to exercise the fallback a kernel without pidfd
    /// (or a process out of descriptors) gets.
    use_pidfd: bool,
}

impl LinuxOs {
    pub(crate) fn new() -> Self {
        Self {
            my_pid: rustix::process::getpid().as_raw_nonzero().get(),
            // Not rustix's getpgrp, which asserts a positive id: as PID 1 of
            // a new pid namespace, this process's group lies outside the
            // namespace and reads as 0.
            my_pgrp: nix::unistd::getpgrp().as_raw(),
            my_uid: rustix::process::getuid().as_raw(),
            use_pidfd: true,
        }
    }

    /// The Linux backend with pidfds switched off: every process takes the
    /// fallback a kernel before 5.3 (or a process out of descriptors) gets.
    #[cfg(test)]
    pub(crate) fn without_pidfd() -> Self {
        Self {
            use_pidfd: false,
            ..Self::new()
        }
    }

    /// `pidfd_open`, or `None` with a warning when the kernel or the
    /// descriptor limit refuses (the caller falls back); `Err` only when
    /// the process does not exist.
    fn pidfd(&self, pid: Pid) -> Result<Option<OwnedFd>, ()> {
        let opened = if self.use_pidfd {
            rustix::process::pidfd_open(pid, PidfdFlags::NONBLOCK)
        } else {
            Err(rustix::io::Errno::NOSYS)
        };
        match opened {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e == rustix::io::Errno::SRCH || e == rustix::io::Errno::INVAL => Err(()),
            Err(e) => {
                // ENOSYS (kernel < 5.3), EMFILE/ENFILE (out of descriptors).
                tracing::warn!(pid = pid.as_raw_nonzero().get(), error = %e, "pidfd_open failed; falling back to the scan and start-time checks");
                Ok(None)
            }
        }
    }
}

/// Reads the children lists of every thread under `/proc/<pid>/task`.
fn read_children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(
                list.split_ascii_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    children
}

/// The real uid, the first field of the `Uid:` line of `/proc/<pid>/status`.
fn real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Longest `/proc/<pid>/stat` line: 52 numeric fields of at most 20 digits
/// plus a 16-byte command name stays well under this.
const STAT_MAX: usize = 2048;

/// Reads an open `/proc/<pid>/stat` from its start and parses it with
/// procfs. `None` once the process has been reaped.
fn read_stat(file: &File) -> Option<procfs::process::Stat> {
    let mut buf = [0u8; STAT_MAX];
    let len = file.read_at(&mut buf, 0).ok()?;
    if len == 0 || len == buf.len() {
        return None;
    }
    <procfs::process::Stat as procfs::FromRead>::from_read(&buf[..len]).ok()
}

fn info_from_stat(stat: &procfs::process::Stat) -> ProcInfo {
    ProcInfo {
        start_time: stat.starttime,
        ppid: stat.ppid,
        exited: matches!(stat.state, 'Z' | 'X' | 'x'),
        pgrp: stat.pgrp,
    }
}

fn wait_status(status: WaitStatus) -> Option<(i32, ExitStatus)> {
    match status {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), ExitStatus::Exited(code))),
        WaitStatus::Signaled(pid, signal, core_dumped) => Some((
            pid.as_raw(),
            ExitStatus::Signaled {
                signal: signal as i32,
                core_dumped,
            },
        )),
        // WEXITED alone never reports stops or continues; StillAlive is "not yet".
        _ => None,
    }
}

impl Os for LinuxOs {
    fn my_pid(&self) -> i32 {
        self.my_pid
    }

    fn my_pgrp(&self) -> i32 {
        self.my_pgrp
    }

    fn my_uid(&self) -> u32 {
        self.my_uid
    }

    fn uid(&self, handle: &ProcHandle) -> Option<u32> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", handle.id.pid)).ok()?;
        let uid = real_uid(&status)?;
        // Read by pid: it was this process's file only if the pinned
        // process still holds the pid now (a pid is not reused before its
        // process is reaped).
        self.stat(handle)?;
        Some(uid)
    }

    fn open_parent(&self, id: ProcessId) -> Option<ProcHandle> {
        let pidfd = self.pidfd(Pid::from_raw(id.pid)?).ok()?;
        let file = File::open(format!("/proc/{}/stat", id.pid)).ok()?;
        let info = info_from_stat(&read_stat(&file)?);
        (!info.exited && info.start_time == id.start_time).then_some(ProcHandle {
            id,
            pidfd,
            stat: Some(file),
        })
    }

    fn children(&self, handle: &ProcHandle) -> Vec<i32> {
        let children = read_children(handle.id.pid);
        // Read by pid: count the list only if the pinned process still
        // runs, so the pid named it while it was read.
        if self.stat(handle).is_some_and(|info| !info.exited) {
            children
        } else {
            Vec::new()
        }
    }

    fn own_children(&self) -> Vec<i32> {
        read_children(self.my_pid)
    }

    fn command_name(&self, handle: &ProcHandle) -> Option<String> {
        let name = std::fs::read_to_string(format!("/proc/{}/comm", handle.id.pid)).ok()?;
        // Read by pid: it was this process's only if it still holds it.
        self.stat(handle)?;
        Some(name.trim_end().to_owned())
    }

    fn group_members(&self, pgid: i32) -> Vec<i32> {
        let Ok(all) = procfs::process::all_processes() else {
            return Vec::new();
        };
        all.flatten()
            .filter_map(|proc| proc.stat().ok())
            .filter(|stat| stat.pgrp == pgid && !matches!(stat.state, 'Z' | 'X'))
            .map(|stat| stat.pid)
            .collect()
    }

    fn open(&self, pid: i32) -> Result<(ProcHandle, ProcInfo), Error> {
        // `Pid::from_raw` asserts a non-negative value; screen first.
        let raw = (pid > 0)
            .then(|| Pid::from_raw(pid))
            .flatten()
            .ok_or(Error::NoSuchProcess { pid })?;
        // The pidfd first: from here on the process cannot be replaced under
        // us, whatever the stat read below says.
        let pidfd = self.pidfd(raw).map_err(|()| Error::NoSuchProcess { pid })?;
        // `pidfd_open` refuses a thread id (ENOENT), which looks like a
        // kernel without pidfds; the fallback must refuse it by name, or a
        // thread would be tracked as a process, by scan only.
        if pidfd.is_none()
            && let Some(tgid) = self.tgid(pid).filter(|&tgid| tgid != pid)
        {
            return Err(Error::ThreadId { pid, tgid });
        }
        let file =
            File::open(format!("/proc/{pid}/stat")).map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => Error::NoSuchProcess { pid },
                io::ErrorKind::PermissionDenied => Error::PermissionDenied { pid },
                _ => Error::Os {
                    syscall: "open /proc/<pid>/stat",
                    pid,
                    source,
                },
            })?;
        // Reaped between the pidfd and the open: nothing left to track.
        let info = info_from_stat(&read_stat(&file).ok_or(Error::NoSuchProcess { pid })?);
        if !info.exited {
            match rustix::process::test_kill_process(raw) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::PERM => {
                    return Err(Error::PermissionDenied { pid });
                }
                Err(e) if e == rustix::io::Errno::SRCH => {
                    return Err(Error::NoSuchProcess { pid });
                }
                Err(e) => {
                    return Err(Error::Os {
                        syscall: "kill(pid, 0)",
                        pid,
                        source: e.into(),
                    });
                }
            }
        }
        let handle = ProcHandle {
            id: ProcessId::new(pid, info.start_time),
            pidfd,
            stat: Some(file),
        };
        Ok((handle, info))
    }

    fn tgid(&self, pid: i32) -> Option<i32> {
        // `/proc/<tid>` exists for every thread, though `readdir` hides it.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("Tgid:"))
            .and_then(|tgid| tgid.trim().parse().ok())
    }

    fn stat(&self, handle: &ProcHandle) -> Option<ProcInfo> {
        let info = info_from_stat(&read_stat(handle.stat.as_ref()?)?);
        (info.start_time == handle.id.start_time).then_some(info)
    }

    fn stat_pid(&self, pid: i32) -> Option<ProcInfo> {
        let proc = Process::new(pid).ok()?;
        Some(info_from_stat(&proc.stat().ok()?))
    }

    fn signal(&self, handle: &ProcHandle, signal: Signal) -> io::Result<()> {
        if let Some(pidfd) = &handle.pidfd {
            let sig = signal.to_rustix().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{signal} has no pidfd form"),
                )
            })?;
            return rustix::process::pidfd_send_signal(pidfd, sig).map_err(io::Error::from);
        }
        // Fallback without a pidfd: the open stat file answers only for the
        // process we pinned, so a successful read proves the pid still names
        // it. The window left is the few microseconds between this
        // read and the kill below.
        if self.stat(handle).is_none() {
            return Err(io::Error::from(Errno::ESRCH));
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(handle.id.pid), signal.to_nix())
            .map_err(io::Error::from)
    }

    fn reap(&self, handle: &ProcHandle) -> io::Result<Option<ExitStatus>> {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
        let status = match &handle.pidfd {
            Some(pidfd) => waitid(Id::PIDFd(pidfd.as_fd()), flags),
            // An unreaped child's pid cannot be reused, so waiting on the pid
            // of an owned child is exact.
            None => waitid(Id::Pid(nix::unistd::Pid::from_raw(handle.id.pid)), flags),
        };
        match status {
            Ok(status) => Ok(wait_status(status).map(|(_, status)| status)),
            Err(errno) => Err(io::Error::from(errno)),
        }
    }

    fn reap_any(&self, named: bool) -> io::Result<Option<Reaped>> {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
        let (id, name) = if named {
            // Find one without reaping it, so its name can still be read;
            // then reap exactly that one (an unreaped child keeps its pid).
            match waitid(Id::All, flags | WaitPidFlag::WNOWAIT) {
                Ok(status) => match wait_status(status) {
                    Some((pid, _)) => {
                        let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                            .ok()
                            .map(|name| name.trim_end().to_owned());
                        (Id::Pid(nix::unistd::Pid::from_raw(pid)), name)
                    }
                    None => return Ok(None),
                },
                Err(Errno::ECHILD) => return Ok(None),
                Err(errno) => return Err(io::Error::from(errno)),
            }
        } else {
            (Id::All, None)
        };
        match waitid(id, flags) {
            Ok(status) => Ok(wait_status(status).map(|(pid, status)| Reaped { pid, status, name })),
            Err(Errno::ECHILD) => Ok(None),
            Err(errno) => Err(io::Error::from(errno)),
        }
    }

    fn child_zombies(&self, skip: &HashSet<i32>) -> Vec<ProcessId> {
        // Each thread's children are listed apart; read every task's list.
        read_children(self.my_pid)
            .into_iter()
            .filter(|pid| !skip.contains(pid))
            .filter_map(|pid| {
                let info = self.stat_pid(pid).filter(|info| info.exited)?;
                Some(ProcessId::new(pid, info.start_time))
            })
            .collect()
    }

    fn set_subreaper(&self) -> io::Result<()> {
        nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
    }

    fn spawn(
        &self,
        command: std::process::Command,
        parent_death_signal: Option<Signal>,
    ) -> SpawnFuture {
        Box::pin(async move {
            let mut child = crate::spawn::spawn(command, parent_death_signal).await?;
            let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
            let pid = i32::try_from(child.id()).map_err(io::Error::other)?;
            Ok(Spawned {
                pid,
                child: ChildProcess::Std(child),
                pipes,
            })
        })
    }
}

/// Whether an error from [`Os::signal`] means the process is already gone.
pub(crate) fn is_gone(error: &io::Error) -> bool {
    error.raw_os_error() == Some(Errno::ESRCH as i32)
}

/// Whether an error from [`Os::signal`] means this process lacks permission.
pub(crate) fn is_permission(error: &io::Error) -> bool {
    error.raw_os_error() == Some(Errno::EPERM as i32)
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command};

    use super::*;

    fn sleeper() -> Child {
        Command::new("sleep")
            .arg("300")
            .spawn()
            .expect("sleep runs")
    }

    /// Kills and reaps the child even when an assertion fails.
    struct Reap(Child);

    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Both paths, pidfd and fallback: the open stat file follows the one
    /// process (a zombie still reads, a reaped one does not), a signal
    /// reaches it while it lives, and after the reap it is `ESRCH`.
    fn pinned_process_is_signalled_and_then_gone(os: &LinuxOs, pidfd: bool) {
        let mut child = Reap(sleeper());
        let pid = child.0.id() as i32;
        let (handle, info) = os.open(pid).expect("open a live child");
        assert_eq!(handle.has_pidfd(), pidfd);
        assert_eq!(info.ppid, os.my_pid());
        assert!(!info.exited);
        os.signal(&handle, Signal::TERM)
            .expect("signal the live child");
        let status = child.0.wait().expect("wait for it");
        assert_eq!(ExitStatus::from(status).signal(), Some(15));
        assert_eq!(os.stat(&handle), None, "a reaped process reads as gone");
        let gone = os
            .signal(&handle, Signal::TERM)
            .expect_err("nothing left to signal");
        assert!(is_gone(&gone), "{gone}");
    }

    #[test]
    fn the_pidfd_path_pins_the_process() {
        pinned_process_is_signalled_and_then_gone(&LinuxOs::new(), true);
    }

    #[test]
    fn the_fallback_without_pidfd_pins_the_process_too() {
        let os = LinuxOs::without_pidfd();
        pinned_process_is_signalled_and_then_gone(&os, false);
    }

    /// An owned child is reaped by pidfd with its status, and a zombie reads
    /// as exited before that.
    #[test]
    fn an_owned_child_is_reaped_through_its_pidfd() {
        let os = LinuxOs::new();
        let child = Reap(
            Command::new("sh")
                .args(["-c", "exit 5"])
                .spawn()
                .expect("sh runs"),
        );
        let (handle, _) = os.open(child.0.id() as i32).expect("open the child");
        let status = loop {
            if let Some(status) = os.reap(&handle).expect("our own child") {
                break status;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert_eq!(status, ExitStatus::Exited(5));
        assert!(os.reap(&handle).is_err(), "a second reap finds nothing");
    }

    #[test]
    fn refused_pids_name_the_reason() {
        let os = LinuxOs::new();
        let pid_max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .expect("pid_max")
            .trim()
            .parse()
            .expect("a number");
        assert!(matches!(
            os.open(pid_max + 1),
            Err(Error::NoSuchProcess { .. })
        ));
        assert!(matches!(os.open(-5), Err(Error::NoSuchProcess { pid: -5 })));
    }
}
