//! Cleartext HTTP/2 by HTTP/1.1 Upgrade (RFC 7540 section 3.2), which hyper lacks.
//!
//! After the 101 response, the request that carried the Upgrade must be answered on
//! stream 1 of the new HTTP/2 connection. The h2 server cannot be told about a stream it
//! did not receive, so the upgrade request is replayed to it as a HEADERS frame on
//! stream 1, inserted right after the client's preface and first SETTINGS frame. The
//! header block uses HPACK literals without indexing, so neither side's dynamic table
//! changes and the client's own HPACK state stays in step with the server's.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{header, Request};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use h2lab_common::hpack::put_integer;

use super::io::H2_PREFACE;

/// Largest header block we replay (the default SETTINGS_MAX_FRAME_SIZE).
const MAX_FRAME: usize = 16_384;

fn has_token(value: Option<&http::HeaderValue>, token: &str) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Whether `req` asks to upgrade to h2c in a way we honour: `Upgrade: h2c`, an
/// `HTTP2-Settings` header, and no request body (a body would have to be read before
/// switching; the server may ignore the Upgrade instead, which RFC 7230 allows).
pub fn wants_upgrade<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    has_token(h.get(header::UPGRADE), "h2c")
        && has_token(h.get(header::CONNECTION), "upgrade")
        && h.contains_key("http2-settings")
        && !h.contains_key(header::TRANSFER_ENCODING)
        && h.get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
}

fn hpack_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00); // literal header field without indexing, new name
    put_integer(out, 0x00, 7, name.len());
    out.extend_from_slice(name);
    put_integer(out, 0x00, 7, value.len());
    out.extend_from_slice(value);
}

const CONNECTION_SPECIFIC: [&str; 8] = [
    "connection",
    "upgrade",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "host",
];

/// Encodes `req` as a HEADERS frame (END_STREAM | END_HEADERS) on stream 1, or `None`
/// when the block does not fit in one frame.
pub fn stream1_headers<B>(req: &Request<B>) -> Option<Vec<u8>> {
    let mut block = Vec::with_capacity(256);
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    hpack_literal(&mut block, b":method", req.method().as_str().as_bytes());
    hpack_literal(&mut block, b":scheme", b"http");
    hpack_literal(&mut block, b":path", path.as_bytes());
    if let Some(host) = req.headers().get(header::HOST) {
        hpack_literal(&mut block, b":authority", host.as_bytes());
    }
    let listed: Vec<String> = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    for (name, value) in req.headers() {
        let n = name.as_str();
        if CONNECTION_SPECIFIC.contains(&n) || listed.iter().any(|l| l == n) {
            continue;
        }
        hpack_literal(&mut block, n.as_bytes(), value.as_bytes());
    }
    if block.len() > MAX_FRAME {
        return None;
    }
    let mut frame = Vec::with_capacity(9 + block.len());
    let len = block.len() as u32;
    frame.extend_from_slice(&len.to_be_bytes()[1..]);
    frame.push(0x1); // HEADERS
    frame.push(0x1 | 0x4); // END_STREAM | END_HEADERS
    frame.extend_from_slice(&1u32.to_be_bytes());
    frame.extend_from_slice(&block);
    Some(frame)
}

enum State {
    Collecting(Vec<u8>),
    Draining(Vec<u8>, usize),
    Passthrough,
}

/// Reads like `inner`, with `frame` inserted after the client preface and the first frame
/// that follows it (the client's SETTINGS).
pub struct InjectAfterSettings<T> {
    inner: T,
    frame: Vec<u8>,
    state: State,
}

impl<T> InjectAfterSettings<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, frame: Vec<u8>) -> Self {
        InjectAfterSettings {
            inner,
            frame,
            state: State::Collecting(Vec::with_capacity(128)),
        }
    }
}

/// Where to insert, once `acc` holds the preface and a whole first frame.
fn injection_point(acc: &[u8]) -> Option<usize> {
    let p = H2_PREFACE.len();
    if acc.len() < p + 9 {
        return None;
    }
    let len = u32::from_be_bytes([0, acc[p], acc[p + 1], acc[p + 2]]) as usize;
    (acc.len() >= p + 9 + len).then_some(p + 9 + len)
}

impl<T: AsyncRead + Unpin> AsyncRead for InjectAfterSettings<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Passthrough => return Pin::new(&mut this.inner).poll_read(cx, buf),
                State::Draining(out, pos) => {
                    let n = (out.len() - *pos).min(buf.remaining());
                    buf.put_slice(&out[*pos..*pos + n]);
                    *pos += n;
                    if *pos == out.len() {
                        this.state = State::Passthrough;
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Collecting(acc) => {
                    let mut tmp = [0u8; 4096];
                    let mut rb = ReadBuf::new(&mut tmp);
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                    let got = rb.filled();
                    acc.extend_from_slice(got);
                    let wrong_start =
                        acc.len() >= H2_PREFACE.len() && acc[..H2_PREFACE.len()] != H2_PREFACE[..];
                    if got.is_empty() || wrong_start {
                        // Not a preface, or EOF: hand over as is; the h2 server reports it.
                        let acc = std::mem::take(acc);
                        this.state = if acc.is_empty() {
                            State::Passthrough
                        } else {
                            State::Draining(acc, 0)
                        };
                        if got.is_empty() {
                            return Poll::Ready(Ok(()));
                        }
                        continue;
                    }
                    if let Some(at) = injection_point(acc) {
                        let mut out = Vec::with_capacity(acc.len() + this.frame.len());
                        out.extend_from_slice(&acc[..at]);
                        out.extend_from_slice(&this.frame);
                        out.extend_from_slice(&acc[at..]);
                        this.state = State::Draining(out, 0);
                    }
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for InjectAfterSettings<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_request_becomes_stream_1_headers_that_h2_decodes() {
        let req = Request::get("/info?x=1")
            .header("host", "127.0.0.1:8080")
            .header("connection", "Upgrade, HTTP2-Settings")
            .header("upgrade", "h2c")
            .header("http2-settings", "AAMAAABkAAQAAP__")
            .header("user-agent", "curl/7.88.1")
            .body(())
            .unwrap();
        assert!(wants_upgrade(&req));
        let frame = stream1_headers(&req).unwrap();
        assert_eq!(&frame[3..9], &[1, 5, 0, 0, 0, 1]);
        let block = &frame[9..];
        assert_eq!(
            block.len(),
            u32::from_be_bytes([0, frame[0], frame[1], frame[2]]) as usize
        );
        let text = String::from_utf8_lossy(block);
        assert!(text.contains(":authority") && text.contains("user-agent"));
        assert!(!text.contains("http2-settings") && !text.contains("upgrade"));
    }

    #[test]
    fn upgrade_with_a_body_is_not_honoured() {
        let req = Request::post("/echo")
            .header("connection", "Upgrade, HTTP2-Settings")
            .header("upgrade", "h2c")
            .header("http2-settings", "")
            .header("content-length", "5")
            .body(())
            .unwrap();
        assert!(!wants_upgrade(&req));
    }

    #[tokio::test]
    async fn frame_is_inserted_after_preface_and_settings() {
        use tokio::io::AsyncReadExt;
        let mut input = H2_PREFACE.to_vec();
        input.extend_from_slice(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]);
        input.extend_from_slice(b"REST");
        let (mut client, server) = tokio::io::duplex(64);
        let mut wrapped = InjectAfterSettings::new(server, b"FRAME".to_vec());
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in input.chunks(5) {
                client.write_all(chunk).await.unwrap();
            }
        });
        let mut out = Vec::new();
        wrapped.read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        let at = H2_PREFACE.len() + 15;
        assert_eq!(&out[at..at + 5], b"FRAME");
        assert_eq!(&out[at + 5..], b"REST");
    }
}
