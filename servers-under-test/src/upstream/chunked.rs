//! Decoding an HTTP/1.1 chunked body (RFC 9112 section 7.1) from a buffer that fills
//! as the socket is read: the decoder consumes what it can and says when it needs more.

use bytes::{Buf, Bytes, BytesMut};

/// Where the decoder is inside the chunked body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// Reading a chunk-size line (hex digits, optional extensions, CRLF).
    Size,
    /// Inside chunk data: this many bytes are left.
    Data(u64),
    /// After chunk data: the CRLF that ends it.
    DataEnd,
    /// After the last chunk: trailer lines until an empty line.
    Trailers,
    /// The body has ended.
    Done,
}

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes.
    Data(Bytes),
    /// The buffer holds too little to go on: read more.
    NeedMore,
    /// The body has ended.
    Done,
}

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 8 * 1024;

/// The chunked framing is broken.
#[derive(Debug, thiserror::Error)]
#[error("invalid chunked body from upstream: {0}")]
pub struct ChunkedError(&'static str);

impl Chunked {
    /// Decodes from `buf`, consuming what it used.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkedError> {
        loop {
            match self {
                Chunked::Done => return Ok(Step::Done),
                Chunked::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::NeedMore);
                    };
                    let digits = line.split(|b| *b == b';').next().unwrap_or(&[]);
                    let digits = trim(digits);
                    if digits.is_empty() || digits.len() > 15 {
                        return Err(ChunkedError("bad chunk size"));
                    }
                    let mut size = 0u64;
                    for d in digits {
                        let v = (*d as char)
                            .to_digit(16)
                            .ok_or(ChunkedError("bad chunk size"))?;
                        size = size * 16 + u64::from(v);
                    }
                    *self = if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = (*left).min(buf.len() as u64) as usize;
                    *left -= n as u64;
                    if *left == 0 {
                        *self = Chunked::DataEnd;
                    }
                    return Ok(Step::Data(buf.split_to(n).freeze()));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkedError("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers => {
                    // Trailers are hop-by-hop here: read and dropped.
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::NeedMore);
                    };
                    if line.is_empty() {
                        *self = Chunked::Done;
                    }
                }
            }
        }
    }
}

/// Takes one CRLF-terminated line (without the CRLF) when the buffer holds one.
fn take_line(buf: &mut BytesMut) -> Result<Option<Bytes>, ChunkedError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) => {
            let line = buf.split_to(i).freeze();
            buf.advance(2);
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err(ChunkedError("line too long")),
        None => Ok(None),
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `piece` bytes; returns the body and whether it ended.
    fn decode(input: &[u8], piece: usize) -> Result<(Vec<u8>, bool), ChunkedError> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for part in input.chunks(piece) {
            buf.extend_from_slice(part);
            loop {
                match state.step(&mut buf)? {
                    Step::Data(d) => body.extend_from_slice(&d),
                    Step::NeedMore => break,
                    Step::Done => return Ok((body, true)),
                }
            }
        }
        Ok((body, false))
    }

    #[test]
    fn chunks_extensions_and_trailers_decode_whatever_the_read_sizes() {
        let wire = b"5;name=value\r\nHello\r\n8\r\n, World!\r\n0\r\nx-trailer: 1\r\n\r\n";
        for piece in [1, 2, 3, 7, wire.len()] {
            let (body, ended) = decode(wire, piece).expect("valid");
            assert_eq!(body, b"Hello, World!", "piece size {piece}");
            assert!(ended, "piece size {piece}");
        }
    }

    #[test]
    fn a_body_cut_short_has_not_ended() {
        let (body, ended) = decode(b"a\r\n01234", 4).expect("valid so far");
        assert_eq!(body, b"01234");
        assert!(!ended);
    }

    #[test]
    fn broken_framing_is_an_error() {
        assert!(decode(b"zz\r\n", 64).is_err(), "not hex");
        assert!(decode(b"\r\n", 64).is_err(), "empty size");
        assert!(decode(b"3\r\nabcXY", 64).is_err(), "no CRLF after data");
        assert!(
            decode(b"fffffffffffffffff\r\n", 64).is_err(),
            "size overflows"
        );
        assert!(
            decode(&[b'1'; MAX_LINE + 2], 1024).is_err(),
            "endless size line"
        );
    }
}
