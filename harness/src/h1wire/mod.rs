//! HTTP/1.1 responses for the load engine's hot path, without I/O: a reader that the
//! drivers (`load::h1` over tokio, `load::uring` over io_uring) feed with the bytes they
//! received, and that says when a response is complete, with its status and whether the
//! connection stays open. Bodies are skipped by length or chunking, never copied.

mod head;

pub use head::ParseError;
use head::{BodyLen, HeadCache};

/// A complete response, as much of it as a load client keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// Final status (informational responses are skipped).
    pub status: u16,
    /// The server keeps the connection open.
    pub keep_alive: bool,
}

/// Heads and trailers longer than this are refused.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// A chunk-size line is a hex number and extensions: longer than this is refused.
const MAX_CHUNK_LINE_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No request outstanding.
    Idle,
    /// Waiting for a (final) response head.
    Head,
    /// This many body bytes left.
    Body(u64),
    /// Waiting for a chunk-size line.
    ChunkSize,
    /// This many chunk bytes left, its CRLF included.
    ChunkData(u64),
    /// Reading trailer lines up to the empty one.
    Trailers,
    /// The body ends when the server closes.
    UntilClose,
}

/// Reads one response per request from a byte stream (no pipelining).
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    head_request: bool,
    status: u16,
    close: bool,
    /// Bytes received but not yet consumed: a partial head or line, or bytes that came
    /// after a response.
    carry: Vec<u8>,
    heads: HeadCache,
}

impl Default for ResponseReader {
    fn default() -> Self {
        ResponseReader {
            state: State::Idle,
            head_request: false,
            status: 0,
            close: false,
            carry: Vec::new(),
            heads: HeadCache::default(),
        }
    }
}

impl ResponseReader {
    /// Expects the response to a request just sent (`head_request`: a HEAD, no body).
    pub fn start(&mut self, head_request: bool) {
        self.state = State::Head;
        self.head_request = head_request;
    }

    /// The `Server-Timing` entries of the last response head read, if it had any.
    pub fn server_timing(&self) -> Option<&crate::server_timing::ServerTiming> {
        Some(&self.heads.timing).filter(|t| !t.is_empty())
    }

    /// Whether bytes received earlier wait to be read: feed `&[]` after
    /// [`ResponseReader::start`] to read them.
    pub fn has_carry(&self) -> bool {
        !self.carry.is_empty()
    }

    /// Takes in received bytes; returns the response once it is complete. Bytes after it
    /// are kept for the next one.
    pub fn feed(&mut self, input: &[u8]) -> Result<Option<Response>, ParseError> {
        if self.carry.is_empty() {
            return self.process(input);
        }
        let mut joined = std::mem::take(&mut self.carry);
        joined.extend_from_slice(input);
        let r = self.process(&joined);
        if self.carry.is_empty() {
            // Keep the allocation for the next partial head.
            joined.clear();
            self.carry = joined;
        }
        r
    }

    /// The server closed the connection: completes a body delimited by the close.
    /// `None`: the response was cut short (or none was outstanding).
    pub fn eof(&mut self) -> Option<Response> {
        (self.state == State::UntilClose).then(|| self.finish(&[]))
    }

    fn stash(
        &mut self,
        rest: &[u8],
        limit: usize,
        what: &str,
    ) -> Result<Option<Response>, ParseError> {
        if self.carry.len() + rest.len() > limit {
            return Err(ParseError(what.into()));
        }
        self.carry.extend_from_slice(rest);
        Ok(None)
    }

    fn finish(&mut self, leftover: &[u8]) -> Response {
        self.state = State::Idle;
        self.carry.extend_from_slice(leftover);
        Response {
            status: self.status,
            keep_alive: !self.close,
        }
    }

    fn process(&mut self, input: &[u8]) -> Result<Option<Response>, ParseError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Idle => return self.stash(rest, MAX_LINE_BYTES, "unsolicited_data"),
                State::Head => {
                    let Some((n, head)) = self.heads.parse(rest, self.head_request)? else {
                        return self.stash(rest, MAX_LINE_BYTES, "head_too_large");
                    };
                    pos += n;
                    match head.status {
                        101 => return Err(ParseError("unexpected_101".into())),
                        // Informational (100, 103): the final response follows.
                        100..=199 => continue,
                        _ => {}
                    }
                    self.status = head.status;
                    self.close = head.close;
                    self.state = match head.body {
                        BodyLen::None | BodyLen::Length(0) => {
                            return Ok(Some(self.finish(&input[pos..])))
                        }
                        BodyLen::Length(l) => State::Body(l),
                        BodyLen::Chunked => State::ChunkSize,
                        BodyLen::UntilClose => State::UntilClose,
                    };
                }
                State::Body(left) | State::ChunkData(left) => {
                    let take = left.min(rest.len() as u64);
                    pos += take as usize;
                    let left = left - take;
                    let chunked = matches!(self.state, State::ChunkData(_));
                    self.state = match (left, chunked) {
                        (0, false) => return Ok(Some(self.finish(&input[pos..]))),
                        (0, true) => State::ChunkSize,
                        (l, false) => State::Body(l),
                        (l, true) => State::ChunkData(l),
                    };
                    if left > 0 {
                        return Ok(None);
                    }
                }
                State::ChunkSize => {
                    let Some(i) = find_crlf(rest) else {
                        return self.stash(rest, MAX_CHUNK_LINE_BYTES, "chunk_size_line_too_long");
                    };
                    let size = head::chunk_size(&rest[..i])?;
                    pos += i + 2;
                    self.state = match size.checked_add(2) {
                        _ if size == 0 => State::Trailers,
                        Some(with_crlf) => State::ChunkData(with_crlf),
                        None => return Err(ParseError("bad_chunk_size".into())),
                    };
                }
                State::Trailers => {
                    let Some(i) = find_crlf(rest) else {
                        return self.stash(rest, MAX_LINE_BYTES, "trailers_too_large");
                    };
                    pos += i + 2;
                    if i == 0 {
                        return Ok(Some(self.finish(&input[pos..])));
                    }
                }
                State::UntilClose => return Ok(None),
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEQUENCE: &[u8] = b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello\
HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\n\
HTTP/1.1 204 No Content\r\n\r\n\
HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

    const EXPECTED: [(u16, bool); 4] = [(200, true), (201, true), (204, true), (200, false)];

    /// Feeds `SEQUENCE` cut into pieces of `piece` bytes, one request at a time.
    fn read_all(piece: usize) -> Vec<(u16, bool)> {
        let mut r = ResponseReader::default();
        let mut got = Vec::new();
        let mut chunks = SEQUENCE.chunks(piece);
        r.start(false);
        let mut fresh = false;
        loop {
            // Right after a start, what came with the previous response is read first.
            let x = if fresh && r.has_carry() {
                r.feed(&[]).unwrap()
            } else {
                match chunks.next() {
                    Some(c) => r.feed(c).unwrap(),
                    None => break,
                }
            };
            fresh = false;
            if let Some(x) = x {
                got.push((x.status, x.keep_alive));
                r.start(false);
                fresh = true;
            }
        }
        got
    }

    #[test]
    fn responses_complete_wherever_the_reads_cut_them() {
        for piece in [1, 2, 3, 7, 16, 50, SEQUENCE.len()] {
            assert_eq!(read_all(piece), EXPECTED, "pieces of {piece} bytes");
        }
    }

    #[test]
    fn a_close_delimited_body_ends_at_eof() {
        let mut r = ResponseReader::default();
        r.start(false);
        assert_eq!(r.feed(b"HTTP/1.0 200 OK\r\n\r\nuntil").unwrap(), None);
        assert_eq!(r.feed(b" close").unwrap(), None);
        assert_eq!(
            r.eof(),
            Some(Response {
                status: 200,
                keep_alive: false
            })
        );
        r.start(false);
        assert_eq!(
            r.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\ncut")
                .unwrap(),
            None
        );
        assert_eq!(r.eof(), None, "a length-delimited body cut short");
    }

    #[test]
    fn a_head_request_has_no_body_whatever_the_length_says() {
        let mut r = ResponseReader::default();
        r.start(true);
        let x = r.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n");
        assert_eq!(x.unwrap().map(|x| x.status), Some(200));
    }

    #[test]
    fn garbage_and_endless_lines_are_errors_not_panics() {
        let mut r = ResponseReader::default();
        r.start(false);
        assert!(r.feed(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        let mut r = ResponseReader::default();
        r.start(false);
        let x = r.feed(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\n");
        assert_eq!(x.unwrap_err().0, "unexpected_101");
        let mut r = ResponseReader::default();
        r.start(false);
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(r.feed(head).unwrap(), None);
        assert_eq!(r.feed(b"zz\r\n").unwrap_err().0, "bad_chunk_size");
        let mut r = ResponseReader::default();
        r.start(false);
        assert_eq!(r.feed(head).unwrap(), None);
        let long = vec![b'0'; 5000];
        assert_eq!(r.feed(&long).unwrap_err().0, "chunk_size_line_too_long");
        for size in ["ffffffffffffffff", "+a", ""] {
            let mut r = ResponseReader::default();
            r.start(false);
            assert_eq!(r.feed(head).unwrap(), None);
            let line = format!("{size}\r\n");
            assert_eq!(r.feed(line.as_bytes()).unwrap_err().0, "bad_chunk_size");
        }
        let mut r = ResponseReader::default();
        r.start(false);
        assert_eq!(r.feed(b"HTTP/1.1 200 OK\r\nx-long: ").unwrap(), None);
        let endless = vec![b'x'; 70 * 1024];
        assert_eq!(r.feed(&endless).unwrap_err().0, "head_too_large");
    }
}
