//! The lab HTTP/2 engine's prototype (`SUT_H2_ENGINE=lab-prototype`, h2c by prior
//! knowledge, inline answers only) against the h2 crate's client: the same answers as
//! the hyper engine for the inline routes, many streams at once on one connection, and
//! what it does not serve yet said with a 501. The default engine is untouched.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request};
use support::*;

const LAB: (&str, &str) = ("SUT_H2_ENGINE", "lab-prototype");

async fn send(addr: SocketAddr, reqs: Vec<(Method, &str)>) -> Vec<(u16, http::HeaderMap, Bytes)> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let mut pending = Vec::new();
    for (method, path) in reqs {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .body(())
            .unwrap();
        client = client.ready().await.unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        pending.push(resp);
    }
    let mut out = Vec::new();
    for resp in pending {
        let resp = resp.await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = resp.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            bytes.extend_from_slice(&chunk);
        }
        out.push((status, headers, bytes.into()));
    }
    out
}

#[tokio::test]
async fn the_prototype_answers_inline_routes_as_the_hyper_engine_does() {
    let lab = start_env(
        &["edge", "--listen", "127.0.0.1:0", "--workers", "1"],
        &[LAB],
    );
    let hyper = start(&["edge", "--listen", "127.0.0.1:0", "--workers", "1"]);
    for path in ["/plaintext", "/json", "/"] {
        let a = send(lab.addr, vec![(Method::GET, path)]).await.remove(0);
        let b = send(hyper.addr, vec![(Method::GET, path)]).await.remove(0);
        assert_eq!((a.0, &a.2), (b.0, &b.2), "{path}");
        for name in ["content-type", "content-length"] {
            assert_eq!(a.1.get(name), b.1.get(name), "{path} {name}");
        }
        assert!(a.1.get("date").is_some());
        let timing = a.1.get("server-timing").unwrap().to_str().unwrap();
        assert!(timing.starts_with("app;dur="), "{timing}");
    }
    // 300 streams on one connection, HEAD among them: every one answered, in step with
    // HPACK and the windows.
    let mut reqs = Vec::new();
    for i in 0..300 {
        reqs.push((
            if i % 7 == 0 {
                Method::HEAD
            } else {
                Method::GET
            },
            "/plaintext",
        ));
    }
    let answers = send(lab.addr, reqs).await;
    assert_eq!(answers.len(), 300);
    for (i, (status, headers, body)) in answers.iter().enumerate() {
        assert_eq!(*status, 200);
        assert_eq!(headers["content-length"], "13");
        assert_eq!(
            &body[..],
            if i % 7 == 0 {
                &b""[..]
            } else {
                b"Hello, World!"
            }
        );
    }
    // Not yet served by the prototype: said so, and the connection goes on.
    let mixed = send(
        lab.addr,
        vec![(Method::GET, "/info"), (Method::GET, "/plaintext")],
    )
    .await;
    assert_eq!(mixed[0].0, 501);
    assert!(String::from_utf8_lossy(&mixed[0].2).contains("lab HTTP/2 engine"));
    assert_eq!(mixed[1].0, 200);
    // HTTP/1.1 on the same port stays on hyper.
    let h1 = curl(&["--http1.1", &format!("http://{}/info", lab.addr)]);
    assert_eq!((h1.status, h1.http_version.as_str()), (200, "1.1"));
}
