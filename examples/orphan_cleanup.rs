//! Starts a monitor, makes a real orphan, and shows it cleaned up.
//!
//! A shell starts a `sleep` that ignores SIGTERM; the monitor tracks the
//! `sleep` with the shell as its parent. The shell is then killed, which
//! orphans the `sleep`: the monitor notices at once (the shell's pidfd
//! wakes it; the 60 s scan never comes into it), sends SIGTERM, waits out
//! the grace period, sends SIGKILL, and reports every step.
//!
//! Run it with `cargo run --example orphan_cleanup`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use monitor_core::{Event, Monitor};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let monitor = Monitor::builder()
        .check_interval(Duration::from_secs(60))
        .grace(Duration::from_millis(500))
        .spawn()?;
    let handle = monitor.handle();
    let mut events = handle.subscribe().await?;

    // The shell prints its grandchild's pid, then waits until we kill it.
    let mut shell = Command::new("sh")
        .args(["-c", "(trap '' TERM; exec sleep 300) & echo $!; wait"])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(shell.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let orphan: i32 = line.trim().parse()?;

    let tracked = handle.track(orphan).await?;
    say(format!(
        "tracking {} whose parent is {}",
        tracked.id, tracked.parent
    ));

    while let Ok(event) = events.try_recv() {
        say(format!("          {event}"));
    }
    shell.kill()?;
    shell.wait()?;
    let killed_at = Instant::now();
    say(format!(
        "killed the parent {}; {} is now an orphan",
        tracked.parent, tracked.id
    ));

    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await? {
                event @ Event::Exited { id, .. } if id == tracked.id => {
                    let ms = killed_at.elapsed().as_millis();
                    say(format!("+{ms:>4} ms  {event} (its new parent reaps it)"));
                    return Ok::<_, tokio::sync::broadcast::error::RecvError>(());
                }
                event => say(format!(
                    "+{:>4} ms  {event}",
                    killed_at.elapsed().as_millis()
                )),
            }
        }
    })
    .await;
    let status = handle.status().await?;
    say(format!(
        "tracked now: {}, orphans found: {}, killed: {}",
        status.tracked_count, status.counters.orphans_found, status.counters.orphans_killed
    ));
    monitor.shutdown().await;
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err("the orphan was not cleaned up within 10 s".into()),
    }
}

#[allow(clippy::print_stdout)] // An example's job is to show what happens.
fn say(line: String) {
    println!("{line}");
}
