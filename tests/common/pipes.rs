//! Reading the tokio pipes of a child spawned through the monitor
//! (`OwnedChild::stdout` is a `tokio::process::ChildStdout`).

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::wait::SOON;

/// The first `n` lines of `pipe`, each trimmed; panics if they do not come
/// within [`SOON`], so a broken fixture fails the test instead of hanging it.
pub(crate) async fn lines_of(pipe: impl AsyncRead + Unpin, n: usize) -> Vec<String> {
    let read = async {
        let mut lines = BufReader::new(pipe).lines();
        let mut read = Vec::with_capacity(n);
        while read.len() < n {
            match lines.next_line().await.expect("read the fixture's output") {
                Some(line) => read.push(line.trim().to_owned()),
                None => panic!("the fixture closed its output after {read:?}"),
            }
        }
        read
    };
    tokio::time::timeout(SOON, read)
        .await
        .unwrap_or_else(|_| panic!("the fixture wrote fewer than {n} lines in {SOON:?}"))
}

/// The first `n` lines of `pipe`, each a pid.
pub(crate) async fn pids_of(pipe: impl AsyncRead + Unpin, n: usize) -> Vec<i32> {
    lines_of(pipe, n)
        .await
        .iter()
        .map(|line| line.parse().expect("a pid"))
        .collect()
}
