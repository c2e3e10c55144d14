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

/// In-flight streams in send order, for the timeout: the oldest unfinished one decides.
/// Ids are consecutive, so a stream's entry is found by subtraction.
#[derive(Default)]
struct InOrder {
    first_id: u64,
    entries: std::collections::VecDeque<(Instant, Ticket, bool)>,
}

impl InOrder {
    /// Records a stream sent at `sent`; returns its id.
    fn push(&mut self, sent: Instant, ticket: Ticket) -> u64 {
        self.entries.push_back((sent, ticket, false));
        self.first_id + self.entries.len() as u64 - 1
    }

    /// Marks stream `id` finished and drops the finished ones at the front.
    fn finish(&mut self, id: u64) {
        let index = id.checked_sub(self.first_id).map(|i| i as usize);
        if let Some(e) = index.and_then(|i| self.entries.get_mut(i)) {
            e.2 = true;
        }
        while self.entries.front().is_some_and(|e| e.2) {
            self.entries.pop_front();
            self.first_id += 1;
        }
    }

    /// When the oldest unfinished stream was sent.
    fn oldest(&self) -> Option<Instant> {
        self.entries.front().map(|e| e.0)
    }

    /// Tickets of the unfinished streams, forgetting all.
    fn drain_unfinished(&mut self) -> Vec<Ticket> {
        self.first_id += self.entries.len() as u64;
        self.entries
            .drain(..)
            .filter(|e| !e.2)
            .map(|e| e.1)
            .collect()
    }
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
    let mut started = InOrder::default();
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
            let mut request = http::Request::new(());
            *request.method_mut() = req.method.clone();
            *request.uri_mut() = req.uri.clone();
            if !req.headers.is_empty() {
                *request.headers_mut() = req.headers.clone();
            }
            let sent = Instant::now();
            let end_of_stream = req.body.is_empty();
            match send.send_request(request, end_of_stream) {
                Ok((resp, mut stream)) => {
                    if !end_of_stream {
                        let _ = stream.send_data(req.body.clone(), true);
                    }
                    let id = started.push(sent, ticket);
                    inflight.push(one(id, ticket, sent, resp));
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
                started.finish(id);
                match result {
                    Ok(sample) => ctx.recorder.borrow_mut().ok(sample, ticket.warmup),
                    Err(class) => {
                        if class.starts_with("h2_goaway") || class.starts_with("io") {
                            broken = true;
                        }
                        let now = Instant::now();
                        ctx.recorder.borrow_mut().error(&class, ticket.intended, now, ticket.warmup);
                    }
                }
            }
            _ = ctx.source.notified(), if can_take_more => {}
            _ = deadline.expired(|| started.oldest()) => {
                // The oldest stream is overdue: every in-flight stream on this connection
                // is recorded as a timeout and the connection is dropped.
                let now = Instant::now();
                for t in started.drain_unfinished() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_oldest_unfinished_stream_decides_whatever_the_finishing_order() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let ticket = |ms| Ticket {
            intended: at(ms),
            warmup: false,
        };
        let mut q = InOrder::default();
        let ids: Vec<u64> = (0..3).map(|i| q.push(at(i), ticket(i))).collect();
        assert_eq!(ids, [0, 1, 2]);
        q.finish(1);
        assert_eq!(q.oldest(), Some(at(0)), "stream 0 is still out");
        q.finish(0);
        assert_eq!(q.oldest(), Some(at(2)), "0 and 1 are done");
        assert_eq!(q.push(at(3), ticket(3)), 3);
        let left: Vec<Instant> = q.drain_unfinished().iter().map(|t| t.intended).collect();
        assert_eq!(left, [at(2), at(3)]);
        assert_eq!(q.oldest(), None);
        assert_eq!(q.push(at(4), ticket(4)), 4, "ids go on after a drain");
    }
}
