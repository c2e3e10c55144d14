//! `h2lab probe` against real servers under test: every failure class provoked for real
//! (with both server TLS stacks where the class allows), the RFC 7540 Appendix A client
//! policy, the protocol that reached the app, and the JSON schema.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use h2lab_common::launch::{self, RunningServer};

struct Server {
    server: RunningServer,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

/// `sut edge` (or another subcommand) with a generated CA; `tls` = None for cleartext.
fn sut(cmd: &[&str], tls: Option<(&str, &str)>, extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    args.extend(["--listen", "127.0.0.1:0", "--workers", "1"].map(String::from));
    if let Some((stack, key)) = tls {
        args.extend(["--tls", stack, "--self-signed", key, "--ca-out"].map(String::from));
        args.push(ca.display().to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let bin = launch::locate_sut().expect("build sut first: cargo build --workspace");
    let server =
        launch::start_sut(&bin, &args, &[], None, Duration::from_secs(30)).expect("sut starts");
    Server {
        server,
        ca,
        _dir: dir,
    }
}

fn edge(stack: &str, key: &str, extra: &[&str]) -> Server {
    sut(&["edge"], Some((stack, key)), extra)
}

/// Runs `h2lab probe --json` and returns (exit code, report).
fn probe(url: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .arg("probe")
        .arg(url)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {text} stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn tls_probe(s: &Server, args: &[&str]) -> (i32, serde_json::Value) {
    let ca = s.ca.display().to_string();
    let mut all = vec!["--cacert", ca.as_str(), "--sni", "localhost"];
    all.extend(args);
    probe(&format!("https://{}/info", s.server.addr), &all)
}

fn class(v: &serde_json::Value) -> &str {
    v["class"].as_str().unwrap_or("ok")
}

#[test]
fn successful_probe_reports_every_tls_fact_and_the_app_protocol() {
    for stack in ["rustls", "openssl"] {
        let s = edge(stack, "ecdsa", &[]);
        let (code, v) = tls_probe(&s, &[]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["schema"], "h2lab.probe/v1");
        assert_eq!(v["tcp_connect"], true);
        assert_eq!(v["alpn_offered"], serde_json::json!(["h2", "http/1.1"]));
        assert_eq!(v["alpn_selected"], "h2");
        assert_eq!(v["protocol"], "HTTP/2");
        assert_eq!(v["status"], 200);
        assert_eq!(v["app_protocol"], "HTTP/2");
        assert_eq!(v["tls"]["version"], "TLSv1.3");
        assert_eq!(v["tls"]["cert_key"], "ecdsa-p256");
        assert!(
            v["tls"]["group"].as_str().is_some_and(|g| !g.is_empty()),
            "{v}"
        );
        assert!(v["tls"]["cipher_iana"]
            .as_str()
            .unwrap()
            .starts_with("TLS_"));
    }
    let s = edge("openssl", "rsa", &["--tls-max", "1.2"]);
    let (_, v) = tls_probe(&s, &["--tls-stack", "openssl"]);
    assert_eq!(v["tls"]["version"], "TLSv1.2");
    assert_eq!(v["tls"]["cert_key"], "rsa-2048");
    assert_eq!(
        v["tls"]["cipher_iana"],
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    );
}

#[test]
fn out_of_process_hosting_gives_h2_at_the_edge_and_http11_at_the_app() {
    let s = sut(
        &["host", "--hosting", "out-of-process", "--eager-start"],
        Some(("rustls", "ecdsa")),
        &[],
    );
    let (code, v) = tls_probe(&s, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["protocol"], "HTTP/2");
    assert_eq!(v["app_protocol"], "HTTP/1.1");
    assert_eq!(v["app_hosting"], "out-of-process");
}

#[test]
fn tls_failure_classes_name_the_alert_on_both_server_stacks() {
    for stack in ["rustls", "openssl"] {
        let s = edge(stack, "ecdsa", &["--tls-max", "1.2"]);
        // Client insists on TLS 1.3, server stops at 1.2.
        let (code, v) = tls_probe(&s, &["--tls-min", "1.3"]);
        assert_eq!(code, 1);
        assert_eq!(class(&v), "alert:protocol_version", "{stack}: {v}");
        // No ALPN overlap: the server's alert 120.
        let (_, v) = tls_probe(&s, &["--alpn", "foo"]);
        assert_eq!(class(&v), "alert:no_application_protocol", "{stack}: {v}");
        // No suite in common.
        let (_, v) = tls_probe(
            &s,
            &[
                "--tls-stack",
                "openssl",
                "--ciphers",
                "ECDHE-RSA-AES128-GCM-SHA256",
            ],
        );
        assert_eq!(class(&v), "alert:handshake_failure", "{stack}: {v}");
    }
}

#[test]
fn a_server_without_alpn_is_http11_and_an_h2_only_offer_fails_clearly() {
    for (stack, extra) in [
        ("openssl", vec!["--platform-profile", "openssl-1.0.1"]),
        ("rustls", vec!["--alpn", ""]),
    ] {
        let s = edge(stack, "rsa", &extra);
        let (code, v) = tls_probe(&s, &[]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["protocol"], "HTTP/1.1");
        assert!(v["alpn_selected"].is_null());
        let (code, v) = tls_probe(&s, &["--proto", "h2"]);
        assert_eq!(code, 1);
        assert_eq!(class(&v), "alpn_ignored", "{stack}: {v}");
    }
}

#[test]
fn appendix_a_policy_refuses_h2_like_a_browser_unless_allowed() {
    // The documented Windows Server 2012 R2 row: RSA certificate, browser client.
    let s = edge("openssl", "rsa", &["--platform-profile", "windows-2012r2"]);
    let (code, v) = tls_probe(&s, &["--client-profile", "browser"]);
    assert_eq!(code, 1);
    assert_eq!(class(&v), "inadequate_security", "{v}");
    assert_eq!(
        v["tls"]["cipher_iana"],
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
    );
    assert_eq!(v["tls"]["appendix_a"], true);
    let (code, v) = tls_probe(&s, &["--client-profile", "browser", "--allow-weak-h2"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["protocol"], "HTTP/2");
    // The same platform with an ECDSA certificate negotiates an AEAD suite: HTTP/2.
    let s = edge(
        "openssl",
        "ecdsa",
        &["--platform-profile", "windows-2012r2"],
    );
    let (code, v) = tls_probe(&s, &["--client-profile", "browser"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["tls"]["cipher"], "ECDHE-ECDSA-AES256-GCM-SHA384");
    assert_eq!(v["protocol"], "HTTP/2");
    // rustls offers only ECDHE + AEAD: no suite in common with the RSA server.
    let s = edge("openssl", "rsa", &["--platform-profile", "windows-2012r2"]);
    let (_, v) = tls_probe(&s, &["--client-profile", "rustls-default"]);
    assert_eq!(class(&v), "alert:handshake_failure", "{v}");
}

#[test]
fn a_server_can_refuse_weak_h2_with_goaway_inadequate_security() {
    let s = edge(
        "openssl",
        "rsa",
        &["--platform-profile", "tls12-cbc-only", "--reject-weak-h2"],
    );
    let (code, v) = tls_probe(
        &s,
        &["--client-profile", "openssl-default", "--allow-weak-h2"],
    );
    assert_eq!(code, 1);
    assert_eq!(class(&v), "inadequate_security", "{v}");
    assert!(v["detail"].as_str().unwrap().contains("server"), "{v}");
    // HTTP/1.1 on the same weak suite is served.
    let (code, v) = tls_probe(
        &s,
        &["--client-profile", "openssl-default", "--alpn", "http/1.1"],
    );
    assert_eq!(code, 0, "{v}");
}

#[test]
fn cleartext_classes_no_tls_h2c_refusals_connect_and_timeout() {
    let plain = sut(&["edge"], None, &["--no-h2c"]);
    let url = format!("https://{}/info", plain.server.addr);
    for client in ["rustls", "openssl"] {
        let (_, v) = probe(&url, &["-k", "--tls-stack", client]);
        assert_eq!(class(&v), "no_tls", "{client}: {v}");
    }
    let http = format!("http://{}/info", plain.server.addr);
    let (_, v) = probe(&http, &["--proto", "h2c"]);
    assert_eq!(class(&v), "h2c_prior_knowledge_rejected", "{v}");
    let (_, v) = probe(&http, &["--proto", "h2c-upgrade"]);
    assert_eq!(class(&v), "h2c_upgrade_declined", "{v}");
    assert_eq!(v["protocol"], "HTTP/1.1");

    let h2c = sut(&["edge"], None, &[]);
    let http = format!("http://{}/info", h2c.server.addr);
    for proto in ["h2c", "h2c-upgrade"] {
        let (code, v) = probe(&http, &["--proto", proto]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["protocol"], "HTTP/2");
        assert_eq!(v["app_protocol"], "HTTP/2");
    }

    // Nothing listens on the port any more.
    let port = launch::free_loopback_port().unwrap();
    let (code, v) = probe(&format!("http://127.0.0.1:{port}/"), &[]);
    assert_eq!((code, class(&v)), (1, "connect_failed"), "{v}");
    // A listener that never answers: the handshake step times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/", silent.local_addr().unwrap());
    let (_, v) = probe(&url, &["-k", "--timeout", "300ms"]);
    assert_eq!(class(&v), "timeout:handshake", "{v}");
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (args, flag) in [
        (
            vec!["https://127.0.0.1:1/", "--client-profile", "netscape"],
            "--client-profile",
        ),
        (vec!["http://127.0.0.1:1/", "--cacert", "x.pem"], "--cacert"),
        (
            vec![
                "https://127.0.0.1:1/",
                "--client-profile",
                "browser",
                "--tls-stack",
                "rustls",
            ],
            "--tls-stack openssl",
        ),
        (vec!["https://127.0.0.1:1/", "--proto", "h2c"], "h2c"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_h2lab"))
            .arg("probe")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}
