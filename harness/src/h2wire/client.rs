//! A sans-I/O HTTP/2 client connection made for load: requests go out as pre-encoded
//! header blocks, responses come back as events carrying the caller's token, and the
//! bytes to write collect in one buffer the caller flushes once per turn.
//!
//! It keeps what RFC 9113 requires of a client (SETTINGS and their ACK, PING replies,
//! both directions of flow control, CONTINUATION, GOAWAY, RST_STREAM, the peer's stream
//! limit and frame size) and nothing a load client does not read: header fields other
//! than `:status` are decoded only as far as HPACK state needs, and bodies are counted,
//! not kept. Stream ids are consecutive, so streams live in a queue indexed by id.

use crate::server_timing::ServerTiming;
use std::collections::VecDeque;

use bytes::{Buf, Bytes};

use super::frame::{self, flag, kind, reason, setting, Head, HEAD_LEN, MAX_FRAME};
use super::hpack::Decoder;

/// The stream window this client advertises (SETTINGS_INITIAL_WINDOW_SIZE).
pub const STREAM_WINDOW: u32 = 1 << 20;
/// The connection window this client opens right after its SETTINGS.
pub const CONNECTION_WINDOW: u32 = 16 << 20;
const DEFAULT_WINDOW: i64 = 65_535;
const MAX_WINDOW: i64 = (1 << 31) - 1;
const MAX_STREAM_ID: u32 = (1 << 31) - 1;

/// Why a stream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server reset it (RST_STREAM with this code).
    Reset(u32),
    /// The server's GOAWAY (with this code) left it unprocessed.
    GoAway(u32),
    /// Its response broke the protocol (this client reset it with this code).
    Malformed(u32),
}

/// What the server's frames did to a stream.
#[derive(Debug)]
pub enum Event<'a, T> {
    /// The final response head arrived, with this status and its `Server-Timing`
    /// entries.
    Head(&'a mut T, u16, &'a ServerTiming),
    /// The response ended; its status.
    Done(T, u16),
    /// The stream failed.
    Failed(T, Failure),
}

/// A connection error this client detected (RFC 9113 §5.4.1): the connection is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("HTTP/2 connection error {code:#x}: {what}")]
pub struct ConnectionError {
    /// The error code sent in GOAWAY.
    pub code: u32,
    /// What was wrong.
    pub what: &'static str,
}

/// What [`ConnectionError::what`] says when the server answered the preface with
/// HTTP/1.x: it does not speak HTTP/2 on this port.
pub const HTTP1_REPLY: &str = "HTTP/1.x reply to the HTTP/2 preface";

fn fatal(code: u32, what: &'static str) -> ConnectionError {
    ConnectionError { code, what }
}

struct Stream<T> {
    token: T,
    /// The final status, once the final head arrived.
    status: Option<u16>,
    send_window: i64,
    /// Request body not yet sent.
    body: Bytes,
    /// Bytes received since the last stream WINDOW_UPDATE.
    unacked: u32,
}

/// A header block waiting for its CONTINUATION frames.
struct Partial {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
}

/// One HTTP/2 client connection's state; `T` is the caller's per-request token.
pub struct Client<T> {
    out: Vec<u8>,
    /// Streams by id: `streams[i]` is stream `first_id + 2 i`; `None` once finished.
    streams: VecDeque<Option<Stream<T>>>,
    first_id: u32,
    live: usize,
    peer_max_streams: u32,
    peer_max_streams_sent: Option<u32>,
    settings_seen: bool,
    peer_initial_window: i64,
    peer_max_frame: usize,
    send_window: i64,
    unacked: u32,
    decoder: Decoder,
    /// The `Server-Timing` entries of the header block being read; kept here so that no
    /// response pays for a fresh one.
    timing: ServerTiming,
    partial: Option<Partial>,
    /// The GOAWAY received (last stream id, code), or the one sent by [`Client::abort`].
    goaway: Option<(u32, u32)>,
    /// Streams whose body waits for window.
    blocked: VecDeque<u32>,
}

impl<T> Client<T> {
    /// A connection whose preface, SETTINGS and connection window are ready in
    /// [`Client::out`].
    pub fn new() -> Self {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(frame::PREFACE);
        frame::put_settings(
            &mut out,
            &[
                (setting::ENABLE_PUSH, 0),
                (setting::INITIAL_WINDOW_SIZE, STREAM_WINDOW),
            ],
        );
        frame::put_window_update(&mut out, 0, CONNECTION_WINDOW - DEFAULT_WINDOW as u32);
        Client {
            out,
            streams: VecDeque::new(),
            first_id: 1,
            live: 0,
            peer_max_streams: u32::MAX,
            peer_max_streams_sent: None,
            settings_seen: false,
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_frame: MAX_FRAME,
            send_window: DEFAULT_WINDOW,
            unacked: 0,
            decoder: Decoder::default(),
            timing: ServerTiming::default(),
            partial: None,
            goaway: None,
            blocked: VecDeque::new(),
        }
    }

    /// A connection upgraded from HTTP/1.1 (RFC 7540 §3.2): stream 1 carries the
    /// response to the request already sent, with `token`.
    pub fn upgraded(token: T) -> Self {
        let mut c = Self::new();
        c.streams.push_back(Some(Stream {
            token,
            status: None,
            send_window: DEFAULT_WINDOW,
            body: Bytes::new(),
            unacked: 0,
        }));
        c.live = 1;
        c
    }

    /// Bytes to write; the caller writes them all and clears the buffer.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Streams in flight.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Whether a new stream may be opened now (no GOAWAY, under the server's limit, ids
    /// left). Until the server's SETTINGS arrive, its limit is unknown: one stream only,
    /// so that a small limit does not refuse a connection's first burst.
    pub fn can_open(&self) -> bool {
        self.live < self.stream_limit()
    }

    /// How many streams may be open at once from now on: the server's limit once its
    /// SETTINGS arrived, one before them, none once no new stream can ever open.
    pub fn stream_limit(&self) -> usize {
        if self.is_closing() {
            0
        } else if self.settings_seen {
            usize::try_from(self.peer_max_streams).unwrap_or(usize::MAX)
        } else {
            1
        }
    }

    /// Whether no new stream will ever be opened here (GOAWAY received or ids used up).
    pub fn is_closing(&self) -> bool {
        self.goaway.is_some() || self.next_id() > MAX_STREAM_ID
    }

    /// The GOAWAY code received (or sent), if any.
    pub fn goaway_code(&self) -> Option<u32> {
        self.goaway.map(|g| g.1)
    }

    /// SETTINGS_MAX_CONCURRENT_STREAMS as the server sent it, if it did.
    pub fn peer_max_streams(&self) -> Option<u32> {
        self.peer_max_streams_sent
    }

    fn next_id(&self) -> u32 {
        self.first_id + 2 * self.streams.len() as u32
    }

    /// The token of the oldest stream in flight.
    pub fn oldest(&self) -> Option<&T> {
        self.streams.iter().flatten().next().map(|s| &s.token)
    }

    /// Opens a stream with a pre-encoded header block and a body (empty: none); returns
    /// its id. Call only when [`Client::can_open`].
    pub fn open(&mut self, block: &[u8], body: &Bytes, token: T) -> u32 {
        let id = self.next_id();
        let end_stream = body.is_empty();
        frame::put_headers(&mut self.out, id, block, end_stream, self.peer_max_frame);
        self.streams.push_back(Some(Stream {
            token,
            status: None,
            send_window: self.peer_initial_window,
            body: body.clone(),
            unacked: 0,
        }));
        self.live += 1;
        if !end_stream {
            self.blocked.push_back(id);
            self.send_blocked();
        }
        id
    }

    /// Takes every stream in flight (after a timeout or a lost connection).
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.live = 0;
        self.first_id = self.next_id();
        self.blocked.clear();
        self.streams.drain(..).flatten().map(|s| s.token)
    }

    /// Ends the connection from this side: GOAWAY with `code` goes to [`Client::out`].
    pub fn abort(&mut self, code: u32) {
        frame::put_goaway(&mut self.out, code);
        self.goaway.get_or_insert((0, code));
    }

    /// Processes the complete frames at the start of `input`; returns how many bytes it
    /// used (the rest is an incomplete frame). Frames that answer the server (ACKs,
    /// window updates, resets) go to [`Client::out`].
    pub fn receive(
        &mut self,
        input: &[u8],
        on: &mut impl FnMut(Event<'_, T>),
    ) -> Result<usize, ConnectionError> {
        let mut used = 0;
        if !self.settings_seen && input.starts_with(b"HTTP/1.") {
            return Err(fatal(reason::PROTOCOL_ERROR, HTTP1_REPLY));
        }
        while let Some(head) = Head::parse(&input[used..]) {
            // The preface is a SETTINGS frame that is not an ACK (RFC 9113 §3.4); until it
            // came, the check for an HTTP/1.x reply above still applies.
            if !self.settings_seen && (head.kind != kind::SETTINGS || head.flags & flag::ACK != 0) {
                return Err(fatal(
                    reason::PROTOCOL_ERROR,
                    "server preface is not SETTINGS",
                ));
            }
            if head.len > MAX_FRAME {
                return Err(fatal(reason::FRAME_SIZE_ERROR, "frame above 16 KiB"));
            }
            let end = used + HEAD_LEN + head.len;
            if end > input.len() {
                break;
            }
            self.frame(head, &input[used + HEAD_LEN..end], on)?;
            used = end;
        }
        if self.unacked >= CONNECTION_WINDOW / 2 {
            frame::put_window_update(&mut self.out, 0, self.unacked);
            self.unacked = 0;
        }
        Ok(used)
    }

    fn frame(
        &mut self,
        head: Head,
        payload: &[u8],
        on: &mut impl FnMut(Event<'_, T>),
    ) -> Result<(), ConnectionError> {
        if self.partial.is_some() && head.kind != kind::CONTINUATION {
            return Err(fatal(reason::PROTOCOL_ERROR, "header block interrupted"));
        }
        match head.kind {
            kind::DATA => self.data(head, payload, on),
            kind::HEADERS => {
                let block = headers_payload(head, payload)?;
                let end_stream = head.flags & flag::END_STREAM != 0;
                if head.flags & flag::END_HEADERS != 0 {
                    self.headers(head.stream, end_stream, block, on)
                } else {
                    self.partial = Some(Partial {
                        stream: head.stream,
                        end_stream,
                        block: block.to_vec(),
                    });
                    Ok(())
                }
            }
            kind::CONTINUATION => {
                let mut p = self
                    .partial
                    .take()
                    .filter(|p| p.stream == head.stream)
                    .ok_or(fatal(reason::PROTOCOL_ERROR, "stray CONTINUATION"))?;
                p.block.extend_from_slice(payload);
                if head.flags & flag::END_HEADERS != 0 {
                    self.headers(p.stream, p.end_stream, &p.block, on)
                } else {
                    self.partial = Some(p);
                    Ok(())
                }
            }
            kind::RST_STREAM => {
                let code = u32_payload(head, payload)?;
                if head.stream == 0 {
                    return Err(fatal(reason::PROTOCOL_ERROR, "RST_STREAM on stream 0"));
                }
                self.finish(head.stream, on, Some(Failure::Reset(code)));
                Ok(())
            }
            kind::SETTINGS => self.settings(head, payload),
            kind::PING => {
                if head.stream != 0 || payload.len() != 8 {
                    return Err(fatal(reason::FRAME_SIZE_ERROR, "bad PING"));
                }
                if head.flags & flag::ACK == 0 {
                    frame::put_head(&mut self.out, 8, kind::PING, flag::ACK, 0);
                    self.out.extend_from_slice(payload);
                }
                Ok(())
            }
            kind::GOAWAY => {
                if payload.len() < 8 {
                    return Err(fatal(reason::FRAME_SIZE_ERROR, "short GOAWAY"));
                }
                let mut p = payload;
                let last = p.get_u32() & MAX_STREAM_ID;
                let code = p.get_u32();
                self.goaway = Some((last, code));
                let above = if last % 2 == 1 { last + 2 } else { last + 1 };
                let mut id = above.max(self.first_id);
                while id < self.next_id() {
                    self.finish(id, on, Some(Failure::GoAway(code)));
                    id += 2;
                }
                Ok(())
            }
            kind::WINDOW_UPDATE => {
                let increment = i64::from(u32_payload(head, payload)? & MAX_STREAM_ID);
                if head.stream == 0 {
                    if increment == 0 {
                        return Err(fatal(reason::PROTOCOL_ERROR, "WINDOW_UPDATE of 0"));
                    }
                    self.send_window += increment;
                    if self.send_window > MAX_WINDOW {
                        return Err(fatal(reason::FLOW_CONTROL_ERROR, "window above 2^31-1"));
                    }
                } else if let Some(s) = self.stream_mut(head.stream) {
                    s.send_window += increment;
                }
                self.send_blocked();
                Ok(())
            }
            kind::PUSH_PROMISE => Err(fatal(reason::PROTOCOL_ERROR, "PUSH_PROMISE, push is off")),
            _ => Ok(()),
        }
    }
}

impl<T> Default for Client<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Client<T> {
    /// Where stream `id` is in the queue, if it is one of this client's streams there.
    fn index(&self, id: u32) -> Option<usize> {
        let d = id.checked_sub(self.first_id)?;
        (id & 1 == 1).then_some((d / 2) as usize)
    }

    fn stream_mut(&mut self, id: u32) -> Option<&mut Stream<T>> {
        let index = self.index(id)?;
        self.streams.get_mut(index)?.as_mut()
    }

    /// Ends stream `id` (if in flight): done, or failed with `outcome`; then drops
    /// finished streams from the front of the queue.
    fn finish(&mut self, id: u32, on: &mut impl FnMut(Event<'_, T>), outcome: Option<Failure>) {
        let Some(slot) = self.index(id).and_then(|i| self.streams.get_mut(i)) else {
            return;
        };
        let Some(stream) = slot.take() else { return };
        self.live -= 1;
        if !stream.body.is_empty() {
            // The response ended before the request body did: stop sending it.
            frame::put_rst_stream(&mut self.out, id, reason::NO_ERROR);
        }
        while matches!(self.streams.front(), Some(None)) {
            self.streams.pop_front();
            self.first_id += 2;
        }
        on(match outcome {
            None => Event::Done(stream.token, stream.status.unwrap_or(0)),
            Some(f) => Event::Failed(stream.token, f),
        });
    }

    /// Fails stream `id` for a malformed response: RST_STREAM, then the event.
    fn malformed(&mut self, id: u32, on: &mut impl FnMut(Event<'_, T>)) {
        frame::put_rst_stream(&mut self.out, id, reason::PROTOCOL_ERROR);
        if let Some(s) = self.stream_mut(id) {
            s.body = Bytes::new();
        }
        self.finish(id, on, Some(Failure::Malformed(reason::PROTOCOL_ERROR)));
    }

    fn data(
        &mut self,
        head: Head,
        payload: &[u8],
        on: &mut impl FnMut(Event<'_, T>),
    ) -> Result<(), ConnectionError> {
        if head.stream == 0 {
            return Err(fatal(reason::PROTOCOL_ERROR, "DATA on stream 0"));
        }
        if head.flags & flag::PADDED != 0
            && payload.first().map(|&p| usize::from(p) >= payload.len()) != Some(false)
        {
            return Err(fatal(reason::PROTOCOL_ERROR, "padding beyond the frame"));
        }
        // Flow control counts the whole payload, padding included.
        let len = payload.len() as u32;
        self.unacked += len;
        let end_stream = head.flags & flag::END_STREAM != 0;
        let Some(s) = self.stream_mut(head.stream) else {
            return Ok(());
        };
        if s.status.is_none() {
            self.malformed(head.stream, on);
            return Ok(());
        }
        if end_stream {
            self.finish(head.stream, on, None);
            return Ok(());
        }
        s.unacked += len;
        if s.unacked >= STREAM_WINDOW / 2 {
            let increment = std::mem::take(&mut s.unacked);
            frame::put_window_update(&mut self.out, head.stream, increment);
        }
        Ok(())
    }

    fn headers(
        &mut self,
        id: u32,
        end_stream: bool,
        block: &[u8],
        on: &mut impl FnMut(Event<'_, T>),
    ) -> Result<(), ConnectionError> {
        if id == 0 {
            return Err(fatal(reason::PROTOCOL_ERROR, "HEADERS on stream 0"));
        }
        // Decoded whatever the stream's state: the HPACK table must stay in step.
        self.timing.clear();
        let status = self
            .decoder
            .decode_timed(block, &mut self.timing)
            .map_err(|e| fatal(reason::COMPRESSION_ERROR, e.0))?;
        let Some(s) = self
            .index(id)
            .and_then(|i| self.streams.get_mut(i))
            .and_then(Option::as_mut)
        else {
            return Ok(());
        };
        match (s.status, status) {
            // 1xx: informational, a final head follows.
            (None, Some(100..=199)) if !end_stream => Ok(()),
            (None, Some(code)) if code >= 200 => {
                s.status = Some(code);
                on(Event::Head(&mut s.token, code, &self.timing));
                if end_stream {
                    self.finish(id, on, None);
                }
                Ok(())
            }
            // Trailers end the stream.
            (Some(_), None) if end_stream => {
                self.finish(id, on, None);
                Ok(())
            }
            _ => {
                self.malformed(id, on);
                Ok(())
            }
        }
    }

    fn settings(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnectionError> {
        if head.stream != 0 {
            return Err(fatal(reason::PROTOCOL_ERROR, "SETTINGS on a stream"));
        }
        if head.flags & flag::ACK != 0 {
            return Ok(());
        }
        if !payload.chunks_exact(6).remainder().is_empty() {
            return Err(fatal(reason::FRAME_SIZE_ERROR, "SETTINGS length"));
        }
        for mut p in payload.chunks_exact(6) {
            let (id, value) = (p.get_u16(), p.get_u32());
            match id {
                setting::MAX_CONCURRENT_STREAMS => {
                    self.peer_max_streams = value;
                    self.peer_max_streams_sent = Some(value);
                }
                setting::INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > MAX_WINDOW {
                        return Err(fatal(reason::FLOW_CONTROL_ERROR, "initial window"));
                    }
                    let delta = value - self.peer_initial_window;
                    self.peer_initial_window = value;
                    for s in self.streams.iter_mut().flatten() {
                        s.send_window += delta;
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(MAX_FRAME as u32..1 << 24).contains(&value) {
                        return Err(fatal(reason::PROTOCOL_ERROR, "max frame size"));
                    }
                    self.peer_max_frame = value as usize;
                }
                setting::ENABLE_PUSH if value > 1 => {
                    return Err(fatal(reason::PROTOCOL_ERROR, "enable push"));
                }
                // HEADER_TABLE_SIZE: request blocks never index, so any size will do.
                _ => {}
            }
        }
        frame::put_head(&mut self.out, 0, kind::SETTINGS, flag::ACK, 0);
        self.settings_seen = true;
        self.send_blocked();
        Ok(())
    }

    /// Sends as much of the waiting request bodies as the windows allow, oldest first.
    fn send_blocked(&mut self) {
        let mut waiting = std::mem::take(&mut self.blocked);
        waiting.retain(|&id| self.send_window <= 0 || self.send_body(id));
        self.blocked = waiting;
    }

    /// Sends what the windows allow of stream `id`'s body; whether some is left.
    fn send_body(&mut self, id: u32) -> bool {
        let Some(index) = self.index(id) else {
            return false;
        };
        let Some(Some(s)) = self.streams.get_mut(index) else {
            return false;
        };
        loop {
            let n = (s.body.len() as i64)
                .min(self.peer_max_frame as i64)
                .min(s.send_window)
                .min(self.send_window);
            if n <= 0 {
                return true;
            }
            let chunk = s.body.split_to(n as usize);
            s.send_window -= n;
            self.send_window -= n;
            let flags = if s.body.is_empty() {
                flag::END_STREAM
            } else {
                0
            };
            frame::put_head(&mut self.out, chunk.len(), kind::DATA, flags, id);
            self.out.extend_from_slice(&chunk);
            if s.body.is_empty() {
                return false;
            }
        }
    }
}

/// The header block fragment of a HEADERS payload (padding and priority removed).
fn headers_payload(head: Head, payload: &[u8]) -> Result<&[u8], ConnectionError> {
    let mut p = payload;
    let mut pad = 0;
    if head.flags & flag::PADDED != 0 {
        let (&n, rest) = p
            .split_first()
            .ok_or(fatal(reason::PROTOCOL_ERROR, "short HEADERS"))?;
        pad = usize::from(n);
        p = rest;
    }
    if head.flags & flag::PRIORITY != 0 {
        p = p
            .get(5..)
            .ok_or(fatal(reason::PROTOCOL_ERROR, "short HEADERS"))?;
    }
    p.len()
        .checked_sub(pad)
        .map(|end| &p[..end])
        .ok_or(fatal(reason::PROTOCOL_ERROR, "padding beyond the frame"))
}

fn u32_payload(head: Head, payload: &[u8]) -> Result<u32, ConnectionError> {
    match payload {
        [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(fatal(
            reason::FRAME_SIZE_ERROR,
            if head.kind == kind::RST_STREAM {
                "RST_STREAM length"
            } else {
                "WINDOW_UPDATE length"
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame::put_head(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out
    }

    /// A client that has the server's SETTINGS, with one GET in flight on stream 1 and
    /// its output cleared.
    fn one_stream() -> Client<&'static str> {
        let mut c = Client::new();
        c.receive(&frame(kind::SETTINGS, 0, 0, &[]), &mut |_| {})
            .unwrap();
        c.open(&[0x82, 0x86, 0x84], &Bytes::new(), "one");
        c.out().clear();
        c
    }

    #[test]
    fn a_server_that_does_not_speak_http2_is_told_apart() {
        let mut c: Client<&'static str> = Client::new();
        let e = c.receive(b"HTTP/1.1 400 Bad Request\r\n\r\n", &mut |_| {});
        assert_eq!(e.map_err(|e| e.what), Err(HTTP1_REPLY));
        let mut c: Client<&'static str> = Client::new();
        let e = c.receive(&frame(kind::PING, 0, 0, b"12345678"), &mut |_| {});
        assert_eq!(e.map_err(|e| e.code), Err(reason::PROTOCOL_ERROR));
    }

    #[test]
    fn a_settings_ack_is_not_the_servers_preface() {
        // Found by the h2_client fuzz target: an ACK first let "HTTP/1." later in the
        // stream fail or pass depending on how the bytes were cut.
        let mut c: Client<&'static str> = Client::new();
        let e = c.receive(&frame(kind::SETTINGS, flag::ACK, 0, &[]), &mut |_| {});
        assert_eq!(e.map_err(|e| e.what), Err("server preface is not SETTINGS"));
    }

    fn collect(
        c: &mut Client<&'static str>,
        input: &[u8],
    ) -> (Result<usize, ConnectionError>, Vec<String>) {
        let mut seen = Vec::new();
        let r = c.receive(input, &mut |e| {
            seen.push(match e {
                Event::Head(t, s, _) => format!("head {t} {s}"),
                Event::Done(t, s) => format!("done {t} {s}"),
                Event::Failed(t, f) => format!("failed {t} {f:?}"),
            })
        });
        (r, seen)
    }

    #[test]
    fn a_response_split_anywhere_gives_the_same_events() {
        let mut wire = frame(kind::HEADERS, flag::END_HEADERS, 1, &[0x88]);
        wire.extend(frame(kind::DATA, flag::END_STREAM, 1, b"hello"));
        for cut in 0..wire.len() {
            let mut c = one_stream();
            let (used, mut seen) = collect(&mut c, &wire[..cut]);
            let used = used.unwrap();
            let (rest, more) = collect(&mut c, &wire[used..]);
            assert_eq!(used + rest.unwrap(), wire.len());
            seen.extend(more);
            assert_eq!(seen, ["head one 200", "done one 200"], "cut at {cut}");
            assert_eq!(c.live(), 0);
        }
    }

    #[test]
    fn pings_and_settings_are_answered() {
        let mut c = one_stream();
        let mut wire = frame(kind::PING, 0, 0, b"12345678");
        wire.extend(frame(kind::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 9]));
        collect(&mut c, &wire).0.unwrap();
        let mut want = frame(kind::PING, flag::ACK, 0, b"12345678");
        want.extend(frame(kind::SETTINGS, flag::ACK, 0, &[]));
        assert_eq!(c.out(), &want);
        assert_eq!(c.peer_max_streams(), Some(9));
    }

    #[test]
    fn data_before_the_head_is_a_malformed_response_reset_by_the_client() {
        let mut c = one_stream();
        let (r, seen) = collect(&mut c, &frame(kind::DATA, 0, 1, b"x"));
        r.unwrap();
        assert_eq!(seen, ["failed one Malformed(1)"]);
        assert_eq!(c.out(), &frame(kind::RST_STREAM, 0, 1, &[0, 0, 0, 1]));
    }

    #[test]
    fn protocol_violations_are_connection_errors_not_panics() {
        let big = frame(kind::DATA, 0, 1, &vec![0; MAX_FRAME + 1]);
        let cases: [(Vec<u8>, u32); 6] = [
            (big, reason::FRAME_SIZE_ERROR),
            (
                frame(kind::PUSH_PROMISE, flag::END_HEADERS, 1, &[0, 0, 0, 2]),
                reason::PROTOCOL_ERROR,
            ),
            (
                frame(kind::CONTINUATION, flag::END_HEADERS, 1, &[]),
                reason::PROTOCOL_ERROR,
            ),
            (
                frame(kind::HEADERS, flag::END_HEADERS, 1, &[0x80]),
                reason::COMPRESSION_ERROR,
            ),
            (
                frame(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 0, 0]),
                reason::PROTOCOL_ERROR,
            ),
            (frame(kind::PING, 0, 0, b"short"), reason::FRAME_SIZE_ERROR),
        ];
        for (wire, code) in cases {
            let mut c = one_stream();
            assert_eq!(
                collect(&mut c, &wire).0.map_err(|e| e.code),
                Err(code),
                "{wire:x?}"
            );
        }
        // A header block interrupted by another frame.
        let mut c = one_stream();
        let mut wire = frame(kind::HEADERS, 0, 1, &[0x88]);
        wire.extend(frame(kind::PING, 0, 0, b"12345678"));
        assert!(collect(&mut c, &wire).0.is_err());
    }

    #[test]
    fn an_upgraded_connection_answers_stream_one_and_goes_on_at_three() {
        let mut c: Client<&'static str> = Client::upgraded("first");
        assert!(c.out().starts_with(frame::PREFACE));
        c.receive(&frame(kind::SETTINGS, 0, 0, &[]), &mut |_| {})
            .unwrap();
        c.out().clear();
        assert_eq!(c.open(&[0x82], &Bytes::new(), "second"), 3);
        let mut wire = frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            3,
            &[0x8d],
        );
        wire.extend(frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            1,
            &[0x88],
        ));
        let (r, seen) = collect(&mut c, &wire);
        r.unwrap();
        assert_eq!(
            seen,
            [
                "head second 404",
                "done second 404",
                "head first 200",
                "done first 200"
            ]
        );
        assert_eq!((c.live(), c.oldest()), (0, None));
    }
}
