//! HTTP/1.1 exchanges done inside the request's own task over a pooled socket: the
//! request head is written, the response head parsed with httparse, and the body read by
//! the body itself as the client side pulls it. No connection task and no channels sit
//! between the proxy and the socket, which is most of a proxy's per-request cost with a
//! general client. Used for requests without a body (GET, HEAD); the rest go through hyper.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::chunked::{Chunked, Step};
use super::UpstreamPool;
use crate::body::{self, Body, BoxError};

/// A pooled upstream connection and the bytes read from it but not yet used.
pub struct RawConn {
    tcp: TcpStream,
    buf: BytesMut,
}

impl RawConn {
    /// Wraps a connected socket.
    pub fn new(tcp: TcpStream) -> RawConn {
        RawConn {
            tcp,
            buf: BytesMut::with_capacity(READ_SIZE),
        }
    }
}

/// Bytes asked of the kernel per read.
const READ_SIZE: usize = 16 * 1024;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most response header fields accepted.
const MAX_HEADERS: usize = 128;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// Reading or writing the socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The upstream closed the connection before a response head.
    #[error("connection closed before a response")]
    Closed,
    /// The response head is not valid HTTP/1.1.
    #[error("invalid response head: {0}")]
    Head(String),
}

impl RawError {
    /// Whether the request may not have reached the upstream application, so an
    /// idempotent request can be retried on a new connection (a stale keep-alive one).
    pub fn before_response(&self) -> bool {
        matches!(self, RawError::Closed)
            || matches!(self, RawError::Io(e) if matches!(e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe))
    }
}

/// How the response body is delimited (RFC 9112 section 6.3).
enum Framing {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

/// Writes the head of a bodiless request.
fn encode_head(method: &Method, target: &str, headers: &HeaderMap) -> Vec<u8> {
    let size = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>();
    let mut out = Vec::with_capacity(method.as_str().len() + target.len() + size + 16);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (k, v) in headers {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A parsed response head: the response without its body, how the body is framed, and
/// whether the connection may carry another request afterwards.
struct Head {
    response: Response<()>,
    framing: Framing,
    reusable: bool,
}

/// Parses a complete head at the start of `buf`; `None` when more bytes are needed.
fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, RawError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(RawError::Head(format!("head over {MAX_HEAD} bytes")))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(RawError::Head(e.to_string())),
    };
    let code = parsed.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| RawError::Head(format!("status code {code}")))?;
    let http10 = parsed.version == Some(0);
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    let (mut chunked, mut other_coding, mut length, mut close, mut keep_alive) =
        (false, false, None::<u64>, false, false);
    for f in parsed.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| RawError::Head(format!("header name {:?}", f.name)))?;
        let value = HeaderValue::from_bytes(f.value)
            .map_err(|_| RawError::Head(format!("value of {name}")))?;
        if name == http::header::TRANSFER_ENCODING {
            let last = f.value.rsplit(|b| *b == b',').next().unwrap_or(&[]);
            chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            other_coding |= !chunked;
        } else if name == http::header::CONTENT_LENGTH {
            let n = std::str::from_utf8(f.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| RawError::Head("invalid content-length".into()))?;
            if length.is_some_and(|m| m != n) {
                return Err(RawError::Head("conflicting content-length".into()));
            }
            length = Some(n);
        } else if name == http::header::CONNECTION {
            for token in f.value.split(|b| *b == b',') {
                close |= token.trim_ascii().eq_ignore_ascii_case(b"close");
                keep_alive |= token.trim_ascii().eq_ignore_ascii_case(b"keep-alive");
            }
        }
        headers.append(name, value);
    }
    bytes::Buf::advance(buf, len);
    let no_body = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::Length(0)
    } else if chunked && !other_coding {
        Framing::Chunked(Chunked::Size)
    } else if other_coding || chunked {
        Framing::UntilClose
    } else {
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let reusable = !close && (!http10 || keep_alive) && !matches!(framing, Framing::UntilClose);
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = Version::HTTP_11;
    *response.headers_mut() = headers;
    Ok(Some(Head {
        response,
        framing,
        reusable,
    }))
}

/// Sends a bodiless request on `conn` and returns the response; its body reads the rest
/// of the exchange and gives the connection back to `pool` (for `addr`) when it ends.
pub async fn exchange(
    mut conn: RawConn,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    pool: &Arc<UpstreamPool>,
    addr: std::net::SocketAddr,
) -> Result<Response<Body>, RawError> {
    conn.tcp
        .write_all(&encode_head(method, target, headers))
        .await?;
    let head = loop {
        if !conn.buf.is_empty() {
            if let Some(head) = parse_head(&mut conn.buf, method)? {
                if head.response.status().is_informational() {
                    if head.response.status() == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(RawError::Head("unexpected 101".into()));
                    }
                    continue; // 100 Continue, 103 Early Hints: the final head follows
                }
                break head;
            }
        }
        conn.buf.reserve(READ_SIZE);
        if conn.tcp.read_buf(&mut conn.buf).await? == 0 {
            return Err(RawError::Closed);
        }
    };
    let (parts, ()) = head.response.into_parts();
    // The usual small response is already whole in the buffer: no body state to keep.
    if let Framing::Length(n) = head.framing {
        if conn.buf.len() as u64 >= n {
            let bytes = conn.buf.split_to(n as usize).freeze();
            if head.reusable && conn.buf.is_empty() {
                pool.checkin_raw(addr, conn);
            }
            return Ok(Response::from_parts(parts, body::full(bytes)));
        }
    }
    let body = RawBody {
        conn: Some(conn),
        framing: head.framing,
        reusable: head.reusable,
        pool: pool.clone(),
        addr,
    };
    Ok(Response::from_parts(
        parts,
        http_body_util::BodyExt::boxed_unsync(body),
    ))
}

/// A response body read from the upstream socket as it is polled.
struct RawBody {
    conn: Option<RawConn>,
    framing: Framing,
    reusable: bool,
    pool: Arc<UpstreamPool>,
    addr: std::net::SocketAddr,
}

impl RawBody {
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.reusable && conn.buf.is_empty() {
                self.pool.checkin_raw(self.addr, conn);
            }
        }
    }

    /// Reads more into the buffer; `Ok(0)` at end of stream.
    fn poll_fill(conn: &mut RawConn, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        conn.buf.reserve(READ_SIZE);
        tokio_util::io::poll_read_buf(Pin::new(&mut conn.tcp), cx, &mut conn.buf)
    }
}

impl http_body::Body for RawBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let data = match &mut this.framing {
                Framing::Length(0) => None,
                Framing::Length(left) if !conn.buf.is_empty() => {
                    let n = (*left).min(conn.buf.len() as u64);
                    *left -= n;
                    Some(conn.buf.split_to(n as usize).freeze())
                }
                Framing::UntilClose if !conn.buf.is_empty() => Some(conn.buf.split().freeze()),
                Framing::Chunked(state) => match state.step(&mut conn.buf) {
                    Ok(Step::Data(d)) => Some(d),
                    Ok(Step::Done) => None,
                    Ok(Step::NeedMore) => Some(Bytes::new()),
                    Err(e) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                },
                Framing::Length(_) | Framing::UntilClose => Some(Bytes::new()),
            };
            match data {
                None => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Some(d) if !d.is_empty() => return Poll::Ready(Some(Ok(Frame::data(d)))),
                Some(_) => {} // the buffer is empty: read
            }
            match ready!(Self::poll_fill(conn, cx)) {
                Ok(0) if matches!(this.framing, Framing::UntilClose) => {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(Some(
                        Err("upstream closed the connection mid-body".into()),
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
            || matches!(self.framing, Framing::Length(0))
            || matches!(self.framing, Framing::Chunked(Chunked::Done))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(wire: &str, method: Method) -> Result<Option<Head>, RawError> {
        parse_head(&mut BytesMut::from(wire.as_bytes()), &method)
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert!(matches!(h.framing, Framing::Length(13)) && h.reusable);
        let h = head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(h.framing, Framing::Chunked(_)) && h.reusable);
        let h = head("HTTP/1.1 200 OK\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert!(matches!(h.framing, Framing::UntilClose) && !h.reusable);
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", Method::HEAD)
            .unwrap()
            .unwrap();
        assert!(matches!(h.framing, Framing::Length(0)));
        let h = head(
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(h.framing, Framing::Length(0)));
        let h = head(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(!h.reusable);
        let h = head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert!(!h.reusable, "HTTP/1.0 without keep-alive closes");
    }

    #[test]
    fn partial_and_invalid_heads() {
        assert!(head("HTTP/1.1 200 OK\r\ncontent-le", Method::GET)
            .unwrap()
            .is_none());
        assert!(head("HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", Method::GET).is_err());
        assert!(head(
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            Method::GET
        )
        .is_err());
        assert!(head("HTTX/1.1 200 OK\r\n\r\n", Method::GET).is_err());
    }

    #[test]
    fn request_head_is_http_1_1_origin_form() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("example"));
        let wire = encode_head(&Method::GET, "/a?b=1", &h);
        assert_eq!(wire, b"GET /a?b=1 HTTP/1.1\r\nhost: example\r\n\r\n");
    }
}
