//! The lab engine's sending side: inline answers, handlers' responses (headers, body,
//! trailers) and the pump that sends bodies as the windows allow, round-robin over the
//! streams, stopping while the output buffer is full.

use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use h2lab_common::h2_frame::{flag, kind, reason};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body as _;

use super::conn::{Conn, Phase};
use super::encode::{
    begin_block, end_block, put_field, put_fields, put_head, put_indexed_name, put_status,
};
use super::stream::{Pending, Send};
use crate::body::Body;
use crate::handler::Quick;
use crate::server_timing;

/// Output held before the engine stops producing more (and stops reading): a peer that
/// does not read cannot make the server buffer without bound.
pub const OUT_HIGH: usize = 256 * 1024;

/// What a stream ready for dispatch needs.
pub enum Dispatch {
    /// Answer inline.
    Quick(Quick),
    /// Call the handler with this head.
    Request(Box<super::request::Head>, Option<super::body::LabBody>),
}

impl Conn {
    /// Takes what stream `id` needs for dispatch; `None` when it is gone (reset).
    pub fn dispatch(&mut self, id: u32) -> Option<Dispatch> {
        let s = self.streams.get(id)?;
        match std::mem::replace(&mut s.pending, Pending::None) {
            Pending::Quick(q) => Some(Dispatch::Quick(q)),
            Pending::Request(head) => {
                let body = s.inbound.as_ref().map(|i| i.body());
                Some(Dispatch::Request(head, body))
            }
            Pending::None => None,
        }
    }

    /// Returns a head's allocation for reuse.
    pub fn recycle(&mut self, mut head: Box<super::request::Head>) {
        if self.spare_heads.len() < 64 {
            head.clear();
            self.spare_heads.push(head);
        }
    }

    /// Resets a stream whose handler failed (INTERNAL_ERROR).
    pub fn reset_internal(&mut self, id: u32) {
        if let Err(e) = self.reset(id, reason::INTERNAL_ERROR) {
            self.fail(e);
        }
    }

    /// Resets a stream whose request cannot be represented (a stream error).
    pub fn refuse(&mut self, id: u32) {
        if let Err(e) = self.reset(id, reason::PROTOCOL_ERROR) {
            self.fail(e);
        }
    }

    /// Answers 431 to a head over the header list limit, as the h2 crate does (the stream
    /// is not opened).
    pub(super) fn too_large(&mut self, id: u32) {
        let start = begin_block(&mut self.out);
        put_status(&mut self.out, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        end_block(&mut self.out, start, id, true, self.peer_max_frame);
    }

    /// Answers stream `id` with an inline answer: 200, its content type and body, a date
    /// and the app's Server-Timing entry, timed from when the batch was read until `at`.
    pub fn answer_quick(&mut self, id: u32, q: Quick, date: &[u8], at: Instant) {
        let max_frame = self.peer_max_frame;
        let Some(s) = self.streams.get(id) else {
            return;
        };
        let head_only = s.head_request || q.body.is_empty();
        let out = &mut self.out;
        let start = begin_block(out);
        out.push(0x88); // :status 200
        put_indexed_name(out, 31, q.content_type.as_bytes());
        let (digits, n) = decimal(q.body.len());
        put_indexed_name(out, 28, &digits[digits.len() - n..]);
        put_indexed_name(out, 33, date);
        let (timing, n) = server_timing::format_between("app", self.now, at);
        put_field(out, "server-timing", &timing[..n]);
        end_block(out, start, id, head_only, max_frame);
        if head_only {
            s.send = Send::Done;
        } else {
            s.send = Send::Streaming;
            s.chunk = Bytes::from_static(q.body);
            s.body_done = true;
            self.send_chunk(id);
        }
        if self.streams.get(id).is_some_and(|s| s.send == Send::Done) {
            self.close(id);
        }
    }

    /// Starts stream `id`'s response from its handler; `date` is the current Date value.
    pub fn respond(
        &mut self,
        id: u32,
        resp: Response<Body>,
        date: &HeaderValue,
        cx: &mut Context<'_>,
    ) {
        let max_frame = self.peer_max_frame;
        let Some(s) = self.streams.get(id) else {
            return;
        };
        s.abort = None;
        let (mut parts, body) = resp.into_parts();
        strip_connection_headers(&mut parts.headers);
        if !parts.headers.contains_key(header::DATE) {
            parts.headers.insert(header::DATE, date.clone());
        }
        let mut end = s.head_request || body.is_end_stream();
        if !body.is_end_stream() {
            if let Some(n) = body.size_hint().exact() {
                if !parts.headers.contains_key(header::CONTENT_LENGTH) {
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
                }
            }
        }
        if parts.status == StatusCode::SWITCHING_PROTOCOLS || parts.status.is_informational() {
            // No 1xx answers a whole HTTP/2 request; an internal error instead.
            parts.status = StatusCode::INTERNAL_SERVER_ERROR;
            end = true;
        }
        let out = &mut self.out;
        let start = begin_block(out);
        put_status(out, parts.status);
        put_fields(out, &parts.headers);
        end_block(out, start, id, end, max_frame);
        if end {
            s.send = Send::Done;
            self.close(id);
            return;
        }
        s.send = Send::Streaming;
        s.body = Some(body);
        self.pump_stream(id, cx);
    }

    /// Sends what the windows allow of every stream's body.
    pub fn pump(&mut self, cx: &mut Context<'_>) {
        if self.phase == Phase::Failed {
            return;
        }
        let n = self.streams.len();
        if n == 0 {
            return;
        }
        // Round-robin: start one further each time, so no stream starves the others.
        self.pump_start = (self.pump_start + 1) % n;
        let mut ids = std::mem::take(&mut self.pump_ids);
        ids.clear();
        for k in 0..n {
            let s = self.streams.at((self.pump_start + k) % n);
            if s.send == Send::Streaming {
                ids.push(s.id);
            }
        }
        for &id in &ids {
            if self.out.len() >= OUT_HIGH {
                break;
            }
            self.pump_stream(id, cx);
        }
        self.pump_ids = ids;
    }

    fn pump_stream(&mut self, id: u32, cx: &mut Context<'_>) {
        loop {
            if self.out.len() >= OUT_HIGH {
                return;
            }
            let Some(s) = self.streams.get(id) else {
                return;
            };
            if s.send != Send::Streaming {
                return;
            }
            if !s.chunk.is_empty() || (s.body_done && s.body.is_none()) {
                if !self.send_chunk(id) {
                    return; // flow control
                }
                continue;
            }
            let Some(body) = s.body.as_mut() else {
                return;
            };
            // A body that panics fails its stream, not the connection.
            let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                std::pin::Pin::new(body).poll_frame(cx)
            }))
            .unwrap_or_else(|_| Poll::Ready(Some(Err("the response body panicked".into()))));
            match polled {
                Poll::Pending => return,
                Poll::Ready(None) => {
                    s.body = None;
                    s.body_done = true;
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(stream = id, error = %e, "response body failed: stream reset");
                    s.body = None;
                    if let Err(e) = self.reset(id, reason::INTERNAL_ERROR) {
                        self.fail(e);
                    }
                    return;
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        s.chunk = data;
                        if s.body.as_ref().is_some_and(|b| b.is_end_stream()) {
                            s.body = None;
                            s.body_done = true;
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            s.trailers = Some(t);
                            s.body = None;
                            s.body_done = true;
                        }
                    }
                },
            }
        }
    }

    /// Sends as much of stream `id`'s chunk as the windows allow, ending the stream once
    /// the body is done; `false` when flow control stopped it.
    fn send_chunk(&mut self, id: u32) -> bool {
        let max_frame = self.peer_max_frame;
        let Some(s) = self.streams.get(id) else {
            return false;
        };
        loop {
            if s.chunk.is_empty() {
                if !s.body_done {
                    return true; // the body has more to give
                }
                let start = begin_block(&mut self.out);
                match s.trailers.take() {
                    Some(t) => {
                        put_fields(&mut self.out, &t);
                        end_block(&mut self.out, start, id, true, max_frame);
                    }
                    None => {
                        // The body ended after its last data went out: an empty DATA ends it.
                        self.out.truncate(start);
                        put_head(&mut self.out, 0, kind::DATA, flag::END_STREAM, id);
                    }
                }
                s.send = Send::Done;
                self.close(id);
                return true;
            }
            if self.out.len() >= OUT_HIGH {
                return false; // the pump goes on once the output has drained
            }
            let n = s
                .chunk
                .len()
                .min(max_frame)
                .min(s.send_window.max(0) as usize)
                .min(self.send_window.max(0) as usize);
            if n == 0 {
                return false;
            }
            let end = s.body_done && s.trailers.is_none() && n == s.chunk.len();
            let data = s.chunk.split_to(n);
            put_head(
                &mut self.out,
                n,
                kind::DATA,
                if end { flag::END_STREAM } else { 0 },
                id,
            );
            self.out.extend_from_slice(&data);
            s.send_window -= n as i64;
            self.send_window -= n as i64;
            self.starved = n < SMALL_WINDOW && !end;
            if end {
                s.send = Send::Done;
                self.close(id);
                return true;
            }
        }
    }

    /// Whether output is waiting.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }
}

const SMALL_WINDOW: usize = crate::server::guard::budget::SMALL_WINDOW as usize;

/// Removes what HTTP/2 forbids in a response (RFC 9113 section 8.2.2).
fn strip_connection_headers(h: &mut HeaderMap) {
    let present = h.contains_key(header::CONNECTION)
        || h.contains_key(header::TRANSFER_ENCODING)
        || h.contains_key(header::UPGRADE)
        || h.contains_key(header::TE)
        || h.contains_key("keep-alive")
        || h.contains_key("proxy-connection");
    if !present {
        return;
    }
    if let Some(listed) = h.remove(header::CONNECTION) {
        if let Ok(v) = listed.to_str() {
            for name in v.split(',') {
                h.remove(name.trim());
            }
        }
    }
    for name in [
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TE,
        http::HeaderName::from_static("keep-alive"),
        http::HeaderName::from_static("proxy-connection"),
    ] {
        h.remove(name);
    }
}

/// `n` in decimal at the end of a buffer, and its number of digits.
pub fn decimal(mut n: usize) -> ([u8; 20], usize) {
    let mut b = [0u8; 20];
    let mut d = 0;
    loop {
        d += 1;
        b[20 - d] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return (b, d);
        }
    }
}

/// The `date` value, formatted once a second: the wall clock is read only when the
/// monotonic clock says the second has turned.
#[derive(Default)]
pub struct Date {
    until: Option<Instant>,
    value: Option<HeaderValue>,
}

impl Date {
    /// The value at `now`.
    pub fn at(&mut self, now: Instant) -> &HeaderValue {
        if self.until.is_none_or(|u| now >= u) || self.value.is_none() {
            let wall = SystemTime::now();
            let into_second = wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(std::time::Duration::ZERO, |d| {
                    std::time::Duration::from_nanos(u64::from(d.subsec_nanos()))
                });
            self.until = Some(now + (std::time::Duration::from_secs(1) - into_second));
            self.value = Some(
                HeaderValue::from_str(&httpdate::fmt_http_date(wall))
                    .expect("an HTTP date is a valid header value"),
            );
        }
        self.value.as_ref().expect("set above")
    }

    /// The current value.
    pub fn now(&mut self) -> &HeaderValue {
        self.at(Instant::now())
    }
}
