//! The lab engine's HTTP/1.1 fast lane: a connection's simple requests (HTTP/1.1 GET or
//! HEAD, no body, no Connection, Upgrade or Expect field) that the handler answers inline
//! ([`Handler::quick`]) are parsed in place and answered in the same pass, every answer
//! of a read in one write. The first request that is not simple, a head split across
//! reads, or bytes that do not parse, hand the connection, with what was read of it, to
//! hyper, which serves the rest as it serves every other connection. Timeouts while the
//! lane holds the connection follow the same watchdog: 408 for a missing first head,
//! quiet close when idle, drop when the peer stops reading.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::conn::WorkerCtx;
use super::io::RESPONSE_408;
use super::labh2::{decimal, Date};
use super::watchdog::{Activity, Verdict, Watchdog};
use crate::handler::{Handler, Quick};

/// How the lane left the connection.
pub(crate) enum Outcome {
    /// It is over (closed by the peer, idle, timed out, shutting down).
    Closed,
    /// hyper serves the rest, starting with these bytes already read.
    HandOver(Vec<u8>),
}

/// Most fields a simple request may carry.
const FIELDS: usize = 32;
const READ_BUF: usize = 16 * 1024;

/// What the parse of the buffer's next request found.
enum Next {
    /// A simple request answered inline: its length.
    Answered(usize),
    /// The head is not all here.
    Partial,
    /// Not for the lane.
    HandOver,
}

struct Lane<'a, H: Handler, T> {
    ctx: &'a WorkerCtx<H>,
    io: &'a mut T,
    activity: &'a Activity,
    buf: BytesMut,
    out: Vec<u8>,
    written: usize,
    /// Everything written has been flushed (TLS may hold records back until then).
    flushed: bool,
    watchdog: Watchdog,
    tick: Pin<Box<tokio::time::Sleep>>,
    period: std::time::Duration,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    date: Date,
    /// When the bytes being answered were read.
    read_at: Instant,
    /// When this batch's answers are written (read once per batch).
    answer_at: Option<Instant>,
    timed_out: bool,
}

/// Serves `io`'s simple requests, `first` being bytes already read from it.
pub(crate) async fn serve<H, T>(
    ctx: &WorkerCtx<H>,
    io: &mut T,
    first: Vec<u8>,
    activity: &Activity,
) -> Outcome
where
    H: Handler,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let now = Instant::now();
    let limits = &ctx.limits;
    let watchdog = Watchdog::new(now, limits.header_timeout, limits.idle_timeout, true)
        .with_send_timeout(limits.send_timeout);
    let period = watchdog.period();
    let mut buf = BytesMut::with_capacity(READ_BUF.max(first.len()));
    buf.extend_from_slice(&first);
    let mut lane = Lane {
        ctx,
        io,
        activity,
        buf,
        out: Vec::with_capacity(4096),
        written: 0,
        flushed: true,
        watchdog,
        tick: Box::pin(tokio::time::sleep(period)),
        period,
        shutdown: Box::pin(ctx.shutdown.clone().cancelled_owned()),
        date: Date::default(),
        read_at: now,
        answer_at: None,
        timed_out: false,
    };
    std::future::poll_fn(|cx| lane.poll(cx)).await
}

impl<H: Handler, T: AsyncRead + AsyncWrite + Unpin> Lane<'_, H, T> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        if self.shutdown.as_mut().poll(cx).is_ready() && self.out.is_empty() {
            return Poll::Ready(Outcome::Closed);
        }
        if self.tick.as_mut().poll(cx).is_ready() {
            if let Some(done) = self.on_tick(cx) {
                return Poll::Ready(done);
            }
        }
        loop {
            if self.timed_out {
                // The 408 is queued: out it goes, then the connection closes.
                return match self.write(cx) {
                    Poll::Ready(_) => Poll::Ready(Outcome::Closed),
                    Poll::Pending => Poll::Pending,
                };
            }
            let mut answered = 0u64;
            // One clock read for every answer of this batch: each is timed from when
            // its bytes were read until the batch is answered.
            self.answer_at = None;
            let hand_over = loop {
                match self.next() {
                    Next::Answered(len) => {
                        self.buf.advance(len);
                        answered += 1;
                    }
                    Next::Partial => break !self.buf.is_empty(),
                    Next::HandOver => break true,
                }
            };
            if answered > 0 {
                self.activity.answered(answered);
            }
            match self.write(cx) {
                Poll::Ready(Err(())) => return Poll::Ready(Outcome::Closed),
                Poll::Ready(Ok(())) => {}
                Poll::Pending => return Poll::Pending,
            }
            if hand_over {
                return Poll::Ready(Outcome::HandOver(self.buf.to_vec()));
            }
            if self.buf.capacity() < READ_BUF / 2 {
                self.buf.reserve(READ_BUF);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut *self.io), cx, &mut self.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Outcome::Closed),
                Poll::Ready(Ok(_)) => self.read_at = Instant::now(),
            }
        }
    }

    /// The watchdog's tick: `Some` when the connection is over.
    fn on_tick(&mut self, cx: &mut Context<'_>) -> Option<Outcome> {
        let now = Instant::now();
        self.tick
            .as_mut()
            .reset(tokio::time::Instant::from_std(now + self.period));
        let _ = self.tick.as_mut().poll(cx);
        if self.activity.close_requested.load(Relaxed) {
            return Some(Outcome::Closed);
        }
        match self.watchdog.check(now, self.activity.snapshot()) {
            Verdict::Keep => None,
            Verdict::Idle | Verdict::SendTimeout => Some(Outcome::Closed),
            Verdict::HeaderTimeout => {
                self.out.extend_from_slice(RESPONSE_408);
                self.timed_out = true;
                None
            }
        }
    }

    /// Parses the buffer's next request and answers it if it is simple.
    fn next(&mut self) -> Next {
        if self.buf.is_empty() {
            return Next::Partial;
        }
        let mut fields = [httparse::EMPTY_HEADER; FIELDS];
        let mut req = httparse::Request::new(&mut fields);
        let len = match req.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Next::Partial,
            Err(_) => return Next::HandOver, // hyper answers it properly (400, 431)
        };
        if len > self.ctx.limits.max_header_bytes || req.version != Some(1) {
            return Next::HandOver;
        }
        let head = match req.method {
            Some("GET") => false,
            Some("HEAD") => true,
            _ => return Next::HandOver,
        };
        for f in req.headers.iter() {
            let n = f.name.as_bytes();
            let plain_length = n.eq_ignore_ascii_case(b"content-length")
                && !f.value.is_empty()
                && f.value.iter().all(|&b| b == b'0');
            if !plain_length
                && (n.eq_ignore_ascii_case(b"content-length")
                    || n.eq_ignore_ascii_case(b"transfer-encoding")
                    || n.eq_ignore_ascii_case(b"connection")
                    || n.eq_ignore_ascii_case(b"upgrade")
                    || n.eq_ignore_ascii_case(b"expect"))
            {
                return Next::HandOver;
            }
        }
        let path = req.path.unwrap_or("/").as_bytes();
        let method = req.method.unwrap_or("GET").as_bytes();
        let Some(q) = self.ctx.handler.quick(method, path) else {
            return Next::HandOver;
        };
        self.answer(q, head);
        Next::Answered(len)
    }

    fn answer(&mut self, q: Quick, head: bool) {
        let out = &mut self.out;
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-type: ");
        out.extend_from_slice(q.content_type.as_bytes());
        out.extend_from_slice(b"\r\nserver-timing: ");
        let at = *self.answer_at.get_or_insert_with(Instant::now);
        let (timing, n) = crate::server_timing::format_between("app", self.read_at, at);
        out.extend_from_slice(&timing[..n]);
        out.extend_from_slice(b"\r\ncontent-length: ");
        let (digits, n) = decimal(q.body.len());
        out.extend_from_slice(&digits[digits.len() - n..]);
        out.extend_from_slice(b"\r\ndate: ");
        out.extend_from_slice(self.date.at(at).as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        if !head {
            out.extend_from_slice(q.body);
        }
    }

    /// Writes and flushes what is queued; `Ok` once all of it is out.
    fn write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        while self.written < self.out.len() {
            match Pin::new(&mut *self.io).poll_write(cx, &self.out[self.written..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.flushed = false;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        self.out.clear();
        self.written = 0;
        if !self.flushed {
            match Pin::new(&mut *self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flushed = true,
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}
