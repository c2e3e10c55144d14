//! The HTTP/2 connection driver: one task per connection owns the socket and the
//! [`Client`] state, keeps up to `streams` requests in flight (rule: one task per
//! connection beats one per stream), reads once per turn and writes once per turn, and
//! in closed loop sends new streams in batches (`--batch`).
//! Every response in one read shares that read's clock reading.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::conn::{ConnCtx, Deadline, End};
use super::room::Held;
use super::source::{Next, Ticket};
use crate::h2wire::client::{Client, Event, Failure, HTTP1_REPLY};
use crate::h2wire::frame::{reason, reason_name};
use crate::record::Sample;

/// Read buffer per connection: small, since 10,000 connections each hold one; it
/// doubles (up to [`READ_BUF_MAX`]) while a partial frame fills it.
const READ_BUF: usize = 8 * 1024;
/// Room for the largest frame this client accepts (16 KiB + 9) and more.
const READ_BUF_MAX: usize = 64 * 1024;

/// A request in flight: its ticket and times.
#[derive(Debug, Clone, Copy)]
pub struct Inflight {
    /// Its place in the schedule.
    pub ticket: Ticket,
    /// When it could first have been sent (see [`Sample::ready`]).
    pub ready: Instant,
    /// When it was sent.
    pub sent: Instant,
    /// When its response head arrived.
    pub first_byte: Option<Instant>,
}

/// Error class of a failed stream.
pub fn class(f: Failure) -> String {
    match f {
        Failure::Reset(code) => format!("h2_rst_stream:{}", reason_name(code)),
        Failure::GoAway(code) => format!("h2_goaway:{}", reason_name(code)),
        Failure::Malformed(code) => format!("protocol:{}", reason_name(code)),
    }
}

/// Records what the client's events say about streams, all at time `now`.
fn record(ctx: &ConnCtx, now: Instant) -> impl FnMut(Event<'_, Inflight>) + '_ {
    move |event| match event {
        Event::Head(f, _, timing) => {
            f.first_byte = Some(now);
            if !timing.is_empty() {
                ctx.recorder.borrow_mut().hops(timing, f.ticket.warmup);
            }
        }
        Event::Done(f, status) => ctx.recorder.borrow_mut().ok(
            Sample {
                intended: f.ticket.intended,
                ready: f.ready,
                sent: f.sent,
                first_byte: f.first_byte.unwrap_or(now),
                done: now,
                status,
            },
            f.ticket.warmup,
        ),
        Event::Failed(f, failure) => ctx.recorder.borrow_mut().error(
            &class(failure),
            f.ticket.intended,
            now,
            f.ticket.warmup,
        ),
    }
}

/// Records every stream still in flight as failed with `class`.
fn fail_all(client: &mut Client<Inflight>, ctx: &ConnCtx, class: &str) {
    let now = Instant::now();
    let mut recorder = ctx.recorder.borrow_mut();
    for f in client.drain() {
        recorder.error(class, f.ticket.intended, now, f.ticket.warmup);
    }
}

/// The fewest new streams a connection sends at once while the rest of its budget is in
/// flight: `--batch` in closed loop (see [`crate::model::config::default_batch`]). Open
/// loop sends each request on time, so its batch is 1.
fn min_batch(ctx: &ConnCtx) -> usize {
    if ctx.source.is_open_loop() {
        1
    } else {
        ctx.cfg.batch.clamp(1, ctx.streams)
    }
}

/// Opens streams while the source has work, the stream budget allows and the server's
/// limit permits, each taking one of `held`'s free streams. Returns false once the source
/// is done.
fn open_streams(client: &mut Client<Inflight>, ctx: &ConnCtx, held: &mut Held) -> bool {
    let free = ctx.streams.saturating_sub(client.live());
    if free < min_batch(ctx) {
        return true;
    }
    let mut batch_time = None;
    while client.can_open() && client.live() < ctx.streams {
        let ticket = match ctx.source.next() {
            Next::Go(t) => t,
            Next::Wait => return true,
            Next::Done => return false,
        };
        // Closed loop: the ticket was handed out just now, and its time is the send time.
        let sent = if ctx.source.is_open_loop() {
            *batch_time.get_or_insert_with(Instant::now)
        } else {
            ticket.intended
        };
        let req = ctx.pick();
        let block = req.h2_numbered(ctx.cfg.seq_header.as_deref(), ticket.seq);
        client.open(
            &block,
            &req.body,
            Inflight {
                ticket,
                ready: held.take(ticket.intended),
                sent,
                first_byte: None,
            },
        );
    }
    true
}

/// Writes what the client has to say.
async fn flush<S: AsyncWrite + Unpin>(
    io: &mut S,
    client: &mut Client<Inflight>,
) -> std::io::Result<()> {
    if client.out().is_empty() {
        return Ok(());
    }
    io.write_all(client.out()).await?;
    client.out().clear();
    io.flush().await
}

/// Drives an HTTP/2 connection: `client` has the preface (and, after an upgrade, stream
/// 1) ready; `buf` holds bytes already read from `io` (after an upgrade's 101).
pub async fn drive<S>(
    mut io: S,
    mut client: Client<Inflight>,
    mut buf: Vec<u8>,
    ctx: &ConnCtx,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut filled = buf.len();
    buf.resize(READ_BUF.max(filled * 2), 0);
    let mut deadline = Deadline::new(ctx.timeout);
    let mut done = false;
    let mut reported_limit = false;
    let mut pending_input = filled > 0;
    // Streams this connection has free, counted in the worker's room: up to -m, as far
    // as the server allows.
    let mut held = Held::new(&ctx.room);
    let free = |client: &Client<Inflight>| {
        ctx.streams
            .min(client.stream_limit())
            .saturating_sub(client.live())
    };
    held.set_free(free(&client), Instant::now());
    loop {
        if pending_input {
            pending_input = false;
            let now = Instant::now();
            match client.receive(&buf[..filled], &mut record(ctx, now)) {
                Ok(used) => {
                    held.set_free(free(&client), now);
                    buf.copy_within(used..filled, 0);
                    filled -= used;
                    if filled == buf.len() && buf.len() < READ_BUF_MAX {
                        buf.resize(buf.len() * 2, 0);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "h2 connection error");
                    client.abort(e.code);
                    let _ = flush(&mut io, &mut client).await;
                    let class = if e.what == HTTP1_REPLY {
                        "protocol:http1_reply".to_string()
                    } else {
                        format!("protocol:{}", reason_name(e.code))
                    };
                    fail_all(&mut client, ctx, &class);
                    return End::Closed;
                }
            }
            if !reported_limit {
                if let Some(n) = client.peer_max_streams() {
                    reported_limit = true;
                    ctx.report_max_streams(u64::from(n));
                }
            }
        }
        if !done {
            done = !open_streams(&mut client, ctx, &mut held);
        }
        if let Err(e) = flush(&mut io, &mut client).await {
            fail_all(&mut client, ctx, &super::conn::io_class(&e));
            return End::Closed;
        }
        if client.live() == 0 {
            if done {
                return End::Finished;
            }
            if client.is_closing() {
                return End::Closed;
            }
        }
        let can_take_more = !done && client.can_open() && client.live() < ctx.streams;
        tokio::select! {
            read = io.read(&mut buf[filled..]) => match read {
                Ok(0) => {
                    let class = match client.goaway_code() {
                        Some(code) => format!("h2_goaway:{}", reason_name(code)),
                        None => "closed".to_string(),
                    };
                    fail_all(&mut client, ctx, &class);
                    return End::Closed;
                }
                Ok(n) => {
                    filled += n;
                    pending_input = true;
                }
                Err(e) => {
                    fail_all(&mut client, ctx, &super::conn::io_class(&e));
                    return End::Closed;
                }
            },
            _ = ctx.source.notified(), if can_take_more => {}
            _ = deadline.expired(|| client.oldest().map(|f| f.sent)) => {
                // The oldest stream is overdue: every in-flight stream on this connection
                // is recorded as a timeout and the connection is dropped.
                fail_all(&mut client, ctx, "timeout");
                client.abort(reason::NO_ERROR);
                let _ = flush(&mut io, &mut client).await;
                return End::Closed;
            }
        }
    }
}
