//! A raw protocol client for the bench, and percentiles.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::{Value, json};

/// One connection to the daemon.
pub(crate) struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    line: String,
}

impl Client {
    /// Connects, if the daemon listens.
    pub(crate) fn try_connect(socket: &Path) -> Option<Self> {
        let stream = UnixStream::connect(socket).ok()?;
        let writer = stream.try_clone().ok()?;
        Some(Self {
            reader: BufReader::new(stream),
            writer,
            line: String::new(),
        })
    }

    /// Connects or panics.
    pub(crate) fn connect(socket: &Path) -> Self {
        Self::try_connect(socket).expect("connect to the daemon")
    }

    /// Sends `request` and panics unless it succeeds.
    pub(crate) fn ok(&mut self, mut request: Value) {
        request["version"] = json!(1);
        let mut bytes = serde_json::to_vec(&request).expect("serialize");
        bytes.push(b'\n');
        self.writer.write_all(&bytes).expect("send");
        self.line.clear();
        self.reader.read_line(&mut self.line).expect("receive");
        // The daemon writes `version` then `ok` first (no `id` is sent), so
        // success is read off the front of the line: the figures are the
        // daemon's round trip, not this client parsing a large `status`.
        if !self.line.starts_with("{\"version\":1,\"ok\":true") {
            let response: Value = serde_json::from_str(&self.line).expect("JSON answer");
            panic!("{request} failed: {response}");
        }
    }
}

impl Client {
    /// Sends `request` and returns the whole answer, parsed; panics unless
    /// it succeeds.
    pub(crate) fn request(&mut self, request: Value) -> Value {
        self.ok(request);
        serde_json::from_str(&self.line).expect("JSON answer")
    }
}

/// The `p`th percentile of `samples` (nearest rank).
pub(crate) fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
