//! The task that runs one lab-engine connection: reads a batch, lets [`Conn`] handle its
//! frames, dispatches the complete requests (inline answers written at once, handlers'
//! futures polled inside this task, no task per stream), pumps response bodies, and
//! writes everything produced in one write. It also owns the connection's timeouts (the
//! watchdog), honours the server's shutdown, and stops reading while its output is full.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::future::{AbortHandle, Abortable, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use http::Response;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::conn::{Config, Conn};
use super::respond::{Date, Dispatch, OUT_HIGH};
use crate::body::Body;
use crate::conn_info::ConnInfo;
use crate::handler::Handler;
use crate::request_body::RequestBody;
use crate::server::conn::{admit, Admission, InFlight, WorkerCtx};
use crate::server::watchdog::{Activity, Verdict, Watchdog};

type Task = Pin<Box<dyn Future<Output = (u32, Handled)> + Send>>;
/// A handler's future, boxed.
type Call = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// How a handler's future ended.
enum Handled {
    /// With a response.
    Response(Response<Body>),
    /// Cancelled with its stream.
    Aborted,
    /// It panicked: the stream is reset, the connection's other streams go on.
    Panicked,
}

/// Rounds of read-dispatch-write one poll may run before it yields to other connections.
const ROUNDS: usize = 16;
/// Read buffer: room for several full frames per read.
const READ_BUF: usize = 64 * 1024;

struct Driver<H: Handler, T> {
    ctx: Arc<WorkerCtx<H>>,
    io: T,
    conn: Conn,
    input: BytesMut,
    written: usize,
    flushed: bool,
    tasks: FuturesUnordered<Task>,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
    overloaded: bool,
    watchdog: Watchdog,
    tick: Pin<Box<tokio::time::Sleep>>,
    period: Duration,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    stopping: bool,
    read_closed: bool,
    ready: Vec<u32>,
    date: Date,
}

/// Serves one HTTP/2 connection whose first bytes to read are the client's preface.
pub(crate) async fn serve<H, T>(
    ctx: Arc<WorkerCtx<H>>,
    io: T,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
    overloaded: bool,
) where
    H: Handler,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let now = Instant::now();
    let limits = &ctx.limits;
    let cfg = Config {
        max_streams: limits.max_streams,
        max_header_bytes: limits.max_header_bytes,
        flood: limits.h2_flood,
        max_pending_resets: limits.h2_max_pending_resets,
        max_local_resets: limits.h2_max_local_resets,
    };
    let watchdog = Watchdog::new(now, limits.header_timeout, limits.idle_timeout, false)
        .with_send_timeout(limits.send_timeout);
    let period = watchdog.period();
    let shutdown = Box::pin(ctx.shutdown.clone().cancelled_owned());
    let mut d = Driver {
        conn: Conn::new(cfg, now),
        io,
        input: BytesMut::with_capacity(READ_BUF),
        written: 0,
        flushed: true,
        tasks: FuturesUnordered::new(),
        info,
        activity,
        overloaded,
        watchdog,
        tick: Box::pin(tokio::time::sleep(period)),
        period,
        shutdown,
        stopping: false,
        read_closed: false,
        ready: Vec::new(),
        date: Date::default(),
        ctx,
    };
    std::future::poll_fn(|cx| d.poll(cx)).await;
    if let Some(why) = &d.conn.failure {
        tracing::debug!(%why, "HTTP/2 connection closed on an error");
    }
}

impl<H: Handler, T: AsyncRead + AsyncWrite + Unpin> Driver<H, T> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.stopping && self.shutdown.as_mut().poll(cx).is_ready() {
            self.stopping = true;
            self.conn.go_away("server shutting down");
        }
        if self.tick.as_mut().poll(cx).is_ready() && self.on_tick(cx) {
            tracing::debug!("peer stopped reading for the send timeout; dropped");
            return Poll::Ready(());
        }
        for _ in 0..ROUNDS {
            let mut progress = self.read(cx);
            progress |= self.dispatch();
            while let Poll::Ready(Some((id, handled))) = self.tasks.poll_next_unpin(cx) {
                match handled {
                    Handled::Response(resp) => {
                        let date = self.date.now().clone();
                        self.conn.respond(id, resp, &date, cx);
                    }
                    Handled::Panicked => {
                        tracing::error!(stream = id, "the handler panicked: stream reset");
                        self.conn.reset_internal(id);
                    }
                    Handled::Aborted => {}
                }
                progress = true;
            }
            self.conn.pump(cx);
            self.conn.release();
            match self.write(cx) {
                Poll::Ready(Err(())) => return Poll::Ready(()),
                Poll::Ready(Ok(wrote)) => progress |= wrote,
                Poll::Pending => {}
            }
            if self.conn.finished() && self.written == 0 && self.conn.out.is_empty() && self.flushed
            {
                // Everything is out: close our side (Lingering drains the peer's).
                return Pin::new(&mut self.io).poll_shutdown(cx).map(|_| ());
            }
            if !progress {
                return Poll::Pending;
            }
        }
        // More to do: yield so other connections on this worker get their turn.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// The watchdog's tick; `true` when the connection is to be dropped.
    fn on_tick(&mut self, cx: &mut Context<'_>) -> bool {
        let now = Instant::now();
        self.tick
            .as_mut()
            .reset(tokio::time::Instant::from_std(now + self.period));
        let _ = self.tick.as_mut().poll(cx);
        let verdict = if self.activity.close_requested.load(Relaxed) {
            Verdict::Idle
        } else {
            self.watchdog.check(now, self.activity.snapshot())
        };
        match verdict {
            Verdict::SendTimeout => return true,
            Verdict::Idle => self.conn.go_away("idle"),
            Verdict::Keep | Verdict::HeaderTimeout => {}
        }
        self.conn.tick(now);
        false
    }

    fn read(&mut self, cx: &mut Context<'_>) -> bool {
        if self.read_closed
            || self.conn.finished()
            || self.conn.out.len() - self.written >= OUT_HIGH
        {
            return false;
        }
        if self.input.capacity() - self.input.len() < 16 * 1024 {
            self.input.reserve(READ_BUF);
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.input) {
            Poll::Pending => false,
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                // The peer is gone: nothing it asked for can reach it any more.
                self.read_closed = true;
                self.conn.abandon("connection closed by the peer");
                self.tasks.clear();
                true
            }
            Poll::Ready(Ok(_)) => {
                let handler = &*self.ctx.handler;
                let overloaded = self.overloaded;
                let mut quick = |m: &[u8], p: &[u8]| {
                    if overloaded {
                        None
                    } else {
                        handler.quick(m, p)
                    }
                };
                self.conn
                    .receive(&mut self.input, Instant::now(), &mut quick, cx.waker());
                true
            }
        }
    }

    /// Answers or hands to the handler every stream whose head is complete.
    fn dispatch(&mut self) -> bool {
        self.conn.take_ready(&mut self.ready);
        if self.ready.is_empty() {
            return false;
        }
        let at = Instant::now();
        let ready = std::mem::take(&mut self.ready);
        for &id in &ready {
            match self.conn.dispatch(id) {
                None => {}
                Some(Dispatch::Quick(q)) => {
                    let date = self.date.at(at);
                    self.conn.answer_quick(id, q, date.as_bytes(), at);
                }
                Some(Dispatch::Request(mut head, body)) => {
                    let body = body.map_or_else(RequestBody::empty, RequestBody::from);
                    match head.take_request(body) {
                        Ok(req) => self.spawn(id, req),
                        Err(why) => {
                            tracing::debug!(
                                stream = id,
                                why,
                                "malformed HTTP/2 request: stream reset"
                            );
                            self.conn.refuse(id);
                        }
                    }
                    self.conn.recycle(head);
                }
            }
        }
        self.ready = ready;
        true
    }

    /// Hands a request to the handler. Its future is boxed once, where it is made: a
    /// handler's future is several KiB (the proxy's, with its upstream exchange), and
    /// each move of it costs a copy of all of it.
    fn spawn(&mut self, id: u32, req: http::Request<RequestBody>) {
        self.activity.request_started();
        let in_flight = InFlight(self.activity.clone());
        let admitted = admit(
            &self.ctx,
            req,
            &self.info,
            &self.activity,
            self.overloaded,
            false,
        );
        let (call, watch): (Call, _) = match admitted {
            Admission::Answered(resp) => (Box::pin(std::future::ready(resp)), None),
            Admission::Refused(answer) => (answer, None),
            Admission::Handler(req, watch) => (
                Box::pin(self.ctx.handler.clone().handle(req, self.info.clone())),
                watch,
            ),
        };
        let (handle, registration) = AbortHandle::new_pair();
        let task = Abortable::new(AssertUnwindSafe(call).catch_unwind(), registration);
        let activity = self.activity.clone();
        self.conn.set_abort(id, handle);
        self.tasks.push(Box::pin(async move {
            let _in_flight = in_flight;
            let handled = match task.await {
                Ok(Ok(resp)) => Handled::Response(match watch {
                    Some(w) => w.judge(resp, &activity),
                    None => resp,
                }),
                Ok(Err(_panic)) => Handled::Panicked,
                Err(_aborted) => Handled::Aborted,
            };
            (id, handled)
        }));
    }

    /// Writes what is queued; `Ok(true)` when bytes went out.
    fn write(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, ()>> {
        let mut wrote = false;
        while self.written < self.conn.out.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.conn.out[self.written..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.flushed = false;
                    wrote = true;
                }
                Poll::Pending => break,
            }
        }
        if self.written == self.conn.out.len() {
            self.conn.out.clear();
            self.written = 0;
            if self.conn.out.capacity() > 4 * OUT_HIGH {
                // A burst is over: do not keep its peak for the connection's life.
                self.conn.out.shrink_to(OUT_HIGH);
            }
        } else if self.written >= OUT_HIGH {
            // Rarely: the peer reads slowly and the buffer kept growing behind the cursor.
            self.conn.out.drain(..self.written);
            self.written = 0;
        }
        if !self.flushed {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flushed = true,
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Pending => {}
            }
        }
        if wrote {
            Poll::Ready(Ok(true))
        } else {
            Poll::Pending
        }
    }
}
