//! The completion scripts and man pages `pidguard` generates from its own
//! command line: bash loads the script and completes a subcommand and an
//! option, zsh loads its script, fish completes from its own, and
//! `man -l` renders a page per subcommand with the options in it.
//!
//! Needs bash, zsh, fish and man (man-db), which `.ci/run` installs; a
//! missing one is skipped here and a failure under `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
const PIDGUARD: &str = env!("CARGO_BIN_EXE_pidguard");

/// Whether `program` runs; if not, a skip (a failure under CI).
#[allow(clippy::print_stderr)] // a skip must say so
fn have(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is missing (CI installs it)"
        );
        eprintln!("skipped: {program} is missing");
    }
    found
}

fn run(command: &mut Command) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("run the command");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(command: &mut Command) -> String {
    String::from_utf8(run(command).stdout).expect("UTF-8")
}

/// A directory of its own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("pidguard-cli-docs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).expect("create the directory");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn bash_loads_the_script_and_completes_a_subcommand() {
    if !have("bash") {
        return;
    }
    // What bash does on TAB: set COMP_WORDS/COMP_CWORD and call the
    // function `complete` registered, with (command, word, previous word).
    let script = format!(
        r#"source <("{PIDGUARD}" completions bash) || exit 1
complete -p pidguard || exit 1
COMP_WORDS=(pidguard da); COMP_CWORD=1
_pidguard pidguard da pidguard
echo "subcommands: ${{COMPREPLY[*]}}"
COMP_WORDS=(pidguard daemon --metrics-); COMP_CWORD=2
_pidguard pidguard --metrics- daemon
echo "options: ${{COMPREPLY[*]}}"
COMP_WORDS=(pidguard completions ''); COMP_CWORD=2
_pidguard pidguard '' completions
echo "shells: ${{COMPREPLY[*]}}"
"#
    );
    let out = stdout(Command::new("bash").args(["--norc", "-c", &script]));
    assert!(out.contains("-F _pidguard pidguard"), "{out}");
    assert!(out.contains("subcommands: daemon\n"), "{out}");
    assert!(
        out.contains("options: --metrics-listen --metrics-per-unit\n"),
        "{out}"
    );
    assert!(out.contains(" bash zsh fish\n"), "{out}");
}

#[test]
fn zsh_loads_its_script() {
    if !have("zsh") {
        return;
    }
    let dir = TempDir::new("zsh");
    let script = dir.path().join("_pidguard");
    std::fs::write(
        &script,
        stdout(Command::new(PIDGUARD).args(["completions", "zsh"])),
    )
    .expect("write the script");
    let dump = dir.path().join("zcompdump");
    let out = stdout(Command::new("zsh").arg("-fc").arg(format!(
        "autoload -Uz compinit && compinit -u -d '{}' && source '{}' && whence -w _pidguard",
        dump.display(),
        script.display()
    )));
    assert_eq!(out.trim(), "_pidguard: function");
}

#[test]
fn fish_completes_from_its_script() {
    if !have("fish") {
        return;
    }
    let dir = TempDir::new("fish");
    let script = dir.path().join("pidguard.fish");
    std::fs::write(
        &script,
        stdout(Command::new(PIDGUARD).args(["completions", "fish"])),
    )
    .expect("write the script");
    let out = stdout(
        Command::new("fish")
            .arg("--no-config")
            .arg("-c")
            .arg(format!(
                "source '{}'; complete -C 'pidguard da'; complete -C 'pidguard run --log-'",
                script.display()
            )),
    );
    assert!(out.starts_with("daemon\t"), "{out}");
    assert!(out.contains("--log-format\t"), "{out}");
}

#[test]
fn man_renders_a_page_per_subcommand() {
    if !have("man") {
        return;
    }
    let dir = TempDir::new("man");
    run(Command::new(PIDGUARD).arg("man-pages").arg(dir.path()));
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list pages")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "pidguard-completions.1",
            "pidguard-daemon.1",
            "pidguard-events.1",
            "pidguard-run.1",
            "pidguard-status.1",
            "pidguard-track.1",
            "pidguard-untrack.1",
            "pidguard.1",
        ],
        "one page per subcommand (the packagers' man-pages is hidden)"
    );
    for (page, expected) in [
        (
            "pidguard-daemon.1",
            &[
                "pidguard-daemon - Run the monitoring service",
                "--metrics-listen",
                "PIDGUARD_SOCKET",
            ][..],
        ),
        (
            "pidguard-run.1",
            &["pidguard-run - Run CMD", "--log-format", "--grace"][..],
        ),
        ("pidguard.1", &["pidguard-daemon(1)", "pidguard-run(1)"][..]),
    ] {
        let text = stdout(
            Command::new("man")
                .arg("-l")
                .arg(dir.path().join(page))
                .env("MANWIDTH", "200")
                .env_remove("MAN_KEEP_FORMATTING")
                .env_remove("MANPAGER")
                .env_remove("PAGER"),
        );
        for needle in expected {
            assert!(text.contains(needle), "{page} lacks {needle:?}:\n{text}");
        }
        assert!(!text.contains("\\f"), "raw roff escapes in {page}:\n{text}");
    }
}

#[test]
fn an_unknown_shell_is_named() {
    let output = Command::new(PIDGUARD)
        .args(["completions", "tcsh"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tcsh") && stderr.contains("bash"),
        "{stderr}"
    );
}
