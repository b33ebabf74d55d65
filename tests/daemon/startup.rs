//! Starting the daemon: where the socket comes from (flag > environment >
//! file), a bad config refused by file and key, and a second daemon on a
//! socket that is served leaving with code 4.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{SOON, wait_until_blocking};
use crate::fixture::{Client, Daemon, PIDGUARD, TempDir};

fn daemon_command(dir: &TempDir) -> Command {
    let mut command = Command::new(PIDGUARD);
    command
        .arg("daemon")
        .env_remove("PIDGUARD_SOCKET")
        .env_remove("PIDGUARD_STATE")
        .env_remove("PIDGUARD_CONFIG")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn answers(socket: &Path) -> bool {
    Client::try_connect(socket).is_some_and(|mut c| c.pings())
}

#[test]
fn the_environment_beats_the_file_and_the_file_beats_the_default() {
    let dir = TempDir::new(0o700);
    let from_file = dir.path().join("file").join("pidguard.sock");
    let from_env = dir.path().join("env").join("pidguard.sock");
    let config = dir.path().join("pidguard.toml");
    std::fs::write(&config, format!("socket = \"{}\"\n", from_file.display())).unwrap();

    let mut procs = crate::common::Procs::new();
    let env_daemon = procs.spawn(
        daemon_command(&dir)
            .args(["--config", config.to_str().unwrap()])
            .env("PIDGUARD_SOCKET", &from_env),
    );
    wait_until_blocking(
        SOON,
        "the daemon answers on the environment's socket",
        || answers(&from_env),
    );
    assert!(!from_file.exists(), "the file's socket was not used");
    procs.kill_and_reap(&env_daemon.proc);

    let file_daemon =
        procs.spawn(daemon_command(&dir).args(["--config", config.to_str().unwrap()]));
    wait_until_blocking(SOON, "the daemon answers on the file's socket", || {
        answers(&from_file)
    });
    let mode = std::fs::metadata(&from_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket is for its user only");
    let dir_mode = std::fs::metadata(from_file.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700, "in a directory only its user can enter");
    procs.kill_and_reap(&file_daemon.proc);
}

#[test]
fn a_bad_config_is_refused_naming_the_file_and_the_key() {
    let dir = TempDir::new(0o700);
    let config = dir.path().join("pidguard.toml");
    for (text, key) in [
        ("[monitor]\ncheck_interval = \"often\"\n", "check_interval"),
        ("sokcet = \"/x.sock\"\n", "sokcet"),
    ] {
        std::fs::write(&config, text).unwrap();
        let output = daemon_command(&dir)
            .args(["--config", config.to_str().unwrap(), "--socket"])
            .arg(dir.socket())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(config.to_str().unwrap()), "{stderr}");
        assert!(stderr.contains(key), "{stderr}");
        assert!(!dir.socket().exists(), "nothing started");
    }
}

#[test]
fn a_second_daemon_on_a_served_socket_leaves_with_code_4() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let output = daemon_command(&dir)
        .arg("--socket")
        .arg(&daemon.socket)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already serves"), "{stderr}");
    assert!(daemon.client().pings(), "the first daemon is undisturbed");
}
