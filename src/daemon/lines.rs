//! Reading request lines with a size limit, an idle timeout and a per-line
//! timeout, without holding memory for idle connections.
//!
//! Lines are cut by `tokio_util`'s `LinesCodec` with a maximum length: a
//! longer line is reported as soon as it passes the limit, and the rest of
//! it, up to its newline, is discarded as it arrives, so a mebibyte of
//! garbage costs one error response and at most the limit in memory.
//!
//! The read buffer is allocated only when bytes arrive, and freed again
//! whenever no partial line is left in it: a thousand idle connections
//! hold no buffers at all.
//!
//! Two clocks run: between requests, the connection may stay silent for
//! the idle timeout; once the first byte of a line has arrived, the whole
//! line (and the rest of an over-long one) must arrive within the line
//! timeout, so a client trickling one byte a minute is cut off.

use std::time::Duration;

use tokio::net::unix::OwnedReadHalf;
use tokio::time::Instant;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, LinesCodec, LinesCodecError};

/// How much is read at a time.
const CHUNK: usize = 4096;

/// What the next line was.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A whole line, without its newline (or `\r\n`).
    Complete(String),
    /// The line passed the limit; the rest of it will be skipped.
    TooLarge,
    /// The line was not UTF-8 (it was consumed).
    NotUtf8,
    /// The peer closed the connection (a partial last line is dropped).
    Closed,
    /// Nothing arrived within the idle timeout.
    Idle,
    /// A started line did not end within the line timeout.
    Slow,
}

/// The reading side of one connection.
#[derive(Debug)]
pub(crate) struct LineReader {
    read: OwnedReadHalf,
    /// Empty, with no allocation, while no partial line is pending.
    buf: BytesMut,
    codec: LinesCodec,
    /// The codec is skipping the rest of an over-long line.
    discarding: bool,
    /// When the pending line's first byte arrived.
    started: Option<Instant>,
}

/// The limits for one read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    /// The longest line.
    pub(crate) max: usize,
    /// The longest silence between lines; `None`: no limit (event streams).
    pub(crate) idle: Option<Duration>,
    /// The longest time one line may take once it started.
    pub(crate) line: Duration,
}

impl LineReader {
    /// Reads from `read`.
    pub(crate) fn new(read: OwnedReadHalf) -> Self {
        Self {
            read,
            buf: BytesMut::new(),
            codec: LinesCodec::new_with_max_length(usize::MAX),
            discarding: false,
            started: None,
        }
    }

    /// Whether part of a line is pending.
    fn mid_line(&self) -> bool {
        self.discarding || !self.buf.is_empty()
    }

    /// The next line, within `limits`.
    pub(crate) async fn next(&mut self, limits: ReadLimits) -> std::io::Result<Line> {
        // A new limit (config reload) applies from the next line on.
        if !self.mid_line() && self.codec.max_length() != limits.max {
            self.codec = LinesCodec::new_with_max_length(limits.max);
        }
        loop {
            // The codec ends a discard at the first newline it sees.
            let ends_discard = self.discarding && self.buf.contains(&b'\n');
            let decoded = self.codec.decode(&mut self.buf);
            if ends_discard {
                self.discarding = false;
            }
            let line = match decoded {
                Ok(Some(line)) => Some(Line::Complete(line)),
                Ok(None) => None,
                Err(LinesCodecError::MaxLineLengthExceeded) => {
                    self.discarding = true;
                    Some(Line::TooLarge)
                }
                Err(LinesCodecError::Io(error))
                    if error.kind() == std::io::ErrorKind::InvalidData =>
                {
                    Some(Line::NotUtf8)
                }
                Err(LinesCodecError::Io(error)) => return Err(error),
            };
            if !self.mid_line() {
                self.started = None;
                // Lazily allocated: nothing is held between lines.
                self.buf = BytesMut::new();
            } else if (line.is_some() || ends_discard) && !self.discarding {
                // The next line (pipelined) started with these bytes.
                self.started = Some(Instant::now());
            }
            if let Some(line) = line {
                return Ok(line);
            }
            match self.fill(limits).await? {
                Some(0) => return Ok(Line::Closed),
                Some(_) => {}
                None if self.started.is_some() => return Ok(Line::Slow),
                None => return Ok(Line::Idle),
            }
        }
    }

    /// Waits for bytes and reads them; `None` when the applicable timeout
    /// passed first, `Some(0)` at the end of the stream.
    async fn fill(&mut self, limits: ReadLimits) -> std::io::Result<Option<usize>> {
        let deadline = match (self.started, limits.idle) {
            (Some(started), _) => started.checked_add(limits.line),
            (None, Some(idle)) => Instant::now().checked_add(idle),
            (None, None) => None,
        };
        loop {
            let ready = match deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.read.readable()).await {
                        Ok(ready) => ready,
                        Err(_) => return Ok(None),
                    }
                }
                None => self.read.readable().await,
            };
            ready?;
            self.buf.reserve(CHUNK);
            match self.read.try_read_buf(&mut self.buf) {
                Ok(0) => return Ok(Some(0)),
                Ok(read) => {
                    if self.started.is_none() {
                        self.started = Some(Instant::now());
                    }
                    return Ok(Some(read));
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::UnixStream;

    use super::*;

    const LIMITS: ReadLimits = ReadLimits {
        max: 10,
        idle: Some(Duration::from_secs(60)),
        line: Duration::from_secs(5),
    };

    #[tokio::test]
    async fn lines_over_the_limit_are_skipped_whole() {
        let (client, server) = UnixStream::pair().expect("socket pair");
        let (read, _write) = server.into_split();
        let mut reader = LineReader::new(read);
        let mut input = b"short\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend_from_slice(b"\nafter\n\xff\xfe\npartial");
        let (_, mut client_write) = client.into_split();
        let writer = tokio::spawn(async move {
            client_write.write_all(&input).await.expect("write");
        });
        assert_eq!(
            reader.next(LIMITS).await.expect("read"),
            Line::Complete("short".into())
        );
        assert_eq!(reader.next(LIMITS).await.expect("read"), Line::TooLarge);
        assert!(reader.buf.capacity() <= 10 + 2 * CHUNK, "bounded buffer");
        assert_eq!(
            reader.next(LIMITS).await.expect("read"),
            Line::Complete("after".into())
        );
        assert_eq!(reader.next(LIMITS).await.expect("read"), Line::NotUtf8);
        writer.await.expect("writer");
        assert_eq!(reader.next(LIMITS).await.expect("read"), Line::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_and_slow_connections_time_out_and_idle_ones_hold_no_buffer() {
        let (client, server) = UnixStream::pair().expect("socket pair");
        let (read, _write) = server.into_split();
        let mut reader = LineReader::new(read);
        let (_, mut client_write) = client.into_split();
        client_write.write_all(b"ping\n").await.expect("write");
        assert_eq!(
            reader.next(LIMITS).await.expect("read"),
            Line::Complete("ping".into())
        );
        assert_eq!(reader.buf.capacity(), 0, "no buffer between lines");
        let started = Instant::now();
        assert_eq!(reader.next(LIMITS).await.expect("read"), Line::Idle);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        client_write.write_all(b"pi").await.expect("write");
        let started = Instant::now();
        assert_eq!(reader.next(LIMITS).await.expect("read"), Line::Slow);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
