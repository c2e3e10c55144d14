//! The HTTP/1.1 connection driver: writes each prepared request, parses the response head
//! in place with httparse and skips the body by length or chunking without copying it.
//! No pipelining: one request in flight per connection.

use std::io;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::conn::{ConnCtx, Deadline, End};
use super::room::Held;
use super::source::Next;
use crate::h1wire::{ParseError, Response, ResponseReader};
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

impl From<ParseError> for H1Error {
    fn from(e: ParseError) -> Self {
        H1Error::Parse(e.0)
    }
}

impl From<io::Error> for H1Error {
    fn from(e: io::Error) -> Self {
        H1Error::Io(e)
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

impl Exchanged {
    fn new(r: Response, first_byte: Instant, done: Instant) -> Exchanged {
        Exchanged {
            status: r.status,
            first_byte,
            done,
            keep_alive: r.keep_alive,
        }
    }
}

/// One request/response exchange.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    req: &[u8],
    head_request: bool,
    buf: &mut [u8],
    reader: &mut ResponseReader,
) -> Result<Exchanged, H1Error> {
    s.write_all(req).await?;
    reader.start(head_request);
    let mut first_byte = None;
    if reader.has_carry() {
        let now = Instant::now();
        first_byte = Some(now);
        if let Some(r) = reader.feed(&[])? {
            return Ok(Exchanged::new(r, now, now));
        }
    }
    loop {
        let n = s.read(buf).await?;
        // One clock reading per read: a response whole in its first read was done when
        // that read returned.
        let now = Instant::now();
        let first_byte = *first_byte.get_or_insert(now);
        if n == 0 {
            return match reader.eof() {
                Some(r) => Ok(Exchanged::new(r, first_byte, now)),
                None => Err(H1Error::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed",
                ))),
            };
        }
        if let Some(r) = reader.feed(&buf[..n])? {
            return Ok(Exchanged::new(r, first_byte, now));
        }
    }
}

/// Drives one HTTP/1.1 connection until the source is done or the connection ends.
pub async fn drive<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, ctx: &ConnCtx) -> End {
    let mut buf = vec![0u8; 16 * 1024];
    let mut reader = ResponseReader::default();
    let mut deadline = Deadline::new(ctx.timeout);
    let mut held = Held::new(&ctx.room);
    let mut free_at = Instant::now();
    loop {
        held.freed(1, free_at);
        let ticket = loop {
            match ctx.source.next() {
                Next::Go(t) => break t,
                Next::Done => return End::Finished,
                // Open loop, nothing due: a server closing the idle connection meanwhile
                // is noticed now, as the io_uring engine does, rather than blamed on the
                // next request.
                Next::Wait => tokio::select! {
                    _ = ctx.source.notified() => {}
                    r = s.read(&mut buf) => match r {
                        Ok(0) | Err(_) => return End::Closed,
                        Ok(n) => {
                            if reader.feed(&buf[..n]).is_err() {
                                return End::Closed;
                            }
                        }
                    },
                },
            }
        };
        let ready = held.take(ticket.intended);
        let req = ctx.pick();
        let bytes = req.h1_numbered(ctx.cfg.seq_header.as_deref(), ticket.seq);
        // Closed loop: the ticket was handed out just now, and its time is the send time.
        let sent = if ctx.source.is_open_loop() {
            Instant::now()
        } else {
            ticket.intended
        };
        let result = tokio::select! {
            biased;
            r = exchange(&mut s, &bytes, req.head, &mut buf, &mut reader) => Ok(r),
            _ = deadline.expired(|| Some(sent)) => Err(()),
        };
        match result {
            Ok(Ok(x)) => {
                ctx.recorder.borrow_mut().ok(
                    Sample {
                        intended: ticket.intended,
                        ready,
                        sent,
                        first_byte: x.first_byte,
                        done: x.done,
                        status: x.status,
                    },
                    ticket.warmup,
                );
                if let Some(t) = reader.server_timing() {
                    ctx.recorder.borrow_mut().hops(t, ticket.warmup);
                }
                if !x.keep_alive {
                    return End::Closed;
                }
                free_at = x.done;
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
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn exchanges_read_one_response_each_and_a_close_delimited_body_to_eof() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let responses: &[u8] = b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello\
HTTP/1.0 200 OK\r\n\r\nuntil close";
        server.write_all(responses).await.unwrap();
        drop(server);
        let mut buf = vec![0u8; 1024];
        let mut reader = ResponseReader::default();
        let mut sink = Vec::new();
        let mut rw = tokio::io::join(&mut client, &mut sink);
        const GET: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        let x = exchange(&mut rw, GET, false, &mut buf, &mut reader)
            .await
            .unwrap();
        assert_eq!(x.status, 200, "the 103 before it is informational");
        assert_eq!(x.done, x.first_byte, "the whole response came in one read");
        let x = exchange(&mut rw, GET, false, &mut buf, &mut reader)
            .await
            .unwrap();
        assert_eq!((x.status, x.keep_alive), (200, false));
        assert!(x.done >= x.first_byte);
        let e = exchange(&mut rw, GET, false, &mut buf, &mut reader).await;
        assert_eq!(e.err().map(|e| e.class()).as_deref(), Some("closed"));
    }
}
