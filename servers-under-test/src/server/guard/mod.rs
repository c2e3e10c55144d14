//! The HTTP/2 flood guard: an I/O layer under hyper that follows frame boundaries in both
//! directions, charges each connection for frames that do no work ([`budget`]), and when
//! one is over its budget, sends GOAWAY ENHANCE_YOUR_CALM at the next boundary of hyper's
//! output and ends the connection. It also refuses a client's PUSH_PROMISE at once with
//! GOAWAY PROTOCOL_ERROR (RFC 9113 section 8.4), which the h2 crate only judges once the
//! frame's header block has ended: a block that never ends would hold the connection.

pub mod budget;
pub mod scan;

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use budget::Budget;
pub use budget::FloodLimits;
use scan::{kind, Scanner};

use h2lab_common::h2_frame::reason::{ENHANCE_YOUR_CALM, PROTOCOL_ERROR};
use h2lab_common::h2_frame::PREFACE;

/// Wraps the plaintext of one HTTP/2 connection (server side).
pub struct FrameGuard<T> {
    inner: T,
    inbound: Scanner,
    outbound: Scanner,
    budget: Budget,
    /// The highest stream the client opened: GOAWAY's last stream id.
    last_stream: u32,
    /// The last DATA frame written was small and cut short by flow control.
    starved: bool,
    /// Set once over budget: the GOAWAY frame and how much of it is written.
    goaway: Option<(Vec<u8>, usize)>,
    reason: String,
}

impl<T> FrameGuard<T> {
    /// Guards `inner`, whose first bytes read are the client's connection preface.
    pub fn new(inner: T, limits: FloodLimits) -> Self {
        FrameGuard {
            inner,
            inbound: Scanner::after(PREFACE.len()),
            outbound: Scanner::frames(),
            budget: Budget::new(limits),
            last_stream: 0,
            starved: false,
            goaway: None,
            reason: String::new(),
        }
    }

    fn calm_down(&mut self) {
        let reason = self.budget.describe();
        tracing::debug!(%reason, "HTTP/2 connection over its flood budget");
        self.go_away(ENHANCE_YOUR_CALM, reason);
    }

    fn go_away(&mut self, code: u32, reason: String) {
        if self.goaway.is_some() {
            return;
        }
        self.reason = reason;
        let debug = self.reason.as_bytes();
        let len = 8 + debug.len();
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind::GOAWAY,
            0,
        ];
        f.extend_from_slice(&0u32.to_be_bytes());
        f.extend_from_slice(&self.last_stream.to_be_bytes());
        f.extend_from_slice(&code.to_be_bytes());
        f.extend_from_slice(debug);
        self.goaway = Some((f, 0));
    }

    fn aborted(&self) -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, self.reason.clone())
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> FrameGuard<T> {
    /// Writes the GOAWAY (hyper's output is at a frame boundary), flushes and shuts the
    /// write side; then fails, so that hyper drops the connection.
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some((frame, pos)) = self.goaway.as_mut() else {
            return Poll::Ready(self.aborted());
        };
        while *pos < frame.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &frame[*pos..])) {
                Ok(0) | Err(_) => return Poll::Ready(self.aborted()),
                Ok(n) => *pos += n,
            }
        }
        let _ = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        let _ = ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
        Poll::Ready(self.aborted())
    }

    fn note_written(&mut self, data: &[u8]) {
        // With the limit off no GOAWAY is ever sent, so boundaries need not be followed.
        if !self.budget.enabled() {
            return;
        }
        let (budget, starved) = (&mut self.budget, &mut self.starved);
        let mut over = false;
        self.outbound.feed(data, |f| {
            if let Some(s) = budget::starves(&f) {
                *starved = s;
            }
            if let Some(g) = budget::outbound(&f) {
                over |= !budget.spend(g, Instant::now());
            }
        });
        if over {
            self.calm_down();
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for FrameGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.goaway.is_some() {
            if !this.outbound.at_boundary() {
                // hyper is inside a frame; its next write finishes it and sends GOAWAY.
                return Poll::Pending;
            }
            return this.poll_goaway(cx).map(Err);
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if !this.budget.enabled() {
            return Poll::Ready(Ok(()));
        }
        let (budget, last_stream, starved) =
            (&mut this.budget, &mut this.last_stream, this.starved);
        let (mut over, mut pushed) = (false, false);
        this.inbound.feed(&buf.filled()[before..], |f| {
            if f.kind == kind::HEADERS {
                *last_stream = (*last_stream).max(f.stream);
            }
            pushed |= f.kind == kind::PUSH_PROMISE;
            if let Some(g) = budget::inbound(&f, starved) {
                over |= !budget.spend(g, Instant::now());
            }
        });
        if pushed {
            this.go_away(
                PROTOCOL_ERROR,
                "PUSH_PROMISE from a client (RFC 9113 section 8.4)".into(),
            );
        } else if over {
            this.calm_down();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FrameGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let mut data = data;
        if this.goaway.is_some() {
            let rest = this.outbound.to_boundary();
            if rest == 0 {
                return this.poll_goaway(cx).map(Err);
            }
            data = &data[..rest.min(data.len())];
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        this.note_written(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.goaway.is_some() {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return Pin::new(this).poll_write(cx, first);
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            if left == 0 {
                break;
            }
            let k = left.min(b.len());
            this.note_written(&b[..k]);
            left -= k;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
