//! I/O wrappers used by the engine: `Watched` counts bytes for the watchdog and can answer
//! 408 on its behalf; `Rewind` replays bytes read while sniffing the HTTP/2 preface;
//! `Lingering` closes like nginx's lingering close, so a last GOAWAY or 408 is read.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::watchdog::Activity;

/// The answer to a request head that did not arrive in time.
pub(super) const RESPONSE_408: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 34\r\nconnection: close\r\n\r\nrequest header read timed out\r\n\r\n";

/// Counts bytes read and written into an [`Activity`]; when the watchdog sets `abort_408`,
/// the next read writes a 408 response and reports end of stream, so hyper closes.
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    abort_pos: usize,
}

impl<T> Watched<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Watched {
            inner,
            activity,
            abort_pos: 0,
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.activity.abort_408.load(Relaxed) {
            while this.abort_pos < RESPONSE_408.len() {
                let n = ready!(
                    Pin::new(&mut this.inner).poll_write(cx, &RESPONSE_408[this.abort_pos..])
                )?;
                if n == 0 {
                    break;
                }
                this.abort_pos += n;
            }
            ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.activity.add_read(buf.filled().len() - before);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        self.activity.set_write_blocked(polled.is_pending());
        let n = ready!(polled)?;
        self.activity.add_written(n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.set_write_blocked(polled.is_pending());
        let n = ready!(polled)?;
        self.activity.add_written(n);
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

/// Longest a closed connection is drained for.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(1);
/// Most bytes drained from a closed connection.
const LINGER_BYTES: usize = 1 << 20;

/// Owns a connection's stream; when dropped, shuts its write side and reads and discards
/// what the peer still sends (at most [`LINGER_BYTES`], then no more reading) until the
/// peer closes or [`LINGER_TIME`] has passed, before closing. Closing a socket with unread data makes the kernel send a TCP reset, and the
/// reset discards, at the peer, the GOAWAY or 408 written just before.
pub struct Lingering<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    inner: Option<T>,
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Lingering<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Lingering { inner: Some(inner) }
    }

    fn io(&mut self) -> Pin<&mut T> {
        Pin::new(self.inner.as_mut().expect("present until dropped"))
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        self.inner.as_ref().expect("present until dropped")
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Lingering<T> {
    fn drop(&mut self) {
        let (Some(io), Ok(rt)) = (self.inner.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        rt.spawn(linger(io));
    }
}

async fn linger<T: AsyncRead + AsyncWrite + Unpin>(mut io: T) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let drain = async {
        let _ = io.shutdown().await;
        let mut buf = [0u8; 8192];
        let mut total = 0;
        while total < LINGER_BYTES {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => total += n,
            }
        }
        true
    };
    if let Ok(true) = tokio::time::timeout_at(deadline, drain).await {
        // A peer that keeps sending (a flood) is no longer read: its window closes and it
        // stalls, at no cost here, while it reads what was written last.
        tokio::time::sleep_until(deadline).await;
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Lingering<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.io().poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Lingering<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io().poll_write(cx, data)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io().poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.get_ref().is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}

/// Replays `prefix` before reading from `inner`.
pub struct Rewind<T> {
    prefix: Vec<u8>,
    pos: usize,
    inner: T,
}

impl<T> Rewind<T> {
    /// Wraps `inner`, replaying `prefix` first.
    pub fn new(prefix: Vec<u8>, inner: T) -> Self {
        Rewind {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

/// The HTTP/2 client connection preface.
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads until the bytes seen either are the HTTP/2 preface or cannot become it.
/// Returns whether they are, and every byte read (to replay with [`Rewind`]).
pub async fn sniff_h2_preface<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<(bool, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::with_capacity(1024);
    loop {
        let n = io.read_buf(&mut seen).await?;
        let k = seen.len().min(H2_PREFACE.len());
        if seen[..k] != H2_PREFACE[..k] || n == 0 {
            return Ok((false, seen));
        }
        if seen.len() >= H2_PREFACE.len() {
            return Ok((true, seen));
        }
    }
}
