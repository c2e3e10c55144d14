//! The load engine's HTTP/2 client (`h2lab::h2wire`) against an independent server: the
//! h2 crate's, over an in-memory pipe. Flow control both ways, the server's stream limit,
//! informational responses, trailers, header blocks split into CONTINUATION frames, HPACK
//! with Huffman strings and evictions, RST_STREAM and GOAWAY.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2lab::h2wire::client::{Client, Event, Failure};
use h2lab::h2wire::hpack::request_block;
use http::{Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// What the test server is told to do.
#[derive(Default, Clone)]
struct ServerCfg {
    max_streams: Option<u32>,
    /// Graceful shutdown after this many streams were accepted.
    goaway_after: Option<usize>,
}

#[derive(Default)]
struct Stats {
    open: AtomicUsize,
    max_open: AtomicUsize,
}

async fn server(io: DuplexStream, cfg: ServerCfg, stats: Arc<Stats>) {
    let mut b = h2::server::Builder::new();
    if let Some(n) = cfg.max_streams {
        b.max_concurrent_streams(n);
    }
    let Ok(mut conn) = b.handshake::<_, Bytes>(io).await else {
        return;
    };
    let mut accepted = 0;
    while let Some(Ok((req, respond))) = conn.accept().await {
        accepted += 1;
        if cfg.goaway_after == Some(accepted) {
            conn.graceful_shutdown();
        }
        tokio::spawn(handle(req, respond, stats.clone(), accepted));
    }
}

async fn handle(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    stats: Arc<Stats>,
    n: usize,
) {
    let open = stats.open.fetch_add(1, Ordering::SeqCst) + 1;
    stats.max_open.fetch_max(open, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    let expected_len: Option<usize> = req
        .headers()
        .get("x-len")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let mut body = req.into_body();
    let mut got = 0;
    while let Some(Ok(chunk)) = body.data().await {
        got += chunk.len();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    // Let other streams overlap this one, so the concurrency limit is what bounds them.
    tokio::task::yield_now().await;
    stats.open.fetch_sub(1, Ordering::SeqCst);
    let ok = |status: u16| Response::builder().status(status).body(()).unwrap();
    match path.as_str() {
        "/reset" => respond.send_reset(h2::Reason::REFUSED_STREAM),
        "/early" => {
            let _ = respond.send_informational(ok(103));
            let _ = respond.send_response(ok(201), true);
        }
        "/trailers" => {
            let mut s = respond.send_response(ok(200), false).unwrap();
            let _ = s.send_data(Bytes::from_static(b"x"), false);
            let mut t = http::HeaderMap::new();
            t.insert("x-checksum", "1".parse().unwrap());
            let _ = s.send_trailers(t);
        }
        "/bigheader" => {
            // Values vary per response: each is a new dynamic-table entry (and Huffman).
            let resp = Response::builder()
                .status(StatusCode::ACCEPTED)
                .header("x-big", "abcdefgh".repeat(5000))
                .header("x-n", format!("value-{n}-{}", "q".repeat(n % 300)))
                .body(())
                .unwrap();
            let _ = respond.send_response(resp, true);
        }
        "/echo-len" => {
            let status = if Some(got) == expected_len { 200 } else { 400 };
            let _ = respond.send_response(ok(status), true);
        }
        p => {
            let len: usize = p.trim_start_matches("/ok/").parse().unwrap_or(0);
            let mut s = respond.send_response(ok(200), len == 0).unwrap();
            if len > 0 {
                let _ = s.send_data(Bytes::from(vec![b'z'; len]), true);
            }
        }
    }
}

type Outcome = Result<u16, Failure>;

/// Sends every request (at most `streams` at once) and collects the outcomes.
async fn exchange(
    io: DuplexStream,
    client: &mut Client<usize>,
    requests: &[(Vec<u8>, Bytes)],
    streams: usize,
) -> Vec<Option<Outcome>> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut results: Vec<Option<Outcome>> = vec![None; requests.len()];
    let mut next = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    loop {
        while next < requests.len() && client.can_open() && client.live() < streams {
            client.open(&requests[next].0, &requests[next].1, next);
            next += 1;
        }
        if !client.out().is_empty() {
            wr.write_all(client.out()).await.unwrap();
            client.out().clear();
        }
        let all_sent = next == requests.len() || client.is_closing();
        if client.live() == 0 && all_sent {
            return results;
        }
        let n = rd.read(&mut buf[filled..]).await.unwrap();
        assert!(n > 0, "the server closed with streams in flight");
        filled += n;
        let used = client
            .receive(&buf[..filled], &mut |e| match e {
                Event::Head(..) => {}
                Event::Done(t, status) => results[t] = Some(Ok(status)),
                Event::Failed(t, f) => results[t] = Some(Err(f)),
            })
            .unwrap();
        buf.copy_within(used..filled, 0);
        filled -= used;
    }
}

async fn run(
    cfg: ServerCfg,
    requests: &[(Vec<u8>, Bytes)],
    streams: usize,
) -> (Vec<Option<Outcome>>, Arc<Stats>, Client<usize>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let stats = Arc::new(Stats::default());
    let srv = tokio::spawn(server(b, cfg, stats.clone()));
    let mut client = Client::new();
    let results = tokio::time::timeout(
        Duration::from_secs(20),
        exchange(a, &mut client, requests, streams),
    )
    .await
    .expect("the exchange finished in time");
    srv.abort();
    (results, stats, client)
}

fn get(path: &str) -> (Vec<u8>, Bytes) {
    (
        request_block("GET", "http", "test", path, &[]),
        Bytes::new(),
    )
}

#[tokio::test]
async fn bodies_larger_than_every_window_flow_both_ways() {
    let mut requests = Vec::new();
    for i in 0..60 {
        // 60 x 300 kB = 18 MB down: more than the 16 MiB connection window.
        requests.push(get(&format!("/ok/{}", 300_000 + i)));
    }
    // 3 MB on one stream: three times the 1 MiB stream window.
    requests.push(get("/ok/3000000"));
    for len in [200_000usize, 70_000, 1] {
        // Up: more than the server's 65,535-byte default windows.
        let block = request_block(
            "POST",
            "http",
            "test",
            "/echo-len",
            &[("x-len".into(), len.to_string())],
        );
        requests.push((block, Bytes::from(vec![b'u'; len])));
    }
    let (results, stats, _) = run(ServerCfg::default(), &requests, 10).await;
    assert!(results.iter().all(|r| *r == Some(Ok(200))), "{results:?}");
    assert!(stats.max_open.load(Ordering::SeqCst) <= 10);
}

#[tokio::test]
async fn the_servers_stream_limit_bounds_the_streams_in_flight() {
    let requests: Vec<_> = (0..40).map(|_| get("/ok/10")).collect();
    let cfg = ServerCfg {
        max_streams: Some(3),
        ..ServerCfg::default()
    };
    let (results, stats, client) = run(cfg, &requests, 16).await;
    assert!(results.iter().all(|r| *r == Some(Ok(200))), "{results:?}");
    assert_eq!(client.peer_max_streams(), Some(3));
    let max = stats.max_open.load(Ordering::SeqCst);
    assert!((1..=3).contains(&max), "{max} streams were open at once");
}

#[tokio::test]
async fn informational_trailers_and_split_header_blocks_keep_hpack_in_step() {
    let mut requests = Vec::new();
    for _ in 0..30 {
        requests.push(get("/early"));
        requests.push(get("/bigheader"));
        requests.push(get("/trailers"));
    }
    let (results, _, _) = run(ServerCfg::default(), &requests, 8).await;
    for (i, r) in results.iter().enumerate() {
        let want = [201, 202, 200][i % 3];
        assert_eq!(*r, Some(Ok(want)), "request {i}");
    }
}

#[tokio::test]
async fn resets_and_goaway_fail_only_their_streams() {
    let mut requests = vec![get("/reset")];
    requests.extend((0..30).map(|_| get("/ok/5")));
    let cfg = ServerCfg {
        goaway_after: Some(6),
        ..ServerCfg::default()
    };
    let (results, _, client) = run(cfg, &requests, 12).await;
    assert_eq!(results[0], Some(Err(Failure::Reset(7))));
    let ok = results.iter().filter(|r| **r == Some(Ok(200))).count();
    assert!(
        ok >= 5,
        "the streams the server accepted complete: {results:?}"
    );
    assert!(client.is_closing());
    assert_eq!(client.goaway_code(), Some(0));
    for r in results.iter().flatten() {
        assert!(
            matches!(
                r,
                Ok(200) | Err(Failure::GoAway(0)) | Err(Failure::Reset(7))
            ),
            "{r:?}"
        );
    }
}
