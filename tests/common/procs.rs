//! The process guards: [`Proc`] pins one process by a pidfd, [`Procs`] owns
//! every process a test starts and kills them all on drop, and
//! [`Procs::spawn_shell`] starts the `sh -c '... & echo $!'` fixtures whose
//! background pids it reads back as a [`Shell`].

use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monitor_core::ProcessId;
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

use super::procfs::{ProcStat, my_pid, pidfd_target, read_stat};
use super::wait::{POLL, SOON};

/// A process a test started (directly or through a shell fixture), pinned
/// by a pidfd opened before its start time was read.
#[derive(Debug, Clone)]
pub(crate) struct Proc {
    /// Its pid.
    pub(crate) pid: i32,
    /// Its start time as read right after the pidfd was opened.
    pub(crate) start_time: u64,
    /// It was a direct child of the test process when pinned.
    child: bool,
    pidfd: Arc<OwnedFd>,
}

impl Proc {
    /// The identity the monitor should report for it.
    pub(crate) fn id(&self) -> ProcessId {
        ProcessId::new(self.pid, self.start_time)
    }

    /// Whether it has exited: reaped, or a zombie. Exact even if the pid was
    /// reused: the pidfd tells whether our process was reaped, and the stat
    /// read counts only if it was not reaped before the read finished.
    pub(crate) fn is_dead(&self) -> bool {
        if pidfd_target(&self.pidfd) != Some(self.pid) {
            return true;
        }
        let stat = read_stat(self.pid);
        if pidfd_target(&self.pidfd) != Some(self.pid) {
            return true;
        }
        stat.is_none_or(|stat| stat.exited())
    }

    /// Whether it is still running (not even a zombie).
    pub(crate) fn is_running(&self) -> bool {
        !self.is_dead()
    }

    /// Whether it has been reaped (by anyone): no zombie is left.
    pub(crate) fn is_reaped(&self) -> bool {
        pidfd_target(&self.pidfd) != Some(self.pid)
    }

    /// Its current stat, if it is still the same process.
    pub(crate) fn stat(&self) -> Option<ProcStat> {
        let stat = read_stat(self.pid)?;
        (!self.is_reaped()).then_some(stat)
    }

    /// Sends `SIGKILL` through its pidfd (never by pid).
    pub(crate) fn kill(&self) {
        match rustix::process::pidfd_send_signal(&*self.pidfd, Signal::KILL) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::SRCH => {}
            Err(e) => panic!("pidfd_send_signal(SIGKILL) to {}: {e}", self.pid),
        }
    }

    /// Reaps it through its pidfd if it is a child of the test process that
    /// nobody reaped (e.g. a `Child` handed to a monitor that refused it, or
    /// shut down first). Waits up to 5 s; `ECHILD` means it was reaped.
    fn reap_leftover(&self) {
        if !self.child {
            return;
        }
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            match rustix::process::waitid(WaitId::PidFd(self.pidfd.as_fd()), options) {
                Ok(None) => std::thread::sleep(POLL),
                Ok(Some(_)) | Err(_) => return,
            }
        }
    }
}

/// Opens a pidfd for `pid`, then reads its stat: the pidfd pins the process,
/// the stat read names it.
fn pin(pid: i32) -> Proc {
    let raw = Pid::from_raw(pid).unwrap_or_else(|| panic!("{pid} is not a valid pid"));
    let pidfd = rustix::process::pidfd_open(raw, PidfdFlags::empty())
        .unwrap_or_else(|e| panic!("pidfd_open({pid}): {e}"));
    let stat = read_stat(pid)
        .unwrap_or_else(|| panic!("/proc/{pid}/stat vanished right after pidfd_open"));
    let proc = Proc {
        pid,
        start_time: stat.start_time,
        child: stat.ppid == my_pid(),
        pidfd: Arc::new(pidfd),
    };
    assert!(
        !proc.is_reaped(),
        "{pid} was reaped while it was being pinned; the stat read may name another process"
    );
    proc
}

/// A started process's pipes, taken out of its `Child`.
#[derive(Debug)]
pub(crate) struct Spawned {
    /// The process.
    pub(crate) proc: Proc,
    /// Its stdin, if piped.
    pub(crate) stdin: Option<ChildStdin>,
    /// Its stdout, if piped.
    pub(crate) stdout: Option<ChildStdout>,
}

/// A `sh -c` fixture and the background processes it reported.
#[derive(Debug)]
pub(crate) struct Shell {
    /// The shell (a direct child of the test).
    pub(crate) proc: Proc,
    /// The pids it printed, pinned; each was verified to be its child.
    pub(crate) kids: Vec<Proc>,
    /// Its stdin; dropping it makes a `read` in the script return.
    pub(crate) stdin: Option<ChildStdin>,
    /// Kept open so a late `echo` never dies of `SIGPIPE`.
    _stdout: BufReader<ChildStdout>,
}

impl Shell {
    /// The only reported process.
    pub(crate) fn kid(&self) -> &Proc {
        assert_eq!(self.kids.len(), 1, "fixture has {} kids", self.kids.len());
        &self.kids[0]
    }
}

/// Owns every process a test starts. On drop (also when the test panics)
/// it sends `SIGKILL` through each process's pidfd, then waits for every
/// direct `std::process::Child` it still holds, then reaps (through the
/// pidfd) any direct child whose `Child` was handed away and never reaped.
#[derive(Debug, Default)]
pub(crate) struct Procs {
    pinned: Vec<Proc>,
    children: Vec<Child>,
}

impl Procs {
    /// An empty guard.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Pins a process the test started by other means (e.g. a pid printed
    /// by its own fixture) so the guard kills it on drop.
    pub(crate) fn pin(&mut self, pid: i32) -> Proc {
        let proc = pin(pid);
        self.pinned.push(proc.clone());
        proc
    }

    /// Pins `pid` and checks that it is a child of `parent` (so it is the
    /// process the fixture meant, not a stranger that reused the pid).
    pub(crate) fn pin_child_of(&mut self, pid: i32, parent: &Proc) -> Proc {
        let proc = self.pin(pid);
        let stat = proc
            .stat()
            .unwrap_or_else(|| panic!("{pid} vanished right after it was reported"));
        assert_eq!(
            stat.ppid, parent.pid,
            "{pid} is not a child of the fixture {}: not ours, refusing to use it",
            parent.pid
        );
        proc
    }

    /// Spawns a direct child. The guard keeps the `Child`; its piped stdio
    /// is handed back.
    pub(crate) fn spawn(&mut self, command: &mut Command) -> Spawned {
        let mut child = command.spawn().expect("spawn test fixture");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        self.children.push(child);
        let proc = self.pin(pid);
        Spawned {
            proc,
            stdin,
            stdout,
        }
    }

    /// Spawns `sleep <secs>` as a direct child.
    pub(crate) fn sleep(&mut self, secs: &str) -> Proc {
        let mut command = Command::new("sleep");
        command.arg(secs).stdin(Stdio::null());
        self.spawn(&mut command).proc
    }

    /// Spawns a `tokio::process::Child` (with `kill_on_drop`), pinned too.
    pub(crate) fn spawn_tokio(
        &mut self,
        command: &mut tokio::process::Command,
    ) -> (Proc, tokio::process::Child) {
        let child = command
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tokio fixture");
        let pid = i32::try_from(child.id().expect("fresh child has a pid")).expect("pid fits i32");
        (self.pin(pid), child)
    }

    /// Takes a direct child's `Child` out of the guard, e.g. to hand it to
    /// the monitor. The pidfd stays with the guard, so it is still killed.
    pub(crate) fn take_child(&mut self, proc: &Proc) -> Child {
        let index = self
            .children
            .iter()
            .position(|c| c.id() == proc.pid.unsigned_abs())
            .unwrap_or_else(|| panic!("{} is not a child held by the guard", proc.pid));
        self.children.swap_remove(index)
    }

    /// A direct child's `Child`, still held by the guard.
    pub(crate) fn child_mut(&mut self, proc: &Proc) -> &mut Child {
        self.children
            .iter_mut()
            .find(|c| c.id() == proc.pid.unsigned_abs())
            .unwrap_or_else(|| panic!("{} is not a child held by the guard", proc.pid))
    }

    /// Kills a direct child through its pidfd and reaps it through its own
    /// `Child` (so it does not linger as a zombie).
    pub(crate) fn kill_and_reap(&mut self, proc: &Proc) -> std::process::ExitStatus {
        proc.kill();
        self.child_mut(proc).wait().expect("wait for killed child")
    }

    /// Starts `sh -c script` (stdin and stdout piped) and reads `kids` pids
    /// from its stdout, one a line (the script's `echo $!`s), within 10 s.
    /// Each is pinned and checked to be a child of the shell.
    pub(crate) fn spawn_shell(&mut self, script: &str, kids: usize) -> Shell {
        self.spawn_shell_with(&mut Command::new("sh"), script, kids)
    }

    /// [`Procs::spawn_shell`] with a `sh` command set up by the caller
    /// (another uid, another process group).
    pub(crate) fn spawn_shell_with(
        &mut self,
        command: &mut Command,
        script: &str,
        kids: usize,
    ) -> Shell {
        command
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let spawned = self.spawn(command);
        let stdout = spawned.stdout.expect("piped stdout");
        let (lines, reader) = read_lines(stdout, kids, SOON);
        let kids = lines
            .iter()
            .map(|line| {
                let pid = line
                    .trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("fixture printed {line:?}, not a pid: {e}"));
                self.pin_child_of(pid, &spawned.proc)
            })
            .collect();
        Shell {
            proc: spawned.proc,
            kids,
            stdin: spawned.stdin,
            _stdout: reader,
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for proc in &self.pinned {
            // ESRCH (already gone, or reaped and the pid reused) is fine:
            // the pidfd never reaches another process.
            let _ = rustix::process::pidfd_send_signal(&*proc.pidfd, Signal::KILL);
        }
        for child in &mut self.children {
            // Already killed through its pidfd above; this only reaps it.
            let _ = child.wait();
        }
        for proc in &self.pinned {
            proc.reap_leftover();
        }
    }
}

/// `sh -c 'read x; exit <code>'` with stdin piped: it exits with `code`
/// only once its stdin is closed, so a test can pin it, or hand it to the
/// monitor, before it can exit.
pub(crate) fn exit_on_eof(code: i32) -> Command {
    let mut command = Command::new("sh");
    command
        .args(["-c", &format!("read x; exit {code}")])
        .stdin(Stdio::piped());
    command
}

/// Reads `n` lines on a helper thread, so a broken fixture fails the test
/// after `timeout` instead of hanging it.
fn read_lines(
    stdout: ChildStdout,
    n: usize,
    timeout: Duration,
) -> (Vec<String>, BufReader<ChildStdout>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::with_capacity(n);
        for _ in 0..n {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => lines.push(line),
            }
        }
        let _ = tx.send((lines, reader));
    });
    let (lines, reader) = rx
        .recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("fixture did not print {n} pids within {timeout:?}"));
    assert_eq!(lines.len(), n, "fixture printed only {lines:?}");
    (lines, reader)
}
