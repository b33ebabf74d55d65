//! The exit codes of `pidguard run`, the way shells and container runtimes
//! read them.

use monitor_core::ExitStatus;

/// pidguard itself failed: a usage error (unknown option, bad `--grace`,
/// no command), or it could not set itself up. 125, as `env`, `docker run`
/// and `podman run` use, so it never collides with the codes below.
pub(crate) const OWN_FAILURE: u8 = 125;

/// CMD exists but cannot be executed (no execute permission, a directory,
/// not an executable format).
pub(crate) const CANNOT_EXECUTE: u8 = 126;

/// CMD was not found.
pub(crate) const NOT_FOUND: u8 = 127;

/// pidguard's exit code for CMD's exit status: its exit code, or 128 plus
/// the number of the signal that killed it (what a shell reports).
pub(crate) fn of_status(status: ExitStatus) -> u8 {
    match status {
        // An exit code is already 0..=255; anything else came from a raw
        // status that was not a real exit and is reported as a failure.
        ExitStatus::Exited(code) => u8::try_from(code).unwrap_or(1),
        ExitStatus::Signaled { signal, .. } => u8::try_from(128 + signal).unwrap_or(255),
    }
}

/// pidguard's exit code for CMD's `status`, 0 when that code is one of
/// `success` (`--remap-exit`, tini's `-e`): the code a shell would report,
/// 128 + N for a signal included.
pub(crate) fn remapped(status: ExitStatus, success: &[u8]) -> u8 {
    match of_status(status) {
        code if success.contains(&code) => 0,
        code => code,
    }
}

/// pidguard's exit code when CMD could not be started.
pub(crate) fn of_spawn_error(error: &std::io::Error) -> u8 {
    match error.kind() {
        std::io::ErrorKind::NotFound => NOT_FOUND,
        _ => CANNOT_EXECUTE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_pass_through_and_signals_add_128() {
        assert_eq!(of_status(ExitStatus::Exited(0)), 0);
        assert_eq!(of_status(ExitStatus::Exited(255)), 255);
        let killed = |signal| ExitStatus::Signaled {
            signal,
            core_dumped: false,
        };
        assert_eq!(of_status(killed(15)), 143);
        assert_eq!(of_status(killed(9)), 137);
    }

    #[test]
    fn remapped_codes_become_zero_and_others_pass() {
        let killed = ExitStatus::Signaled {
            signal: 15,
            core_dumped: false,
        };
        assert_eq!(remapped(ExitStatus::Exited(3), &[3]), 0);
        assert_eq!(remapped(ExitStatus::Exited(4), &[3]), 4);
        assert_eq!(remapped(killed, &[143]), 0);
        assert_eq!(remapped(killed, &[]), 143);
    }

    #[test]
    fn spawn_errors_split_into_not_found_and_cannot_execute() {
        let not_found = std::io::Error::from_raw_os_error(libc::ENOENT);
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        let format = std::io::Error::from_raw_os_error(libc::ENOEXEC);
        assert_eq!(of_spawn_error(&not_found), NOT_FOUND);
        assert_eq!(of_spawn_error(&denied), CANNOT_EXECUTE);
        assert_eq!(of_spawn_error(&format), CANNOT_EXECUTE);
    }
}
