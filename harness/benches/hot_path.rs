//! The load engine's hot path in isolation: recording one answered request (four
//! histogram increments and a status count), merging 64 worker intervals, encoding the
//! prepared requests, and the HTTP/2 client taking in 16 responses as nginx frames them.
//! Run with `cargo bench -p h2lab --bench hot_path`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use h2lab::model::{LoadConfig, LoadModel, Proto, Target};
use h2lab::record::{Interval, Recorder, Sample};

fn record_one_sample(c: &mut Criterion) {
    let mut r = Recorder::default();
    let t = Instant::now();
    let mut i = 0u64;
    c.bench_function("record one answered request", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            let done = t + Duration::from_micros(100 + (i % 50_000));
            r.ok(
                black_box(Sample {
                    intended: t,
                    ready: t,
                    sent: t,
                    first_byte: t,
                    done,
                    status: 200,
                }),
                false,
            );
        })
    });
}

fn merge_64_intervals(c: &mut Criterion) {
    let t = Instant::now();
    let parts: Vec<Interval> = (0..64u64)
        .map(|w| {
            let mut r = Recorder::default();
            for i in 0..10_000u64 {
                let done = t + Duration::from_micros(50 + (i * 37 + w * 1013) % 200_000);
                r.ok(
                    Sample {
                        intended: t,
                        ready: t,
                        sent: t,
                        first_byte: t,
                        done,
                        status: 200,
                    },
                    false,
                );
            }
            r.take_interval()
        })
        .collect();
    c.bench_function("merge 64 worker intervals", |b| {
        b.iter(|| {
            let mut total = Interval::default();
            for p in &parts {
                total.merge(black_box(p));
            }
            total
        })
    });
}

fn encode_requests(c: &mut Criterion) {
    let cfg = LoadConfig {
        url: "http://127.0.0.1:8080/plaintext".into(),
        scheme: "http".into(),
        authority: "127.0.0.1:8080".into(),
        addr: "127.0.0.1:8080".parse().unwrap(),
        targets: vec![Target::path("/plaintext"), Target::path("/json")],
        method: "GET".into(),
        headers: vec![("accept".into(), "text/plain".into())],
        body: Vec::new(),
        body_bytes: 0,
        proto: Proto::Auto,
        tls: None,
        connections: 1,
        streams: 1,
        batch: 1,
        threads: 1,
        io: h2lab::model::IoEngine::Epoll,
        duration: None,
        warmup: Duration::ZERO,
        requests: Some(1),
        model: LoadModel::Closed,
        timeout: Duration::from_secs(1),
        cpu_affinity: None,
        keep_alive: true,
        pipelining: false,
        tls_resumption: false,
        agent: None,
        seq_header: None,
        start_at: None,
    };
    c.bench_function("encode two prepared requests (once per run)", |b| {
        b.iter(|| h2lab::load::request::prepare(black_box(&cfg)).unwrap())
    });
}

/// 16 responses on streams 1..31 shaped like nginx 1.22's: HEADERS (:status 200
/// indexed; server, date, content-type and content-length as literals with incremental
/// indexing, so the dynamic table fills and evicts) and one DATA frame with END_STREAM.
fn nginx_responses() -> Vec<u8> {
    let mut block = vec![0x88];
    for (index, value) in [
        (0x76u8, &b"nginx"[..]),
        (0x61, b"Thu, 26 Nov 2026 06:00:00 GMT"),
        (0x5f, b"text/plain"),
        (0x5c, b"13"),
    ] {
        block.extend_from_slice(&[index, value.len() as u8]);
        block.extend_from_slice(value);
    }
    let block = &block[..];
    // The server's preface: an empty SETTINGS frame.
    let mut wire = vec![0, 0, 0, 4, 0, 0, 0, 0, 0];
    for id in (1u32..32).step_by(2) {
        h2lab::h2wire::frame::put_head(&mut wire, block.len(), 1, 0x4, id);
        wire.extend_from_slice(block);
        h2lab::h2wire::frame::put_head(&mut wire, 13, 0, 0x1, id);
        wire.extend_from_slice(b"Hello, World!");
    }
    wire
}

fn h2_client_receive(c: &mut Criterion) {
    use h2lab::h2wire::client::{Client, Event};
    let wire = nginx_responses();
    let get = [0x82u8, 0x86, 0x84];
    let body = bytes::Bytes::new();
    c.bench_function("h2 client: send 16 requests, take in 16 responses", |b| {
        b.iter_batched(
            Client::<u32>::new,
            |mut client| {
                for i in 0..16 {
                    client.open(&get, &body, i);
                }
                let mut done = 0;
                let used = client
                    .receive(black_box(&wire), &mut |e| {
                        if let Event::Done(..) = e {
                            done += 1;
                        }
                    })
                    .unwrap();
                assert_eq!((used, done), (wire.len(), 16));
                client
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn h1_read_responses(c: &mut Criterion) {
    use h2lab::h1wire::ResponseReader;
    // nginx's answer to GET /plaintext, as it arrives: one read per response.
    let response =
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 09:00:00 GMT\r\n\
Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nHello, World!";
    let mut reader = ResponseReader::default();
    c.bench_function("h1 reader: 16 responses, one read each", |b| {
        b.iter(|| {
            for _ in 0..16 {
                reader.start(false);
                let r = reader.feed(black_box(response)).unwrap();
                assert_eq!(r.map(|r| r.status), Some(200));
            }
        })
    });
}

criterion_group!(
    benches,
    h1_read_responses,
    h2_client_receive,
    record_one_sample,
    merge_64_intervals,
    encode_requests
);
criterion_main!(benches);
