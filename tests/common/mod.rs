//! Shared fixtures for the real-process integration tests.
//!
//! - [`Procs`]: a guard that owns every process a test starts and
//!   `SIGKILL`s it on drop through a pidfd opened when the process was
//!   spawned or discovered (so a reused pid is never signalled), then waits
//!   for its direct `std::process::Child`ren.
//! - [`Proc`]: one process pinned by such a pidfd, with exact liveness
//!   checks (a zombie counts as dead: PID 1 is a slow reaper here).
//! - [`Procs::spawn_shell`]: `sh -c '... & echo $!; ...'` double-fork
//!   fixtures whose grandchild pids are read from stdout.
//! - [`wait_until`] / [`wait_until_blocking`]: poll a condition up to a
//!   deadline, then panic; never a fixed sleep.
//! - [`EventLog`]: timestamps every event of a monitor as it arrives and
//!   waits for a specific one with a deadline.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monitor_core::{Event, Monitor, MonitorHandle, ProcessId, Status};
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};
use tokio::sync::{broadcast, mpsc};

/// How often the wait helpers poll.
pub(crate) const POLL: Duration = Duration::from_millis(5);

/// Generous bound for things that should take milliseconds.
pub(crate) const SOON: Duration = Duration::from_secs(10);

/// The scan interval of [`fast_monitor`].
pub(crate) const FAST_SCAN: Duration = Duration::from_millis(50);

/// A monitor scanning every [`FAST_SCAN`] with this grace period, its
/// handle, and a log of its events from the start. Tracing is set up too.
pub(crate) async fn fast_monitor(grace: Duration) -> (Monitor, MonitorHandle, EventLog) {
    init_tracing();
    let monitor = Monitor::builder()
        .check_interval(FAST_SCAN)
        .grace(grace)
        .spawn()
        .expect("monitor starts");
    let handle = monitor.handle();
    let log = EventLog::subscribe(&handle).await;
    (monitor, handle, log)
}

/// Logs the library's tracing output when `RUST_LOG` is set.
pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

// ---------------------------------------------------------------------------
// /proc

/// The fields of `/proc/<pid>/stat` the tests look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// `R`, `S`, `Z`, ...
    pub(crate) state: char,
    /// The parent's pid.
    pub(crate) ppid: i32,
    /// Start time in clock ticks since boot (field 22).
    pub(crate) start_time: u64,
}

impl ProcStat {
    /// Exited (zombie or dead), waiting to be reaped or being reaped.
    pub(crate) fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Reads `/proc/<pid>/stat`; `None` when there is no such process.
pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // `fields[0]` is field 3 (state), so field n is `fields[n - 3]`.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The pid a pidfd refers to, from `/proc/self/fdinfo` (`-1` once reaped).
fn pidfd_target(fd: &OwnedFd) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("Pid:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// `/proc/sys/kernel/pid_max`.
pub(crate) fn pid_max() -> i32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("read /proc/sys/kernel/pid_max")
        .trim()
        .parse()
        .expect("pid_max is a number")
}

/// This test process's pid.
pub(crate) fn my_pid() -> i32 {
    i32::try_from(std::process::id()).expect("pid fits i32")
}

// ---------------------------------------------------------------------------
// Processes

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
        let mut command = Command::new("sh");
        command
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let spawned = self.spawn(&mut command);
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

// ---------------------------------------------------------------------------
// Waiting

/// Polls `condition` every few milliseconds until it holds; panics naming
/// `what` after `timeout`. Returns how long it took.
pub(crate) async fn wait_until(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if condition() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_until`] for plain threads.
pub(crate) fn wait_until_blocking(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if condition() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Polls `status()` until `condition` holds; panics after `timeout`.
pub(crate) async fn wait_for_status(
    handle: &MonitorHandle,
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut(&Status) -> bool,
) -> Status {
    let start = Instant::now();
    loop {
        let status = tokio::time::timeout(timeout, handle.status())
            .await
            .unwrap_or_else(|_| panic!("status() hung for {timeout:?}"))
            .expect("status()");
        if condition(&status) {
            return status;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}; last status: {status:#?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the monitor has completed at least `more` scans beyond the
/// number it reports now.
pub(crate) async fn wait_for_more_scans(
    handle: &MonitorHandle,
    more: u64,
    timeout: Duration,
) -> Status {
    let base = handle.status().await.expect("status()").counters.scans;
    wait_for_status(
        handle,
        timeout,
        &format!("{more} more scans after {base}"),
        |s| s.counters.scans >= base + more,
    )
    .await
}

// ---------------------------------------------------------------------------
// Events

/// The process an event is about (`Reaped` only names a pid).
pub(crate) fn event_id(event: &Event) -> Option<ProcessId> {
    match event {
        Event::Tracked { id, .. }
        | Event::Untracked { id }
        | Event::Exited { id, .. }
        | Event::Orphaned { id, .. }
        | Event::Signalled { id, .. }
        | Event::Killed { id }
        | Event::Adopted { id }
        | Event::UnownedZombie { id } => Some(*id),
        Event::Error { id, .. } => *id,
        _ => None,
    }
}

/// The pid an event is about.
pub(crate) fn event_pid(event: &Event) -> Option<i32> {
    match event {
        Event::Reaped { pid, .. } => Some(*pid),
        other => event_id(other).map(|id| id.pid),
    }
}

/// Waits for the next event matching `pred` on a raw receiver; panics after
/// `timeout`, if events were lost, or if the monitor closed the stream.
pub(crate) async fn recv_matching(
    rx: &mut broadcast::Receiver<Event>,
    timeout: Duration,
    what: &str,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("no {what} event within {timeout:?}"),
            Ok(Err(error)) => panic!("event stream broke while waiting for {what}: {error}"),
            Ok(Ok(event)) if pred(&event) => return event,
            Ok(Ok(_)) => {}
        }
    }
}

enum Stamped {
    Event(Instant, Event),
    Lagged(u64),
}

/// Every event of one monitor, timestamped by a task that does nothing but
/// receive (so a timestamp is within scheduling noise of the emission).
#[derive(Debug)]
pub(crate) struct EventLog {
    rx: mpsc::UnboundedReceiver<Stamped>,
    seen: Vec<(Instant, Event)>,
    lost: u64,
}

impl std::fmt::Debug for Stamped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Event(at, event) => write!(f, "{at:?} {event:?}"),
            Self::Lagged(n) => write!(f, "lagged {n}"),
        }
    }
}

impl EventLog {
    /// Subscribes to `handle` and starts recording.
    pub(crate) async fn subscribe(handle: &MonitorHandle) -> Self {
        Self::new(handle.subscribe().await.expect("subscribe"))
    }

    /// Records everything `rx` receives from now on.
    pub(crate) fn new(mut rx: broadcast::Receiver<Event>) -> Self {
        let (tx, out) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let item = match rx.recv().await {
                    Ok(event) => Stamped::Event(Instant::now(), event),
                    Err(broadcast::error::RecvError::Lagged(n)) => Stamped::Lagged(n),
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if tx.send(item).is_err() {
                    break;
                }
            }
        });
        Self {
            rx: out,
            seen: Vec::new(),
            lost: 0,
        }
    }

    fn push(&mut self, item: Stamped) {
        match item {
            Stamped::Event(at, event) => self.seen.push((at, event)),
            Stamped::Lagged(n) => self.lost += n,
        }
    }

    /// Takes in whatever has arrived.
    fn pump(&mut self) {
        while let Ok(item) = self.rx.try_recv() {
            self.push(item);
        }
    }

    fn assert_complete(&self) {
        assert_eq!(
            self.lost, 0,
            "the event log missed {} events (lagged); negative checks would lie",
            self.lost
        );
    }

    /// The first recorded event matching `pred` (from the start of the
    /// log), waiting up to `timeout` for one. Panics naming `what`.
    pub(crate) async fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Event) -> bool,
    ) -> (Instant, Event) {
        let deadline = tokio::time::Instant::now() + timeout;
        self.pump();
        let mut checked = 0;
        loop {
            if let Some(found) = self.seen[checked..].iter().find(|(_, e)| pred(e)) {
                return found.clone();
            }
            checked = self.seen.len();
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(item)) => self.push(item),
                Ok(None) => panic!("the monitor closed its event stream before {what}"),
                Err(_) => panic!(
                    "no {what} event within {timeout:?}; events so far: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Every recorded event matching `pred` so far.
    pub(crate) fn matching(&mut self, pred: impl Fn(&Event) -> bool) -> Vec<(Instant, Event)> {
        self.pump();
        self.assert_complete();
        self.seen.iter().filter(|(_, e)| pred(e)).cloned().collect()
    }

    /// Panics if any recorded event so far matches `pred`.
    pub(crate) fn assert_none(&mut self, what: &str, pred: impl Fn(&Event) -> bool) {
        let found = self.matching(pred);
        assert!(found.is_empty(), "unexpected {what}: {found:#?}");
    }

    /// Every event recorded so far about `id`.
    pub(crate) fn about(&mut self, id: ProcessId) -> Vec<Event> {
        self.matching(|e| event_id(e) == Some(id))
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }
}
