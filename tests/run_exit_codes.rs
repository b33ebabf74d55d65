//! `pidguard run` exits the way a shell would have: CMD's exit code, 128
//! plus the signal that killed CMD, 127 for a missing CMD, 126 for one that
//! cannot be executed, and 125 for its own usage errors. It stays quiet
//! meanwhile, and CMD gets pidguard's stdin, stdout and environment.

mod common;
mod runner;

use runner::{PIDGUARD, pidguard_run, run_to_end};

/// Exit codes pass through unchanged, the extremes included, and pidguard
/// writes nothing of its own by default.
#[test]
fn exit_codes_pass_through() {
    for code in [0, 1, 2, 77, 255] {
        let finished = run_to_end(&mut pidguard_run(
            &[],
            &["sh", "-c", &format!("exit {code}")],
        ));
        assert_eq!(finished.code(), code, "{finished:?}");
        assert_eq!(finished.stderr, "", "not quiet by default");
    }
}

/// CMD reads pidguard's stdin and sees its environment.
#[test]
fn stdin_and_environment_pass_through() {
    let script = r#"read -r line; echo "$line $PIDGUARD_TEST_VAR""#;
    let mut command = pidguard_run(&[], &["sh", "-c", script]);
    command
        .env("PIDGUARD_TEST_VAR", "from-the-caller")
        .stdin(std::process::Stdio::piped());
    let mut procs = common::Procs::new();
    let mut run = runner::Run::start(&mut procs, &mut command);
    {
        use std::io::Write;
        let mut stdin = run.stdin.take().expect("piped stdin");
        writeln!(stdin, "from-stdin").expect("write stdin");
    }
    let finished = run.finish(&mut procs, common::SOON);
    assert_eq!(finished.code(), 0, "{finished:?}");
    assert_eq!(finished.stdout, ["from-stdin from-the-caller"]);
}

/// CMD killed by a signal: 128 + its number (TERM 143, KILL 137, USR1 138).
/// CMD kills itself, so the signal's default action applies in CMD: this
/// also shows pidguard's own handlers did not leak into it.
#[test]
fn death_by_signal_gives_128_plus_the_signal() {
    for (signal, code) in [("TERM", 143), ("KILL", 137), ("USR1", 138)] {
        let script = format!("kill -{signal} $$; sleep 5");
        let finished = run_to_end(&mut pidguard_run(&[], &["sh", "-c", &script]));
        assert_eq!(finished.code(), code, "SIG{signal}: {finished:?}");
    }
}

/// A CMD that does not exist: 127, and the message names it.
#[test]
fn missing_command_gives_127() {
    let finished = run_to_end(&mut pidguard_run(&[], &["pidguard-test-no-such-command"]));
    assert_eq!(finished.code(), 127, "{finished:?}");
    assert!(
        finished.stderr.contains("pidguard-test-no-such-command"),
        "stderr does not name the command: {}",
        finished.stderr
    );
}

/// A CMD that exists but cannot be executed (no execute bit; a directory):
/// 126.
#[test]
fn non_executable_command_gives_126() {
    let dir = std::env::temp_dir().join(format!("pidguard-run-126-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let script = dir.join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write script");
    for cmd in [&script, &dir] {
        let finished = run_to_end(&mut pidguard_run(&[], &[cmd]));
        assert_eq!(finished.code(), 126, "{}: {finished:?}", cmd.display());
    }
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}

/// pidguard's own usage errors give 125 (distinct from every code CMD's
/// status maps to) with a message naming what was wrong, and CMD is never
/// started.
#[test]
fn usage_errors_give_125_and_name_the_problem() {
    let marker = std::env::temp_dir().join(format!("pidguard-run-125-{}", std::process::id()));
    let touch = format!("touch {}", marker.display());
    let cases: [(&[&str], &str); 3] = [
        (&["--grace", "soon", "--", "sh", "-c", &touch], "--grace"),
        (
            &["--no-such-option", "--", "sh", "-c", &touch],
            "--no-such-option",
        ),
        (&[], "<CMD>"),
    ];
    for (args, named) in cases {
        let mut command = std::process::Command::new(PIDGUARD);
        command
            .arg("run")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let finished = run_to_end(&mut command);
        assert_eq!(finished.code(), 125, "{args:?}: {finished:?}");
        assert!(
            finished.stderr.contains(named),
            "{args:?}: stderr does not name {named}: {}",
            finished.stderr
        );
    }
    assert!(!marker.exists(), "CMD ran despite a usage error");
}

/// `--help` and `--version` succeed and print to stdout.
#[test]
fn help_and_version() {
    let version = run_to_end(
        std::process::Command::new(PIDGUARD)
            .arg("--version")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    assert_eq!(version.code(), 0);
    assert_eq!(
        version.stdout,
        [format!("pidguard {}", env!("CARGO_PKG_VERSION"))]
    );
    let help = run_to_end(
        std::process::Command::new(PIDGUARD)
            .args(["run", "--help"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    assert_eq!(help.code(), 0);
    let text = help.stdout.join("\n");
    for option in ["--grace", "--signal-group", "--leave-orphans", "--verbose"] {
        assert!(text.contains(option), "help lacks {option}: {text}");
    }
}

/// `RUST_LOG` replaces the quiet default: with `pidguard=info` and no
/// `-v`, CMD's start and exit are logged (and only to stderr).
#[test]
fn rust_log_overrides_the_default() {
    let mut command = pidguard_run(&[], &["sh", "-c", "echo out"]);
    command.env("RUST_LOG", "pidguard=info");
    let finished = run_to_end(&mut command);
    assert_eq!(finished.code(), 0, "{finished:?}");
    assert_eq!(finished.stdout, ["out"]);
    for line in ["command started", "command exited"] {
        assert!(finished.stderr.contains(line), "{}", finished.stderr);
    }
}

/// With `-vv`, every child pidguard reaps is logged with its command name
/// (read from the zombie before it is reaped): here an orphaned `sleep`
/// that CMD's subshell left behind.
#[test]
fn verbose_logs_name_each_reaped_child() {
    // CMD's subshell leaves a `sleep` behind, and CMD waits until pidguard
    // has reaped it, so it exits on its own (it is no leftover that a
    // SIGTERM could catch before its exec, still named `sh`).
    let script = "pid=$( (sleep 0 & echo $!) ); while [ -e /proc/$pid ]; do sleep 0.01; done";
    let mut command = pidguard_run(&["-vv"], &["sh", "-c", script]);
    command.env_remove("RUST_LOG");
    let finished = run_to_end(&mut command);
    assert_eq!(finished.code(), 0, "{finished:?}");
    let reaped_sleep = finished
        .stderr
        .lines()
        .any(|line| line.contains("reaped") && line.contains("command=\"sleep\""));
    assert!(reaped_sleep, "{}", finished.stderr);
}
