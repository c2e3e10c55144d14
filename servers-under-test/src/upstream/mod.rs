//! A per-worker connection pool to one kind of upstream. GET and HEAD requests without a
//! body are sent from the request's own task: over HTTP/1.1 by [`raw`] on pooled sockets,
//! over HTTP/2 by [`h2_direct`] on a shared connection. The others use hyper's client
//! connections: HTTP/1.1 senders go back to the pool when their response body ends, and
//! HTTP/2 shares one multiplexed connection. Lighter per request than a general-purpose
//! client, which is what a proxy's hot path needs.

mod chunked;
mod h2_direct;
mod raw;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::body::{Body, BoxError};

/// Why the upstream gave no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection could not be made in time, or was refused.
    #[error("cannot connect to upstream {addr}: {reason}")]
    Connect {
        /// The upstream.
        addr: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// The upstream connection failed while sending or receiving.
    #[error("error from upstream {addr}: {source}")]
    Http {
        /// The upstream.
        addr: SocketAddr,
        /// The hyper error.
        source: hyper::Error,
    },
    /// An HTTP/2 request without a body failed.
    #[error("error from upstream {addr}: {source}")]
    H2 {
        /// The upstream.
        addr: SocketAddr,
        /// The h2 error.
        source: h2::Error,
    },
    /// An inline exchange (request without a body) failed.
    #[error("error from upstream {addr}: {source}")]
    Raw {
        /// The upstream.
        addr: SocketAddr,
        /// What went wrong.
        source: raw::RawError,
    },
}

enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

/// The pool of one worker.
pub struct UpstreamPool {
    h2: bool,
    connect_timeout: Duration,
    idle_h1: Mutex<Vec<(SocketAddr, http1::SendRequest<Body>)>>,
    idle_raw: Mutex<Vec<(SocketAddr, raw::RawConn)>>,
    shared_h2: Mutex<Option<(SocketAddr, http2::SendRequest<Body>)>>,
    direct_h2: Mutex<Option<(SocketAddr, h2::client::SendRequest<Bytes>)>>,
}

/// Most idle HTTP/1.1 connections kept per worker.
const MAX_IDLE: usize = 4096;

/// Takes an idle connection to `addr`, dropping those to an earlier upstream (the
/// module's app restarted on another port).
fn pop_idle<T>(idle: &Mutex<Vec<(SocketAddr, T)>>, addr: SocketAddr) -> Option<T> {
    let mut idle = idle.lock().expect("pool lock");
    while let Some((a, conn)) = idle.pop() {
        if a == addr {
            return Some(conn);
        }
    }
    None
}

/// Keeps an idle connection unless [`MAX_IDLE`] are kept already.
fn push_idle<T>(idle: &Mutex<Vec<(SocketAddr, T)>>, addr: SocketAddr, conn: T) {
    let mut idle = idle.lock().expect("pool lock");
    if idle.len() < MAX_IDLE {
        idle.push((addr, conn));
    }
}

impl UpstreamPool {
    /// A pool speaking HTTP/2 (prior knowledge) when `h2`, else HTTP/1.1.
    pub fn new(h2: bool, connect_timeout: Duration) -> Arc<UpstreamPool> {
        Arc::new(UpstreamPool {
            h2,
            connect_timeout,
            idle_h1: Mutex::new(Vec::new()),
            idle_raw: Mutex::new(Vec::new()),
            shared_h2: Mutex::new(None),
            direct_h2: Mutex::new(None),
        })
    }

    /// Whether requests with this method and (no) body are sent from their own task
    /// ([`UpstreamPool::send_inline`]).
    pub fn takes_inline(&self, method: &Method, bodiless: bool) -> bool {
        bodiless && (*method == Method::GET || *method == Method::HEAD)
    }

    /// Sends a GET or HEAD request without a body (see [`UpstreamPool::takes_inline`])
    /// from the calling task. `uri` is the origin form for HTTP/1.1, the absolute form
    /// for HTTP/2. A connection the upstream had closed is replaced once.
    pub async fn send_inline(
        self: &Arc<Self>,
        addr: SocketAddr,
        method: &Method,
        uri: http::Uri,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, UpstreamError> {
        if self.h2 {
            self.send_h2_direct(addr, method, uri, headers).await
        } else {
            let target = uri.path_and_query().map_or("/", |p| p.as_str());
            self.send_raw(addr, method, target, headers).await
        }
    }

    async fn send_h2_direct(
        &self,
        addr: SocketAddr,
        method: &Method,
        uri: http::Uri,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, UpstreamError> {
        let h2_err = |source| UpstreamError::H2 { addr, source };
        let cached = self.direct_h2.lock().expect("pool lock").clone();
        if let Some((_, send)) = cached.filter(|(a, _)| *a == addr) {
            match h2_direct::exchange(send, method, uri.clone(), headers).await {
                Err(e) if h2_direct::retryable(&e) => {
                    tracing::debug!(error = %e, "upstream h2 connection is gone; reconnecting")
                }
                done => return done.map_err(h2_err),
            }
        }
        let tcp = Box::pin(self.connect_tcp(addr)).await?;
        let send = Box::pin(h2_direct::connect(tcp)).await.map_err(h2_err)?;
        *self.direct_h2.lock().expect("pool lock") = Some((addr, send.clone()));
        h2_direct::exchange(send, method, uri, headers)
            .await
            .map_err(h2_err)
    }

    async fn connect_tcp(&self, addr: SocketAddr) -> Result<tokio::net::TcpStream, UpstreamError> {
        let connect_err = |reason: String| UpstreamError::Connect { addr, reason };
        let connecting = Box::pin(tokio::net::TcpStream::connect(addr));
        let tcp = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(connect_err(e.to_string())),
            Err(_) => {
                return Err(connect_err(format!(
                    "timed out after {:?}",
                    self.connect_timeout
                )))
            }
        };
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Sender, UpstreamError> {
        let io = TokioIo::new(self.connect_tcp(addr).await?);
        let http_err = |source| UpstreamError::Http { addr, source };
        if self.h2 {
            let (send, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(http_err)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream h2 connection ended");
                }
            });
            Ok(Sender::H2(send))
        } else {
            let (send, conn) = http1::handshake(io).await.map_err(http_err)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
            Ok(Sender::H1(send))
        }
    }

    /// A sender ready for a request: reused when possible (and whether it was), else new.
    async fn checkout(&self, addr: SocketAddr) -> Result<(Sender, bool), UpstreamError> {
        if self.h2 {
            let cached = self.shared_h2.lock().expect("pool lock").clone();
            if let Some((a, mut send)) = cached {
                if a == addr && send.ready().await.is_ok() {
                    return Ok((Sender::H2(send), true));
                }
            }
            let sender = self.connect(addr).await?;
            if let Sender::H2(send) = &sender {
                *self.shared_h2.lock().expect("pool lock") = Some((addr, send.clone()));
            }
            return Ok((sender, false));
        }
        while let Some(mut send) = pop_idle(&self.idle_h1, addr) {
            if send.ready().await.is_ok() {
                return Ok((Sender::H1(send), true));
            }
        }
        Ok((self.connect(addr).await?, false))
    }

    fn checkin_raw(&self, addr: SocketAddr, conn: raw::RawConn) {
        push_idle(&self.idle_raw, addr, conn);
    }

    async fn send_raw(
        self: &Arc<Self>,
        addr: SocketAddr,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, UpstreamError> {
        let reused = pop_idle(&self.idle_raw, addr);
        let raw_err = |source| UpstreamError::Raw { addr, source };
        if let Some(conn) = reused {
            match raw::exchange(conn, method, target, headers, self, addr).await {
                Err(e) if e.before_response() => {
                    tracing::debug!(error = %e, "reused upstream connection was closed; retrying")
                }
                done => return done.map_err(raw_err),
            }
        }
        let conn = raw::RawConn::new(Box::pin(self.connect_tcp(addr)).await?);
        raw::exchange(conn, method, target, headers, self, addr)
            .await
            .map_err(raw_err)
    }

    fn checkin(&self, addr: SocketAddr, send: http1::SendRequest<Body>) {
        if !send.is_closed() {
            push_idle(&self.idle_h1, addr, send);
        }
    }

    /// Sends `req` to `addr`. A request that a reused connection did not even start to send
    /// (the upstream had closed it) is retried once on a new connection.
    pub async fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        req: Request<Body>,
    ) -> Result<Response<Body>, UpstreamError> {
        let (sender, reused) = self.checkout(addr).await?;
        let http_err = |source| UpstreamError::Http { addr, source };
        let (req, sender) = match self.try_send(addr, sender, req).await {
            Ok(resp) => return Ok(resp),
            Err((e, Some(req))) if reused => {
                tracing::debug!(error = %e, "reused upstream connection was closed; retrying");
                (req, self.connect(addr).await?)
            }
            Err((e, _)) => return Err(http_err(e)),
        };
        self.try_send(addr, sender, req)
            .await
            .map_err(|(e, _)| http_err(e))
    }

    async fn try_send(
        self: &Arc<Self>,
        addr: SocketAddr,
        sender: Sender,
        req: Request<Body>,
    ) -> Result<Response<Body>, (hyper::Error, Option<Request<Body>>)> {
        match sender {
            Sender::H2(mut send) => {
                let resp = send.try_send_request(req).await.map_err(|mut e| {
                    let req = e.take_message();
                    (e.into_error(), req)
                })?;
                Ok(
                    resp.map(|b| {
                        http_body_util::BodyExt::map_err(b, BoxError::from).boxed_unsync()
                    }),
                )
            }
            Sender::H1(mut send) => {
                let resp = send.try_send_request(req).await.map_err(|mut e| {
                    let req = e.take_message();
                    (e.into_error(), req)
                })?;
                let pool = self.clone();
                Ok(resp.map(move |inner| {
                    let body = Recycle {
                        inner,
                        sender: Some(send),
                        pool,
                        addr,
                    };
                    http_body_util::BodyExt::boxed_unsync(body)
                }))
            }
        }
    }
}

use http_body_util::BodyExt as _;

/// A response body that returns its HTTP/1.1 connection to the pool once it has ended.
struct Recycle {
    inner: Incoming,
    sender: Option<http1::SendRequest<Body>>,
    pool: Arc<UpstreamPool>,
    addr: SocketAddr,
}

impl Recycle {
    fn release(&mut self) {
        if let Some(send) = self.sender.take() {
            self.pool.checkin(self.addr, send);
        }
    }
}

impl http_body::Body for Recycle {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            _ => {}
        }
        polled.map(|o| o.map(|r| r.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
