//! The HTTP/1.1 connection driver: writes each prepared request, parses the response head
//! in place with httparse and skips the body by length or chunking without copying it.
//! No pipelining: one request in flight per connection.

use std::io;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::conn::{ConnCtx, Deadline, End};
use super::source::Next;
use crate::record::Sample;

/// How one exchange failed.
#[derive(Debug)]
pub enum H1Error {
    /// I/O failed (reset, closed early...).
    Io(io::Error),
    /// The response could not be parsed.
    Parse(String),
}

impl H1Error {
    /// Error class for the recorder.
    pub fn class(&self) -> String {
        match self {
            H1Error::Io(e) => super::conn::io_class(e),
            H1Error::Parse(what) => format!("protocol:{what}"),
        }
    }
}

impl From<io::Error> for H1Error {
    fn from(e: io::Error) -> Self {
        H1Error::Io(e)
    }
}

#[derive(Clone, Copy)]
struct Head {
    status: u16,
    body: BodyLen,
    close: bool,
}

#[derive(Clone, Copy)]
enum BodyLen {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<(usize, Head)>, H1Error> {
    // Uninitialised: zeroing 64 headers (2 KiB) per response costs more than parsing.
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; 64];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    );
    let n = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(H1Error::Parse(e.to_string().replace(' ', "_"))),
    };
    let status = resp.code.unwrap_or(0);
    let mut len = None;
    let mut chunked = false;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            if len.is_none() {
                return Err(H1Error::Parse("bad_content_length".into()));
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            let has = |token: &[u8]| {
                h.value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
            };
            if has(b"close") {
                close = true;
            } else if has(b"keep-alive") {
                close = false;
            }
        }
    }
    let body = if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        BodyLen::None
    } else if chunked {
        BodyLen::Chunked
    } else if let Some(l) = len {
        BodyLen::Length(l)
    } else {
        close = true;
        BodyLen::UntilClose
    };
    Ok(Some((
        n,
        Head {
            status,
            body,
            close,
        },
    )))
}

/// The last response head a connection parsed, kept as bytes. Servers repeat their head
/// byte for byte until the Date changes (once a second), and the same bytes mean the
/// same thing: one comparison instead of a parse.
#[derive(Default)]
struct HeadCache {
    bytes: Vec<u8>,
    parsed: Option<(Head, bool)>,
}

impl HeadCache {
    /// [`parse_head`], answered from the cache when `buf` starts with the cached head.
    fn parse(&mut self, buf: &[u8], head_request: bool) -> Result<Option<(usize, Head)>, H1Error> {
        if let Some((head, for_head)) = self.parsed {
            // The cached bytes end at their first blank line: a buffer starting with them
            // holds exactly that head.
            if for_head == head_request && buf.starts_with(&self.bytes) {
                return Ok(Some((self.bytes.len(), head)));
            }
        }
        let parsed = parse_head(buf, head_request)?;
        if let Some((n, head)) = parsed {
            self.bytes.clear();
            self.bytes.extend_from_slice(&buf[..n]);
            self.parsed = Some((head, head_request));
        }
        Ok(parsed)
    }
}

async fn fill<S: AsyncRead + Unpin>(s: &mut S, buf: &mut BytesMut) -> Result<(), H1Error> {
    buf.reserve(16 * 1024);
    if s.read_buf(buf).await? == 0 {
        return Err(H1Error::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed",
        )));
    }
    Ok(())
}

async fn skip<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut BytesMut,
    mut n: u64,
) -> Result<(), H1Error> {
    loop {
        let take = (buf.len() as u64).min(n);
        buf.advance(take as usize);
        n -= take;
        if n == 0 {
            return Ok(());
        }
        // The buffer is empty here: reuse it instead of growing it for large bodies.
        buf.clear();
        fill(s, buf).await?;
    }
}

async fn skip_chunked<S: AsyncRead + Unpin>(s: &mut S, buf: &mut BytesMut) -> Result<(), H1Error> {
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if buf.len() > 4096 {
                return Err(H1Error::Parse("chunk_size_line_too_long".into()));
            }
            fill(s, buf).await?;
        };
        let line = std::str::from_utf8(&buf[..line_end])
            .map_err(|_| H1Error::Parse("bad_chunk_size".into()))?;
        let size = u64::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| H1Error::Parse("bad_chunk_size".into()))?;
        buf.advance(line_end + 2);
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    let empty = i == 0;
                    buf.advance(i + 2);
                    if empty {
                        return Ok(());
                    }
                } else {
                    fill(s, buf).await?;
                }
            }
        }
        skip(s, buf, size + 2).await?;
    }
}

/// What one exchange saw.
struct Exchanged {
    status: u16,
    /// When the read that brought the first response bytes returned.
    first_byte: Instant,
    /// When the read that completed the response returned.
    done: Instant,
    keep_alive: bool,
}

/// One request/response exchange.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    req: &[u8],
    head_request: bool,
    buf: &mut BytesMut,
    heads: &mut HeadCache,
) -> Result<Exchanged, H1Error> {
    s.write_all(req).await?;
    let mut first_byte = None;
    let (n, head) = loop {
        if !buf.is_empty() {
            first_byte.get_or_insert_with(Instant::now);
            if let Some(parsed) = heads.parse(buf, head_request)? {
                match parsed.1.status {
                    101 => return Err(H1Error::Parse("unexpected_101".into())),
                    // Informational (100, 103): the final response follows.
                    100..=199 => {
                        buf.advance(parsed.0);
                        continue;
                    }
                    _ => break parsed,
                }
            }
        }
        fill(s, buf).await?;
    };
    let first_byte = first_byte.unwrap_or_else(Instant::now);
    buf.advance(n);
    // A response whole in the first read was done when that read returned.
    let done = match head.body {
        BodyLen::None => first_byte,
        BodyLen::Length(l) if buf.len() as u64 >= l => {
            buf.advance(l as usize);
            first_byte
        }
        BodyLen::Length(l) => {
            skip(s, buf, l).await?;
            Instant::now()
        }
        BodyLen::Chunked => {
            skip_chunked(s, buf).await?;
            Instant::now()
        }
        BodyLen::UntilClose => loop {
            buf.clear();
            buf.reserve(16 * 1024);
            if s.read_buf(buf).await? == 0 {
                break Instant::now();
            }
        },
    };
    Ok(Exchanged {
        status: head.status,
        first_byte,
        done,
        keep_alive: !head.close,
    })
}

/// Drives one HTTP/1.1 connection until the source is done or the connection ends.
pub async fn drive<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, ctx: &ConnCtx) -> End {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut deadline = Deadline::new(ctx.timeout);
    let mut heads = HeadCache::default();
    loop {
        let ticket = loop {
            match ctx.source.next() {
                Next::Go(t) => break t,
                Next::Done => return End::Finished,
                Next::Wait => ctx.source.notified().await,
            }
        };
        let req = ctx.pick();
        // Closed loop: the ticket was handed out just now, and its time is the send time.
        let sent = if ctx.source.is_open_loop() {
            Instant::now()
        } else {
            ticket.intended
        };
        let result = tokio::select! {
            biased;
            r = exchange(&mut s, &req.h1, req.head, &mut buf, &mut heads) => Ok(r),
            _ = deadline.expired(|| Some(sent)) => Err(()),
        };
        match result {
            Ok(Ok(x)) => {
                ctx.recorder.borrow_mut().ok(
                    Sample {
                        intended: ticket.intended,
                        sent,
                        first_byte: x.first_byte,
                        done: x.done,
                        status: x.status,
                    },
                    ticket.warmup,
                );
                if !x.keep_alive {
                    return End::Closed;
                }
            }
            Ok(Err(e)) => {
                let now = Instant::now();
                ctx.recorder
                    .borrow_mut()
                    .error(&e.class(), ticket.intended, now, ticket.warmup);
                return End::Closed;
            }
            Err(_) => {
                let now = Instant::now();
                ctx.recorder
                    .borrow_mut()
                    .error("timeout", ticket.intended, now, ticket.warmup);
                return End::Closed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_length_chunked_and_close_delimited_bodies() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let responses: &[u8] = b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello\
HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n\
HTTP/1.1 204 No Content\r\n\r\n\
HTTP/1.0 200 OK\r\n\r\nuntil close";
        server.write_all(responses).await.unwrap();
        drop(server);
        let mut buf = BytesMut::new();
        let mut heads = HeadCache::default();
        let mut sink = Vec::new();
        let mut rw = tokio::io::join(&mut client, &mut sink);
        const GET: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        let x = exchange(&mut rw, GET, false, &mut buf, &mut heads)
            .await
            .unwrap();
        assert_eq!(x.status, 200, "the 103 before it is informational");
        assert_eq!(x.done, x.first_byte, "the whole response came in one read");
        assert_eq!(
            exchange(&mut rw, GET, false, &mut buf, &mut heads)
                .await
                .unwrap()
                .status,
            201
        );
        let x = exchange(&mut rw, GET, false, &mut buf, &mut heads)
            .await
            .unwrap();
        assert_eq!((x.status, x.keep_alive), (204, true));
        let x = exchange(&mut rw, GET, false, &mut buf, &mut heads)
            .await
            .unwrap();
        assert_eq!((x.status, x.keep_alive), (200, false));
        assert!(x.done >= x.first_byte);
    }

    #[test]
    fn a_repeated_head_is_recognised_and_a_changed_one_parsed() {
        let mut heads = HeadCache::default();
        let a = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let b = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
        let parse = |h: &mut HeadCache, buf: &[u8], head_req| {
            let (n, head) = h.parse(buf, head_req).unwrap().unwrap();
            (n, head.close, matches!(head.body, BodyLen::None))
        };
        assert_eq!(parse(&mut heads, a, false), (38, false, false));
        assert_eq!(
            parse(&mut heads, a, false),
            (38, false, false),
            "from the cache"
        );
        assert_eq!(
            parse(&mut heads, a, true),
            (38, false, true),
            "HEAD: no body"
        );
        assert_eq!(
            parse(&mut heads, b, false),
            (57, true, false),
            "a longer head"
        );
        assert_eq!(heads.parse(&b[..20], false).unwrap().map(|x| x.0), None);
    }

    #[test]
    fn garbage_is_a_parse_error_not_a_panic() {
        assert!(matches!(
            parse_head(b"SSH-2.0-OpenSSH\r\n\r\n", false),
            Err(H1Error::Parse(_))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", false),
            Err(H1Error::Parse(_))
        ));
    }
}
