//! Each edge limit is triggered for real and answered properly (408/413/431/503 or the
//! HTTP/2 error), and the server keeps serving afterwards.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::*;

fn edge(extra: &[&str]) -> h2lab_common::launch::RunningServer {
    let mut args = vec!["edge", "--listen", "127.0.0.1:0", "--workers", "1"];
    args.extend_from_slice(extra);
    start(&args)
}

/// Writes `bytes`, then reads until the server closes (bounded by 10 s).
fn send_and_read_to_close(addr: SocketAddr, bytes: &[u8]) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

fn still_serves(addr: SocketAddr) {
    let r = curl(&[&format!("http://{addr}/plaintext")]);
    assert_eq!((r.status, r.body.as_str()), (200, "Hello, World!"));
}

#[test]
fn slow_or_missing_request_head_gets_408() {
    let s = edge(&["--header-timeout", "300ms"]);
    let (partial, took) = send_and_read_to_close(s.addr, b"GET /plaintext HTTP/1.1\r\nHost: x\r\n");
    assert!(partial.starts_with("HTTP/1.1 408"), "{partial:?}");
    assert!(
        took >= Duration::from_millis(300),
        "not before the timeout: {took:?}"
    );
    let (silent, _) = send_and_read_to_close(s.addr, b"");
    assert!(silent.starts_with("HTTP/1.1 408"), "{silent:?}");
    // On a keep-alive connection, a half-sent second head also gets 408.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 512];
    let n = c.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).ends_with("Hello, World!"));
    c.write_all(b"GET /plaintext HTTP/1.1\r\n").unwrap();
    let mut rest = String::new();
    let _ = c.read_to_string(&mut rest);
    assert!(rest.starts_with("HTTP/1.1 408"), "{rest:?}");
    still_serves(s.addr);
}

#[tokio::test]
async fn slow_head_over_tls_gets_408_through_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start_tls(
        "edge",
        "rustls",
        "ecdsa",
        &["--header-timeout", "300ms", "--alpn", "http/1.1"],
    );
    let cfg = client_config(&s.ca_pem, &["http/1.1"], &[&rustls::version::TLS13]);
    let tcp = tokio::net::TcpStream::connect(s.server.addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(b"GET /plaintext HTTP/1.1\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out))
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn idle_keepalive_connections_are_closed_http11_and_http2() {
    let s = edge(&["--idle-timeout", "400ms"]);
    let (resp, took) =
        send_and_read_to_close(s.addr, b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp:?}");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );

    // HTTP/2: GOAWAY once idle; the client's connection task then ends.
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let (resp, _) = client
        .send_request(
            http::Request::get(format!("http://{}/plaintext", s.addr))
                .body(())
                .unwrap(),
            true,
        )
        .unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
    let start = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "h2 connection not closed when idle");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "closed too early: {:?}",
        start.elapsed()
    );
}

#[test]
fn oversized_headers_get_431_on_http11_and_http2() {
    let s = edge(&["--max-header-bytes", "2048"]);
    let big = format!("x-big: {}", "a".repeat(4000));
    let url = format!("http://{}/plaintext", s.addr);
    let h1 = curl(&["--http1.1", "-H", &big, &url]);
    assert_eq!(h1.status, 431, "{h1:?}");
    let h2 = curl(&["--http2-prior-knowledge", "-H", &big, &url]);
    assert_eq!((h2.status, h2.http_version.as_str()), (431, "2"), "{h2:?}");
    let small = curl(&["--http1.1", "-H", "x-small: 1", &url]);
    assert_eq!(small.status, 200);
    still_serves(s.addr);
}

#[test]
fn oversized_bodies_get_413_declared_or_chunked() {
    let s = edge(&["--max-body-bytes", "1000"]);
    let url = format!("http://{}/echo", s.addr);
    let small = curl(&["--data-binary", &"b".repeat(1000), &url]);
    assert_eq!((small.status, small.body.len()), (200, 1000));
    let declared = curl(&["--data-binary", &"b".repeat(5000), &url]);
    assert_eq!(declared.status, 413, "{declared:?}");
    let chunked = curl(&[
        "-H",
        "transfer-encoding: chunked",
        "--data-binary",
        &"b".repeat(5000),
        &url,
    ]);
    assert_eq!(chunked.status, 413, "{chunked:?}");
    let h2 = curl(&[
        "--http2-prior-knowledge",
        "--data-binary",
        &"b".repeat(5000),
        &url,
    ]);
    assert_eq!(h2.status, 413, "{h2:?}");
    still_serves(s.addr);
}

#[test]
fn connections_over_the_limit_get_503() {
    let s = edge(&["--max-connections", "1"]);
    // Hold the one slot with a keep-alive connection that has been served once.
    let mut held = TcpStream::connect(s.addr).unwrap();
    held.write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    let n = held.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let over = curl(&[&format!("http://{}/plaintext", s.addr)]);
    assert_eq!(over.status, 503, "{over:?}");
    drop(held);
    // The slot is released once the held connection closes; curl retries until then.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = curl(&[&format!("http://{}/plaintext", s.addr)]);
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(Instant::now() < deadline, "slot never released");
    }
}

/// Minimal raw HTTP/2 client frames, to do what a polite client never does.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
}

fn read_frame(s: &mut TcpStream) -> (u8, u8, u32, Vec<u8>) {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).unwrap();
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    (
        head[3],
        head[4],
        u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    )
}

#[test]
fn streams_over_max_concurrent_streams_are_refused() {
    let s = edge(&["--max-streams", "1"]);
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    c.write_all(&frame(0x4, 0, 0, &[])).unwrap();
    // Read the server's SETTINGS, check it announces the limit, and acknowledge it.
    let (kind, _, _, payload) = read_frame(&mut c);
    assert_eq!(kind, 0x4);
    let announced = payload
        .chunks(6)
        .find(|p| u16::from_be_bytes([p[0], p[1]]) == 0x3)
        .map(|p| u32::from_be_bytes([p[2], p[3], p[4], p[5]]));
    assert_eq!(announced, Some(1));
    c.write_all(&frame(0x4, 0x1, 0, &[])).unwrap();
    // Two requests at once, ignoring the limit.
    for stream in [1u32, 3] {
        let mut block = Vec::new();
        literal(&mut block, ":method", "GET");
        literal(&mut block, ":scheme", "http");
        literal(&mut block, ":path", "/delay/300");
        literal(&mut block, ":authority", "x");
        c.write_all(&frame(0x1, 0x5, stream, &block)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (kind, _, stream, payload) = read_frame(&mut c);
        if kind == 0x3 {
            assert_eq!(stream, 3);
            assert_eq!(
                u32::from_be_bytes(payload[..4].try_into().unwrap()),
                0x7,
                "REFUSED_STREAM"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no RST_STREAM");
    }
    still_serves(s.addr);
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let s = edge(&[]);
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let get = |p: &str| {
        http::Request::get(format!("http://{}{p}", s.addr))
            .body(())
            .unwrap()
    };
    let (slow, _) = client.send_request(get("/delay/800"), true).unwrap();
    let mut client = client.ready().await.unwrap();
    let (fast, _) = client.send_request(get("/plaintext"), true).unwrap();
    // Frames are read in order: once the later stream is answered, the slow one is in flight.
    assert_eq!(fast.await.unwrap().status(), 200);
    let pid = nix::unistd::Pid::from_raw(s.child.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status = s.stop();
    assert!(status.success(), "{status}");
}
