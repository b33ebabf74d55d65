//! The few `/proc` reads the binary needs besides the library's: a
//! process's start time, whether it is stopped, its command name, and the
//! children of a process.

use std::fs;
use std::str::SplitAsciiWhitespace;

/// The fields of a `/proc/<pid>/stat` text after the command name (field 2,
/// in parentheses, may hold anything), starting at field 3.
fn after_command(text: &str) -> Option<SplitAsciiWhitespace<'_>> {
    text.rsplit_once(')')
        .map(|(_, rest)| rest.split_ascii_whitespace())
}

fn read_stat(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

/// Field 22 of `/proc/<pid>/stat` (clock ticks since boot), as the monitor
/// records it in `ProcessId::start_time`.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    // Field 22 is the 20th after the command name.
    after_command(&read_stat(pid)?)?.nth(19)?.parse().ok()
}

/// Whether `id` is stopped (state `T`, e.g. by SIGTSTP): the stat read
/// counts only if it shows `id`'s start time, so a reused pid reads false.
pub(crate) fn is_stopped(id: monitor_core::ProcessId) -> bool {
    let Some(text) = read_stat(id.pid) else {
        return false;
    };
    let Some(mut fields) = after_command(&text) else {
        return false;
    };
    // Field 3 is the state; field 22 is 19 further on.
    fields.next() == Some("T") && fields.nth(18).and_then(|f| f.parse().ok()) == Some(id.start_time)
}

/// The command name (`/proc/<pid>/comm`), or `"?"` once it is gone.
pub(crate) fn command_name(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|name| name.trim_end().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// The children of `pid` (`"self"` for this process), from every thread's
/// `children` list (each thread's children are listed separately).
pub(crate) fn children(pid: &str) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        let Ok(list) = fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        children.extend(
            list.split_ascii_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = i32::try_from(child.id()).expect("pid fits");
        assert!(children("self").contains(&pid));
        // The kernel renames the child at exec, which may finish just after
        // spawn() returns: wait for it, up to a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while command_name(pid) != "sleep" && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(command_name(pid), "sleep");
        assert!(start_time(pid).is_some());
        child.kill().expect("kill sleep");
        child.wait().expect("reap sleep");
        assert_eq!(start_time(pid), None);
    }
}
