//! One worker's accept loop and the life of one connection: admission against the
//! connection limit, TLS handshake, protocol choice, serving with hyper, timeouts.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::guard::FrameGuard;
use super::h2c;
use super::io::{sniff_h2_preface, Lingering, Rewind, Watched};
use super::labh2::H2Engine;
use super::watchdog::{Activity, Verdict, Watchdog};
use super::{ConnCounter, Limits, ServerOptions};
use crate::body::{self, Body};
use crate::conn_info::ConnInfo;
use crate::handler::Handler;
use crate::request_body::RequestBody;
use crate::tls::{openssl_facts, rustls_facts, ServerTls};

/// What every connection of one worker shares.
pub(crate) struct WorkerCtx<H> {
    pub(crate) handler: Arc<H>,
    tls: Option<ServerTls>,
    pub(crate) limits: Limits,
    h2c: bool,
    reject_weak_h2: bool,
    h1: http1::Builder,
    h1_closing: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    counter: Arc<ConnCounter>,
    pub(crate) shutdown: CancellationToken,
}

impl<H: Handler> WorkerCtx<H> {
    pub(crate) fn new(
        handler: Arc<H>,
        tls: Option<ServerTls>,
        opts: &ServerOptions,
        counter: Arc<ConnCounter>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let limits = opts.limits.clone();
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            // Our watchdog answers slow heads with 408; hyper's timer would just close.
            .header_read_timeout(None)
            .max_header_size(limits.max_header_bytes)
            .max_buf_size((limits.max_header_bytes + 1024).max(8192));
        let mut h1_closing = h1.clone();
        h1_closing.keep_alive(false);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_streams)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            // Large windows: the h2 defaults make large bodies several times slower.
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .max_send_buf_size(1 << 20)
            .max_pending_accept_reset_streams(limits.h2_max_pending_resets)
            .max_local_error_reset_streams(limits.h2_max_local_resets);
        Arc::new(WorkerCtx {
            handler,
            tls,
            limits,
            h2c: opts.h2c,
            reject_weak_h2: opts.tls.as_ref().is_some_and(|t| t.reject_weak_h2),
            h1,
            h1_closing,
            h2,
            counter,
            shutdown,
        })
    }
}

/// Accepts until shutdown, then lets open connections finish within the grace period.
pub(crate) async fn accept_loop<H: Handler>(listener: TcpListener, ctx: Arc<WorkerCtx<H>>) {
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    let _ = tcp.set_nodelay(true);
                    tracker.spawn(handle_conn(ctx.clone(), tcp, remote));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(ctx.limits.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tracker.len(),
            "connections still open after the grace period"
        );
    }
}

async fn handle_conn<H: Handler>(ctx: Arc<WorkerCtx<H>>, tcp: TcpStream, remote: SocketAddr) {
    let counter = ctx.counter.clone();
    let Some((_slot, overloaded)) = counter.admit() else {
        return; // far over the limit: close without a word
    };
    let local = tcp.local_addr().unwrap_or(remote);
    let mut info = ConnInfo {
        remote,
        local,
        tls: None,
        max_body: ctx.limits.max_body_bytes,
        remote_ip: Default::default(),
    };
    let hs_timeout = ctx.limits.handshake_timeout;
    match ctx.tls.clone() {
        None => serve_cleartext(ctx, tcp, info, overloaded).await,
        Some(ServerTls::Rustls(acceptor)) => {
            let stream = match tokio::time::timeout(hs_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%remote, "TLS handshake timed out"),
            };
            info.tls = Some(rustls_facts(stream.get_ref().1));
            serve_tls(ctx, stream, info, overloaded).await
        }
        Some(ServerTls::Openssl(acceptor)) => {
            let mut stream = match openssl::ssl::Ssl::new(acceptor.context())
                .and_then(|ssl| tokio_openssl::SslStream::new(ssl, tcp))
            {
                Ok(s) => s,
                Err(e) => return tracing::warn!(error = %e, "OpenSSL session setup failed"),
            };
            match tokio::time::timeout(hs_timeout, Pin::new(&mut stream).accept()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%remote, "TLS handshake timed out"),
            }
            info.tls = Some(openssl_facts(stream.ssl()));
            serve_tls(ctx, stream, info, overloaded).await
        }
    }
}

async fn serve_tls<H, T>(ctx: Arc<WorkerCtx<H>>, io: T, info: ConnInfo, overloaded: bool)
where
    H: Handler,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // After TLS, ALPN alone decides the protocol; no sniffing.
    let is_h2 = info.tls.as_ref().and_then(|t| t.alpn.as_deref()) == Some("h2");
    if is_h2 && ctx.reject_weak_h2 && info.tls.as_ref().is_some_and(weak_for_h2) {
        return refuse_h2(io, ctx.limits.handshake_timeout).await;
    }
    let activity = Arc::new(Activity::default());
    let io = Watched::new(Lingering::new(io), activity.clone());
    if is_h2 {
        serve_h2(ctx, io, Arc::new(info), activity, overloaded).await
    } else {
        serve_h1_lane(
            ctx,
            io,
            Vec::new(),
            Arc::new(info),
            activity,
            overloaded,
            false,
        )
        .await
    }
}

/// HTTP/1.1: the lab engine's fast lane first (simple requests answered inline), then
/// hyper for what the lane hands over; hyper alone on the hyper engine.
async fn serve_h1_lane<H, T>(
    ctx: Arc<WorkerCtx<H>>,
    mut io: T,
    seen: Vec<u8>,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
    overloaded: bool,
    allow_h2c_upgrade: bool,
) where
    H: Handler,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let rest = if ctx.limits.h2_engine == H2Engine::Lab && !overloaded {
        match super::labh1::serve(&ctx, &mut io, seen, &activity).await {
            super::labh1::Outcome::Closed => return,
            super::labh1::Outcome::HandOver(rest) => rest,
        }
    } else {
        seen
    };
    let io = Rewind::new(rest, io);
    serve_h1(ctx, io, info, activity, overloaded, allow_h2c_upgrade).await
}

/// RFC 7540 section 9.2.2: TLS 1.2 with a suite on Appendix A is inadequate for HTTP/2.
fn weak_for_h2(tls: &crate::conn_info::TlsFacts) -> bool {
    tls.version == "TLSv1.2" && h2lab_common::profiles::on_appendix_a(tls.cipher_code)
}

/// Answers the connection preface with GOAWAY INADEQUATE_SECURITY and closes.
async fn refuse_h2<T>(io: T, within: Duration)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let refuse = async {
        let mut conn = h2::server::handshake(io).await?;
        conn.abrupt_shutdown(h2::Reason::INADEQUATE_SECURITY);
        while conn.accept().await.is_some() {}
        Ok::<_, h2::Error>(())
    };
    match tokio::time::timeout(within, refuse).await {
        Ok(Ok(())) | Err(_) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "refusing HTTP/2 on a weak suite"),
    }
    tracing::debug!("HTTP/2 refused: TLS 1.2 suite on RFC 7540 Appendix A");
}

async fn serve_cleartext<H: Handler>(
    ctx: Arc<WorkerCtx<H>>,
    tcp: TcpStream,
    info: ConnInfo,
    overloaded: bool,
) {
    let activity = Arc::new(Activity::default());
    let mut io = Watched::new(Lingering::new(tcp), activity.clone());
    let info = Arc::new(info);
    if !ctx.h2c {
        return serve_h1_lane(ctx, io, Vec::new(), info, activity, overloaded, false).await;
    }
    let sniffed = tokio::time::timeout(ctx.limits.header_timeout, sniff_h2_preface(&mut io)).await;
    let (is_h2, seen) = match sniffed {
        Ok(Ok(x)) => x,
        Ok(Err(_)) => return,
        Err(_) => {
            let _ = io.write_all(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            return;
        }
    };
    if is_h2 {
        serve_h2(ctx, Rewind::new(seen, io), info, activity, overloaded).await
    } else {
        serve_h1_lane(ctx, io, seen, info, activity, overloaded, true).await
    }
}

async fn serve_h1<H, T>(
    ctx: Arc<WorkerCtx<H>>,
    io: T,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
    overloaded: bool,
    allow_h2c_upgrade: bool,
) where
    H: Handler,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = if overloaded { &ctx.h1_closing } else { &ctx.h1 };
    let svc = {
        let (ctx, info, activity) = (ctx.clone(), info.clone(), activity.clone());
        service_fn(move |req: Request<Incoming>| {
            let (ctx, info, activity) = (ctx.clone(), info.clone(), activity.clone());
            // Boxed: hyper keeps the service future in the connection's state, which is
            // moved per request; a pointer moves cheaper than several KiB.
            let responding = Box::pin(respond(
                ctx,
                req.map(RequestBody::plain),
                info,
                activity,
                overloaded,
                allow_h2c_upgrade,
            ));
            async move { Ok::<_, Infallible>(responding.await) }
        })
    };
    let conn = builder
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    drive(conn, &activity, &ctx, true).await
}

async fn serve_h2<H, T>(
    ctx: Arc<WorkerCtx<H>>,
    io: T,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
    overloaded: bool,
) where
    H: Handler,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if ctx.limits.h2_engine == H2Engine::Lab {
        return super::labh2::serve(ctx, io, info, activity, overloaded).await;
    }
    let svc = {
        let (ctx, info, activity) = (ctx.clone(), info.clone(), activity.clone());
        service_fn(move |req: Request<Incoming>| {
            let (ctx, info, activity) = (ctx.clone(), info.clone(), activity.clone());
            let malformed = super::malformed::check(&req);
            // Boxed: hyper spawns a task per stream, and a task moves its future (several
            // KiB here) when it is created and again when it completes.
            let req = req.map(RequestBody::plain);
            let responding = Box::pin(respond(ctx, req, info, activity, overloaded, false));
            async move {
                if let Some(why) = malformed {
                    tracing::debug!(why, "malformed HTTP/2 request: stream reset");
                    return Err(super::malformed::stream_error());
                }
                Ok(responding.await)
            }
        })
    };
    let io = FrameGuard::new(io, ctx.limits.h2_flood);
    let conn = ctx.h2.serve_connection(TokioIo::new(io), svc);
    drive(conn, &activity, &ctx, false).await
}

/// The HTTP/2 connection that follows an h2c Upgrade. Boxed with an explicit `Send`
/// so the compiler need not see through `serve_h2 -> respond -> serve_h2`.
fn serve_h2_boxed<H, T>(
    ctx: Arc<WorkerCtx<H>>,
    io: T,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
) -> Pin<Box<dyn Future<Output = ()> + Send>>
where
    H: Handler,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(serve_h2(ctx, io, info, activity, false))
}

/// Counts a request as in flight for as long as it lives (also when cancelled).
pub(crate) struct InFlight(pub(crate) Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// What the server decides before a request reaches its handler.
pub(crate) enum Admission {
    /// Answered without the handler: 503 over the connection limit, the h2c Upgrade's 101.
    Answered(Response<Body>),
    /// 413 for a declared body over the limit, once the body is drained (HTTP/2).
    Refused(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
    /// The handler's turn; with the body-rate watch when one applies.
    Handler(Request<RequestBody>, Option<RateWatch>),
}

/// A request body held to the minimum data rate: when it fell behind, the handler's
/// answer is replaced with 408 (Kestrel's answer) and the connection is not reused.
pub(crate) struct RateWatch {
    tripped: Arc<AtomicBool>,
    per_second: u64,
    http1: bool,
}

impl RateWatch {
    /// The answer to send: the handler's, or 408 if the body was too slow.
    pub(crate) fn judge(&self, resp: Response<Body>, activity: &Activity) -> Response<Body> {
        if !self.tripped.load(Relaxed) {
            return resp;
        }
        activity.close_requested.store(true, Relaxed);
        let mut resp = body::text(
            StatusCode::REQUEST_TIMEOUT,
            format!("request body arrived at under {} bytes/s", self.per_second),
        );
        if self.http1 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Everything the server does around the handler, whatever the engine: 503 over the
/// connection limit, 413 for a declared body over the limit, the h2c Upgrade (HTTP/1.1),
/// and the minimum body rate (408).
pub(crate) fn admit<H: Handler>(
    ctx: &Arc<WorkerCtx<H>>,
    mut req: Request<RequestBody>,
    info: &Arc<ConnInfo>,
    activity: &Arc<Activity>,
    overloaded: bool,
    allow_h2c_upgrade: bool,
) -> Admission {
    if overloaded {
        activity.close_requested.store(true, Relaxed);
        let mut resp = body::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "server is at its connection limit; retry later",
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Admission::Answered(resp);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > info.max_body) {
        let drain_first = req.version() == http::Version::HTTP_2 && n <= DRAIN_CAP;
        let (body, timeout, max) = (req.into_body(), ctx.limits.header_timeout, info.max_body);
        return Admission::Refused(Box::pin(async move {
            if drain_first {
                drain(body, timeout).await;
            }
            body::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over the limit of {max} bytes"),
            )
        }));
    }
    if allow_h2c_upgrade && h2c::wants_upgrade(&req) {
        if let Some(frame) = h2c::stream1_headers(&req) {
            let on_upgrade = hyper::upgrade::on(&mut req);
            let (ctx, info, activity) = (ctx.clone(), info.clone(), activity.clone());
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(upgraded) => {
                        let io = h2c::InjectAfterSettings::new(TokioIo::new(upgraded), frame);
                        serve_h2_boxed(ctx, io, info, activity).await
                    }
                    Err(e) => tracing::debug!(error = %e, "h2c upgrade failed"),
                }
            });
            let mut resp = Response::new(body::full(bytes::Bytes::new()));
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            resp.headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("h2c"));
            return Admission::Answered(resp);
        }
    }
    let rate = ctx.limits.min_body_rate;
    if rate.per_second == 0 || http_body::Body::is_end_stream(req.body()) {
        return Admission::Handler(req, None);
    }
    let watch = RateWatch {
        tripped: Arc::new(AtomicBool::new(false)),
        per_second: rate.per_second,
        http1: req.version() < http::Version::HTTP_2,
    };
    let tripped = watch.tripped.clone();
    let req = req.map(|b| b.rated(rate, Instant::now(), tripped));
    Admission::Handler(req, Some(watch))
}

/// [`admit`], the handler and the rate watch as one future (the hyper engine's service).
async fn respond<H: Handler>(
    ctx: Arc<WorkerCtx<H>>,
    req: Request<RequestBody>,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
    overloaded: bool,
    allow_h2c_upgrade: bool,
) -> Response<Body> {
    activity.request_started();
    let _in_flight = InFlight(activity.clone());
    match admit(&ctx, req, &info, &activity, overloaded, allow_h2c_upgrade) {
        Admission::Answered(resp) => resp,
        Admission::Refused(answer) => answer.await,
        Admission::Handler(req, watch) => {
            let resp = ctx.handler.clone().handle(req, info).await;
            match watch {
                Some(w) => w.judge(resp, &activity),
                None => resp,
            }
        }
    }
}

/// Largest oversized HTTP/2 body read and discarded before answering 413.
const DRAIN_CAP: u64 = 1 << 20;

/// Reads and discards a request body (bounded by [`DRAIN_CAP`] and `timeout`). On HTTP/2,
/// answering before the body is in makes the server reset the stream right after its
/// response, and some clients (curl 7.88) then report the reset instead of the 413.
async fn drain(body: RequestBody, timeout: Duration) {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, DRAIN_CAP as usize);
    let _ = tokio::time::timeout(timeout, limited.collect()).await;
}

/// A hyper connection that can be asked to finish gracefully.
trait GracefulConn: Future<Output = hyper::Result<()>> {
    fn shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulConn for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown()
    }
}

impl<I, S, B> GracefulConn for http2::Connection<I, S, TokioExecutor>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown()
    }
}

/// Runs a connection to completion while enforcing timeouts and honouring shutdown.
async fn drive<H, C: GracefulConn>(conn: C, activity: &Activity, ctx: &WorkerCtx<H>, http1: bool) {
    let mut conn = pin!(conn);
    let now = Instant::now();
    let mut watchdog = Watchdog::new(
        now,
        ctx.limits.header_timeout,
        ctx.limits.idle_timeout,
        http1,
    )
    .with_send_timeout(ctx.limits.send_timeout);
    let period = watchdog.period();
    let mut tick = tokio::time::interval_at((now + period).into(), period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = ctx.shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().shutdown();
            }
            _ = tick.tick() => {
                let verdict = if activity.close_requested.load(Relaxed) {
                    Verdict::Idle
                } else {
                    watchdog.check(Instant::now(), activity.snapshot())
                };
                match verdict {
                    Verdict::Keep => {}
                    Verdict::HeaderTimeout => activity.abort_408.store(true, Relaxed),
                    Verdict::Idle if !closing => {
                        closing = true;
                        conn.as_mut().shutdown();
                    }
                    Verdict::Idle => {}
                    Verdict::SendTimeout => {
                        tracing::debug!("peer stopped reading for the send timeout; dropped");
                        return;
                    }
                }
            }
        }
    }
}
