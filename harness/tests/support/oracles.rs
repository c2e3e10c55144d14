//! What must hold for any bytes a server sends, checked by the fuzz targets (`fuzz/`,
//! which include this file) and by `tests/parsers_hostile.rs` on generated and saved
//! inputs. Each check panics when the property fails, which is what a fuzzer reports.
//!
//! The properties: the parsers never panic, never loop, and read a byte stream the same
//! whether it arrives whole or cut into pieces (a server's writes are cut anywhere).

#![allow(dead_code)]

use bytes::Bytes;
use h2lab::h1wire::{Response, ResponseReader};
use h2lab::h2wire::client::{Client, Event, Failure};
use h2lab::h2wire::hpack::{self, Decoder};

/// Cuts `data` at the lengths `cuts` gives in turn (0 counts as 1); the last piece takes
/// what is left.
pub fn pieces<'a>(data: &'a [u8], cuts: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut k = 0;
    while !rest.is_empty() {
        let n = if cuts.is_empty() {
            rest.len()
        } else {
            usize::from(cuts[k % cuts.len()].max(1))
        };
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a);
        rest = b;
        k += 1;
    }
    out
}

/// What a connection made of a stream of response bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct H1Outcome {
    /// Complete responses, in order.
    pub responses: Vec<Response>,
    /// The reader refused the stream (the connection is closed there).
    pub failed: bool,
    /// What the server's close completed.
    pub at_close: Option<Response>,
}

/// Reads responses to back-to-back requests from `input` as the engines do: a new request
/// after each kept-alive response, leftover bytes read at once, and the close at the end.
pub fn h1_read(input: &[&[u8]], head_request: bool) -> H1Outcome {
    let mut r = ResponseReader::default();
    let mut out = H1Outcome {
        responses: Vec::new(),
        failed: false,
        at_close: None,
    };
    let total: usize = input.iter().map(|p| p.len()).sum();
    r.start(head_request);
    for &piece in input {
        let mut data = piece;
        loop {
            match r.feed(data) {
                Ok(Some(resp)) => {
                    out.responses.push(resp);
                    assert!(
                        out.responses.len() <= total,
                        "more responses than bytes: the reader loops"
                    );
                    if !resp.keep_alive {
                        return out;
                    }
                    r.start(head_request);
                    if !r.has_carry() {
                        break;
                    }
                    data = &[];
                }
                Ok(None) => break,
                Err(_) => {
                    out.failed = true;
                    return out;
                }
            }
        }
    }
    out.at_close = r.eof();
    out
}

/// The HTTP/1.1 property: no panic, and the same outcome whole or in `cuts` pieces.
pub fn check_h1(data: &[u8], cuts: &[u8], head_request: bool) {
    let whole = h1_read(&[data], head_request);
    let cut = h1_read(&pieces(data, cuts), head_request);
    assert_eq!(whole, cut, "outcome depends on how the bytes were cut");
}

/// Streams a connection opens before reading the server's bytes.
const STREAMS: u32 = 3;

/// What an HTTP/2 connection made of the server's bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct H2Outcome {
    /// (stream token, status) of heads, ends and failures, in order.
    pub events: Vec<(char, u32, u64)>,
    /// The connection error, if the client detected one.
    pub error: Option<u32>,
}

/// Feeds `input` to a client with [`STREAMS`] requests open, as the h2 driver does: the
/// bytes a call did not use are kept and joined with the next piece.
pub fn h2_read(input: &[&[u8]]) -> H2Outcome {
    let mut c: Client<u32> = Client::new();
    let block = hpack::request_block("GET", "http", "localhost", "/", &[]);
    for token in 0..STREAMS {
        if c.can_open() {
            c.open(&block, &Bytes::new(), token);
        }
    }
    let mut out = H2Outcome {
        events: Vec::new(),
        error: None,
    };
    let mut buf: Vec<u8> = Vec::new();
    for &piece in input {
        buf.extend_from_slice(piece);
        let res = c.receive(&buf, &mut |e| {
            out.events.push(match e {
                Event::Head(t, s, _) => ('h', *t, u64::from(s)),
                Event::Done(t, s) => ('d', t, u64::from(s)),
                Event::Failed(t, f) => (
                    'f',
                    t,
                    match f {
                        Failure::Reset(c) => u64::from(c),
                        Failure::GoAway(c) => (1 << 32) | u64::from(c),
                        Failure::Malformed(c) => (2 << 32) | u64::from(c),
                    },
                ),
            })
        });
        match res {
            Ok(used) => {
                assert!(used <= buf.len(), "used more bytes than it was given");
                buf.drain(..used);
            }
            Err(e) => {
                out.error = Some(e.code);
                return out;
            }
        }
        c.out().clear();
    }
    out
}

/// The HTTP/2 property: no panic, and the same streams' fates whole or in `cuts` pieces.
pub fn check_h2(data: &[u8], cuts: &[u8]) {
    let whole = h2_read(&[data]);
    let cut = h2_read(&pieces(data, cuts));
    assert_eq!(whole, cut, "outcome depends on how the bytes were cut");
}

/// The HPACK property: a sequence of header blocks (each prefixed by its length byte)
/// decodes or fails without a panic, its dynamic table carried from block to block.
pub fn check_hpack(data: &[u8]) {
    let mut d = Decoder::default();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (block, tail) = tail.split_at(usize::from(len).min(tail.len()));
        if d.decode(block).is_err() {
            // A connection error: the connection (and its table) is gone.
            return;
        }
        rest = tail;
    }
}

/// The scenario property: any text gives a plan or diagnostics, each pointing at a line
/// and column inside the text, never a panic.
pub fn check_scenario(text: &str) {
    let path = std::path::Path::new("fuzz.toml");
    if let Err(e) = h2lab::scenario::parse(path, text) {
        assert!(!e.0.is_empty(), "an error without a diagnostic");
        let lines: Vec<&str> = text.split('\n').collect();
        for d in &e.0 {
            assert!(
                d.line >= 1 && d.line <= lines.len(),
                "line {} outside the text ({} lines): {d}",
                d.line,
                lines.len()
            );
            let width = lines[d.line - 1].chars().count();
            assert!(
                d.column >= 1 && d.column <= width + 1,
                "column {} outside line {} ({width} characters): {d}",
                d.column,
                d.line
            );
        }
    }
}

/// A fuzz input for the HTTP/1.1 reader: first byte odd = the request was a HEAD; the
/// next 4 say how the rest is cut.
pub fn h1_input(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let (cuts, data) = rest.split_at(rest.len().min(4));
    check_h1(data, cuts, mode & 1 == 1);
}

/// A fuzz input for the HTTP/2 client: first byte even = an empty SETTINGS goes first
/// (without it the client stops at the first frame); the next 4 say how it is cut.
pub fn h2_input(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let (cuts, body) = rest.split_at(rest.len().min(4));
    let mut data = Vec::with_capacity(9 + body.len());
    if mode & 1 == 0 {
        data.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    }
    data.extend_from_slice(body);
    check_h2(&data, cuts);
}

/// A fuzz input for scenario files, as text (bytes that are not UTF-8 become U+FFFD, so
/// every mutant is parsed).
pub fn scenario_input(input: &[u8]) {
    check_scenario(&String::from_utf8_lossy(input));
}

/// The interval-log property: any bytes read as a log give intervals or an error (the
/// report reads logs from run folders a user may have edited), never a panic.
pub fn check_hlog(input: &[u8]) {
    if let Ok(intervals) = h2lab::record::hlog::read_intervals(input) {
        let _ = h2lab::record::hlog::read_totals(input);
        for i in intervals {
            assert!(i.start_s.is_finite() && i.start_s >= 0.0, "interval start");
        }
    }
}
