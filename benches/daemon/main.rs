//! What the daemon costs: at rest (RSS with nothing registered; CPU with
//! 1,000 registered processes at check intervals of 1 s and 60 s, units
//! on and off; see [`idle`]), then under load (throughput of 100
//! concurrent clients making 100 requests each, with its RSS before and
//! after) and request latency (median, p99) with 1,000 tracked.
//!
//! Run with `cargo bench --bench daemon`; set `PIDGUARD_BENCH_IDLE_SECS`
//! for another idle window (60 s by default; the whole bench then takes
//! about six windows). It starts `pidguard daemon`s on sockets in private
//! temporary directories and prints tables. Every process it starts (the
//! daemons and the `sleep`s) is a direct child held by a guard that kills
//! and reaps it on drop, also on a panic.
//!
//! # Layout
//!
//! - `main.rs`: the phases and the load report.
//! - [`idle`]: the daemon at rest, and its verdicts.
//! - [`proc`]: the daemon and `sleep` guards, RSS and CPU from `/proc`.
//! - [`wire`]: a raw protocol client and latency statistics.

#![allow(clippy::print_stdout)]

mod idle;
mod proc;
mod wire;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use proc::{Daemon, Sleeps};
use wire::{Client, percentile};

const CLIENTS: usize = 100;
const REQUESTS: usize = 100;
const TRACKED: usize = 1000;

fn main() {
    let idle = Duration::from_secs(
        std::env::var("PIDGUARD_BENCH_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    idle::report(idle);
    println!();

    let daemon = Daemon::start(Path::new(env!("CARGO_BIN_EXE_pidguard")), "60s");
    println!(
        "## load and latency (release binary, pid {}, check_interval 60s)",
        daemon.pid()
    );
    let rss_start = daemon.rss_kib();
    let sleeps = Sleeps::spawn(CLIENTS);
    let rss_before = daemon.rss_kib();
    let (elapsed, requests) = load(&daemon, &sleeps);
    let rss_after = daemon.rss_kib();
    untrack_all(&daemon, &sleeps);
    drop(sleeps);

    let many = Sleeps::spawn(TRACKED);
    let mut client = Client::connect(&daemon.socket);
    for &pid in many.pids() {
        client.ok(json!({"request": "track", "pid": pid}));
    }
    let rss_1000 = daemon.rss_kib();
    let ping = latencies(&mut client, 2000, || json!({"request": "ping"}));
    let status = latencies(&mut client, 200, || json!({"request": "status"}));
    let spare = Sleeps::spawn(1);
    let spare_pid = spare.pids()[0];
    let mut flip = false;
    let durable = latencies(&mut client, 400, || {
        flip = !flip;
        if flip {
            json!({"request": "track", "pid": spare_pid})
        } else {
            json!({"request": "untrack", "pid": spare_pid})
        }
    });
    let rss_end = daemon.rss_kib();

    println!("load: {CLIENTS} clients x {REQUESTS} requests (track/ping/untrack/status mix)");
    println!(
        "  {requests} requests in {:.3} s: {:.0} requests/s, no errors",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  daemon RSS before {rss_before} KiB, after {rss_after} KiB (fresh daemon: {rss_start} KiB)"
    );
    println!();
    println!("latency with {TRACKED} tracked (RSS {rss_1000} KiB; one client, sequential):");
    for (name, samples) in [
        ("ping", &ping),
        ("status (lists 1,000)", &status),
        ("track/untrack (fsync)", &durable),
    ] {
        println!(
            "  {name:<22} median {:>9.1} us   p99 {:>9.1} us   ({} requests)",
            percentile(samples, 50.0),
            percentile(samples, 99.0),
            samples.len()
        );
    }
    println!("  daemon RSS at the end: {rss_end} KiB");
    // The daemon goes first, so it does not see 1,001 exits.
    drop(client);
    drop(daemon);
    drop(spare);
    drop(many);
}

/// 100 clients, 100 requests each, one connection each; panics on any error.
fn load(daemon: &Daemon, sleeps: &Sleeps) -> (Duration, usize) {
    let start = Instant::now();
    let workers: Vec<_> = sleeps
        .pids()
        .iter()
        .map(|&pid| {
            let socket = daemon.socket.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&socket);
                for i in 0..REQUESTS {
                    let request = match (i, i % 4) {
                        (i, _) if i == REQUESTS - 1 => json!({"request": "track", "pid": pid}),
                        (_, 0) => json!({"request": "track", "pid": pid}),
                        (_, 1) => json!({"request": "ping"}),
                        (_, 2) => json!({"request": "untrack", "pid": pid}),
                        _ => json!({"request": "status"}),
                    };
                    client.ok(request);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a load client failed");
    }
    (start.elapsed(), CLIENTS * REQUESTS)
}

fn untrack_all(daemon: &Daemon, sleeps: &Sleeps) {
    let mut client = Client::connect(&daemon.socket);
    for &pid in sleeps.pids() {
        client.ok(json!({"request": "untrack", "pid": pid}));
    }
}

/// Round-trip times in microseconds of `n` requests made by `make`.
fn latencies(
    client: &mut Client,
    n: usize,
    mut make: impl FnMut() -> serde_json::Value,
) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let request = make();
            let start = Instant::now();
            client.ok(request);
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}
