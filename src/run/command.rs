//! The `std::process::Command` for CMD: its own process group, the
//! terminal's foreground when pidguard had it, and the caller's signal
//! setup. Everything else (stdin, stdout, stderr, the environment, the
//! working directory) is inherited unchanged.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::caller::{self, CallerSignals};

/// Builds the command for `argv` (`argv[0]` is CMD, looked up in `PATH`).
///
/// CMD always leads a process group of its own: signals pidguard forwards
/// then reach it once, never twice (a signal sent to pidguard's group
/// would otherwise hit CMD directly and again through pidguard), and
/// `--signal-group` has a group to address. When pidguard owned the
/// terminal's foreground, CMD takes it, so job control and Ctrl-C work as
/// if CMD had been started by the shell directly.
pub(crate) fn build(argv: &[OsString], caller: CallerSignals, foreground: bool) -> Command {
    let (program, args) = argv
        .split_first()
        .expect("clap requires CMD (num_args = 1..)");
    let mut command = Command::new(program);
    command.args(args).process_group(0);
    // SAFETY: the closure runs in the forked child before exec; std has
    // already moved it into its new process group. It makes only
    // async-signal-safe calls (ioctl, getpgrp, signal, pthread_sigmask),
    // allocates nothing, and copies `caller` (plain sigsets) into itself.
    unsafe {
        command.pre_exec(move || {
            if foreground {
                // SIGTTOU is still blocked here (inherited from pidguard),
                // so a background group may take the foreground.
                caller::take_terminal_foreground();
            }
            caller.restore_in_child()
        });
    }
    command
}
