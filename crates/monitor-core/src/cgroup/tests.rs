//! cgroup containment against the real kernel: a leaf per test in a
//! subtree the guard removes (killing what is left) even on failure.
//! Ending a leaf's processes is tested in `kill_tests`.
//! Without root and a cgroup v2 hierarchy these skip; under `CI=true` they
//! fail instead.

// Timings are printed for the report; they are never asserted.
#![allow(clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::*;
use crate::requires::{self, ChildGuard, Pinned, wait_until};

pub(super) const SOON: Duration = Duration::from_secs(10);

pub(super) fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

/// The cgroup v2 path of `pid`, from `/proc/<pid>/cgroup`.
fn cgroup_of(pid: i32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    mount::own_cgroup(&text).expect("a 0:: line").to_owned()
}

/// A spawned child runs in its leaf from its first instruction, and so
/// does what it forks; the leaf stays populated while the grandchild
/// (reparented, out of the tree) lives, and the watch fires when it dies.
#[tokio::test]
async fn a_spawned_tree_lives_in_its_leaf_and_the_watch_fires_when_it_empties() {
    let Some(subtree) = requires::cgroup() else {
        return;
    };
    let mut leaf = subtree.create_leaf().expect("create a leaf");
    // The child starts a background sleep (printing its pid), then waits
    // for its stdin to close and exits; the sleep stays behind.
    let mut command = sh("sleep 30 & echo $!; read _");
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    leaf.prepare_spawn(&mut command).expect("prepare the spawn");
    let mut child = ChildGuard(command.spawn().expect("spawn into the leaf"));
    let root = child.0.id() as i32;
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("the sleep's pid");
    let sleep = Pinned::new(line.trim().parse().expect("a pid"));

    let relative = leaf
        .path()
        .strip_prefix(mount::discover().expect("discovered before"))
        .expect("the leaf is below our cgroup");
    assert_eq!(
        Path::new(&cgroup_of(root))
            .strip_prefix("/")
            .expect("absolute"),
        relative
    );
    assert_eq!(cgroup_of(sleep.pid), cgroup_of(root));
    let mut procs = leaf.procs().expect("cgroup.procs");
    procs.sort_unstable();
    let mut expected = vec![root, sleep.pid];
    expected.sort_unstable();
    assert_eq!(procs, expected);

    let (ready, mut keys) = mpsc::unbounded_channel();
    let mut watch = leaf.watch(7u32, &ready).expect("watch cgroup.events");
    assert!(watch.check().expect("read").populated);

    // The root exits: its tree does not, so the leaf stays populated.
    drop(child.0.stdin.take());
    child.0.wait().expect("the root exits");
    wait_until(SOON, "only the sleep left", || {
        leaf.procs().expect("procs") == vec![sleep.pid]
    });
    while keys.try_recv().is_ok() {}
    assert!(watch.check().expect("read").populated);

    // The last member dies: a key arrives, and the check says empty.
    let killed = Instant::now();
    rustix::process::pidfd_send_signal(&sleep.fd, rustix::process::Signal::KILL)
        .expect("kill the sleep");
    let empty = loop {
        let key = tokio::time::timeout(SOON, keys.recv())
            .await
            .expect("a key within 10 s of the kill")
            .expect("the sender lives");
        assert_eq!(key, 7);
        let events = watch.check().expect("read");
        if !events.populated {
            break killed.elapsed();
        }
    };
    eprintln!("kill of the last member -> `populated 0` key: {empty:?}");
    leaf.remove().expect("an empty leaf is removed");
}

/// How soon `populated 0` follows the death of a leaf's last process (our
/// child, left unreaped while measured): printed for the report. The
/// kernel sends at most one change notice per file every 10 ms (a later
/// one waits for the end of that window), so the kill comes right after
/// the spawn's notice in one series and 50 ms later in the other.
#[tokio::test]
async fn populated_latency() {
    let Some(subtree) = requires::cgroup() else {
        return;
    };
    for pause in [Duration::ZERO, Duration::from_millis(50)] {
        populated_latency_after(&subtree, pause).await;
    }
}

async fn populated_latency_after(subtree: &Subtree, pause: Duration) {
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let mut leaf = subtree.create_leaf().expect("leaf");
        let mut command = Command::new("sleep");
        command.arg("30");
        leaf.prepare_spawn(&mut command).expect("prepare");
        let mut child = ChildGuard(command.spawn().expect("spawn"));
        let (ready, mut keys) = mpsc::unbounded_channel();
        let mut watch = leaf.watch((), &ready).expect("watch");
        assert!(watch.check().expect("read").populated);
        let pinned = Pinned::new(child.0.id() as i32);
        // A measurement's spacing, not a wait for a condition.
        tokio::time::sleep(pause).await;
        let killed = Instant::now();
        rustix::process::pidfd_send_signal(&pinned.fd, rustix::process::Signal::KILL)
            .expect("kill");
        loop {
            tokio::time::timeout(SOON, keys.recv())
                .await
                .expect("a key")
                .expect("open");
            if !watch.check().expect("read").populated {
                break;
            }
        }
        latencies.push(killed.elapsed());
        // Still a zombie here: emptiness does not wait for the reap.
        assert!(child.0.try_wait().expect("try_wait").is_some());
        leaf.remove().expect("remove");
    }
    latencies.sort_unstable();
    eprintln!(
        "SIGKILL of a leaf's only process {pause:?} after its spawn -> `populated 0` key: \
         min {:?} p50 {:?} max {:?}",
        latencies[0],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

/// Emptiness before the watch exists is seen by its first check.
#[tokio::test]
async fn a_leaf_that_emptied_before_the_watch_reads_empty_at_once() {
    let Some(subtree) = requires::cgroup() else {
        return;
    };
    let leaf = subtree.create_leaf().expect("create a leaf");
    let mut command = Command::new("true");
    leaf.prepare_spawn(&mut command).expect("prepare");
    let status = command.status().expect("run true in the leaf");
    assert!(status.success());
    let (ready, _keys) = mpsc::unbounded_channel();
    let mut watch = leaf.watch((), &ready).expect("watch");
    assert!(!watch.check().expect("read").populated);
    assert!(
        leaf.usage()
            .expect("usage")
            .cpu_usage_usec
            .is_some_and(|usec| usec > 0),
        "cpu.stat counts the exited process"
    );
}

/// A spawn fails, naming the errno, when the child cannot join the leaf;
/// no process then runs outside it.
#[test]
fn a_spawn_into_a_removed_leaf_fails() {
    let Some(subtree) = requires::cgroup() else {
        return;
    };
    let leaf = subtree.create_leaf().expect("create a leaf");
    let mut command = Command::new("true");
    leaf.prepare_spawn(&mut command).expect("prepare");
    std::fs::remove_dir(leaf.path()).expect("rmdir behind its back");
    let error = command.spawn().expect_err("the child cannot join");
    eprintln!("spawn into a removed leaf: {error}");
}

#[tokio::test]
async fn usage_reads_what_this_kernel_keeps() {
    let Some(subtree) = requires::cgroup() else {
        return;
    };
    let leaf = subtree.create_leaf().expect("create a leaf");
    let mut command = sh("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done");
    leaf.prepare_spawn(&mut command).expect("prepare");
    assert!(command.status().expect("run").success());
    let usage = leaf.usage().expect("usage");
    eprintln!("usage of a 20000-iteration shell loop: {usage:?}");
    let cpu = usage
        .cpu_usage_usec
        .expect("cpu.stat exists in every cgroup v2");
    assert!(cpu > 0);
    assert!(usage.cpu_user_usec.is_some() && usage.cpu_system_usec.is_some());
    for (file, value) in [
        ("memory.current", usage.memory_current),
        ("memory.peak", usage.memory_peak),
        ("pids.current", usage.pids_current),
    ] {
        assert_eq!(leaf.path().join(file).exists(), value.is_some(), "{file}");
    }
}

#[test]
fn moving_an_exited_process_is_refused_naming_it() {
    let Some(subtree) = requires::cgroup() else {
        return;
    };
    let leaf = subtree.create_leaf().expect("create a leaf");
    let mut child = ChildGuard(Command::new("true").spawn().expect("spawn"));
    let pid = child.0.id() as i32;
    let pinned = Pinned::new(pid);
    child.0.wait().expect("reap");
    let error = leaf
        .move_process(pinned.fd.as_fd(), pid)
        .expect_err("it is gone");
    assert!(
        error
            .to_string()
            .contains(&format!("process {pid} exited before")),
        "{error}"
    );
    assert!(leaf.procs().expect("procs").is_empty());
}

/// Shutdown removes every leaf, then the subtree; a populated leaf makes
/// the removal fail naming it, and a second try after the kill succeeds.
#[test]
fn removing_the_subtree_removes_its_leaves_or_names_the_busy_one() {
    let Some(mut subtree) = requires::cgroup() else {
        return;
    };
    let idle = subtree.create_leaf().expect("leaf");
    std::mem::forget(idle); // never removed by itself
    let busy = subtree.create_leaf().expect("leaf");
    let mut command = Command::new("sleep");
    command.arg("30");
    busy.prepare_spawn(&mut command).expect("prepare");
    let sleeper = ChildGuard(command.spawn().expect("spawn"));
    let busy_path = busy.path().to_owned();

    let error = subtree.remove().expect_err("a populated leaf stays");
    assert!(
        error
            .to_string()
            .starts_with(&format!("rmdir {}: ", busy_path.display())),
        "{error}"
    );
    let entries: Vec<_> = std::fs::read_dir(subtree.path())
        .expect("the subtree stays")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    assert_eq!(entries, vec![busy_path.clone()], "the idle leaf went");

    drop(sleeper);
    wait_until(SOON, "the busy leaf to empty", || {
        !busy.events().expect("events").populated
    });
    std::mem::forget(busy);
    subtree.remove().expect("everything goes now");
    assert!(!subtree.path().exists());
}

/// A test that panics with a process running in its leaf (not its child:
/// a background `sleep` of a shell) leaves neither the process nor a
/// directory behind.
#[test]
fn a_panicking_test_leaves_nothing_behind() {
    let Some(probe) = requires::cgroup() else {
        return;
    };
    drop(probe);
    let (pinned_tx, pinned_rx) = std::sync::mpsc::channel();
    let outcome = std::panic::catch_unwind(|| {
        let subtree = requires::cgroup().expect("available a moment ago");
        let leaf = subtree.create_leaf().expect("leaf");
        let mut command = sh("sleep 30 & echo $!");
        command.stdout(Stdio::piped());
        leaf.prepare_spawn(&mut command).expect("prepare");
        let output = command.output().expect("run the shell");
        let pid: i32 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("a pid");
        let pinned = Pinned::new(pid);
        pinned_tx
            .send((
                pinned.fd.try_clone().expect("dup"),
                subtree.path().to_owned(),
            ))
            .expect("send");
        std::mem::forget(pinned); // only the subtree guard may kill it
        panic!("a test failing with its process still running");
    });
    assert!(outcome.is_err());
    let (pidfd, path) = pinned_rx.recv().expect("the closure got that far");
    let sleep = Pinned { pid: 0, fd: pidfd };
    assert!(sleep.exited(), "the guard killed the background sleep");
    assert!(!path.exists(), "{} left behind", path.display());
}

/// Discovery and creation fail cleanly for an unprivileged user, naming
/// the directory and the cause, and saying "unavailable".
#[test]
fn an_unprivileged_monitor_gets_a_clear_unavailable_error() {
    const ROLE: &str = "PIDGUARD_TEST_CGROUP_AS_NOBODY";
    if std::env::var_os(ROLE).is_some() {
        let hierarchy = Hierarchy::discover().expect("discovery needs no privilege");
        let error = hierarchy
            .create_subtree()
            .expect_err("nobody may not mkdir here");
        assert!(error.is_unavailable(), "{error}");
        let text = error.to_string();
        assert!(text.starts_with("mkdir "), "{text}");
        assert!(
            text.contains(&hierarchy.own_cgroup().display().to_string()),
            "{text}"
        );
        eprintln!("as nobody: {text}");
        return;
    }
    if !requires::root("root, to re-run this test as nobody") {
        return;
    }
    if requires::or_skip("a cgroup v2 hierarchy", Hierarchy::discover()).is_none() {
        return;
    }
    let output = requires::rerun(
        "cgroup::tests::an_unprivileged_monitor_gets_a_clear_unavailable_error",
        ROLE,
        &[],
        Some(requires::NOBODY),
    );
    assert!(output.contains("as nobody: mkdir "), "{output}");
}

/// Writing to a leaf's file that this kernel lacks is `ENOENT`, not a new
/// regular file in cgroupfs.
#[test]
fn writing_a_missing_cgroup_file_does_not_create_it() {
    let Some(subtree) = requires::cgroup() else {
        return;
    };
    let leaf = subtree.create_leaf().expect("leaf");
    let error = write_file(&leaf.path().join("no.such.file"), b"1").expect_err("missing");
    assert_eq!(error.source.kind(), std::io::ErrorKind::NotFound);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(leaf.path().join("cgroup.freeze"))
        .expect("open cgroup.freeze");
    assert!(
        file.write_all(b"bogus").is_err(),
        "the kernel checks values"
    );
}
