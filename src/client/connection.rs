//! A blocking connection to the daemon: one request line out, one
//! response line back.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::Context;
use serde::de::DeserializeOwned;

use crate::protocol::{self, Envelope, ErrorBody, Request, Response};

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The daemon answered with an error.
    Refused(ErrorBody),
    /// The connection broke or the answer made no sense.
    Broken(anyhow::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(error) => write!(f, "{error}"),
            Self::Broken(error) => write!(f, "{error:#}"),
        }
    }
}

/// An open connection.
#[derive(Debug)]
pub(crate) struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Connection {
    /// Connects to `socket`.
    pub(crate) fn open(socket: &Path) -> std::io::Result<Self> {
        let stream = UnixStream::connect(socket)?;
        let writer = stream.try_clone()?;
        Ok(Self {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
        })
    }

    /// Sends `request` and reads its answer as `T`.
    pub(crate) fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Envelope {
            version: protocol::VERSION,
            id,
            request,
        })
        .map_err(|e| CallError::Broken(e.into()))?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .context("cannot send the request")
            .map_err(CallError::Broken)?;
        let response: Response = self.read_line().map_err(CallError::Broken)?;
        if !response.ok {
            let error = response.error.unwrap_or_else(|| {
                ErrorBody::new(protocol::ErrorKind::Internal, "error without a description")
            });
            return Err(CallError::Refused(error));
        }
        let result = response.result.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(result)
            .context("the daemon's answer has an unexpected shape")
            .map_err(CallError::Broken)
    }

    /// Reads the next line as `T` (a response or an event line).
    pub(crate) fn read_line<T: DeserializeOwned>(&mut self) -> anyhow::Result<T> {
        let mut line = String::new();
        let read = self
            .reader
            .read_line(&mut line)
            .context("cannot read from the daemon")?;
        anyhow::ensure!(read > 0, "the daemon closed the connection");
        serde_json::from_str(&line).with_context(|| format!("the daemon sent {line:?}"))
    }
}
