//! Reaping: orphans that come to pidguard are reaped as they exit, in
//! bursts too, and nothing of CMD's is left once pidguard has exited.
//!
//! This test process makes itself a child subreaper (so this file is its
//! own test binary): whatever pidguard leaves behind when it exits comes
//! to this process and stays visible, instead of going to the machine's
//! init, which would reap it at some point and hide the leak. The same
//! property makes the negative control work: the fixture run without
//! pidguard leaves its orphans to this process, which does not reap them,
//! and the fixture's own check then fails.

mod common;
mod runner;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Procs, SOON, read_stat};
use runner::{Run, pidguard_run, sh_fixture};

/// Makes this test process a child subreaper (idempotent).
fn become_subreaper() {
    nix::sys::prctl::set_child_subreaper(true).expect("prctl(PR_SET_CHILD_SUBREAPER)");
}

/// The processes (zombies included) in process group `group`, from /proc.
fn members_of_group(group: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Field 5 (pgrp), counted after the parenthesised command name.
        let pgrp = text
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_ascii_whitespace().nth(2))
            .and_then(|field| field.parse::<i32>().ok());
        if pgrp == Some(group) {
            members.push(pid);
        }
    }
    members
}

/// The pid the fixture reports on its first line (`pid <n>`); the fixture
/// leads its own process group, so this is also the group's id.
fn fixture_pid(run: &mut Run) -> i32 {
    let line = run.expect_line(SOON, "pid <n>", |l| l.starts_with("pid "));
    line["pid ".len()..].trim().parse().expect("a pid")
}

/// 100 orphans exiting at random times within 2 s: the fixture (CMD) sees
/// every one of them reaped, and once pidguard has exited nothing of CMD's
/// process group is left anywhere, neither a zombie nor a live process.
#[test]
fn random_orphans_are_all_reaped_and_nothing_is_left() {
    become_subreaper();
    let mut procs = Procs::new();
    let mut run = Run::start(
        &mut procs,
        &mut pidguard_run(&[], &sh_fixture("orphans.sh", &["100", "2000", "20"])),
    );
    let group = fixture_pid(&mut run);
    let finished = run.finish(&mut procs, Duration::from_secs(30));
    assert_eq!(finished.code(), 0, "{finished:?}");
    assert_eq!(finished.stdout.last().map(String::as_str), Some("gone 100"));
    let left = members_of_group(group);
    assert!(left.is_empty(), "left behind by pidguard: {left:?}");
}

/// The negative control: the same fixture without pidguard. Its orphans
/// come to this process, which does not reap them: the fixture's check
/// fails (they stay zombies), and the group scan finds them. Both checks
/// above can therefore fail.
#[test]
fn without_pidguard_the_same_fixture_leaves_zombies() {
    become_subreaper();
    let mut procs = Procs::new();
    let mut command = Command::new("sh");
    command
        .arg(runner::fixture("orphans.sh"))
        .args(["100", "2000", "3"])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut run = Run::start(&mut procs, &mut command);
    let group = fixture_pid(&mut run);
    let finished = run.finish(&mut procs, Duration::from_secs(30));
    assert_eq!(finished.code(), 1, "{finished:?}");
    // "left N zombies=Z": an orphan whose sleep ends before its shell
    // exits may be reaped by that shell, so N is not always 100.
    let last = finished.stdout.last().cloned().unwrap_or_default();
    let zombies: u32 = last
        .strip_prefix("left ")
        .and_then(|rest| rest.rsplit_once("zombies="))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("not a `left N zombies=Z` line: {finished:?}"));
    assert!(zombies > 0, "{finished:?}");
    let zombies: Vec<i32> = members_of_group(group)
        .into_iter()
        .filter(|&pid| read_stat(pid).is_some_and(|s| s.exited() && s.ppid == common::my_pid()))
        .collect();
    assert!(!zombies.is_empty(), "the orphans did not stay zombies");
    // Clean up: they are this process's children now; reap each by pid.
    for pid in members_of_group(group) {
        procs.pin(pid).kill();
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    }
}

/// A burst of 1,000 orphans exiting at once (they all read one pipe whose
/// last writer closes) is fully reaped while CMD is still running, and
/// nothing is left afterwards.
#[test]
fn a_burst_of_a_thousand_orphans_is_fully_reaped() {
    become_subreaper();
    let mut procs = Procs::new();
    let mut run = Run::start(
        &mut procs,
        &mut pidguard_run(&[], &sh_fixture("burst.sh", &["1000", "20"])),
    );
    let group = fixture_pid(&mut run);
    let finished = run.finish(&mut procs, Duration::from_secs(60));
    assert_eq!(finished.code(), 0, "{finished:?}");
    assert_eq!(
        finished.stdout.last().map(String::as_str),
        Some("gone 1000")
    );
    let left = members_of_group(group);
    assert!(left.is_empty(), "left behind by pidguard: {left:?}");
}
