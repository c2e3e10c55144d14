//! One HTTP/2 connection as a state machine without I/O: bytes in, frames out. Requests
//! the handler answers at once ([`Handler::quick`]) are answered inline, in the same
//! pass over the bytes read; a read's answers leave in one write.

use std::collections::VecDeque;
use std::time::{Instant, SystemTime};

use bytes::{Buf, BytesMut};
use h2lab_common::h2_frame::{flag, kind, reason, setting, HEAD_LEN, MAX_FRAME, PREFACE};
use h2lab_common::hpack::put_integer;

use crate::handler::Handler;

/// What the connection's limits are, from the server's.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE, and the bound of a header block's bytes.
    pub max_header_bytes: usize,
}

/// Our receive windows: as large as the hyper engine's.
const STREAM_WINDOW: u32 = 1 << 20;
const CONN_WINDOW: u32 = 4 << 20;
const DEFAULT_WINDOW: i64 = 65_535;

struct Pending {
    stream: u32,
    window: i64,
    body: &'static [u8],
}

/// The connection's state.
pub struct Conn {
    settings: Settings,
    decoder: super::hpack::Decoder,
    preface: bool,
    /// A header block being gathered (HEADERS then CONTINUATION): stream, END_STREAM.
    block: Option<(u32, bool)>,
    block_bytes: Vec<u8>,
    last_stream: u32,
    peer_window: i64,
    send_window: i64,
    peer_max_frame: usize,
    received_unacked: u32,
    pending: VecDeque<Pending>,
    date: Date,
    /// Frames to write.
    pub out: Vec<u8>,
    /// Set once a GOAWAY went out: write `out`, then close.
    pub closing: bool,
    /// Requests answered since the last look (for the watchdog's activity counter).
    pub answered: u64,
}

/// A connection error: GOAWAY with this code and text.
struct Fatal(u32, &'static str);

impl Conn {
    /// A connection whose SETTINGS and window are already queued in `out`.
    pub fn new(settings: Settings) -> Conn {
        let mut c = Conn {
            settings,
            decoder: super::hpack::Decoder::default(),
            preface: false,
            block: None,
            block_bytes: Vec::new(),
            last_stream: 0,
            peer_window: DEFAULT_WINDOW,
            send_window: DEFAULT_WINDOW,
            peer_max_frame: MAX_FRAME,
            received_unacked: 0,
            pending: VecDeque::new(),
            date: Date::default(),
            out: Vec::with_capacity(16 * 1024),
            closing: false,
            answered: 0,
        };
        let ours = [
            (setting::MAX_CONCURRENT_STREAMS, settings.max_streams),
            (setting::INITIAL_WINDOW_SIZE, STREAM_WINDOW),
            (0x6, settings.max_header_bytes.min(u32::MAX as usize) as u32),
        ];
        head(&mut c.out, ours.len() * 6, kind::SETTINGS, 0, 0);
        for (id, v) in ours {
            c.out.extend_from_slice(&id.to_be_bytes());
            c.out.extend_from_slice(&v.to_be_bytes());
        }
        window_update(&mut c.out, 0, CONN_WINDOW - DEFAULT_WINDOW as u32);
        c
    }

    /// Says GOAWAY (NO_ERROR) for a server shutting down.
    pub fn shut_down(&mut self) {
        if !self.closing {
            goaway(
                &mut self.out,
                self.last_stream,
                reason::NO_ERROR,
                b"shutting down",
            );
            self.closing = true;
        }
    }

    /// Handles every whole frame in `input` (leaving a partial one there).
    pub fn receive<H: Handler>(&mut self, input: &mut BytesMut, handler: &H) {
        if self.closing {
            input.clear();
            return;
        }
        if let Err(Fatal(code, why)) = self.frames(input, handler) {
            tracing::debug!(code, why, "HTTP/2 connection error");
            goaway(&mut self.out, self.last_stream, code, why.as_bytes());
            self.closing = true;
            input.clear();
        }
    }

    fn frames<H: Handler>(&mut self, input: &mut BytesMut, handler: &H) -> Result<(), Fatal> {
        if !self.preface {
            if input.len() < PREFACE.len() {
                return if PREFACE.starts_with(input) {
                    Ok(())
                } else {
                    Err(Fatal(reason::PROTOCOL_ERROR, "not an HTTP/2 preface"))
                };
            }
            if &input[..PREFACE.len()] != PREFACE {
                return Err(Fatal(reason::PROTOCOL_ERROR, "not an HTTP/2 preface"));
            }
            input.advance(PREFACE.len());
            self.preface = true;
        }
        while input.len() >= HEAD_LEN {
            let len = (usize::from(input[0]) << 16)
                | (usize::from(input[1]) << 8)
                | usize::from(input[2]);
            if len > MAX_FRAME {
                return Err(Fatal(
                    reason::FRAME_SIZE_ERROR,
                    "frame larger than SETTINGS_MAX_FRAME_SIZE",
                ));
            }
            if input.len() < HEAD_LEN + len {
                input.reserve(HEAD_LEN + len - input.len());
                break;
            }
            let (ty, flags) = (input[3], input[4]);
            let stream = u32::from_be_bytes([input[5], input[6], input[7], input[8]]) & 0x7fff_ffff;
            let frame = input.split_to(HEAD_LEN + len);
            self.frame(ty, flags, stream, &frame[HEAD_LEN..], handler)?;
        }
        Ok(())
    }

    fn frame<H: Handler>(
        &mut self,
        ty: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
        handler: &H,
    ) -> Result<(), Fatal> {
        if self.block.is_some() && ty != kind::CONTINUATION {
            return Err(Fatal(
                reason::PROTOCOL_ERROR,
                "a header block was interrupted",
            ));
        }
        match ty {
            kind::SETTINGS => self.settings_frame(flags, stream, payload),
            kind::PING => {
                if stream != 0 || payload.len() != 8 {
                    return Err(Fatal(reason::PROTOCOL_ERROR, "bad PING"));
                }
                if flags & flag::ACK == 0 {
                    head(&mut self.out, 8, kind::PING, flag::ACK, 0);
                    self.out.extend_from_slice(payload);
                }
                Ok(())
            }
            kind::WINDOW_UPDATE => self.window_update_frame(stream, payload),
            kind::HEADERS => self.headers_frame(flags, stream, payload, handler),
            kind::CONTINUATION => {
                let Some((id, end_stream)) = self.block else {
                    return Err(Fatal(
                        reason::PROTOCOL_ERROR,
                        "CONTINUATION without HEADERS",
                    ));
                };
                if id != stream {
                    return Err(Fatal(
                        reason::PROTOCOL_ERROR,
                        "CONTINUATION on another stream",
                    ));
                }
                self.gather(payload)?;
                if flags & flag::END_HEADERS != 0 {
                    self.block = None;
                    let block = std::mem::take(&mut self.block_bytes);
                    self.request(stream, end_stream, &block, handler)?;
                    self.block_bytes = block;
                    self.block_bytes.clear();
                }
                Ok(())
            }
            kind::DATA => {
                // No request the inline engine takes has a body; keep the windows open.
                self.received_unacked += payload.len() as u32;
                if self.received_unacked >= CONN_WINDOW / 2 {
                    window_update(&mut self.out, 0, self.received_unacked);
                    self.received_unacked = 0;
                }
                Ok(())
            }
            kind::RST_STREAM | kind::PRIORITY => Ok(()),
            kind::GOAWAY => {
                self.closing = true;
                Ok(())
            }
            kind::PUSH_PROMISE => Err(Fatal(reason::PROTOCOL_ERROR, "client sent PUSH_PROMISE")),
            _ => Ok(()),
        }
    }

    fn settings_frame(&mut self, flags: u8, stream: u32, payload: &[u8]) -> Result<(), Fatal> {
        if stream != 0 || !payload.len().is_multiple_of(6) {
            return Err(Fatal(reason::FRAME_SIZE_ERROR, "bad SETTINGS"));
        }
        if flags & flag::ACK != 0 {
            return Ok(());
        }
        for s in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            match id {
                setting::INITIAL_WINDOW_SIZE => {
                    if v > 0x7fff_ffff {
                        return Err(Fatal(
                            reason::FLOW_CONTROL_ERROR,
                            "initial window too large",
                        ));
                    }
                    let delta = i64::from(v) - self.peer_window;
                    self.peer_window = i64::from(v);
                    for p in &mut self.pending {
                        p.window += delta;
                    }
                }
                setting::MAX_FRAME_SIZE => self.peer_max_frame = v as usize,
                _ => {}
            }
        }
        head(&mut self.out, 0, kind::SETTINGS, flag::ACK, 0);
        self.flush_pending();
        Ok(())
    }

    fn window_update_frame(&mut self, stream: u32, payload: &[u8]) -> Result<(), Fatal> {
        if payload.len() != 4 {
            return Err(Fatal(reason::FRAME_SIZE_ERROR, "bad WINDOW_UPDATE"));
        }
        let inc = i64::from(
            u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff,
        );
        if inc == 0 {
            return Err(Fatal(reason::PROTOCOL_ERROR, "WINDOW_UPDATE of 0"));
        }
        if stream == 0 {
            self.send_window += inc;
        } else if let Some(p) = self.pending.iter_mut().find(|p| p.stream == stream) {
            p.window += inc;
        }
        self.flush_pending();
        Ok(())
    }

    fn headers_frame<H: Handler>(
        &mut self,
        flags: u8,
        stream: u32,
        payload: &[u8],
        handler: &H,
    ) -> Result<(), Fatal> {
        if stream == 0 || stream.is_multiple_of(2) || stream <= self.last_stream {
            return Err(Fatal(
                reason::PROTOCOL_ERROR,
                "bad stream id for a new stream",
            ));
        }
        self.last_stream = stream;
        let mut p = payload;
        let mut pad = 0;
        if flags & flag::PADDED != 0 {
            pad = usize::from(
                *p.first()
                    .ok_or(Fatal(reason::PROTOCOL_ERROR, "bad padding"))?,
            );
            p = &p[1..];
        }
        if flags & flag::PRIORITY != 0 {
            p = p
                .get(5..)
                .ok_or(Fatal(reason::PROTOCOL_ERROR, "bad priority"))?;
        }
        if pad > p.len() {
            return Err(Fatal(reason::PROTOCOL_ERROR, "bad padding"));
        }
        let block = &p[..p.len() - pad];
        let end_stream = flags & flag::END_STREAM != 0;
        if flags & flag::END_HEADERS != 0 {
            return self.request(stream, end_stream, block, handler);
        }
        self.block = Some((stream, end_stream));
        self.block_bytes.clear();
        self.gather(block)
    }

    fn gather(&mut self, fragment: &[u8]) -> Result<(), Fatal> {
        if self.block_bytes.len() + fragment.len()
            > self.settings.max_header_bytes.max(16 * 1024) * 4
        {
            return Err(Fatal(
                reason::ENHANCE_YOUR_CALM,
                "header block way too large",
            ));
        }
        self.block_bytes.extend_from_slice(fragment);
        Ok(())
    }

    fn request<H: Handler>(
        &mut self,
        stream: u32,
        end_stream: bool,
        block: &[u8],
        handler: &H,
    ) -> Result<(), Fatal> {
        let mut method: [u8; 8] = [0; 8];
        let mut method_len = 0;
        let mut path: Vec<u8> = Vec::new();
        let listed = self
            .decoder
            .decode(block, |name, value| match name {
                b":method" if value.len() <= method.len() => {
                    method[..value.len()].copy_from_slice(value);
                    method_len = value.len();
                }
                b":path" => path.extend_from_slice(value),
                _ => {}
            })
            .map_err(|e| Fatal(reason::COMPRESSION_ERROR, e.0))?;
        let started = Instant::now();
        let method = &method[..method_len];
        if listed > self.settings.max_header_bytes {
            self.answered += 1;
            self.respond(
                stream,
                431,
                "text/plain; charset=utf-8",
                b"request header fields too large\n",
                false,
                started,
            );
            return Ok(());
        }
        let quick = if end_stream {
            handler.quick(method, &path)
        } else {
            None
        };
        self.answered += 1;
        match quick {
            Some(q) => {
                let head_only = method == b"HEAD";
                self.respond(stream, 200, q.content_type, q.body, head_only, started)
            }
            None => self.respond(
                stream,
                501,
                "text/plain; charset=utf-8",
                b"not served by the lab HTTP/2 engine (a prototype: inline answers only)\n",
                false,
                started,
            ),
        }
        Ok(())
    }

    fn respond(
        &mut self,
        stream: u32,
        status: u16,
        content_type: &str,
        body: &'static [u8],
        head_only: bool,
        started: Instant,
    ) {
        let at = self.out.len();
        self.out.extend_from_slice(&[0; HEAD_LEN]);
        match status {
            200 => self.out.push(0x88),
            _ => {
                // :status, literal without indexing, static name 8.
                self.out.push(0x08);
                self.out.push(3);
                self.out.extend_from_slice(status.to_string().as_bytes());
            }
        }
        literal(&mut self.out, 31, content_type.as_bytes());
        let (digits, d) = decimal(body.len());
        literal(&mut self.out, 28, &digits[digits.len() - d..]);
        literal(&mut self.out, 33, self.date.now());
        let (timing, n) = crate::server_timing::format("app", started);
        self.out.push(0x00);
        put_integer(&mut self.out, 0, 7, b"server-timing".len());
        self.out.extend_from_slice(b"server-timing");
        put_integer(&mut self.out, 0, 7, n);
        self.out.extend_from_slice(&timing[..n]);
        let block_len = self.out.len() - at - HEAD_LEN;
        let end = if head_only || body.is_empty() {
            flag::END_STREAM
        } else {
            0
        };
        fill_head(
            &mut self.out[at..at + HEAD_LEN],
            block_len,
            kind::HEADERS,
            flag::END_HEADERS | end,
            stream,
        );
        if end == 0 {
            self.pending.push_back(Pending {
                stream,
                window: self.peer_window,
                body,
            });
            self.flush_pending();
        }
    }

    /// Sends the bodies whose windows allow, in order.
    fn flush_pending(&mut self) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            let n = p.body.len() as i64;
            if n <= p.window && n <= self.send_window && p.body.len() <= self.peer_max_frame {
                self.send_window -= n;
                let p = self.pending.remove(i).expect("index checked");
                head(
                    &mut self.out,
                    p.body.len(),
                    kind::DATA,
                    flag::END_STREAM,
                    p.stream,
                );
                self.out.extend_from_slice(p.body);
            } else {
                i += 1;
            }
        }
    }
}

fn literal(out: &mut Vec<u8>, static_name: usize, value: &[u8]) {
    // Literal without indexing, indexed name.
    put_integer(out, 0x00, 4, static_name);
    put_integer(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

/// `n` in decimal at the end of a buffer, and its number of digits.
fn decimal(mut n: usize) -> ([u8; 20], usize) {
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

fn head(out: &mut Vec<u8>, len: usize, ty: u8, flags: u8, stream: u32) {
    let at = out.len();
    out.extend_from_slice(&[0; HEAD_LEN]);
    fill_head(&mut out[at..], len, ty, flags, stream);
}

fn fill_head(b: &mut [u8], len: usize, ty: u8, flags: u8, stream: u32) {
    let l = (len as u32).to_be_bytes();
    b[..HEAD_LEN].copy_from_slice(&[l[1], l[2], l[3], ty, flags, 0, 0, 0, 0]);
    b[5..9].copy_from_slice(&stream.to_be_bytes());
}

fn window_update(out: &mut Vec<u8>, stream: u32, inc: u32) {
    head(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&inc.to_be_bytes());
}

fn goaway(out: &mut Vec<u8>, last: u32, code: u32, debug: &[u8]) {
    head(out, 8 + debug.len(), kind::GOAWAY, 0, 0);
    out.extend_from_slice(&last.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(debug);
}

/// The `date` value, formatted once a second.
#[derive(Default)]
struct Date {
    second: u64,
    text: Vec<u8>,
}

impl Date {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now).into_bytes();
        }
        &self.text
    }
}
