//! The property the lab engine's fuzz target (`fuzz/fuzz_targets/h2_server.rs`) and its
//! unit tests check: any client bytes, cut into reads anywhere, leave the connection
//! without a panic, writing whole frames only, and ending with at most one GOAWAY that
//! carries an error. Requests are answered as the driver would: inline answers at once,
//! the others by a handler that answers 200 with a short body.

use std::task::Context;
use std::time::Instant;

use bytes::BytesMut;
use h2lab_common::h2_frame::{kind, Head, HEAD_LEN};

use super::conn::{Config, Conn};
use super::respond::Dispatch;
use crate::handler::Quick;
use crate::server::guard::FloodLimits;

/// The built-in app's inline answer to `GET /plaintext`, for tests of the engine alone.
pub(super) fn quick(method: &[u8], path: &[u8]) -> Option<Quick> {
    (method == b"GET" && path == b"/plaintext").then_some(Quick {
        content_type: "text/plain",
        body: b"Hello, World!",
    })
}

/// Serves `input` (the client's bytes, preface included or not), read in pieces of the
/// sizes `cuts` gives in turn (0 or none: the rest at once); returns what was written.
pub fn serve_bytes(input: &[u8], cuts: &[u8]) -> Vec<u8> {
    let cfg = Config {
        max_streams: 8,
        max_header_bytes: 4096,
        flood: FloodLimits {
            burst: 50,
            per_second: 10,
        },
        max_pending_resets: 4,
        max_local_resets: 16,
    };
    let mut conn = Conn::new(cfg, Instant::now());
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut written = Vec::new();
    let mut buf = BytesMut::new();
    let mut ready = Vec::new();
    let mut at = 0;
    let mut sizes = cuts
        .iter()
        .map(|&c| usize::from(c))
        .chain(std::iter::repeat(0));
    let date = http::HeaderValue::from_static("Thu, 01 Jan 2026 00:00:00 GMT");
    while at < input.len() {
        let n = match sizes.next() {
            Some(0) | None => input.len() - at,
            Some(n) => n.min(input.len() - at),
        };
        buf.extend_from_slice(&input[at..at + n]);
        at += n;
        conn.receive(&mut buf, Instant::now(), &mut quick, &waker);
        conn.take_ready(&mut ready);
        for &id in &ready {
            match conn.dispatch(id) {
                Some(Dispatch::Quick(q)) => {
                    conn.answer_quick(id, q, date.as_bytes(), Instant::now())
                }
                Some(Dispatch::Request(mut head, body)) => {
                    drop(body);
                    match head.take_request(()) {
                        Ok(_) => {
                            let resp = http::Response::new(crate::body::full("ok"));
                            conn.respond(id, resp, &date, &mut cx);
                        }
                        Err(_) => conn.refuse(id),
                    }
                    conn.recycle(head);
                }
                None => {}
            }
        }
        conn.pump(&mut cx);
        conn.release();
        written.append(&mut conn.out);
    }
    check_frames(&written);
    written
}

/// Whole frames only, and no frame after an error's GOAWAY.
fn check_frames(mut out: &[u8]) {
    let mut failed = false;
    while !out.is_empty() {
        let h = Head::parse(out).expect("a whole frame head");
        assert!(out.len() >= HEAD_LEN + h.len, "a whole frame");
        assert!(!failed, "a frame after the connection's error");
        if h.kind == kind::GOAWAY {
            let code = u32::from_be_bytes(out[13..17].try_into().expect("GOAWAY code"));
            failed = code != 0;
        }
        out = &out[HEAD_LEN + h.len..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use h2lab_common::h2_frame::{put_head, put_settings, PREFACE};

    #[test]
    fn hostile_inputs_leave_whole_frames_and_no_panic() {
        let mut opening = PREFACE.to_vec();
        put_settings(&mut opening, &[(4, 0x7fff_ffff)]);
        let cases: Vec<Vec<u8>> = vec![
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            opening.clone(),
            // HEADERS with a block of nonsense, a CONTINUATION on another stream,
            // PRIORITY depending on itself, a huge padded DATA, WINDOW_UPDATE 0.
            {
                let mut b = opening.clone();
                put_head(&mut b, 3, kind::HEADERS, 0x4 | 0x1, 1);
                b.extend_from_slice(&[0xff, 0xff, 0xff]);
                b
            },
            {
                let mut b = opening.clone();
                put_head(&mut b, 1, kind::HEADERS, 0, 1);
                b.push(0x82);
                put_head(&mut b, 1, kind::CONTINUATION, 0x4, 3);
                b.push(0x84);
                b
            },
            {
                let mut b = opening.clone();
                put_head(&mut b, 5, kind::PRIORITY, 0, 1);
                b.extend_from_slice(&[0, 0, 0, 1, 0]);
                put_head(&mut b, 4, kind::WINDOW_UPDATE, 0, 0);
                b.extend_from_slice(&[0, 0, 0, 0]);
                b
            },
            {
                let mut b = opening.clone();
                put_head(&mut b, 10, kind::DATA, 0x8, 1);
                b.extend_from_slice(&[200; 10]);
                b
            },
        ];
        for case in cases {
            for cuts in [&[][..], &[1, 2, 3][..], &[9][..]] {
                serve_bytes(&case, cuts);
            }
        }
    }
}
