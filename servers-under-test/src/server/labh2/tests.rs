//! The connection state machine driven frame by frame, without sockets: what it answers,
//! whatever the cut of the bytes into reads; the defences that depend on a batch being
//! read whole before dispatch; the graceful close; credit for request bodies.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use h2lab_common::h2_frame::{
    flag, kind, put_head, put_headers, put_rst_stream, put_settings, put_window_update, reason,
    Head, HEAD_LEN, PREFACE,
};
use h2lab_common::hpack::put_integer;

use super::conn::{Config, Conn, Phase};
use super::oracle::quick;
use crate::server::guard::FloodLimits;

fn config() -> Config {
    Config {
        max_streams: 100,
        max_header_bytes: 16 * 1024,
        flood: FloodLimits {
            burst: 1000,
            per_second: 100,
        },
        max_pending_resets: 20,
        max_local_resets: 1024,
    }
}

fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0);
    put_integer(block, 0, 7, name.len());
    block.extend_from_slice(name.as_bytes());
    put_integer(block, 0, 7, value.len());
    block.extend_from_slice(value.as_bytes());
}

fn request(out: &mut Vec<u8>, stream: u32, method: &str, path: &str, end_stream: bool) {
    let mut block = Vec::new();
    literal(&mut block, ":method", method);
    literal(&mut block, ":scheme", "http");
    literal(&mut block, ":path", path);
    literal(&mut block, ":authority", "a.test");
    put_headers(out, stream, &block, end_stream, 16_384);
}

fn opening() -> Vec<u8> {
    let mut b = PREFACE.to_vec();
    put_settings(&mut b, &[]);
    b
}

/// Feeds `bytes` in reads of the given sizes, dispatching inline answers after each read
/// as the driver does; returns every frame written (type, flags, stream, payload).
fn run(conn: &mut Conn, bytes: &[u8], cuts: &[usize]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let waker = futures_util::task::noop_waker();
    let mut input = BytesMut::new();
    let mut at = 0;
    let mut ready = Vec::new();
    let mut sizes = cuts.iter().copied().chain(std::iter::repeat(usize::MAX));
    while at < bytes.len() {
        let n = sizes.next().unwrap().min(bytes.len() - at);
        input.extend_from_slice(&bytes[at..at + n]);
        at += n;
        conn.receive(&mut input, Instant::now(), &mut quick, &waker);
        conn.take_ready(&mut ready);
        for &id in &ready {
            if let Some(super::Dispatch::Quick(q)) = conn.dispatch(id) {
                conn.answer_quick(id, q, b"Thu, 01 Jan 2026 00:00:00 GMT", Instant::now());
            }
        }
    }
    frames(&std::mem::take(&mut conn.out))
}

fn frames(mut b: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(h) = Head::parse(b) {
        out.push((
            h.kind,
            h.flags,
            h.stream,
            b[HEAD_LEN..HEAD_LEN + h.len].to_vec(),
        ));
        b = &b[HEAD_LEN + h.len..];
    }
    out
}

fn goaway_code(f: &(u8, u8, u32, Vec<u8>)) -> u32 {
    u32::from_be_bytes(f.3[4..8].try_into().unwrap())
}

#[test]
fn the_same_answers_whatever_the_cut_of_the_bytes() {
    let mut bytes = opening();
    for id in [1, 3, 5] {
        request(&mut bytes, id, "GET", "/plaintext", true);
    }
    let whole = run(&mut Conn::new(config(), Instant::now()), &bytes, &[]);
    let answered = |f: &[(u8, u8, u32, Vec<u8>)]| {
        f.iter()
            .filter(|f| f.0 == kind::DATA && f.1 & flag::END_STREAM != 0)
            .map(|f| (f.2, f.3.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(answered(&whole).len(), 3);
    for cut in 1..bytes.len() {
        let mut conn = Conn::new(config(), Instant::now());
        let got = run(&mut conn, &bytes, &[cut, 1, 7]);
        assert_eq!(answered(&got), answered(&whole), "cut at {cut}");
        assert!(got.iter().all(|f| f.0 != kind::GOAWAY), "cut at {cut}");
    }
}

#[test]
fn requests_reset_in_their_own_batch_do_no_work_and_too_many_end_the_connection() {
    let mut bytes = opening();
    for i in 0..21 {
        let id = 1 + 2 * i;
        request(&mut bytes, id, "GET", "/plaintext", true);
        put_rst_stream(&mut bytes, id, 0x8);
    }
    let mut conn = Conn::new(config(), Instant::now());
    let got = run(&mut conn, &bytes, &[]);
    assert!(
        got.iter().all(|f| f.0 != kind::DATA),
        "nothing was answered: {got:?}"
    );
    let goaway = got.iter().find(|f| f.0 == kind::GOAWAY).expect("GOAWAY");
    assert_eq!(goaway_code(goaway), reason::ENHANCE_YOUR_CALM);
    assert_eq!(&goaway.3[8..], b"too_many_resets");
    // Twenty are within the bound.
    let mut bytes = opening();
    for i in 0..20 {
        let id = 1 + 2 * i;
        request(&mut bytes, id, "GET", "/plaintext", true);
        put_rst_stream(&mut bytes, id, 0x8);
    }
    let got = run(&mut Conn::new(config(), Instant::now()), &bytes, &[]);
    assert!(got.iter().all(|f| f.0 != kind::GOAWAY && f.0 != kind::DATA));
}

#[test]
fn a_window_overflow_sent_with_the_request_resets_it_before_it_is_answered() {
    let mut bytes = opening();
    request(&mut bytes, 1, "GET", "/plaintext", true);
    put_window_update(&mut bytes, 1, 0x7fff_ffff);
    let got = run(&mut Conn::new(config(), Instant::now()), &bytes, &[]);
    let rst = got.iter().find(|f| f.0 == kind::RST_STREAM).expect("reset");
    assert_eq!(
        (rst.2, u32::from_be_bytes(rst.3[..4].try_into().unwrap())),
        (1, reason::FLOW_CONTROL_ERROR)
    );
    assert!(got.iter().all(|f| f.0 != kind::DATA), "not answered");
}

#[test]
fn streams_beyond_the_limit_are_refused_and_each_refusal_counts() {
    let mut cfg = config();
    cfg.max_streams = 2;
    cfg.max_local_resets = 5;
    let mut bytes = opening();
    for i in 0..8 {
        request(&mut bytes, 1 + 2 * i, "POST", "/echo", false);
    }
    let got = run(&mut Conn::new(cfg, Instant::now()), &bytes, &[]);
    let refused: Vec<u32> = got
        .iter()
        .filter(|f| f.0 == kind::RST_STREAM)
        .map(|f| f.2)
        .collect();
    assert_eq!(refused, [5, 7, 9, 11, 13, 15]);
    let goaway = got.iter().find(|f| f.0 == kind::GOAWAY).expect("GOAWAY");
    assert_eq!(&goaway.3[8..], b"too_many_internal_resets");
}

#[test]
fn a_graceful_close_names_the_last_stream_once_the_client_has_seen_it() {
    let t0 = Instant::now();
    let mut conn = Conn::new(config(), t0);
    let mut bytes = opening();
    request(&mut bytes, 1, "POST", "/echo", false);
    run(&mut conn, &bytes, &[]);
    conn.go_away("shutting down");
    let got = frames(&std::mem::take(&mut conn.out));
    assert_eq!(got[0].0, kind::GOAWAY);
    assert_eq!(&got[0].3[..4], &0x7fff_ffffu32.to_be_bytes());
    assert_eq!(got[1].0, kind::PING);
    // A stream the client sent before it saw the first GOAWAY is still taken.
    let mut more = Vec::new();
    request(&mut more, 3, "POST", "/echo", false);
    put_head(&mut more, 8, kind::PING, flag::ACK, 0);
    more.extend_from_slice(&got[1].3);
    let got = run(&mut conn, &more, &[]);
    let last = got
        .iter()
        .find(|f| f.0 == kind::GOAWAY)
        .expect("final GOAWAY");
    assert_eq!(&last.3[..4], &3u32.to_be_bytes());
    assert_eq!(conn.phase, Phase::Draining { last: 3 });
    assert!(!conn.finished(), "two requests are still open");
    // Without the PING's answer, the final GOAWAY follows after the grace.
    let mut conn = Conn::new(config(), t0);
    run(&mut conn, &opening(), &[]);
    conn.go_away("idle");
    conn.tick(t0 + Duration::from_secs(2));
    assert!(conn.finished());
}

#[test]
fn a_request_body_is_credited_back_as_it_is_read() {
    use http_body_util::BodyExt;
    let mut conn = Conn::new(config(), Instant::now());
    let mut bytes = opening();
    request(&mut bytes, 1, "POST", "/echo", false);
    let chunk = vec![7u8; 16_384];
    // 48 frames: 768 KiB, more than half the stream window.
    for _ in 0..48 {
        put_head(&mut bytes, chunk.len(), kind::DATA, 0, 1);
        bytes.extend_from_slice(&chunk);
    }
    let mut body = {
        let waker = futures_util::task::noop_waker();
        let mut input = BytesMut::from(&bytes[..]);
        conn.receive(&mut input, Instant::now(), &mut quick, &waker);
        let mut ready = Vec::new();
        conn.take_ready(&mut ready);
        match conn.dispatch(1) {
            Some(super::Dispatch::Request(_, Some(body))) => body,
            _ => panic!("a request with a body"),
        }
    };
    conn.out.clear();
    conn.release();
    assert!(conn.out.is_empty(), "nothing read yet, nothing credited");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let read = rt.block_on(async {
        let mut n = 0;
        while n < 48 * 16_384 {
            n += body
                .frame()
                .await
                .unwrap()
                .unwrap()
                .into_data()
                .unwrap()
                .len();
        }
        n
    });
    assert_eq!(read, 48 * 16_384);
    conn.release();
    let got = frames(&std::mem::take(&mut conn.out));
    let credited: Vec<(u32, u32)> = got
        .iter()
        .filter(|f| f.0 == kind::WINDOW_UPDATE)
        .map(|f| (f.2, u32::from_be_bytes(f.3[..4].try_into().unwrap())))
        .collect();
    assert_eq!(credited, [(1, 48 * 16_384)]);
}
