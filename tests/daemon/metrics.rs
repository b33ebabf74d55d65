//! `/metrics` from a real daemon, read back by an independent parser: the
//! Python `prometheus_client` library's text and OpenMetrics parsers
//! (`.ci/run` installs Debian's `python3-prometheus-client`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::common::{Procs, SOON, wait_until_blocking};
use crate::fixture::{Daemon, PIDGUARD, TempDir};
use crate::support::{client_command, run_within};

/// Parses exposition text on stdin with prometheus_client's parser
/// (`openmetrics` or `text`, the first argument) and prints its samples as
/// JSON.
const PARSER: &str = r#"
import json, sys
if sys.argv[1] == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        samples.append({"family": family.name, "type": family.type,
                        "name": sample.name, "labels": sample.labels,
                        "value": sample.value})
print(json.dumps(samples))
"#;

/// A Python that has `prometheus_client`, or `None` (a failure under CI).
fn python() -> Option<&'static str> {
    let found = ["python3", "/usr/bin/python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import prometheus_client"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no python3 with prometheus_client (apt-get install python3-prometheus-client)"
        );
        eprintln!("metrics test skipped: no python3 with prometheus_client");
    }
    found
}

/// Samples by `name{label="value",...}` (labels sorted).
type Samples = BTreeMap<String, f64>;

fn parse(python: &str, format: &str, text: &str) -> (Samples, Vec<Value>) {
    let mut child = Command::new(python)
        .args(["-c", PARSER, format])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .expect("write to python");
    let output = child.wait_with_output().expect("python runs");
    assert!(
        output.status.success(),
        "prometheus_client's {format} parser refused it: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let samples: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON from python");
    let mut by_key = Samples::new();
    for sample in &samples {
        let labels: BTreeMap<String, String> =
            serde_json::from_value(sample["labels"].clone()).expect("labels");
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let key = format!(
            "{}{{{}}}",
            sample["name"].as_str().expect("name"),
            labels.join(",")
        );
        by_key.insert(key, sample["value"].as_f64().expect("value"));
    }
    (by_key, samples)
}

/// One HTTP exchange; returns the status code, the content type and the
/// body.
fn http(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to /metrics");
    stream.set_read_timeout(Some(SOON)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (code, content_type, body.to_owned())
}

fn get(addr: SocketAddr, accept: Option<&str>) -> (u16, String, String) {
    let accept = accept.map_or_else(String::new, |a| format!("Accept: {a}\r\n"));
    http(
        addr,
        &format!("GET /metrics HTTP/1.1\r\nHost: pidguard\r\n{accept}Connection: close\r\n\r\n"),
    )
}

/// The address the daemon's log says it serves metrics on.
fn metrics_addr(daemon: &Daemon) -> SocketAddr {
    let mut addr = None;
    wait_until_blocking(SOON, "the daemon logs its metrics address", || {
        addr = daemon.log().lines().find_map(|line| {
            let line: Value = serde_json::from_str(line).ok()?;
            (line["fields"]["message"] == json!("serving metrics at /metrics"))
                .then(|| line["fields"]["addr"].as_str()?.parse().ok())?
        });
        addr.is_some()
    });
    addr.expect("found")
}

fn start(dir: &TempDir, extra: &[&str]) -> (Daemon, SocketAddr) {
    let mut args = vec![
        "--check-interval",
        "60s",
        "--grace",
        "5s",
        "--metrics-listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ];
    args.extend_from_slice(extra);
    let daemon = Daemon::start(dir, &args);
    let addr = metrics_addr(&daemon);
    (daemon, addr)
}

/// The scenario of `orphans.rs`: a shell registers its `sleep` and is
/// killed; the `sleep` is terminated.
fn make_an_orphan(daemon: &Daemon, procs: &mut Procs) {
    let script = format!(
        "sleep 300 & \"{PIDGUARD}\" track --no-autostart --socket '{}' $! >&2 && echo $!; read x",
        daemon.socket.display()
    );
    let shell = procs.spawn_shell(&script, 1);
    let orphan = shell.kid().clone();
    procs.kill_and_reap(&shell.proc);
    wait_until_blocking(SOON, "the orphan is gone", || orphan.is_dead());
    let mut client = daemon.client();
    wait_until_blocking(SOON, "its registration ends", || {
        client.tracked_pids().is_empty()
    });
}

#[test]
fn a_real_orphan_moves_the_counter_by_exactly_one() {
    let Some(python) = python() else { return };
    let dir = TempDir::new(0o700);
    let (daemon, addr) = start(&dir, &[]);

    let (code, content_type, body) = get(addr, None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let (before, _) = parse(python, "text", &body);
    let found = "pidguard_monitor_orphans_found_total{}";
    let terminated = "pidguard_monitor_orphans_terminated_total{}";
    let killed = "pidguard_monitor_orphans_killed_total{}";
    let tracks = r#"pidguard_daemon_requests_total{outcome="ok",request="track"}"#;
    for key in [found, terminated, killed, tracks] {
        assert!(before.contains_key(key), "no {key} in:\n{body}");
    }

    let mut procs = Procs::new();
    make_an_orphan(&daemon, &mut procs);

    let (code, _, body) = get(addr, None);
    assert_eq!(code, 200, "{body}");
    let (after, _) = parse(python, "text", &body);
    assert_eq!(after[found], before[found] + 1.0, "{body}");
    assert_eq!(after[terminated], before[terminated] + 1.0, "{body}");
    assert_eq!(after[killed], before[killed], "{body}");
    assert_eq!(after[tracks], before[tracks] + 1.0, "{body}");
    let writes = r#"pidguard_daemon_state_writes_total{outcome="ok"}"#;
    assert!(
        after[writes] >= before[writes] + 2.0,
        "track and exit: {body}"
    );
    assert_eq!(
        after["pidguard_daemon_state_write_duration_seconds_count{}"],
        after[writes] + after[r#"pidguard_daemon_state_writes_total{outcome="failed"}"#]
    );
    assert_eq!(after["pidguard_daemon_registrations{}"], 0.0);
    let tracked: f64 = after
        .iter()
        .filter(|(key, _)| key.starts_with("pidguard_monitor_tracked{"))
        .map(|(_, value)| value)
        .sum();
    assert_eq!(tracked, 0.0, "{body}");

    // OpenMetrics when asked for, as Prometheus asks; the strict parser.
    let (code, content_type, body) = get(
        addr,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
    );
    assert_eq!(code, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    let (open, samples) = parse(python, "openmetrics", &body);
    assert_eq!(open[found], after[found], "{body}");
    assert!(
        samples
            .iter()
            .any(|s| s["family"] == json!("pidguard_monitor_orphans_found")
                && s["type"] == json!("counter")),
        "{samples:?}"
    );

    // The client side prints the same, for node_exporter's textfile.
    let finished = run_within(
        &mut client_command(
            &daemon.socket,
            &["status", "--no-autostart", "--format", "prometheus"],
        ),
        SOON,
    );
    assert_eq!(finished.code(), Some(0), "{finished:?}");
    let (client, _) = parse(python, "text", &finished.stdout);
    assert_eq!(client[found], after[found]);
    assert_eq!(client[terminated], after[terminated]);
    let same_families = |samples: &Samples| {
        samples
            .keys()
            .map(|key| key.split('{').next().unwrap_or_default().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(same_families(&client), same_families(&after));
}

#[test]
fn only_get_of_metrics_is_served() {
    let dir = TempDir::new(0o700);
    let (_daemon, addr) = start(&dir, &[]);
    let (code, _, _) = http(
        addr,
        "GET / HTTP/1.1\r\nHost: pidguard\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 404);
    let (code, _, _) = http(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: pidguard\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 405);
    let (code, content_type, body) = http(
        addr,
        "HEAD /metrics HTTP/1.1\r\nHost: pidguard\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((code, body.as_str()), (200, ""));
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    // A malformed request gets an error, and the daemon carries on.
    let (code, _, _) = http(addr, "NONSENSE\r\n\r\n");
    assert_eq!(code, 400);
    assert_eq!(get(addr, None).0, 200);
}

/// Per-unit series (unbounded: one per registration) only with the flag.
#[test]
fn a_series_per_unit_only_when_asked() {
    for per_unit in [false, true] {
        let dir = TempDir::new(0o700);
        let extra: &[&str] = if per_unit {
            &["--metrics-per-unit"]
        } else {
            &[]
        };
        let (daemon, addr) = start(&dir, extra);
        let mut procs = Procs::new();
        let sleeper = procs.sleep("300");
        let mut client = daemon.client();
        client.track(sleeper.pid);
        // `fork-events` where the daemon may listen to them (root), `scan`
        // elsewhere: whichever the unit got, as status reports it.
        let status = client.ok(serde_json::json!({"request": "status"}));
        let containment = status["tracked"][0]["unit"]["containment"]
            .as_str()
            .unwrap_or_else(|| panic!("a unit in {status}"))
            .to_owned();
        let (_, _, body) = get(addr, None);
        let series = format!(
            "pidguard_unit_members{{root=\"{}@{}\",owner=\"{}\",containment=\"{containment}\"}} 1",
            sleeper.pid,
            sleeper.start_time,
            rustix::process::getuid().as_raw(),
        );
        assert_eq!(body.contains(&series), per_unit, "{series} in:\n{body}");
        assert!(
            body.contains(&format!(
                "pidguard_monitor_unit_members{{containment=\"{containment}\"}} 1"
            )),
            "{body}"
        );
    }
}

/// Binding a taken address fails the start, naming it.
#[test]
fn a_taken_metrics_address_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = TempDir::new(0o700);
    let finished = run_within(
        crate::support::daemon_command(&dir)
            .args(["--socket"])
            .arg(dir.socket())
            .args(["--metrics-listen", &addr]),
        SOON,
    );
    assert_eq!(finished.code(), Some(1), "{finished:?}");
    assert!(
        finished.stderr.contains(&addr) && finished.stderr.contains("--metrics-listen"),
        "{finished:?}"
    );
}
