//! `pidguard run`'s own log lines: no escape codes into a pipe, colours on
//! a terminal unless `NO_COLOR` (or `--color never`) says otherwise, and
//! `--log-format json` lines that a JSON parser reads, with their fields.

mod common;
mod runner;

use std::process::Command;

use serde_json::{Value, json};

use runner::{PIDGUARD, pidguard_run, run_to_end};

/// A CMD that leaves one `sleep` behind, which pidguard then terminates
/// (and logs at `-v`).
const LEAVES_ONE: [&str; 3] = ["sh", "-c", "sleep 60 & exit 0"];

#[test]
fn logs_to_a_pipe_carry_no_escape_codes() {
    let finished = run_to_end(pidguard_run(&["-v"], &LEAVES_ONE).env_remove("NO_COLOR"));
    assert_eq!(finished.code(), 0, "{finished:?}");
    assert!(
        finished.stderr.contains("leftover signalled"),
        "{finished:?}"
    );
    assert!(!finished.stderr.contains('\u{1b}'), "{:?}", finished.stderr);
    // The control: asked for, they are there.
    let coloured = run_to_end(&mut pidguard_run(&["-v", "--color", "always"], &LEAVES_ONE));
    assert!(coloured.stderr.contains('\u{1b}'), "{coloured:?}");
    let by_env = run_to_end(pidguard_run(&["-v"], &LEAVES_ONE).env("PIDGUARD_RUN_COLOR", "always"));
    assert!(by_env.stderr.contains('\u{1b}'), "{by_env:?}");
}

/// `pidguard run -v -- true` on a terminal (`script` gives it one), with
/// `extra` options and `NO_COLOR` as given; returns what the terminal got.
fn on_a_terminal(extra: &str, no_color: Option<&str>) -> String {
    let mut command = Command::new("script");
    command
        .args(["-q", "-e", "-c"])
        .arg(format!("'{PIDGUARD}' run -v {extra} -- true"))
        .arg("/dev/null")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(value) = no_color {
        command.env("NO_COLOR", value);
    }
    let finished = run_to_end(&mut command);
    assert_eq!(finished.code(), 0, "{finished:?}");
    let text = finished.stdout.join("\n");
    assert!(text.contains("command started"), "{finished:?}");
    text
}

#[test]
fn a_terminal_gets_colours_unless_no_color_says_otherwise() {
    assert!(on_a_terminal("", None).contains('\u{1b}'));
    assert!(!on_a_terminal("", Some("1")).contains('\u{1b}'));
    // An empty NO_COLOR does not count (no-color.org).
    assert!(on_a_terminal("", Some("")).contains('\u{1b}'));
    assert!(!on_a_terminal("--color never", None).contains('\u{1b}'));
    // An explicit choice beats the variable.
    assert!(on_a_terminal("--color always", Some("1")).contains('\u{1b}'));
}

#[test]
fn json_log_lines_parse_with_their_fields() {
    for by_flag in [true, false] {
        let mut command = if by_flag {
            pidguard_run(&["-v", "--log-format", "json"], &LEAVES_ONE)
        } else {
            let mut command = pidguard_run(&["-v"], &LEAVES_ONE);
            command.env("PIDGUARD_RUN_LOG_FORMAT", "json");
            command
        };
        let finished = run_to_end(&mut command);
        assert_eq!(finished.code(), 0, "{finished:?}");
        let lines: Vec<Value> = finished
            .stderr
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
            })
            .collect();
        for line in &lines {
            assert!(line["timestamp"].is_string(), "{line}");
            assert!(line["level"].is_string(), "{line}");
            assert!(line["target"].is_string(), "{line}");
            assert!(line["fields"]["message"].is_string(), "{line}");
        }
        let find = |message: &str| {
            lines
                .iter()
                .find(|line| line["fields"]["message"] == json!(message))
                .unwrap_or_else(|| panic!("no {message:?} line: {}", finished.stderr))
        };
        let started = find("command started");
        assert!(started["fields"]["pid"].is_u64(), "{started}");
        assert_eq!(started["level"], json!("INFO"));
        let signalled = find("leftover signalled");
        assert!(signalled["fields"]["pid"].is_u64(), "{signalled}");
        // The name, or "?" when the leftover was gone before it was read.
        assert!(signalled["fields"]["name"].is_string(), "{signalled}");
        assert_eq!(
            signalled["fields"]["signal"],
            json!("SIGTERM"),
            "{signalled}"
        );
    }
}

#[test]
fn a_bad_log_format_is_named() {
    let finished = run_to_end(&mut pidguard_run(&["--log-format", "xml"], &["true"]));
    assert_eq!(finished.code(), 125, "{finished:?}");
    assert!(finished.stderr.contains("--log-format"), "{finished:?}");
}
