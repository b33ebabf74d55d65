//! Reading request lines with a size limit.
//!
//! A line longer than the limit is not buffered: the reader keeps at most
//! the limit in memory, skips the rest up to the next newline, and reports
//! the line as too large, so 1 MiB of garbage costs the daemon nothing but
//! one error response.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What the next line was.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A whole line (without its newline) is in the buffer.
    Complete,
    /// The line was longer than the limit; it was skipped.
    TooLarge,
    /// The peer closed the connection (a partial last line is dropped).
    Closed,
}

/// Reads the next line into `buf` (cleared first), keeping at most `max`
/// bytes.
pub(crate) async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let mut too_large = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Closed);
        }
        let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..end], true),
            None => (available, false),
        };
        if !too_large {
            if buf.len() + chunk.len() > max {
                too_large = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = chunk.len() + usize::from(found);
        reader.consume(used);
        if found {
            return Ok(if too_large {
                Line::TooLarge
            } else {
                Line::Complete
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::BufReader;

    use super::*;

    #[tokio::test]
    async fn lines_over_the_limit_are_skipped_whole() {
        let mut input = b"short\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend_from_slice(b"\nafter\npartial");
        // A small buffer makes the long line arrive in many pieces.
        let mut reader = BufReader::with_capacity(7, input.as_slice());
        let mut buf = Vec::new();
        assert_eq!(
            next_line(&mut reader, &mut buf, 10).await.expect("read"),
            Line::Complete
        );
        assert_eq!(buf, b"short");
        assert_eq!(
            next_line(&mut reader, &mut buf, 10).await.expect("read"),
            Line::TooLarge
        );
        assert!(buf.len() <= 10);
        assert_eq!(
            next_line(&mut reader, &mut buf, 10).await.expect("read"),
            Line::Complete
        );
        assert_eq!(buf, b"after");
        assert_eq!(
            next_line(&mut reader, &mut buf, 10).await.expect("read"),
            Line::Closed
        );
    }
}
