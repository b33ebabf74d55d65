//! The `pidguard-client` crate when things go wrong: a stopped daemon (each
//! step times out naming it; a call that timed out or was cancelled costs
//! the connection nothing), an impostor at the socket path (refused before
//! a byte is sent), an endless answer (cut off), and the settings
//! `connect_default` takes from the environment.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use pidguard_client::protocol::RequestKind;
use pidguard_client::{Client, Error, MAX_RESPONSE_BYTES, Step};
use rustix::process::Signal;

use crate::common::{NOBODY, Procs};
use crate::fixture::{Daemon, TempDir};

/// Resumes a stopped daemon on drop, so a failing test leaves none stopped.
struct Resume<'a>(&'a Daemon);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.signal(Signal::CONT);
    }
}

/// Whether a test that needs root may run; a skip says what is missing,
/// and under `CI=true` a missing capability is a failure.
#[allow(clippy::print_stderr)] // a skip must say so
fn root_or_skip(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs root (it runs a listener as uid {NOBODY}); CI runs as root"
    );
    eprintln!("{test}: skipped: needs root to run a listener as uid {NOBODY}");
    false
}

#[tokio::test]
async fn a_stopped_daemon_times_out_naming_itself_and_costs_the_connection_nothing() {
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let timeout = Duration::from_millis(300);
    let mut client = Client::connect_with_timeout(&daemon.socket, timeout)
        .await
        .expect("connect");
    let streaming = Client::connect_with_timeout(&daemon.socket, timeout)
        .await
        .expect("connect");
    daemon.signal(Signal::STOP);
    let resume = Resume(&daemon);

    let error = client
        .ping()
        .await
        .expect_err("a stopped daemon answers nothing");
    assert!(
        matches!(
            error,
            Error::Timeout {
                request: RequestKind::Ping,
                step: Step::Receive,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_unreachable());
    assert_eq!(error.daemon().and_then(|d| d.pid()), Some(daemon.pid()));
    let text = error.to_string();
    assert!(
        text.contains(&daemon.socket.display().to_string())
            && text.contains(&format!("pid {}", daemon.pid()))
            && text.contains("did not answer within 300ms"),
        "the message names the socket, the daemon's pid and the timeout: {text}"
    );
    // A new connection is queued by the kernel, its answer never comes.
    let mut late = Client::connect_with_timeout(&daemon.socket, timeout)
        .await
        .expect("the kernel queues the connection");
    let error = late.status().await.expect_err("no answer");
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    let error = streaming.events().await.expect_err("no stream");
    assert!(
        matches!(
            error,
            Error::Timeout {
                request: RequestKind::Events,
                ..
            }
        ),
        "{error:?}"
    );
    // A call the caller cancels while it waits.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), client.status()).await;
    assert!(cancelled.is_err(), "the caller's timeout fired first");

    drop(resume);
    // The answers to the ping that timed out and to the cancelled status
    // arrive first; the client skips them and returns its own.
    let version = client.version().await.expect("answered once resumed");
    assert_eq!(version.protocol, pidguard_client::protocol::VERSION);
    assert_eq!(client.ping().await.expect("ping").pid, daemon.pid());
}

const IMPOSTOR_TEST: &str =
    "client_faults::an_impostor_at_the_socket_path_is_refused_before_anything_is_sent";
/// Set in the re-run as uid 65534: the socket path the fake listens on.
const IMPOSTOR_VAR: &str = "PIDGUARD_TEST_CLIENT_IMPOSTOR";

#[test]
fn an_impostor_at_the_socket_path_is_refused_before_anything_is_sent() {
    if let Ok(socket) = std::env::var(IMPOSTOR_VAR) {
        return crate::impostor::fake_daemon(&socket);
    }
    if !root_or_skip(IMPOSTOR_TEST) {
        return;
    }
    let mut procs = Procs::new();
    let (_dir, socket, mut fake, mut fake_out) =
        crate::impostor::spawn_fake_daemon(IMPOSTOR_TEST, IMPOSTOR_VAR, &mut procs);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime
        .block_on(Client::connect(&socket))
        .expect_err("a listener of another uid is refused");
    match &error {
        Error::Untrusted { pid, uid, .. } => {
            assert_eq!((*pid, *uid), (fake.proc.pid, NOBODY), "{error}");
        }
        other => panic!("not refused as an impostor: {other:?}"),
    }
    assert!(
        error.to_string().contains("uid 65534") && error.to_string().contains("refusing"),
        "{error}"
    );
    drop(fake.stdin.take());
    let mut rest = String::new();
    let _ = fake_out.read_to_string(&mut rest);
    assert!(
        rest.contains("RECEIVED 0 BYTES") && rest.contains("1 passed"),
        "the impostor heard something:\n{rest}"
    );
}

/// A listener of the client's own uid that answers with an endless line:
/// the client stops at its bound, and the connection is then unusable
/// (what follows is the rest of that line, not an answer).
#[tokio::test]
async fn an_endless_answer_is_cut_off_at_the_bound() {
    let dir = TempDir::new(0o700);
    let socket = dir.path().join("endless.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let chunk = vec![b'x'; 1 << 16];
        // Until the client hangs up (EPIPE).
        while (&stream).write_all(&chunk).is_ok() {}
    });
    let mut client = Client::connect(&socket).await.expect("connect");
    let error = client.status().await.expect_err("an endless line");
    assert!(
        matches!(error, Error::TooLong { limit, .. } if limit == MAX_RESPONSE_BYTES),
        "{error:?}"
    );
    assert!(error.to_string().contains("longer than"), "{error}");
    let error = client.ping().await.expect_err("the connection is spent");
    assert!(matches!(error, Error::Unusable { .. }), "{error:?}");
    drop(client);
    tokio::task::spawn_blocking(move || server.join())
        .await
        .unwrap()
        .unwrap();
}

const DEFAULT_TEST: &str = "client_faults::connect_default_follows_the_environment";
/// Set in the re-runs: "ok DAEMON_PID" or "bad-timeout".
const DEFAULT_VAR: &str = "PIDGUARD_TEST_CLIENT_DEFAULT";

/// `connect_default` finds the socket through `PIDGUARD_SOCKET` and takes
/// its timeout from `PIDGUARD_TIMEOUT`, refusing a bad one by name. Run
/// in re-runs of this test, each with its own environment (a test binary
/// shares one environment among its threads).
#[test]
fn connect_default_follows_the_environment() {
    if let Ok(role) = std::env::var(DEFAULT_VAR) {
        return default_role(&role);
    }
    let dir = TempDir::new(0o700);
    let daemon = Daemon::start(&dir, &[]);
    let rerun = |role: &str, timeout: &str| {
        let output = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", DEFAULT_TEST, "--nocapture", "--test-threads=1"])
            .env(DEFAULT_VAR, role)
            .env("PIDGUARD_SOCKET", &daemon.socket)
            .env("PIDGUARD_TIMEOUT", timeout)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "the re-run as {role:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    rerun(&format!("ok {}", daemon.pid()), "2s");
    rerun("bad-timeout", "forever");
}

fn default_role(role: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        match role.split_once(' ') {
            Some(("ok", pid)) => {
                let mut client = Client::connect_default().await.expect("connect_default");
                assert_eq!(client.timeout(), Duration::from_secs(2));
                assert_eq!(client.ping().await.unwrap().pid.to_string(), pid);
            }
            _ => {
                let error = Client::connect_default()
                    .await
                    .expect_err("PIDGUARD_TIMEOUT=forever is refused");
                assert!(
                    matches!(
                        error,
                        Error::Environment {
                            var: "PIDGUARD_TIMEOUT",
                            ..
                        }
                    ),
                    "{error:?}"
                );
                assert!(error.to_string().contains("forever"), "{error}");
            }
        }
    });
}
