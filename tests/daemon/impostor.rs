//! Finding 6: the client trusted whatever listened on the socket path.
//! Against a fake daemon run by another user, root's `pidguard track`
//! printed `tracking ...` and exited 0; an endless response line made the
//! client allocate until it aborted. Now the client checks the listener's
//! credentials before sending anything, and bounds every line it reads.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{ChildStdout, Command, Stdio};

use crate::common::{NOBODY, Procs, SOON, Spawned};
use crate::fixture::TempDir;
use crate::support::{cap_memory, client_command, run_within};

const THIS_TEST: &str = "impostor::a_daemon_of_another_user_is_refused_before_anything_is_sent";
/// Set in the re-run as uid 65534: the socket path the fake listens on.
const ROLE_VAR: &str = "PIDGUARD_TEST_IMPOSTOR_SOCKET";

/// A fake daemon that answers every line with a registration.
const FAKE_ANSWER: &[u8] = b"{\"version\":1,\"id\":1,\"ok\":true,\"result\":{\"id\":{\"pid\":4242,\"start_time\":1},\"parent\":{\"pid\":1,\"start_time\":1},\"uid\":0,\"action\":\"terminate\",\"grace\":\"5s\",\"signal\":\"SIGTERM\",\"tree\":false,\"target\":\"process\"}}\n";

/// Starts this test binary again as uid 65534, running only `test` with
/// `var` naming a socket in a directory that user owns, and waits until
/// the fake daemon listens there. Returns the directory (removed on
/// drop), the socket, the fake's process and its stdout.
pub(crate) fn spawn_fake_daemon(
    test: &str,
    var: &str,
    procs: &mut Procs,
) -> (TempDir, PathBuf, Spawned, BufReader<ChildStdout>) {
    let dir = TempDir::new(0o711);
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::os::unix::fs::chown(&run, Some(NOBODY), Some(NOBODY)).unwrap();
    let socket = run.join("pidguard.sock");
    let mut fake = procs.spawn(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(var, &socket)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut fake_out = BufReader::new(fake.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("FAKE LISTENING") {
        line.clear();
        assert!(
            fake_out.read_line(&mut line).unwrap() > 0,
            "the fake daemon did not start"
        );
    }
    (dir, socket, fake, fake_out)
}

#[test]
fn a_daemon_of_another_user_is_refused_before_anything_is_sent() {
    if let Ok(socket) = std::env::var(ROLE_VAR) {
        return fake_daemon(&socket);
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "this test runs a fake daemon as uid {NOBODY} and must start as root (CI does)"
    );
    let mut procs = Procs::new();
    let (_dir, socket, mut fake, mut fake_out) = spawn_fake_daemon(THIS_TEST, ROLE_VAR, &mut procs);
    let sleep = procs.sleep("300");
    let finished = run_within(
        &mut client_command(
            &socket,
            &["track", "--no-autostart", &sleep.pid.to_string()],
        ),
        SOON,
    );
    assert_eq!(finished.code(), Some(1), "{finished:?}");
    assert!(!finished.stdout.contains("tracking"), "{finished:?}");
    assert!(
        finished.stderr.contains("uid 65534") && finished.stderr.contains("refusing"),
        "{}",
        finished.stderr
    );
    drop(fake.stdin.take());
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut fake_out, &mut rest);
    assert!(
        rest.contains("RECEIVED 0 BYTES") && rest.contains("1 passed"),
        "the fake heard nothing:\n{rest}"
    );
}

/// As uid 65534: listen, answer every line with a registration, and
/// report how many bytes clients sent once stdin closes (also the
/// impostor of `client.rs`).
pub(crate) fn fake_daemon(socket: &str) {
    let listener = UnixListener::bind(socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    println!("FAKE LISTENING");
    std::io::stdout().flush().unwrap();
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::stdin().read_line(&mut rest);
        let _ = done_tx.send(());
    });
    let mut received = 0;
    while done.try_recv().is_err() {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(SOON / 10)).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while let Ok(n) = reader.read_line(&mut line) {
                    if n == 0 {
                        break;
                    }
                    received += n;
                    let _ = (&stream).write_all(FAKE_ANSWER);
                    line.clear();
                }
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
    println!("RECEIVED {received} BYTES");
}

/// A listener of the client's own uid that answers with an endless line:
/// the client gives up at its bound, with a message, instead of
/// allocating until it dies.
#[test]
fn an_endless_response_line_is_cut_off() {
    let dir = TempDir::new(0o700);
    let socket = dir.path().join("endless.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let chunk = vec![b'x'; 1 << 16];
        // Until the client hangs up (EPIPE).
        while (&stream).write_all(&chunk).is_ok() {}
    });
    let finished = run_within(
        cap_memory(
            &mut client_command(&socket, &["status", "--no-autostart"]),
            1 << 30,
        ),
        SOON * 3,
    );
    assert_eq!(finished.code(), Some(1), "{finished:?}");
    assert!(
        finished.stderr.contains("longer than"),
        "{}",
        finished.stderr
    );
    server.join().unwrap();
}
