//! `sut proxy` against an upstream that answers with scripted HTTP/1.1 bytes: the framings
//! a real upstream may use (chunked with trailers, close-delimited, HEAD, 1xx before the
//! final head), connections it closes while they sit in the pool, and a body cut short.
//! The script stands in for an upstream's edge cases, which a real app rarely produces.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::*;

/// Reads one request head; returns its method and path, or `None` at end of stream.
fn read_head(r: &mut BufReader<TcpStream>) -> Option<(String, String)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 || h == "\r\n" {
            break;
        }
    }
    Some((method, path))
}

/// Answers one request; returns whether the connection stays open.
fn answer(w: &mut TcpStream, method: &str, path: &str) -> std::io::Result<bool> {
    match (method, path) {
        ("GET", "/chunked") => {
            w.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")?;
            w.flush()?;
            w.write_all(b"5\r\nHello\r\n")?;
            w.flush()?;
            w.write_all(b"8\r\n, World!\r\n0\r\nx-trailer: 1\r\n\r\n")?;
            Ok(true)
        }
        ("HEAD", "/head") => {
            w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")?;
            Ok(true)
        }
        ("GET", "/hints") => {
            w.write_all(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n")?;
            w.flush()?;
            w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")?;
            Ok(true)
        }
        ("GET", "/until-close") => {
            w.write_all(b"HTTP/1.1 200 OK\r\n\r\nread until close")?;
            Ok(false)
        }
        ("GET", "/cut") => {
            w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort")?;
            Ok(false)
        }
        // Answers, then closes without saying so: the pooled connection goes stale.
        ("GET", "/then-close") => {
            w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")?;
            Ok(false)
        }
        _ => {
            w.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")?;
            Ok(true)
        }
    }
}

/// A scripted upstream on a loopback port; counts the connections it accepted.
struct Scripted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

fn scripted_upstream() -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    // Ends with the test process; serves each connection on its own thread.
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                while let Some((method, path)) = read_head(&mut r) {
                    if !answer(&mut w, &method, &path).unwrap_or(false) {
                        break;
                    }
                }
            });
        }
    });
    Scripted { addr, accepted }
}

fn proxy_to(upstream: &Scripted) -> TlsServer {
    let up = format!("http://{}", upstream.addr);
    start_tls("proxy", "rustls", "ecdsa", &["--upstream", &up])
}

#[test]
fn response_framings_pass_through_intact_and_the_connection_is_reused() {
    let upstream = scripted_upstream();
    let proxy = proxy_to(&upstream);
    let ca = proxy.ca.display().to_string();
    for http in ["--http2", "--http1.1"] {
        let r = curl(&["--cacert", &ca, http, &proxy.url("/chunked")]);
        assert_eq!((r.status, r.body.as_str()), (200, "Hello, World!"), "{r:?}");
        let r = curl(&["--cacert", &ca, http, "-I", &proxy.url("/head")]);
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.contains("content-length: 5"), "{r:?}");
        let r = curl(&["--cacert", &ca, http, &proxy.url("/hints")]);
        assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{r:?}");
        let r = curl(&["--cacert", &ca, http, &proxy.url("/until-close")]);
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "read until close"),
            "{r:?}"
        );
    }
    // Chunked, HEAD and the 103 left their connection in the pool for the next request;
    // each until-close response used one up.
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn a_pooled_connection_the_upstream_closed_is_replaced_for_a_get() {
    let upstream = scripted_upstream();
    let proxy = proxy_to(&upstream);
    let ca = proxy.ca.display().to_string();
    for i in 0..3 {
        let r = curl(&["--cacert", &ca, &proxy.url("/then-close")]);
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "ok"),
            "request {i}: {r:?}"
        );
    }
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 3);
}

#[test]
fn a_body_cut_short_by_the_upstream_is_an_error_at_the_client() {
    let upstream = scripted_upstream();
    let proxy = proxy_to(&upstream);
    let ca = proxy.ca.display().to_string();
    for http in ["--http2", "--http1.1"] {
        let r = curl(&["--cacert", &ca, http, &proxy.url("/cut")]);
        assert_ne!(r.exit, 0, "curl must see the transfer fail ({http}): {r:?}");
    }
}
