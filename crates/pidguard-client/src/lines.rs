//! Reading newline-terminated lines from the daemon, bounded and
//! cancel-safe.
//!
//! A line is at most [`MAX_RESPONSE_BYTES`] long: anything longer is an
//! error, not an allocation without end (a process listening on the socket
//! may send anything). Bytes of a line read before a read is cancelled
//! (a caller's `select!` or `timeout`) stay in the reader and are part of
//! the next read, so cancelling never loses or splits a line.

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::OwnedReadHalf;

/// The longest answer line a client reads: a `status` of every
/// registration a daemon allows fits many times over.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Why no line came.
#[derive(Debug)]
pub(crate) enum LineError {
    /// The socket failed.
    Io(std::io::Error),
    /// The line grew past the bound; the rest of it is still unread.
    TooLong,
}

/// The reading half of a connection, line by line.
#[derive(Debug)]
pub(crate) struct LineReader {
    reader: BufReader<OwnedReadHalf>,
    /// The part of the current line read so far; kept here, not in the
    /// future, so that a cancelled read loses nothing.
    partial: Vec<u8>,
}

impl LineReader {
    /// Reads lines from `half`.
    pub(crate) fn new(half: OwnedReadHalf) -> Self {
        Self {
            reader: BufReader::new(half),
            partial: Vec::new(),
        }
    }

    /// The next line, without its newline; `Ok(None)` once the peer has
    /// closed the connection (a line cut off by the close is dropped).
    pub(crate) async fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineError> {
        loop {
            // `fill_buf` consumes nothing: a cancellation here loses nothing.
            let available = self.reader.fill_buf().await.map_err(LineError::Io)?;
            if available.is_empty() {
                self.partial.clear();
                return Ok(None);
            }
            let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
                Some(end) => (&available[..end], true),
                None => (available, false),
            };
            if self.partial.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(LineError::TooLong);
            }
            self.partial.extend_from_slice(chunk);
            let used = chunk.len() + usize::from(found);
            self.reader.consume(used);
            if found {
                return Ok(Some(std::mem::take(&mut self.partial)));
            }
        }
    }
}

/// The first 200 bytes of `line`, for an error message.
pub(crate) fn excerpt(line: &[u8]) -> String {
    String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned()
}
