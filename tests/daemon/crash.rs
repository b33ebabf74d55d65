//! The crash test: a program spawns workers through its own monitor
//! (`monitor-core`), each worker starting two children, registers every
//! worker but one with the daemon through the client crate
//! (`track_unit`), then SIGKILLs itself. The daemon ends each registered
//! worker and both its children; the unregistered worker and its
//! children, the negative control, are left running (and killed by the
//! test's guard).
//!
//! The program is this test binary, re-run with [`APP_VAR`] set: its own
//! process, so its SIGKILL takes nothing else with it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use monitor_core::{Containment, Event, Monitor, OrphanAction};
use pidguard_client::{Client, TrackOptions};

use crate::client::events_until;
use crate::common::{Proc, Procs, SOON, wait_until};
use crate::fixture::{Daemon, TempDir};

const THIS_TEST: &str = "crash::a_crashed_programs_registered_workers_and_their_children_are_ended";
/// Set in the re-run that plays the program: the daemon's socket.
const APP_VAR: &str = "PIDGUARD_TEST_CRASH_APP";
/// Workers the program registers with the daemon.
const REGISTERED: usize = 3;
/// Workers it does not register: the negative control.
const UNREGISTERED: usize = 1;
/// Each worker: two children, their pids on stdout, then wait for them.
const WORKER: &str = "sleep 600 & echo $!; sleep 600 & echo $!; wait";

/// One worker as the program reported it, pinned by the test.
struct Worker {
    registered: bool,
    worker: Proc,
    children: Vec<Proc>,
}

impl Worker {
    fn all(&self) -> impl Iterator<Item = &Proc> {
        std::iter::once(&self.worker).chain(&self.children)
    }
}

#[tokio::test]
async fn a_crashed_programs_registered_workers_and_their_children_are_ended() {
    if let Ok(socket) = std::env::var(APP_VAR) {
        return app(&socket).await;
    }
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    // Root sees every event; a user sees those of its own registrations,
    // which are all of these.
    let mut events = Client::connect(&daemon.socket)
        .await
        .expect("connect")
        .events()
        .await
        .expect("events");
    let mut procs = Procs::new();
    let mut app = procs.spawn(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", THIS_TEST, "--nocapture", "--test-threads=1"])
            .env(APP_VAR, &daemon.socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let lines = read_lines(app.stdout.take().unwrap());
    let mut workers = Vec::new();
    loop {
        let line = lines
            .recv_timeout(SOON * 3)
            .expect("the program reports its workers, then READY");
        if line.ends_with("READY") {
            break;
        }
        // With --nocapture, the first line printed follows libtest's
        // "test NAME ... " on the same line.
        let Some((_, report)) = line.split_once("WORKER ") else {
            continue;
        };
        let fields: Vec<&str> = report.split(' ').collect();
        let pid = |i: usize| -> i32 { fields[i].parse().unwrap() };
        let worker = procs.pin_child_of(pid(1), &app.proc);
        let children = vec![
            procs.pin_child_of(pid(2), &worker),
            procs.pin_child_of(pid(3), &worker),
        ];
        workers.push(Worker {
            registered: fields[0] == "registered",
            worker,
            children,
        });
    }
    assert_eq!(workers.len(), REGISTERED + UNREGISTERED);

    // The crash.
    app.stdin.take().unwrap().write_all(b"crash\n").unwrap();
    let status = procs.child_mut(&app.proc).wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the program SIGKILLed itself ({status})"
    );

    let (registered, control): (Vec<&Worker>, Vec<&Worker>) =
        workers.iter().partition(|w| w.registered);
    wait_until(
        SOON * 3,
        "each registered worker and its children are ended",
        || registered.iter().flat_map(|w| w.all()).all(Proc::is_dead),
    )
    .await;
    // By the daemon: each worker orphaned by the program's death.
    events_until(
        &mut events,
        "an orphaned event per registered worker",
        |seen| {
            registered.iter().all(|w| {
                seen.iter().any(|event| {
                    matches!(event, Event::Orphaned { id, parent, action: OrphanAction::Terminate }
                    if *id == w.worker.id() && *parent == app.proc.id())
                })
            })
        },
    )
    .await;
    let mut client = Client::connect(&daemon.socket).await.expect("connect");
    let deadline = tokio::time::Instant::now() + SOON;
    while !client.status().await.expect("status").tracked.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "registrations left after every unit ended"
        );
        tokio::time::sleep(crate::common::POLL).await;
    }
    // The negative control: nothing ended the unregistered worker's
    // processes; the daemon never knew them. The guard kills them.
    for worker in control {
        for proc in worker.all() {
            assert!(
                proc.is_running(),
                "{} of the unregistered worker survives the crash",
                proc.pid
            );
        }
    }
}

/// The lines `stdout` prints, as they come.
fn read_lines(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The program: a monitor of its own spawns the workers (it would reap
/// them and report their statuses), the daemon is the crash net. Waits
/// for a line on stdin, then dies of SIGKILL: no destructor, no shutdown,
/// no word to the daemon.
async fn app(socket: &str) {
    // Scanning, not cgroups: a SIGKILLed program could not remove the
    // leaves it made, and the daemon's units are what is tested here.
    let monitor = Monitor::builder()
        .containment(Containment::Scan)
        .spawn()
        .expect("the program's monitor");
    let handle = monitor.handle();
    let mut client = Client::connect(socket).await.expect("connect");
    let mut workers = Vec::new();
    for index in 0..REGISTERED + UNREGISTERED {
        let (reader, writer) = std::io::pipe().expect("pipe");
        let mut command = Command::new("sh");
        command
            .args(["-c", WORKER])
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::null());
        let worker = handle.spawn(command).await.expect("spawn a worker");
        let mut children = BufReader::new(reader).lines();
        let mut child = || children.next().expect("a child's pid").expect("read");
        let (first, second) = (child(), child());
        let id = worker.tracked().id;
        let registered = index < REGISTERED;
        if registered {
            client
                .track_unit(id, TrackOptions::new().grace(Duration::from_secs(1)))
                .await
                .expect("register the worker");
        }
        let kind = if registered {
            "registered"
        } else {
            "unregistered"
        };
        println!("WORKER {kind} {} {first} {second}", id.pid);
        workers.push(worker);
    }
    println!("READY");
    std::io::stdout().flush().expect("stdout");
    let mut word = String::new();
    let _ = std::io::stdin().read_line(&mut word);
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL)
        .expect("kill(getpid(), SIGKILL)");
    unreachable!("SIGKILL of this very process returned");
}
