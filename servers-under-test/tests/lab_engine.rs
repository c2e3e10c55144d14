//! The lab HTTP/2 engine (the default) against the hyper engine (`--h2-engine hyper`),
//! through the h2 crate's client: the same answers on every route, inline and async,
//! with bodies both ways larger than every window (so both sides' flow control and the
//! engine's credit releases are exercised), many streams on one connection, HEAD, and
//! an async answer overtaken by inline ones.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request};
use support::*;

/// `sut edge` on one worker with this engine.
fn edge(engine: &str) -> h2lab_common::launch::RunningServer {
    start(&[
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--h2-engine",
        engine,
    ])
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

/// Sends every request on one connection at once (after a first exchange, so that the
/// client knows the server's stream limit), each read in its own task: a response read
/// late must not hold the connection window the others need.
async fn send(addr: SocketAddr, reqs: Vec<(Method, &str, Bytes)>) -> Vec<Answer> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    exchange(client.clone(), addr, Method::GET, "/".into(), Bytes::new()).await;
    let mut tasks = Vec::new();
    for (method, path, body) in reqs {
        let client = client.clone().ready().await.unwrap();
        tasks.push(tokio::spawn(exchange(
            client,
            addr,
            method,
            path.to_string(),
            body,
        )));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn exchange(
    client: h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    method: Method,
    path: String,
    body: Bytes,
) -> Answer {
    let req = Request::builder()
        .method(method.clone())
        .uri(format!("http://{addr}{path}"))
        .body(())
        .unwrap();
    let path = format!("{method} {path}");
    let mut client = client.ready().await.unwrap();
    let (resp, mut tx) = client.send_request(req, body.is_empty()).unwrap();
    let mut rest = body;
    while !rest.is_empty() {
        // Sent as the server's windows allow.
        tx.reserve_capacity(rest.len());
        let n = std::future::poll_fn(|cx| tx.poll_capacity(cx))
            .await
            .unwrap()
            .unwrap();
        let chunk = rest.split_to(n.min(rest.len()));
        tx.send_data(chunk, rest.is_empty()).unwrap();
    }
    let resp = resp.await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("{path}: {e}"));
        body.flow_control().release_capacity(chunk.len()).unwrap();
        bytes.extend_from_slice(&chunk);
    }
    Answer {
        status,
        headers,
        body: bytes.into(),
    }
}

fn get(path: &str) -> (Method, &str, Bytes) {
    (Method::GET, path, Bytes::new())
}

#[tokio::test]
async fn both_engines_give_the_same_answers_on_every_route() {
    let (lab, hyper) = (edge("lab"), edge("hyper"));
    let big: Bytes = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let reqs = || {
        vec![
            get("/plaintext"),
            get("/json"),
            get("/"),
            get("/nope"),
            (Method::DELETE, "/plaintext", Bytes::new()),
            get("/bytes/300000"),
            (Method::POST, "/echo", big.clone()),
            get("/delay/20"),
        ]
    };
    let a = send(lab.addr, reqs()).await;
    let b = send(hyper.addr, reqs()).await;
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert_eq!((a.status, &a.body), (b.status, &b.body), "request {i}");
        for name in ["content-type", "content-length"] {
            assert_eq!(
                a.headers.get(name),
                b.headers.get(name),
                "request {i}: {name}"
            );
        }
        assert!(a.headers.contains_key("date"), "request {i}");
        let timing = a.headers["server-timing"].to_str().unwrap();
        assert!(timing.starts_with("app;dur="), "request {i}: {timing}");
    }
    assert_eq!(a[6].body.len(), big.len(), "the echo came back whole");
    assert_eq!(a[5].body.len(), 300_000);
    // HEAD: the content-length of GET, and no content (the hyper engine sends the body's
    // DATA after it, which the h2 crate's client rejects as a protocol error).
    let head = (Method::HEAD, "/bytes/10", Bytes::new());
    let mut more = send(lab.addr, vec![head, get("/info")]).await;
    assert_eq!((more[0].status, more[0].body.len()), (200, 0));
    assert_eq!(more[0].headers["content-length"], "10");
    let info: serde_json::Value = serde_json::from_slice(&more.remove(1).body).unwrap();
    assert_eq!(info["http_version"], "HTTP/2");
}

#[tokio::test]
async fn many_streams_on_one_connection_inline_and_async_interleaved() {
    let lab = edge("lab");
    // 300 streams (the server allows 100 at once), HEAD among them, and a slow async
    // answer that the inline ones after it overtake.
    let mut reqs = vec![get("/delay/200")];
    for i in 0..300 {
        let m = if i % 7 == 0 {
            Method::HEAD
        } else {
            Method::GET
        };
        reqs.push((m, "/plaintext", Bytes::new()));
    }
    let answers = send(lab.addr, reqs).await;
    assert_eq!(answers.len(), 301);
    assert_eq!(&answers[0].body[..], b"delayed 200 ms");
    for (i, a) in answers[1..].iter().enumerate() {
        assert_eq!(a.status, 200);
        assert_eq!(a.headers["content-length"], "13");
        let want: &[u8] = if i % 7 == 0 { b"" } else { b"Hello, World!" };
        assert_eq!(&a.body[..], want, "stream {i}");
    }
    // HTTP/1.1 on the same port is served as before.
    let h1 = curl(&["--http1.1", &format!("http://{}/info", lab.addr)]);
    assert_eq!((h1.status, h1.http_version.as_str()), (200, "1.1"));
}

/// Reads HTTP/1.1 responses off `s` until `n` have arrived (each framed by its
/// content-length; HEAD answers have none).
fn read_responses(s: &mut std::net::TcpStream, heads: &[bool]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < heads.len() {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {} responses", out.len());
        buf.extend_from_slice(&chunk[..n]);
        while out.len() < heads.len() {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            let len = if heads[out.len()] { 0 } else { len };
            if buf.len() < end + 4 + len {
                break;
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            out.push((head, body));
        }
    }
    out
}

#[test]
fn http11_simple_requests_are_answered_inline_and_the_rest_by_hyper() {
    use std::io::Write;
    let lab = edge("lab");
    let mut s = std::net::TcpStream::connect(lab.addr).unwrap();
    // Pipelined: two inline answers, one for hyper (/info), then another simple one
    // (hyper serves it too: the connection is its from the first request it took).
    s.write_all(
        b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n\
          HEAD /json HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /info HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /json?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    let r = read_responses(&mut s, &[false, true, false, false]);
    assert!(r[0].0.starts_with("http/1.1 200 ok"), "{}", r[0].0);
    assert_eq!(r[0].1, b"Hello, World!");
    for name in [
        "content-type: text/plain",
        "content-length: 13",
        "date: ",
        "server-timing: app;dur=",
    ] {
        assert!(r[0].0.contains(name), "{name}: {}", r[0].0);
    }
    assert!(r[1].0.contains("content-length: 27") && r[1].1.is_empty());
    let info: serde_json::Value = serde_json::from_slice(&r[2].1).unwrap();
    assert_eq!(info["http_version"], "HTTP/1.1");
    assert_eq!(r[3].1, br#"{"message":"Hello, World!"}"#);
    // A request that asks to close is hyper's, and it closes.
    s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_responses(&mut s, &[false]);
    assert!(r[0].0.contains("connection: close"), "{}", r[0].0);
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut rest).unwrap();
    assert!(rest.is_empty());
    // The same answer as the hyper engine's, field for field.
    let hyper = edge("hyper");
    let fields = |addr| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let (head, body) = read_responses(&mut s, &[false]).remove(0);
        let mut names: Vec<String> = head
            .lines()
            .skip(1)
            .map(|l| l.split(':').next().unwrap().to_string())
            .collect();
        names.sort();
        (head.lines().next().unwrap().to_string(), names, body)
    };
    assert_eq!(fields(lab.addr), fields(hyper.addr));
}
