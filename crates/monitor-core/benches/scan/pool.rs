//! The tracked processes: long-lived `sleep 600`s started by a few `sh`s,
//! each pinned by a pidfd as soon as its pid is read, and killed through that
//! pidfd when the [`Pool`] is cleaned up or dropped (also on a panic).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

/// Sleeps started by each `sh` (the last one starts the rest). Their pids
/// (at most 6 bytes a line) fit in a pipe buffer, so reading one `sh` after
/// the other never holds up the ones still starting theirs.
pub(crate) const SLEEPS_PER_SH: usize = 5_000;
/// How long the `sh`s get to reap their killed sleeps and exit.
const SH_EXIT_WAIT: Duration = Duration::from_secs(20);

/// Long-lived `sleep 600` processes, children of a few `sh`s that wait for
/// them. Dropping the pool kills them all.
pub(crate) struct Pool {
    shells: Vec<Child>,
    /// Each `sleep`, pinned by a pidfd opened right after its pid was read
    /// (it cannot have been reaped and reused before: its `sh` reaps it only
    /// once it exits, and it sleeps for 10 minutes).
    procs: Vec<(i32, OwnedFd)>,
    cleaned: bool,
}

impl Pool {
    /// Starts `n` sleeps, [`SLEEPS_PER_SH`] per `sh`, and pins each one.
    pub(crate) fn spawn(n: usize) -> Self {
        // The guard exists before the first `sh` starts, so a failure below
        // still kills what was started.
        let mut pool = Self {
            shells: Vec::new(),
            procs: Vec::with_capacity(n),
            cleaned: false,
        };
        // Every `sh` starts at once; their pids are read one after the other.
        let mut outputs = Vec::new();
        for first in (0..n).step_by(SLEEPS_PER_SH) {
            let count = SLEEPS_PER_SH.min(n - first);
            // `exec >&-` closes the pipe once every pid is printed (the
            // sleeps never had it), so reading to the end reads exactly the
            // pids.
            let script = format!(
                "i=0; while [ $i -lt {count} ]; do sleep 600 </dev/null >/dev/null 2>&1 & echo $!; \
                 i=$((i+1)); done; exec >&-; wait"
            );
            let mut sh = Command::new("sh")
                .arg("-c")
                .arg(script)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn sh");
            outputs.push((sh.stdout.take().expect("piped stdout"), count));
            pool.shells.push(sh);
        }
        for (stdout, count) in outputs {
            let before = pool.procs.len();
            for line in BufReader::new(stdout).lines() {
                let line = line.expect("read a pid from sh");
                let pid: i32 = line.trim().parse().expect("sh prints pids");
                let raw = Pid::from_raw(pid).expect("positive pid");
                let pidfd = pidfd_open(raw, PidfdFlags::empty()).expect("pidfd_open(sleep)");
                pool.procs.push((pid, pidfd));
            }
            assert_eq!(pool.procs.len() - before, count, "sh started every sleep");
        }
        pool
    }

    /// How many `sh`s started the sleeps.
    pub(crate) fn shell_count(&self) -> usize {
        self.shells.len()
    }

    /// The pids of the first `n` sleeps.
    pub(crate) fn pids(&self, n: usize) -> Vec<i32> {
        self.procs.iter().take(n).map(|(pid, _)| *pid).collect()
    }

    /// `SIGKILL`s every sleep through its pidfd (and any child of an `sh`
    /// not pinned yet, after a failed start), then waits for the `sh`s,
    /// which reap them and exit. Returns a line for the report.
    pub(crate) fn clean_up(&mut self) -> String {
        if self.cleaned {
            return String::new();
        }
        self.cleaned = true;
        let mut killed = 0;
        for (_, pidfd) in &self.procs {
            if pidfd_send_signal(pidfd, Signal::KILL).is_ok() {
                killed += 1;
            }
        }
        let stray = self.kill_unpinned();
        let (on_their_own, failed) = self.wait_for_shells();
        let mut line = format!(
            "cleanup: SIGKILL sent to {killed} of {} sleeps (+{stray} unpinned); \
             {on_their_own} of {} sh exited on their own after reaping them",
            self.procs.len(),
            self.shells.len()
        );
        for failure in failed {
            let _ = write!(line, "; {failure}");
        }
        line
    }

    /// `SIGKILL`s each child of an `sh` that is not pinned yet (after a
    /// failed start, the sleeps whose pids were never read); returns how
    /// many.
    fn kill_unpinned(&self) -> usize {
        let mut stray = 0;
        for sh in &self.shells {
            let sh_pid = sh.id();
            let children =
                std::fs::read_to_string(format!("/proc/{sh_pid}/task/{sh_pid}/children"))
                    .unwrap_or_default();
            for pid in children
                .split_ascii_whitespace()
                .filter_map(|p| p.parse().ok())
            {
                if self.procs.iter().any(|(known, _)| *known == pid) {
                    continue;
                }
                // An unreaped child of sh keeps its pid, so this pins the right one.
                if let Some(fd) =
                    Pid::from_raw(pid).and_then(|raw| pidfd_open(raw, PidfdFlags::empty()).ok())
                    && pidfd_send_signal(&fd, Signal::KILL).is_ok()
                {
                    stray += 1;
                }
            }
        }
        stray
    }

    /// Waits up to [`SH_EXIT_WAIT`] for every `sh` (each one's `wait`
    /// returns once it has reaped every sleep), killing those still running
    /// then; returns how many exited successfully on their own, and a note
    /// for each that did not.
    fn wait_for_shells(&mut self) -> (usize, Vec<String>) {
        let deadline = Instant::now() + SH_EXIT_WAIT;
        let mut on_their_own = 0;
        let mut failed = Vec::new();
        for sh in &mut self.shells {
            loop {
                match sh.try_wait() {
                    Ok(Some(status)) if status.success() => on_their_own += 1,
                    Ok(Some(status)) => failed.push(format!("an sh exited with {status}")),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    Ok(None) | Err(_) => {
                        let _ = sh.kill();
                        let _ = sh.wait();
                        failed.push(format!(
                            "an sh did not finish within {SH_EXIT_WAIT:?} and was killed"
                        ));
                    }
                }
                break;
            }
        }
        (on_their_own, failed)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let report = self.clean_up();
        if !report.is_empty() {
            eprintln!("{report}");
        }
    }
}
