//! Cleartext HTTP/2 by HTTP/1.1 Upgrade for the probe, which reads the response's
//! headers through the h2 crate. The h2 crate has no upgrade mode: to let its client own
//! stream 1, the request already sent as HTTP/1.1 is submitted to it as its first stream
//! and that HEADERS frame is dropped on the wire (the server already has the request).
//! The dropped block changes no HPACK state: `:method GET` and `:scheme http` are
//! static-table entries, `:path` is never indexed by h2, and no `:authority` or other
//! field is sent. The HTTP/1.1 half is the load engine's (`load::upgrade::switch`).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::load::upgrade::switch;

const PREFACE_LEN: usize = 24;

/// Drops the client's first HEADERS frame on stream 1 (and its CONTINUATIONs) from what is
/// written; replays `prefix` (bytes read past the 101 response) before reading.
struct Upgraded {
    inner: TcpStream,
    prefix: BytesMut,
    out: Vec<u8>,
    scan: Vec<u8>,
    preface_left: usize,
    dropping: bool,
    done: bool,
}

impl Upgraded {
    fn new(inner: TcpStream, prefix: BytesMut) -> Self {
        Upgraded {
            inner,
            prefix,
            out: Vec::new(),
            scan: Vec::new(),
            preface_left: PREFACE_LEN,
            dropping: false,
            done: false,
        }
    }

    /// Splits `data` into frames, keeping all but stream 1's header block.
    fn filter(&mut self, data: &[u8]) {
        let mut data = data;
        let skip = self.preface_left.min(data.len());
        self.out.extend_from_slice(&data[..skip]);
        self.preface_left -= skip;
        data = &data[skip..];
        self.scan.extend_from_slice(data);
        loop {
            if self.done {
                let rest = std::mem::take(&mut self.scan);
                self.out.extend_from_slice(&rest);
                return;
            }
            if self.scan.len() < 9 {
                return;
            }
            let len = u32::from_be_bytes([0, self.scan[0], self.scan[1], self.scan[2]]) as usize;
            if self.scan.len() < 9 + len {
                return;
            }
            let (kind, flags) = (self.scan[3], self.scan[4]);
            let stream =
                u32::from_be_bytes([self.scan[5], self.scan[6], self.scan[7], self.scan[8]])
                    & 0x7fff_ffff;
            let frame: Vec<u8> = self.scan.drain(..9 + len).collect();
            let header_block = stream == 1 && (kind == 0x1 || (kind == 0x9 && self.dropping));
            if header_block {
                self.dropping = flags & 0x4 == 0; // until END_HEADERS
                self.done = !self.dropping;
            } else {
                self.out.extend_from_slice(&frame);
            }
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            self.out.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        if self.done && self.scan.is_empty() {
            return Pin::new(&mut self.inner).poll_write(cx, data);
        }
        self.filter(data);
        let _ = self.poll_drain(cx)?;
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What an `Upgrade: h2c` request got.
pub enum Upgrade {
    /// The server answered over HTTP/1.1 with this status instead of 101.
    Declined(u16),
    /// 101: an HTTP/2 connection whose stream 1 carries the response to the request.
    Switched {
        /// Further requests.
        send: h2::client::SendRequest<bytes::Bytes>,
        /// The connection's I/O, to be polled.
        conn: Box<h2::client::Connection<UpgradedIo, bytes::Bytes>>,
        /// The response to the upgrade request.
        response: h2::client::ResponseFuture,
    },
}

/// The I/O of an upgraded connection.
pub struct UpgradedIo(Upgraded);

impl AsyncRead for UpgradedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for UpgradedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Sends `GET path` with `Upgrade: h2c` and, on 101, hands stream 1 to an h2 client (for
/// the probe, which reads the response's headers).
pub async fn upgrade(mut tcp: TcpStream, authority: &str, path: &str) -> Result<Upgrade, String> {
    let leftover = match switch(&mut tcp, authority, path).await? {
        Ok(rest) => rest,
        Err(status) => return Ok(Upgrade::Declined(status)),
    };
    let mut builder = h2::client::Builder::new();
    builder.initial_window_size(1 << 20);
    let (mut send, conn) = builder
        .handshake::<_, bytes::Bytes>(UpgradedIo(Upgraded::new(tcp, leftover)))
        .await
        .map_err(|e| h2_class(&e))?;
    // Stream 1: the request already sent as HTTP/1.1.
    let stream1 = http::Request::builder()
        .method(http::Method::GET)
        .uri(path)
        .version(http::Version::HTTP_11)
        .body(())
        .expect("valid request");
    let (response, _) = send.send_request(stream1, true).map_err(|e| h2_class(&e))?;
    Ok(Upgrade::Switched {
        send,
        conn: Box::new(conn),
        response,
    })
}

/// Error class of an h2 crate error: GOAWAY and RST_STREAM name their code.
pub fn h2_class(e: &h2::Error) -> String {
    if let Some(reason) = e.reason() {
        if e.is_go_away() {
            return format!("h2_goaway:{reason:?}");
        }
        if e.is_reset() {
            return format!("h2_rst_stream:{reason:?}");
        }
        return format!("protocol:{reason:?}");
    }
    match e.get_io() {
        Some(io) => crate::load::conn::io_class(io),
        None => "protocol:h2".to_string(),
    }
}
