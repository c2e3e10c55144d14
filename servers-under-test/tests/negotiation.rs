//! The edge server negotiates like a real one: h2 and HTTP/1.1 over TLS with both stacks
//! (checked with curl and with hyper), cleartext h2 by prior knowledge and by Upgrade,
//! TLS 1.2-only and 1.3-only configurations, and ALPN mismatch.

mod support;

use http::Version;
use rustls::version::{TLS12, TLS13};
use support::*;

const STACKS: [&str; 2] = ["rustls", "openssl"];

#[test]
fn curl_negotiates_h2_and_http11_with_each_tls_stack() {
    for stack in STACKS {
        let s = start_tls("edge", stack, "ecdsa", &[]);
        let ca = s.ca.display().to_string();
        let h2 = curl(&["--cacert", &ca, "--http2", &s.url("/info")]);
        assert_eq!(
            (h2.status, h2.http_version.as_str()),
            (200, "2"),
            "{stack}: {h2:?}"
        );
        let info = json(&h2.body);
        assert_eq!(info["http_version"], "HTTP/2");
        assert_eq!(info["tls"]["stack"], stack);
        assert_eq!(info["tls"]["alpn"], "h2");
        assert_eq!(info["scheme"], "https");
        assert_eq!(info["hosting_model"], "edge");

        let h1 = curl(&["--cacert", &ca, "--http1.1", &s.url("/plaintext")]);
        assert_eq!(
            (h1.status, h1.http_version.as_str(), h1.body.as_str()),
            (200, "1.1", "Hello, World!"),
            "{stack}"
        );
    }
}

#[tokio::test]
async fn hyper_client_negotiates_h2_and_http11_with_each_tls_stack() {
    for stack in STACKS {
        for key in ["rsa", "ecdsa"] {
            let s = start_tls("edge", stack, key, &[]);
            let addr = s.server.addr;
            let h2 = hyper_tls_get(
                addr,
                client_config(&s.ca_pem, &["h2", "http/1.1"], &[&TLS13, &TLS12]),
                "/json",
            )
            .await
            .unwrap();
            assert_eq!(
                (h2.status, h2.version, h2.alpn.as_deref()),
                (200, Version::HTTP_2, Some("h2")),
                "{stack}/{key}"
            );
            assert_eq!(&h2.body[..], br#"{"message":"Hello, World!"}"#);

            let h1 = hyper_tls_get(
                addr,
                client_config(&s.ca_pem, &["http/1.1"], &[&TLS13, &TLS12]),
                "/info",
            )
            .await
            .unwrap();
            assert_eq!(
                (h1.version, h1.alpn.as_deref()),
                (Version::HTTP_11, Some("http/1.1")),
                "{stack}/{key}"
            );
            assert_eq!(
                json(std::str::from_utf8(&h1.body).unwrap())["http_version"],
                "HTTP/1.1"
            );

            // No ALPN offered at all: HTTP/1.1, never a sniffed h2 after TLS.
            let none = hyper_tls_get(
                addr,
                client_config(&s.ca_pem, &[], &[&TLS13, &TLS12]),
                "/plaintext",
            )
            .await
            .unwrap();
            assert_eq!(
                (none.status, none.version, none.alpn),
                (200, Version::HTTP_11, None),
                "{stack}/{key}"
            );
        }
    }
}

#[tokio::test]
async fn cleartext_h2_by_prior_knowledge_and_by_upgrade() {
    let s = start(&["edge", "--listen", "127.0.0.1:0", "--workers", "1"]);
    let url = format!("http://{}/info", s.addr);

    let (status, body) = h2c_get(s.addr, "/info").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        json(std::str::from_utf8(&body).unwrap())["http_version"],
        "HTTP/2"
    );

    let prior = curl(&["--http2-prior-knowledge", &url]);
    assert_eq!((prior.status, prior.http_version.as_str()), (200, "2"));

    // Upgrade: curl sends Upgrade: h2c + HTTP2-Settings; the answer to that very request
    // comes back on stream 1 of the new HTTP/2 connection.
    let up = curl(&["--http2", "-v", &url]);
    assert_eq!((up.status, up.http_version.as_str()), (200, "2"), "{up:?}");
    assert!(
        up.stderr.contains("101 Switching Protocols"),
        "{}",
        up.stderr
    );
    assert_eq!(json(&up.body)["http_version"], "HTTP/2");
    // A second request on the upgraded connection (stream 3) works too.
    let two = curl(&["--http2", &url, &format!("http://{}/plaintext", s.addr)]);
    assert!(two.body.contains("Hello, World!"), "{two:?}");

    // Plain HTTP/1.1 on the same port still works, and --no-h2c refuses both h2c forms.
    assert_eq!(curl(&["--http1.1", &url]).http_version, "1.1");
    let strict = start(&[
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--no-h2c",
    ]);
    let surl = format!("http://{}/info", strict.addr);
    assert_eq!(curl(&["--http2", &surl]).http_version, "1.1");
    assert_ne!(curl(&["--http2-prior-knowledge", &surl]).status, 200);
}

#[tokio::test]
async fn tls12_only_and_tls13_only_servers_behave() {
    for stack in STACKS {
        let only12 = start_tls("edge", stack, "ecdsa", &["--tls-max", "1.2"]);
        let r = hyper_tls_get(
            only12.server.addr,
            client_config(&only12.ca_pem, &["h2"], &[&TLS13, &TLS12]),
            "/plaintext",
        )
        .await
        .unwrap();
        assert_eq!(
            (r.tls_version, r.version),
            (Some(rustls::ProtocolVersion::TLSv1_2), Version::HTTP_2),
            "{stack}"
        );
        let err = hyper_tls_get(
            only12.server.addr,
            client_config(&only12.ca_pem, &["h2"], &[&TLS13]),
            "/",
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("ProtocolVersion")
                || err.to_string().contains("protocol version"),
            "{stack}: {err}"
        );

        let only13 = start_tls("edge", stack, "rsa", &["--tls-min", "1.3"]);
        let r = hyper_tls_get(
            only13.server.addr,
            client_config(&only13.ca_pem, &["h2"], &[&TLS13, &TLS12]),
            "/plaintext",
        )
        .await
        .unwrap();
        assert_eq!(
            r.tls_version,
            Some(rustls::ProtocolVersion::TLSv1_3),
            "{stack}"
        );
        let ca = only13.ca.display().to_string();
        let old = curl(&[
            "--cacert",
            &ca,
            "--tls-max",
            "1.2",
            &only13.url("/plaintext"),
        ]);
        assert_eq!(
            old.exit, 35,
            "{stack}: TLS 1.2 client against a 1.3-only server: {old:?}"
        );
    }
}

#[tokio::test]
async fn cipher_knobs_pick_the_suite() {
    let s = start_tls(
        "edge",
        "openssl",
        "ecdsa",
        &[
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
        ],
    );
    let ca = s.ca.display().to_string();
    let r = curl(&["--cacert", &ca, &s.url("/info")]);
    assert_eq!(
        json(&r.body)["tls"]["cipher"],
        "ECDHE-ECDSA-CHACHA20-POLY1305"
    );

    let s = start_tls(
        "edge",
        "rustls",
        "ecdsa",
        &["--tls13-suites", "TLS13_CHACHA20_POLY1305_SHA256"],
    );
    let ca = s.ca.display().to_string();
    let r = curl(&["--cacert", &ca, &s.url("/info")]);
    assert_eq!(
        json(&r.body)["tls"]["cipher"],
        "TLS13_CHACHA20_POLY1305_SHA256"
    );
}

#[tokio::test]
async fn alpn_offer_the_server_cannot_accept_is_refused_with_an_alert() {
    for stack in STACKS {
        let s = start_tls("edge", stack, "ecdsa", &["--alpn", "h2"]);
        let err = hyper_tls_get(
            s.server.addr,
            client_config(&s.ca_pem, &["http/1.1"], &[&TLS13, &TLS12]),
            "/",
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .to_lowercase()
                .contains("noapplicationprotocol")
                || err.to_string().contains("no_application_protocol"),
            "{stack}: {err}"
        );
        // With ALPN disabled, the offer is ignored and HTTP/1.1 is spoken.
        let s = start_tls("edge", stack, "ecdsa", &["--alpn", ""]);
        let r = hyper_tls_get(
            s.server.addr,
            client_config(&s.ca_pem, &["h2", "http/1.1"], &[&TLS13, &TLS12]),
            "/plaintext",
        )
        .await
        .unwrap();
        assert_eq!((r.alpn, r.version), (None, Version::HTTP_11), "{stack}");
    }
}

#[test]
fn bad_flags_exit_2_with_the_flag_named() {
    let out = std::process::Command::new(sut_bin())
        .args(["edge", "--listen", "127.0.0.1:0", "--tls", "rustls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--self-signed"));
    let out = std::process::Command::new(sut_bin())
        .args([
            "edge",
            "--listen",
            "127.0.0.1:0",
            "--tls",
            "rustls",
            "--self-signed",
            "ecdsa",
            "--ciphers",
            "NOPE",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOPE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
