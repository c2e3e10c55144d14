//! The HTTP/2 connection driver: one task per connection keeps up to `streams` requests in
//! flight (rule: one task per connection beats one per stream), with large windows and
//! capacity released as data is consumed (rule 10).

use std::time::Instant;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::client::{ResponseFuture, SendRequest};
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::{ConnCtx, Deadline, End};
use super::source::{Next, Ticket};
use crate::record::Sample;

/// Error class of an h2 error: GOAWAY and RST_STREAM name their code.
pub fn class(e: &h2::Error) -> String {
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
        Some(io) => super::conn::io_class(io),
        None => "protocol:h2".to_string(),
    }
}

/// The client builder with the lab's windows.
pub fn builder() -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .max_frame_size(1 << 14);
    b
}

async fn one(
    id: u64,
    ticket: Ticket,
    sent: Instant,
    resp: ResponseFuture,
) -> (u64, Ticket, Result<Sample, String>) {
    let result = async {
        let resp = resp.await.map_err(|e| class(&e))?;
        let first_byte = Instant::now();
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| class(&e))?;
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        Ok(Sample {
            intended: ticket.intended,
            sent,
            first_byte,
            done: Instant::now(),
            status,
        })
    }
    .await;
    (id, ticket, result)
}

/// Runs the connection's I/O in its own task; the driver aborts it when done.
pub fn spawn_conn<S>(conn: h2::client::Connection<S, Bytes>) -> tokio::task::JoinHandle<()>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    tokio::task::spawn_local(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "h2 connection ended");
        }
    })
}

/// Drives an established HTTP/2 connection (handshake done, I/O task spawned).
pub async fn drive(
    mut send: SendRequest<Bytes>,
    conn_task: tokio::task::JoinHandle<()>,
    ctx: &ConnCtx,
) -> End {
    let mut inflight = FuturesUnordered::new();
    // Send times of in-flight streams, oldest first (streams mostly finish in order; a
    // finished one is removed when it reaches the front).
    let mut started: std::collections::VecDeque<(u64, Instant, Ticket)> =
        std::collections::VecDeque::new();
    let mut finished: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let mut next_id = 0u64;
    let mut deadline = Deadline::new(ctx.timeout);
    let mut done = false;
    let mut reported_limit = false;
    let mut broken = false;
    loop {
        while !done && !broken && inflight.len() < ctx.streams {
            let ticket = match ctx.source.next() {
                Next::Go(t) => t,
                Next::Wait => break,
                Next::Done => {
                    done = true;
                    break;
                }
            };
            // Respects the server's SETTINGS_MAX_CONCURRENT_STREAMS.
            match std::future::poll_fn(|cx| send.poll_ready(cx)).await {
                Ok(()) => {}
                Err(e) => {
                    ctx.recorder.borrow_mut().error(
                        &class(&e),
                        ticket.intended,
                        Instant::now(),
                        ticket.warmup,
                    );
                    broken = true;
                    break;
                }
            };
            if !reported_limit {
                reported_limit = true;
                ctx.report_max_streams(send.current_max_send_streams() as u64);
            }
            let req = ctx.pick();
            let mut request = http::Request::builder()
                .method(req.method.clone())
                .uri(req.uri.clone());
            if let Some(h) = request.headers_mut() {
                h.extend(req.headers.clone());
            }
            let request = request.body(()).expect("prepared request is valid");
            let sent = Instant::now();
            let end_of_stream = req.body.is_empty();
            match send.send_request(request, end_of_stream) {
                Ok((resp, mut stream)) => {
                    if !end_of_stream {
                        let _ = stream.send_data(req.body.clone(), true);
                    }
                    next_id += 1;
                    inflight.push(one(next_id, ticket, sent, resp));
                    started.push_back((next_id, sent, ticket));
                }
                Err(e) => {
                    ctx.recorder.borrow_mut().error(
                        &class(&e),
                        ticket.intended,
                        Instant::now(),
                        ticket.warmup,
                    );
                    broken = true;
                }
            }
        }
        if inflight.is_empty() {
            if done || broken {
                break;
            }
            ctx.source.notified().await;
            continue;
        }
        let can_take_more = !done && !broken && inflight.len() < ctx.streams;
        tokio::select! {
            Some((id, ticket, result)) = inflight.next() => {
                let now = Instant::now();
                finished.insert(id);
                while let Some((front, _, _)) = started.front() {
                    if !finished.remove(front) {
                        break;
                    }
                    started.pop_front();
                }
                match result {
                    Ok(sample) => ctx.recorder.borrow_mut().ok(sample, ticket.warmup),
                    Err(class) => {
                        if class.starts_with("h2_goaway") || class.starts_with("io") {
                            broken = true;
                        }
                        ctx.recorder.borrow_mut().error(&class, ticket.intended, now, ticket.warmup);
                    }
                }
            }
            _ = ctx.source.notified(), if can_take_more => {}
            _ = deadline.expired(|| started.front().map(|(_, sent, _)| *sent)) => {
                // The oldest stream is overdue: every in-flight stream on this connection
                // is recorded as a timeout and the connection is dropped.
                let now = Instant::now();
                for (_, _, t) in started.drain(..).filter(|(id, _, _)| !finished.contains(id)) {
                    ctx.recorder.borrow_mut().error("timeout", t.intended, now, t.warmup);
                }
                inflight.clear();
                broken = true;
            }
        }
    }
    drop(send);
    conn_task.abort();
    if broken {
        End::Closed
    } else {
        End::Finished
    }
}
