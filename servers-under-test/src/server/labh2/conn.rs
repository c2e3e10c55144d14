//! One HTTP/2 connection as a state machine without sockets: bytes in, frames out
//! (RFC 9113). It reads every whole frame of a batch, keeps each stream's state, the
//! HPACK table and both directions' windows, enforces the server's defences, and leaves
//! in [`Conn::take_ready`] the streams whose heads are complete. Nothing is dispatched
//! before the whole batch is read, as in the h2 crate, whose service sees a stream only
//! after the frames read with it: a request reset in the same batch does no work, and a
//! frame that makes the server reset a stream (MadeYouReset) finds it still open.

use std::borrow::Cow;
use std::task::Waker;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use h2lab_common::h2_frame::{flag, kind, reason, setting, HEAD_LEN, MAX_FRAME, PREFACE};

use super::body::Inbound;
use super::encode::{put_goaway, put_head, put_rst_stream, put_settings, put_window_update};
use super::hpack::{DecodeError, Decoder};
use super::request::Head;
use super::stream::{Closed, Pending, Recent, Send, Stream, Streams};
use crate::handler::Quick;
use crate::server::guard::budget::{self, Budget, Glitch};
use crate::server::guard::scan;
use crate::server::guard::FloodLimits;

/// The handler's inline answer to a request without a body, given its method and path.
pub type QuickFn<'a> = dyn FnMut(&[u8], &[u8]) -> Option<Quick> + 'a;

/// The server's limits for one connection.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS; streams beyond are refused.
    pub max_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: larger heads get 431, four times larger ends the
    /// connection; also bounds CONTINUATION frames as the h2 crate does.
    pub max_header_bytes: usize,
    /// The flood budget.
    pub flood: FloodLimits,
    /// Client resets of streams not yet dispatched, per batch (Rapid Reset); 0: no limit.
    pub max_pending_resets: usize,
    /// Streams the server resets because of the client (MadeYouReset); 0: no limit.
    pub max_local_resets: usize,
}

/// How long a graceful close waits for the PING that follows its first GOAWAY.
pub const CLOSING_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// The payload of that PING.
const CLOSING_PING: [u8; 8] = *b"h2labbye";

/// Our receive windows: as large as the hyper engine's.
pub const STREAM_WINDOW: u32 = 1 << 20;
/// The connection's receive window.
pub const CONN_WINDOW: u32 = 4 << 20;
const DEFAULT_WINDOW: i64 = 65_535;
const MAX_WINDOW: i64 = 0x7fff_ffff;

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the client's preface.
    Preface,
    /// Waiting for the client's first SETTINGS.
    Settings,
    /// Serving.
    Open,
    /// A graceful close began (GOAWAY naming the largest id, and a PING): streams the
    /// client sends before it has seen it are still served. The final GOAWAY follows the
    /// PING's acknowledgement, or [`CLOSING_GRACE`] (the h2 crate's two-step close).
    Closing {
        /// When it began.
        since: Instant,
    },
    /// A graceful GOAWAY went out: streams up to `last` are served, none after.
    Draining {
        /// The last stream served.
        last: u32,
    },
    /// A connection error's GOAWAY went out (or the peer went away): write and close.
    Failed,
}

/// A connection error: GOAWAY with this code and debug text.
#[derive(Debug)]
pub struct ConnError(pub u32, pub Cow<'static, str>);

impl ConnError {
    fn new(code: u32, why: &'static str) -> ConnError {
        ConnError(code, Cow::Borrowed(why))
    }
}

impl From<DecodeError> for ConnError {
    fn from(e: DecodeError) -> Self {
        ConnError::new(reason::COMPRESSION_ERROR, e.0)
    }
}

/// A header block being gathered (HEADERS, then CONTINUATION until END_HEADERS).
struct Block {
    stream: u32,
    end_stream: bool,
    /// The stream depends on itself (RFC 9113 section 5.3.1): reset once decoded.
    self_dependent: bool,
    bytes: Vec<u8>,
    continuations: usize,
}

/// The connection's state.
pub struct Conn {
    pub(super) cfg: Config,
    pub(super) phase: Phase,
    /// Frames to write.
    pub out: Vec<u8>,
    decoder: Decoder,
    block: Option<Block>,
    spare_block: Vec<u8>,
    pub(super) streams: Streams,
    /// The highest stream the client opened (or tried to).
    pub(super) last_id: u32,
    pub(super) peer_initial_window: i64,
    pub(super) peer_max_frame: usize,
    pub(super) send_window: i64,
    recv_window: i64,
    pub(super) conn_unreleased: usize,
    pub(super) budget: Budget,
    /// The last DATA frame written was small and cut short by flow control.
    pub(super) starved: bool,
    pending_resets: usize,
    local_resets: usize,
    pub(super) recent: Recent,
    ready: Vec<u32>,
    head: Head,
    // Boxed: a stream holds its head as a Box until dispatch, and these are recycled.
    #[allow(clippy::vec_box)]
    pub(super) spare_heads: Vec<Box<Head>>,
    /// When the batch being read arrived.
    pub(super) now: Instant,
    pub(super) pump_start: usize,
    pub(super) pump_ids: Vec<u32>,
    /// Why the connection failed, for the log.
    pub failure: Option<Cow<'static, str>>,
}

impl Conn {
    /// A connection whose SETTINGS and connection window are already queued in `out`.
    pub fn new(cfg: Config, now: Instant) -> Conn {
        let mut out = Vec::with_capacity(16 * 1024);
        put_settings(
            &mut out,
            &[
                (setting::MAX_CONCURRENT_STREAMS, cfg.max_streams),
                (setting::INITIAL_WINDOW_SIZE, STREAM_WINDOW),
                (
                    setting::MAX_HEADER_LIST_SIZE,
                    u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX),
                ),
            ],
        );
        put_window_update(&mut out, 0, CONN_WINDOW - DEFAULT_WINDOW as u32);
        Conn {
            cfg,
            phase: Phase::Preface,
            out,
            decoder: Decoder::default(),
            block: None,
            spare_block: Vec::new(),
            streams: Streams::default(),
            last_id: 0,
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_frame: MAX_FRAME,
            send_window: DEFAULT_WINDOW,
            recv_window: i64::from(CONN_WINDOW),
            conn_unreleased: 0,
            budget: Budget::new(cfg.flood),
            starved: false,
            pending_resets: 0,
            local_resets: 0,
            recent: Recent::default(),
            ready: Vec::new(),
            head: Head::default(),
            spare_heads: Vec::new(),
            now,
            pump_start: 0,
            pump_ids: Vec::new(),
            failure: None,
        }
    }

    /// Handles every whole frame in `input`, leaving a partial one there. `quick` is the
    /// handler's inline answer for a request with no body (method, path); `waker` wakes
    /// the connection's task when a handler reads a request body.
    pub fn receive(
        &mut self,
        input: &mut BytesMut,
        now: Instant,
        quick: &mut QuickFn<'_>,
        waker: &Waker,
    ) {
        self.now = now;
        if self.phase == Phase::Failed {
            input.clear();
            return;
        }
        if let Err(e) = self.frames(input, quick, waker) {
            self.fail(e);
            input.clear();
        }
    }

    /// Ends the connection with a GOAWAY of the error's code; nothing is served after it.
    pub fn fail(&mut self, e: ConnError) {
        if self.phase == Phase::Failed {
            return;
        }
        let ConnError(code, why) = e;
        tracing::debug!(code, %why, "HTTP/2 connection error");
        // A GOAWAY may lower the last stream id it names, never raise it (RFC 9113 6.8).
        let last = match self.phase {
            Phase::Draining { last } => last,
            _ => self.last_id,
        };
        put_goaway(&mut self.out, last, code, why.as_bytes());
        self.failure = Some(why);
        self.abandon("connection error");
    }

    /// Drops every stream (the connection is ending without serving them).
    pub fn abandon(&mut self, why: &'static str) {
        self.phase = Phase::Failed;
        self.ready.clear();
        for mut s in self.streams.drain() {
            s.cancel(why);
        }
    }

    /// Begins a graceful close: streams already opened (or on their way) are served,
    /// later ones are not.
    pub fn go_away(&mut self, debug: &'static str) {
        match self.phase {
            Phase::Open => {
                put_goaway(
                    &mut self.out,
                    0x7fff_ffff,
                    reason::NO_ERROR,
                    debug.as_bytes(),
                );
                put_head(&mut self.out, 8, kind::PING, 0, 0);
                self.out.extend_from_slice(&CLOSING_PING);
                self.phase = Phase::Closing { since: self.now };
            }
            Phase::Preface | Phase::Settings => {
                put_goaway(
                    &mut self.out,
                    self.last_id,
                    reason::NO_ERROR,
                    debug.as_bytes(),
                );
                self.phase = Phase::Draining { last: self.last_id };
            }
            Phase::Closing { .. } | Phase::Draining { .. } | Phase::Failed => {}
        }
    }

    /// The final GOAWAY of a graceful close, naming the last stream that will be served.
    fn close_gracefully(&mut self) {
        if let Phase::Closing { .. } = self.phase {
            put_goaway(&mut self.out, self.last_id, reason::NO_ERROR, b"");
            self.phase = Phase::Draining { last: self.last_id };
        }
    }

    /// Time passes: a graceful close whose PING went unanswered for [`CLOSING_GRACE`]
    /// sends its final GOAWAY.
    pub fn tick(&mut self, now: Instant) {
        if let Phase::Closing { since } = self.phase {
            if now.saturating_duration_since(since) >= CLOSING_GRACE {
                self.close_gracefully();
            }
        }
    }

    /// Whether nothing is left to serve: the driver may close once `out` is written.
    pub fn finished(&self) -> bool {
        match self.phase {
            Phase::Failed => true,
            Phase::Draining { .. } => self.streams.is_empty(),
            _ => false,
        }
    }

    /// Gives stream `id`'s handler future a way to be cancelled with the stream.
    pub fn set_abort(&mut self, id: u32, handle: futures_util::future::AbortHandle) {
        match self.streams.get(id) {
            Some(s) => s.abort = Some(handle),
            None => handle.abort(),
        }
    }

    /// Streams whose heads are complete, in the order they arrived, for dispatch.
    pub fn take_ready(&mut self, into: &mut Vec<u32>) {
        into.clear();
        std::mem::swap(into, &mut self.ready);
        // The h2 crate's "pending accept": resets count until the service takes streams.
        self.pending_resets = 0;
    }

    fn frames(
        &mut self,
        input: &mut BytesMut,
        quick: &mut QuickFn<'_>,
        waker: &Waker,
    ) -> Result<(), ConnError> {
        if self.phase == Phase::Preface {
            let n = input.len().min(PREFACE.len());
            if input[..n] != PREFACE[..n] {
                return Err(ConnError::new(
                    reason::PROTOCOL_ERROR,
                    "not an HTTP/2 preface",
                ));
            }
            if n < PREFACE.len() {
                return Ok(());
            }
            input.advance(PREFACE.len());
            self.phase = Phase::Settings;
        }
        while input.len() >= HEAD_LEN {
            let len = (usize::from(input[0]) << 16)
                | (usize::from(input[1]) << 8)
                | usize::from(input[2]);
            if len > MAX_FRAME {
                return Err(ConnError::new(
                    reason::FRAME_SIZE_ERROR,
                    "frame larger than SETTINGS_MAX_FRAME_SIZE",
                ));
            }
            if input.len() < HEAD_LEN + len {
                input.reserve(HEAD_LEN + len - input.len());
                break;
            }
            let (ty, flags) = (input[3], input[4]);
            let id = u32::from_be_bytes([input[5], input[6], input[7], input[8]]) & 0x7fff_ffff;
            input.advance(HEAD_LEN);
            let payload = input.split_to(len);
            self.frame(ty, flags, id, payload, quick, waker)?;
            if self.phase == Phase::Failed {
                break;
            }
        }
        Ok(())
    }

    fn spend(&mut self, g: Glitch) -> Result<(), ConnError> {
        if self.budget.spend(g, self.now) {
            return Ok(());
        }
        let why = self.budget.describe();
        tracing::debug!(%why, "HTTP/2 connection over its flood budget");
        Err(ConnError(reason::ENHANCE_YOUR_CALM, Cow::Owned(why)))
    }

    fn frame(
        &mut self,
        ty: u8,
        flags: u8,
        id: u32,
        payload: BytesMut,
        quick: &mut QuickFn<'_>,
        waker: &Waker,
    ) -> Result<(), ConnError> {
        if self.budget.enabled() {
            let mut prefix = [0u8; 4];
            let k = payload.len().min(4);
            prefix[..k].copy_from_slice(&payload[..k]);
            let f = scan::Frame {
                kind: ty,
                flags,
                stream: id,
                len: payload.len(),
                prefix: u32::from_be_bytes(prefix),
            };
            if let Some(g) = budget::inbound(&f, self.starved) {
                self.spend(g)?;
            }
        }
        if self.phase == Phase::Settings && (ty != kind::SETTINGS || flags & flag::ACK != 0) {
            return Err(ConnError::new(
                reason::PROTOCOL_ERROR,
                "the first frame after the preface is not SETTINGS (RFC 9113 section 3.4)",
            ));
        }
        if let Some(b) = &self.block {
            if ty != kind::CONTINUATION || id != b.stream {
                return Err(ConnError::new(
                    reason::PROTOCOL_ERROR,
                    "a header block was interrupted (RFC 9113 section 6.10)",
                ));
            }
        }
        match ty {
            kind::DATA => self.data(flags, id, &payload, waker),
            kind::HEADERS => self.headers(flags, id, &payload, quick),
            kind::CONTINUATION => self.continuation(flags, id, &payload, quick),
            kind::PRIORITY => self.priority(id, &payload),
            kind::RST_STREAM => self.rst_stream(id, &payload),
            kind::SETTINGS => self.settings(flags, id, &payload),
            kind::PUSH_PROMISE => Err(ConnError::new(
                reason::PROTOCOL_ERROR,
                "PUSH_PROMISE from a client (RFC 9113 section 8.4)",
            )),
            kind::PING => self.ping(flags, id, &payload),
            kind::GOAWAY => {
                if id != 0 {
                    return Err(ConnError::new(reason::PROTOCOL_ERROR, "GOAWAY on a stream"));
                }
                // The client will open no more streams; those open are still served.
                Ok(())
            }
            kind::WINDOW_UPDATE => self.window_update(id, &payload),
            _ => Ok(()), // unknown frame types are ignored (RFC 9113 section 4.1)
        }
    }

    fn settings(&mut self, flags: u8, id: u32, p: &[u8]) -> Result<(), ConnError> {
        if id != 0 {
            return Err(ConnError::new(
                reason::PROTOCOL_ERROR,
                "SETTINGS on a stream",
            ));
        }
        if flags & flag::ACK != 0 {
            if !p.is_empty() {
                return Err(ConnError::new(
                    reason::FRAME_SIZE_ERROR,
                    "SETTINGS ACK with a payload",
                ));
            }
            return Ok(());
        }
        if !p.len().is_multiple_of(6) {
            return Err(ConnError::new(
                reason::FRAME_SIZE_ERROR,
                "SETTINGS length not a multiple of 6",
            ));
        }
        self.phase = match self.phase {
            Phase::Settings => Phase::Open,
            other => other,
        };
        for s in p.chunks_exact(6) {
            let key = u16::from_be_bytes([s[0], s[1]]);
            let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            match key {
                setting::ENABLE_PUSH if v > 1 => {
                    return Err(ConnError::new(
                        reason::PROTOCOL_ERROR,
                        "SETTINGS_ENABLE_PUSH above 1",
                    ))
                }
                setting::INITIAL_WINDOW_SIZE => {
                    if i64::from(v) > MAX_WINDOW {
                        return Err(ConnError::new(
                            reason::FLOW_CONTROL_ERROR,
                            "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                        ));
                    }
                    let delta = i64::from(v) - self.peer_initial_window;
                    self.peer_initial_window = i64::from(v);
                    for st in self.streams.iter_mut() {
                        st.send_window += delta;
                        if st.send_window > MAX_WINDOW {
                            return Err(ConnError::new(
                                reason::FLOW_CONTROL_ERROR,
                                "a stream window above 2^31-1",
                            ));
                        }
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(16_384..=16_777_215).contains(&v) {
                        return Err(ConnError::new(
                            reason::PROTOCOL_ERROR,
                            "SETTINGS_MAX_FRAME_SIZE out of range",
                        ));
                    }
                    self.peer_max_frame = v as usize;
                }
                // HEADER_TABLE_SIZE: the encoder uses no dynamic table; others are ignored.
                _ => {}
            }
        }
        put_head(&mut self.out, 0, kind::SETTINGS, flag::ACK, 0);
        Ok(())
    }

    fn ping(&mut self, flags: u8, id: u32, p: &[u8]) -> Result<(), ConnError> {
        if id != 0 {
            return Err(ConnError::new(reason::PROTOCOL_ERROR, "PING on a stream"));
        }
        if p.len() != 8 {
            return Err(ConnError::new(
                reason::FRAME_SIZE_ERROR,
                "PING length not 8",
            ));
        }
        if flags & flag::ACK == 0 {
            put_head(&mut self.out, 8, kind::PING, flag::ACK, 0);
            self.out.extend_from_slice(p);
        } else if p == CLOSING_PING {
            self.close_gracefully();
        }
        Ok(())
    }

    fn window_update(&mut self, id: u32, p: &[u8]) -> Result<(), ConnError> {
        if p.len() != 4 {
            return Err(ConnError::new(
                reason::FRAME_SIZE_ERROR,
                "WINDOW_UPDATE length not 4",
            ));
        }
        let inc = i64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff);
        if id == 0 {
            if inc == 0 {
                return Err(ConnError::new(reason::PROTOCOL_ERROR, "WINDOW_UPDATE of 0"));
            }
            self.send_window += inc;
            if self.send_window > MAX_WINDOW {
                return Err(ConnError::new(
                    reason::FLOW_CONTROL_ERROR,
                    "the connection window above 2^31-1",
                ));
            }
            return Ok(());
        }
        if id > self.last_id {
            return Err(ConnError::new(
                reason::PROTOCOL_ERROR,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let Some(s) = self.streams.get(id) else {
            return Ok(()); // closed: allowed for a while (RFC 9113 section 6.9)
        };
        if inc == 0 {
            return self.reset(id, reason::PROTOCOL_ERROR);
        }
        s.send_window += inc;
        if s.send_window > MAX_WINDOW {
            return self.reset(id, reason::FLOW_CONTROL_ERROR);
        }
        Ok(())
    }

    fn priority(&mut self, id: u32, p: &[u8]) -> Result<(), ConnError> {
        if id == 0 {
            return Err(ConnError::new(
                reason::PROTOCOL_ERROR,
                "PRIORITY on stream 0",
            ));
        }
        if p.len() != 5 {
            return self.reset(id, reason::FRAME_SIZE_ERROR);
        }
        if u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff == id {
            return self.reset(id, reason::PROTOCOL_ERROR);
        }
        Ok(())
    }

    fn rst_stream(&mut self, id: u32, p: &[u8]) -> Result<(), ConnError> {
        if id == 0 {
            return Err(ConnError::new(
                reason::PROTOCOL_ERROR,
                "RST_STREAM on stream 0",
            ));
        }
        if p.len() != 4 {
            return Err(ConnError::new(
                reason::FRAME_SIZE_ERROR,
                "RST_STREAM length not 4",
            ));
        }
        if id > self.last_id {
            return Err(ConnError::new(
                reason::PROTOCOL_ERROR,
                "RST_STREAM on an idle stream",
            ));
        }
        let Some(mut s) = self.streams.remove(id) else {
            return Ok(());
        };
        if !matches!(s.pending, Pending::None) {
            self.pending_resets += 1;
            if self.cfg.max_pending_resets > 0 && self.pending_resets > self.cfg.max_pending_resets
            {
                return Err(ConnError::new(reason::ENHANCE_YOUR_CALM, "too_many_resets"));
            }
        }
        self.release_stream_credit(&s);
        s.cancel("stream reset by the client");
        self.recent.add(id, Closed::ByPeer);
        Ok(())
    }

    /// Resets a stream (a stream error), counting it against the client when the code
    /// says the client caused it.
    pub(super) fn reset(&mut self, id: u32, code: u32) -> Result<(), ConnError> {
        put_rst_stream(&mut self.out, id, code);
        if let Some(mut s) = self.streams.remove(id) {
            self.release_stream_credit(&s);
            s.cancel("stream reset by the server");
        }
        self.recent.add(id, Closed::ByUs);
        if matches!(
            code,
            reason::NO_ERROR | reason::INTERNAL_ERROR | reason::CANCEL
        ) {
            return Ok(());
        }
        self.local_resets += 1;
        if self.cfg.max_local_resets > 0 && self.local_resets > self.cfg.max_local_resets {
            return Err(ConnError::new(
                reason::ENHANCE_YOUR_CALM,
                "too_many_internal_resets",
            ));
        }
        self.spend(Glitch::ServerReset)
    }

    /// Gives back the connection credit of a closing stream's request bytes, read or not.
    fn release_stream_credit(&mut self, s: &Stream) {
        if let Some(i) = &s.inbound {
            self.conn_unreleased += i.reclaim();
        }
    }

    fn headers(
        &mut self,
        flags: u8,
        id: u32,
        p: &[u8],
        quick: &mut QuickFn<'_>,
    ) -> Result<(), ConnError> {
        if id == 0 || id.is_multiple_of(2) {
            return Err(ConnError::new(
                reason::PROTOCOL_ERROR,
                "HEADERS on stream 0 or on a stream the server would open",
            ));
        }
        let mut p = p;
        let mut pad = 0;
        if flags & flag::PADDED != 0 {
            let (&n, rest) = p.split_first().ok_or(ConnError::new(
                reason::FRAME_SIZE_ERROR,
                "PADDED HEADERS without its length",
            ))?;
            pad = usize::from(n);
            p = rest;
        }
        let mut self_dependent = false;
        if flags & flag::PRIORITY != 0 {
            let dep = p.get(..5).ok_or(ConnError::new(
                reason::FRAME_SIZE_ERROR,
                "HEADERS too short for PRIORITY",
            ))?;
            self_dependent =
                u32::from_be_bytes([dep[0], dep[1], dep[2], dep[3]]) & 0x7fff_ffff == id;
            p = &p[5..];
        }
        if pad > p.len() {
            return Err(ConnError::new(
                reason::PROTOCOL_ERROR,
                "padding longer than the frame (RFC 9113 section 6.2)",
            ));
        }
        let fragment = &p[..p.len() - pad];
        let end_stream = flags & flag::END_STREAM != 0;
        if flags & flag::END_HEADERS != 0 {
            return self.block_done(id, end_stream, self_dependent, fragment, quick);
        }
        let mut bytes = std::mem::take(&mut self.spare_block);
        bytes.clear();
        bytes.extend_from_slice(fragment);
        self.block = Some(Block {
            stream: id,
            end_stream,
            self_dependent,
            bytes,
            continuations: 0,
        });
        Ok(())
    }

    fn continuation(
        &mut self,
        flags: u8,
        id: u32,
        p: &[u8],
        quick: &mut QuickFn<'_>,
    ) -> Result<(), ConnError> {
        let max = max_continuations(self.cfg.max_header_bytes);
        let Some(b) = self.block.as_mut() else {
            return Err(ConnError::new(
                reason::PROTOCOL_ERROR,
                "CONTINUATION without HEADERS (RFC 9113 section 6.10)",
            ));
        };
        debug_assert_eq!(id, b.stream, "checked in frame()");
        b.bytes.extend_from_slice(p);
        if flags & flag::END_HEADERS == 0 {
            b.continuations += 1;
            if b.continuations > max {
                return Err(ConnError::new(
                    reason::ENHANCE_YOUR_CALM,
                    "too_many_continuations",
                ));
            }
            return Ok(());
        }
        let b = self.block.take().expect("checked above");
        let r = self.block_done(b.stream, b.end_stream, b.self_dependent, &b.bytes, quick);
        self.spare_block = b.bytes;
        r
    }

    /// Decodes a block whose fields go nowhere, keeping the table in step.
    fn discard(&mut self, block: &[u8]) -> Result<(), ConnError> {
        let limit = self.cfg.max_header_bytes;
        let mut h = std::mem::take(&mut self.head);
        h.clear();
        let done = self.decoder.decode(block, |f| h.add(f, limit, false));
        let too_large = h.way_too_large;
        h.clear();
        self.head = h;
        done?;
        if too_large {
            return Err(ConnError::new(
                reason::ENHANCE_YOUR_CALM,
                "header_list_way_too_large",
            ));
        }
        Ok(())
    }

    /// A complete header block on stream `id`: a request's head, or its trailers.
    fn block_done(
        &mut self,
        id: u32,
        end_stream: bool,
        self_dependent: bool,
        block: &[u8],
        quick: &mut QuickFn<'_>,
    ) -> Result<(), ConnError> {
        if self_dependent {
            // Decoded all the same: the HPACK table must stay in step.
            self.last_id = self.last_id.max(id);
            self.discard(block)?;
            return self.reset(id, reason::PROTOCOL_ERROR);
        }
        if id <= self.last_id {
            if self.streams.get(id).is_some_and(|s| s.recv_open) {
                return self.trailers(id, end_stream, block);
            }
            self.discard(block)?;
            return match (self.streams.get(id).is_some(), self.recent.get(id)) {
                // Half-closed (remote): a stream error (RFC 9113 section 5.1).
                (true, _) => self.reset(id, reason::STREAM_CLOSED),
                (false, Some(Closed::ByUs)) => Ok(()),
                (false, Some(_)) => Err(ConnError::new(
                    reason::STREAM_CLOSED,
                    "HEADERS on a closed stream (RFC 9113 section 5.1)",
                )),
                (false, None) => Err(ConnError::new(
                    reason::PROTOCOL_ERROR,
                    "a new stream's id is not above the last one (RFC 9113 section 5.1.1)",
                )),
            };
        }
        self.last_id = id;
        if let Phase::Draining { last } = self.phase {
            if id > last {
                // After our GOAWAY: not served, but the table must stay in step.
                return self.discard(block);
            }
        }
        let limit = self.cfg.max_header_bytes;
        let mut h = std::mem::take(&mut self.head);
        h.clear();
        let decoded = self.decoder.decode(block, |f| h.add(f, limit, false));
        let r = self.open(id, end_stream, decoded, &mut h, quick);
        self.head = h;
        r
    }

    fn open(
        &mut self,
        id: u32,
        end_stream: bool,
        decoded: Result<bool, DecodeError>,
        h: &mut Head,
        quick: &mut QuickFn<'_>,
    ) -> Result<(), ConnError> {
        decoded?;
        if h.way_too_large {
            return Err(ConnError::new(
                reason::ENHANCE_YOUR_CALM,
                "header_list_way_too_large",
            ));
        }
        if self.streams.len() >= self.cfg.max_streams as usize {
            return self.reset(id, reason::REFUSED_STREAM);
        }
        if h.oversize {
            self.too_large(id);
            if end_stream {
                self.recent.add(id, Closed::Normally);
                return Ok(());
            }
            return self.reset(id, reason::REFUSED_STREAM);
        }
        let mut checked = h.check();
        if checked.is_ok() && end_stream && h.content_length.is_some_and(|n| n > 0) {
            checked =
                Err("content-length above 0 on a request without content (RFC 9113 section 8.1.1)");
        }
        if let Err(why) = checked {
            tracing::debug!(stream = id, why, "malformed HTTP/2 request: stream reset");
            return self.reset(id, reason::PROTOCOL_ERROR);
        }
        let mut s = Stream::new(id, self.peer_initial_window, i64::from(STREAM_WINDOW));
        s.recv_open = !end_stream;
        s.content_length = h.content_length;
        s.head_request = h.is_head();
        let answer = if end_stream {
            quick(
                h.method.as_deref().unwrap_or_default(),
                h.path.as_deref().unwrap_or_default(),
            )
        } else {
            None
        };
        s.pending = match answer {
            Some(q) => Pending::Quick(q),
            None => {
                let mut boxed = self.spare_heads.pop().unwrap_or_default();
                std::mem::swap(&mut *boxed, h);
                Pending::Request(boxed)
            }
        };
        if !end_stream {
            s.inbound = Some(Inbound::new(s.content_length));
        }
        self.streams.insert(s);
        self.ready.push(id);
        Ok(())
    }

    fn trailers(&mut self, id: u32, end_stream: bool, block: &[u8]) -> Result<(), ConnError> {
        let limit = self.cfg.max_header_bytes;
        let mut h = std::mem::take(&mut self.head);
        h.clear();
        let decoded = self.decoder.decode(block, |f| h.add(f, limit, true));
        let way_too_large = h.way_too_large;
        let bad = h.malformed.is_some() || h.oversize || !end_stream;
        let trailers = h.take_trailers();
        h.clear();
        self.head = h;
        decoded?;
        if way_too_large {
            return Err(ConnError::new(
                reason::ENHANCE_YOUR_CALM,
                "header_list_way_too_large",
            ));
        }
        if bad {
            // Trailers must end the stream and hold no pseudo-header (RFC 9113 section 8.1).
            return self.reset(id, reason::PROTOCOL_ERROR);
        }
        self.end_of_request(id, Some(trailers))
    }

    /// The client ended its side of `id` (END_STREAM on DATA or trailers).
    fn end_of_request(
        &mut self,
        id: u32,
        trailers: Option<http::HeaderMap>,
    ) -> Result<(), ConnError> {
        let Some(s) = self.streams.get(id) else {
            return Ok(());
        };
        if s.content_length.is_some_and(|n| n != s.received) {
            return self.reset(id, reason::PROTOCOL_ERROR);
        }
        s.recv_open = false;
        if let Some(i) = s.inbound.take() {
            i.finish(trailers);
            // Keep the inbound to hand back credit for what is read from now on.
            s.inbound = Some(i);
        }
        if s.send == Send::Done {
            self.close(id);
        }
        Ok(())
    }

    fn data(&mut self, flags: u8, id: u32, payload: &[u8], waker: &Waker) -> Result<(), ConnError> {
        if id == 0 {
            return Err(ConnError::new(reason::PROTOCOL_ERROR, "DATA on stream 0"));
        }
        let flow = payload.len();
        if flow as i64 > self.recv_window {
            return Err(ConnError::new(
                reason::FLOW_CONTROL_ERROR,
                "DATA beyond the connection window",
            ));
        }
        self.recv_window -= flow as i64;
        let mut data = payload;
        if flags & flag::PADDED != 0 {
            let pad = usize::from(*data.first().ok_or(ConnError::new(
                reason::FRAME_SIZE_ERROR,
                "PADDED DATA without its length",
            ))?);
            if pad >= data.len() {
                return Err(ConnError::new(
                    reason::PROTOCOL_ERROR,
                    "padding longer than the frame (RFC 9113 section 6.1)",
                ));
            }
            data = &data[1..data.len() - pad];
        }
        if id > self.last_id {
            return Err(ConnError::new(
                reason::PROTOCOL_ERROR,
                "DATA on an idle stream",
            ));
        }
        let end = flags & flag::END_STREAM != 0;
        let Some(s) = self.streams.get(id).filter(|s| s.recv_open) else {
            self.conn_unreleased += flow;
            if self.streams.get(id).is_some() {
                return self.reset(id, reason::STREAM_CLOSED); // half-closed (remote)
            }
            return match (self.recent.get(id), self.phase) {
                (Some(Closed::ByUs), _) => Ok(()),
                (_, Phase::Draining { last }) if id > last => Ok(()),
                _ => self.reset(id, reason::STREAM_CLOSED),
            };
        };
        let n = data.len();
        let over_length = s
            .content_length
            .is_some_and(|cl| s.received + n as u64 > cl);
        if flow as i64 > s.recv_window || over_length {
            // Nothing of the frame reaches the handler: all of it is credit again.
            self.conn_unreleased += flow;
            let code = if over_length {
                reason::PROTOCOL_ERROR
            } else {
                reason::FLOW_CONTROL_ERROR
            };
            return self.reset(id, code);
        }
        s.recv_window -= flow as i64;
        s.received += n as u64;
        // Padding is credit at once; the data when the handler has read it.
        let mut credit = flow - n;
        let kept = match &s.inbound {
            Some(i) if n > 0 => i.push(data, waker),
            _ => true,
        };
        if !kept {
            credit += n;
        }
        s.unreleased += credit;
        self.conn_unreleased += credit;
        if end {
            return self.end_of_request(id, None);
        }
        Ok(())
    }

    /// Closes a stream whose response has ended: normally when the request has ended
    /// too, else with RST_STREAM NO_ERROR (RFC 9113 section 8.1: the rest of the request
    /// is not needed).
    pub(super) fn close(&mut self, id: u32) {
        let Some(s) = self.streams.get(id) else {
            return;
        };
        if s.recv_open {
            let _ = self.reset(id, reason::NO_ERROR);
            return;
        }
        if let Some(mut s) = self.streams.remove(id) {
            self.release_stream_credit(&s);
            s.cancel("stream closed");
            self.recent.add(id, Closed::Normally);
        }
    }

    /// Gives back credit for request bytes the handlers have read: WINDOW_UPDATE for a
    /// stream once half its window is read, for the connection once half of its.
    pub fn release(&mut self) {
        let mut updates: Vec<(u32, u32)> = Vec::new();
        for s in self.streams.iter_mut() {
            let Some(i) = &s.inbound else { continue };
            let read = i.take_consumed();
            s.unreleased += read;
            self.conn_unreleased += read;
            if s.recv_open && s.unreleased >= STREAM_WINDOW as usize / 2 {
                updates.push((s.id, s.unreleased as u32));
                s.recv_window += s.unreleased as i64;
                s.unreleased = 0;
            }
        }
        for (id, n) in updates {
            put_window_update(&mut self.out, id, n);
        }
        if self.conn_unreleased >= CONN_WINDOW as usize / 2 {
            put_window_update(&mut self.out, 0, self.conn_unreleased as u32);
            self.recv_window += self.conn_unreleased as i64;
            self.conn_unreleased = 0;
        }
    }
}

/// CONTINUATION frames allowed in one block: enough for a list of the largest size
/// allowed, with a quarter to spare, and at least five (the h2 crate's bound).
pub fn max_continuations(max_header_bytes: usize) -> usize {
    let frames = (max_header_bytes / MAX_FRAME).max(1);
    frames.saturating_add(frames >> 2).max(5)
}
