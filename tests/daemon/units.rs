//! The cross-user attack of the units issue, against a root daemon: an
//! unprivileged client (uid 65534) registers its own processes with
//! `target: group` and with `tree`, in a process group and a tree that
//! hold root processes, and their parents then die. The client's own
//! processes are terminated; root's are untouched, and an event and a log
//! line name each one refused.
//!
//! Setup, as root: `group_root` (root, `sleep`) leads a process group;
//! `group_parent` (uid 65534, `sh`) joins that group and starts
//! `group_member` (uid 65534, `sleep`), which inherits it. `tree_member`
//! is a root `sleep` forked by a shell that then drops to uid 65534 and
//! execs `tree_root` (so the user's process has a root child); the
//! registration names `tree_parent` (uid 65534, `sleep`) as its parent.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::{NOBODY, Proc, Procs, SOON, wait_until_blocking};
use crate::fixture::{Client, Daemon, TempDir, wait_event};

const THIS_TEST: &str =
    "units::an_unprivileged_registrant_never_reaches_root_processes_through_its_units";
/// Set in the unprivileged re-run: "socket group_member tree_root tree_parent".
const ROLE_VAR: &str = "PIDGUARD_TEST_UNIT_REGISTRANT";

fn as_nobody(command: &mut Command) -> &mut Command {
    command.uid(NOBODY).gid(NOBODY).stdin(Stdio::null())
}

#[test]
fn an_unprivileged_registrant_never_reaches_root_processes_through_its_units() {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        return unprivileged_side(&role);
    }
    let dir = TempDir::new(0o711);
    let daemon = Daemon::start_for_nobody(&dir);
    let mut procs = Procs::new();

    // The process group: led by root, joined by the user's shell.
    let group_root = procs
        .spawn(
            Command::new("sleep")
                .arg("300")
                .process_group(0)
                .stdin(Stdio::null()),
        )
        .proc;
    let group_shell = procs.spawn_shell_with(
        as_nobody(&mut Command::new("sh")).process_group(group_root.pid),
        "sleep 300 & echo $!; wait",
        1,
    );
    let group_member = group_shell.kid().clone();

    // The tree: the user's process with a root child.
    let tree_parent = procs
        .spawn(as_nobody(Command::new("sleep").arg("300")))
        .proc;
    let tree_shell = procs.spawn_shell(
        &format!(
            "sleep 300 & echo $!; exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups sleep 300"
        ),
        1,
    );
    let tree_member = tree_shell.kid().clone();
    let tree_root = tree_shell.proc.clone();
    wait_until_blocking(SOON, "the tree's root drops to the user", || {
        crate::common::read_stat(tree_root.pid).is_some()
            && owner(&tree_root) == Some(NOBODY)
            && comm(&tree_root).as_deref() == Some("sleep")
    });

    let mut root = daemon.client();
    let mut events = daemon.client();
    events.ok(json!({"request": "events"}));
    let role = format!(
        "{} {} {} {}",
        daemon.socket.display(),
        group_member.pid,
        tree_root.pid,
        tree_parent.pid
    );
    crate::common::rerun_as_nobody(THIS_TEST, ROLE_VAR, &role);

    // The tree's root child was refused when the unit was made.
    wait_event(&mut events, tree_member.pid, "refused", SOON);
    // The parents die: the user's processes are orphans.
    group_shell.proc.kill();
    tree_parent.kill();
    wait_event(&mut events, group_root.pid, "refused", SOON);
    wait_until_blocking(SOON, "the user's orphans are terminated", || {
        group_member.is_dead() && tree_root.is_dead()
    });
    assert!(
        group_root.is_running() && tree_member.is_running(),
        "a root process was harmed on an unprivileged user's request"
    );
    let status = root.ok(json!({"request": "status"}));
    let tracked = status["monitor"]["tracked"].as_array().unwrap();
    for pid in [group_root.pid, tree_member.pid] {
        assert!(
            tracked.iter().all(|t| t["id"]["pid"] != json!(pid)),
            "root's process {pid} is tracked for the user: {status}"
        );
    }
    let log = strip_ansi(&daemon.log());
    for pid in [group_root.pid, tree_member.pid] {
        let lines = log
            .lines()
            .filter(|line| {
                line.contains("refused: another user's process")
                    && line.contains(&format!(" pid={pid} "))
            })
            .count();
        assert_eq!(lines, 1, "one log line names the refused {pid}:\n{log}");
    }
}

/// As uid 65534: registers its own processes, each with a target that
/// reaches root's processes.
fn unprivileged_side(role: &str) {
    assert_eq!(rustix::process::geteuid().as_raw(), NOBODY);
    let mut parts = role.split(' ');
    let socket = std::path::Path::new(parts.next().unwrap());
    let mut pid = || parts.next().unwrap().parse::<i32>().unwrap();
    let (group_member, tree_root, tree_parent) = (pid(), pid(), pid());
    let mut client = Client::connect(socket);
    client.ok(json!({"request": "track", "pid": group_member, "target": "group", "grace": "1s"}));
    client.ok(json!({
        "request": "track",
        "pid": tree_root,
        "parent": tree_parent,
        "tree": true,
        "target": "tree",
        "grace": "1s"
    }));
}

/// The log without its colour codes.
fn strip_ansi(log: &str) -> String {
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, up to a final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

fn owner(proc: &Proc) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", proc.pid)).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn comm(proc: &Proc) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{}/comm", proc.pid))
        .ok()
        .map(|name| name.trim().to_owned())
}
