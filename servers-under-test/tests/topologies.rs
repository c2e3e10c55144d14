//! `/info` seen through each topology: what protocol reached the app, and whether the
//! original scheme and client address were restored.

mod support;

use std::time::Duration;

use h2lab_common::launch::{self, ProxyKind, ProxySpec};
use h2lab_common::pki::{KeyType, Pki};
use support::*;

fn app_backend() -> launch::RunningServer {
    start(&["app", "--listen", "127.0.0.1:0"])
}

fn assert_app_saw_http11_and_https(info: &serde_json::Value, what: &str) {
    assert_eq!(info["http_version"], "HTTP/1.1", "{what}: {info}");
    assert_eq!(info["scheme"], "https", "{what}: {info}");
    assert_eq!(info["forwarded_applied"], true, "{what}: {info}");
    assert!(
        info["remote_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{what}: {info}"
    );
    assert!(
        info["tls"].is_null(),
        "{what}: TLS ended before the app: {info}"
    );
}

#[test]
fn sut_proxy_forwards_http11_to_the_app_and_the_app_restores_https() {
    let app = app_backend();
    let upstream = format!("http://{}", app.addr);
    for stack in ["rustls", "openssl"] {
        let proxy = start_tls("proxy", stack, "ecdsa", &["--upstream", &upstream]);
        let ca = proxy.ca.display().to_string();
        let r = curl(&["--cacert", &ca, "--http2", &proxy.url("/info")]);
        assert_eq!(
            r.http_version, "2",
            "edge protocol through sut proxy ({stack})"
        );
        let info = json(&r.body);
        assert_app_saw_http11_and_https(&info, "sut proxy");
        assert_eq!(info["hosting_model"], "behind-proxy");
        assert!(info["headers"]["x-forwarded-for"].is_string());
        assert_ne!(
            info["pid"].as_u64().unwrap(),
            u64::from(proxy.server.child.pid()),
            "answered by the backend"
        );
    }
}

#[test]
fn sut_proxy_can_speak_h2_to_the_upstream() {
    let app = app_backend();
    let upstream = format!("http://{}", app.addr);
    let proxy = start_tls(
        "proxy",
        "rustls",
        "ecdsa",
        &["--upstream", &upstream, "--upstream-proto", "h2"],
    );
    let ca = proxy.ca.display().to_string();
    let info = json(&curl(&["--cacert", &ca, "--http1.1", &proxy.url("/info")]).body);
    assert_eq!(info["http_version"], "HTTP/2");
    assert_eq!(info["scheme"], "https");
}

#[test]
fn sut_proxy_over_h2_reconnects_when_the_upstream_restarts() {
    let port = launch::free_loopback_port().unwrap().to_string();
    let listen = format!("127.0.0.1:{port}");
    let app = start(&["app", "--listen", &listen]);
    let upstream = format!("http://{listen}");
    let proxy = start_tls(
        "proxy",
        "rustls",
        "ecdsa",
        &["--upstream", &upstream, "--upstream-proto", "h2"],
    );
    let ca = proxy.ca.display().to_string();
    let first = json(&curl(&["--cacert", &ca, &proxy.url("/info")]).body);
    app.stop();
    // A new app on the same port: the proxy's shared h2 connection went with the old one.
    let app = start(&["app", "--listen", &listen]);
    let r = curl(&["--cacert", &ca, &proxy.url("/info")]);
    assert_eq!(r.status, 200, "{r:?}");
    let second = json(&r.body);
    assert_eq!(second["http_version"], "HTTP/2");
    assert_ne!(first["pid"], second["pid"], "answered by the new app");
    assert_eq!(second["pid"].as_u64(), Some(u64::from(app.child.pid())));
}

#[test]
fn sut_proxy_path_base_and_upstream_failures() {
    let app = app_backend();
    let upstream = format!("http://{}", app.addr);
    let proxy = start_tls(
        "proxy",
        "rustls",
        "ecdsa",
        &["--upstream", &upstream, "--path-base", "/shop"],
    );
    let ca = proxy.ca.display().to_string();
    let info = json(&curl(&["--cacert", &ca, &proxy.url("/shop/info")]).body);
    assert_eq!(
        (info["path_base"].as_str(), info["path"].as_str()),
        (Some("/shop"), Some("/info"))
    );
    assert_eq!(
        curl(&["--cacert", &ca, &proxy.url("/elsewhere")]).status,
        404
    );

    // Upstream down: 502 with a body that says so.
    let dead = launch::free_loopback_port().unwrap();
    let proxy = start_tls(
        "proxy",
        "rustls",
        "ecdsa",
        &["--upstream", &format!("http://127.0.0.1:{dead}")],
    );
    let ca = proxy.ca.display().to_string();
    let r = curl(&["--cacert", &ca, &proxy.url("/plaintext")]);
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body.contains("cannot connect"), "{}", r.body);

    // Upstream too slow: 504.
    let proxy = start_tls(
        "proxy",
        "rustls",
        "ecdsa",
        &["--upstream", &upstream, "--upstream-timeout", "200ms"],
    );
    let ca = proxy.ca.display().to_string();
    let r = curl(&["--cacert", &ca, &proxy.url("/delay/3000")]);
    assert_eq!(r.status, 504, "{r:?}");
}

#[test]
fn in_process_host_shows_the_client_protocol_at_the_app() {
    let host = start_tls("host", "openssl", "rsa", &["--hosting", "in-process"]);
    let ca = host.ca.display().to_string();
    let info = json(&curl(&["--cacert", &ca, "--http2", &host.url("/info")]).body);
    assert_eq!(info["http_version"], "HTTP/2");
    assert_eq!(info["hosting_model"], "in-process");
    assert_eq!(
        info["pid"].as_u64().unwrap(),
        u64::from(host.server.child.pid()),
        "no loopback hop"
    );
    assert_eq!(info["tls"]["alpn"], "h2");
}

#[test]
fn out_of_process_host_forwards_http11_and_the_app_restores_https() {
    let host = start_tls(
        "host",
        "rustls",
        "ecdsa",
        &["--hosting", "out-of-process", "--path-base", "/app"],
    );
    let ca = host.ca.display().to_string();
    let r = curl(&["--cacert", &ca, "--http2", &host.url("/app/info")]);
    assert_eq!(r.http_version, "2", "HTTP/2 at the edge: {r:?}");
    let info = json(&r.body);
    assert_app_saw_http11_and_https(&info, "out-of-process");
    assert_eq!(info["hosting_model"], "out-of-process");
    assert_eq!(info["path_base"], "/app");
    assert!(
        info["headers"].get("x-h2lab-pairing-token").is_none(),
        "token is not shown"
    );
    assert_ne!(
        info["pid"].as_u64().unwrap(),
        u64::from(host.server.child.pid())
    );
}

/// A real proxy with TLS at the edge (a fresh ECDSA PKI in `dir`) in front of `backend`.
fn real_proxy(
    kind: ProxyKind,
    backend: std::net::SocketAddr,
    backend_h2: bool,
    dir: &std::path::Path,
) -> (launch::RunningServer, h2lab_common::pki::PkiFiles) {
    let files = Pki::generate(KeyType::Ecdsa)
        .unwrap()
        .write_to(dir, "edge")
        .unwrap();
    let spec = ProxySpec {
        kind,
        backend,
        backend_h2,
        chain: files.chain.clone(),
        key: files.key.clone(),
        workers: 1,
        tls: h2lab_common::launch::ProxyTls::default(),
    };
    let proxy = launch::start_proxy(&spec, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    (proxy, files)
}

fn through_real_proxy(kind: ProxyKind) {
    if proxy_missing(kind) {
        return;
    }
    let app = app_backend();
    let dir = tempfile::tempdir().unwrap();
    let (proxy, files) = real_proxy(kind, app.addr, false, dir.path());
    let pid = proxy.child.pid();
    let url = format!("https://localhost:{}/info", proxy.addr.port());
    let ca = files.ca.display().to_string();
    let r = curl(&["--cacert", &ca, "--http2", &url]);
    assert_eq!(
        (r.status, r.http_version.as_str()),
        (200, "2"),
        "{kind:?} edge: {r:?}"
    );
    let info = json(&r.body);
    assert_app_saw_http11_and_https(&info, kind.name());
    let h1 = curl(&["--cacert", &ca, "--http1.1", &url]);
    assert_eq!(h1.http_version, "1.1", "{kind:?}");

    proxy.stop();
    let left: Vec<_> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(*p))).ok()
                == Some(nix::unistd::Pid::from_raw(pid as i32))
        })
        .collect();
    assert!(left.is_empty(), "{kind:?} left processes behind: {left:?}");
}

#[test]
fn nginx_forwards_http11_and_the_app_restores_https() {
    through_real_proxy(ProxyKind::Nginx);
}

#[test]
fn apache_forwards_http11_and_the_app_restores_https() {
    through_real_proxy(ProxyKind::Apache);
}

#[test]
fn haproxy_forwards_http11_and_the_app_restores_https() {
    through_real_proxy(ProxyKind::Haproxy);
}

/// HAProxy speaking h2c to the app returns credit for every small answer with its own
/// WINDOW_UPDATE; the app's flood guard must not take that for a data dribble and cut
/// the backend connection (it did: 299 connections in 4 s under h2load).
#[test]
fn haproxy_over_h2c_to_the_app_keeps_its_backend_connection() {
    let kind = ProxyKind::Haproxy;
    if proxy_missing(kind) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // HAProxy retries a request whose backend connection was cut, so the client alone
    // may not see it: the app's log says whether its guard cut one.
    let log = dir.path().join("app.log");
    let args: Vec<String> = [
        "app",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--log",
        "sut::server::guard=debug",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let app =
        launch::start_sut(&sut_bin(), &args, &[], Some(&log), Duration::from_secs(30)).unwrap();
    let (proxy, _files) = real_proxy(kind, app.addr, true, dir.path());
    let url = format!("https://localhost:{}/plaintext", proxy.addr.port());
    // Many streams on many connections at once (16 x 16), more answers than the guard's
    // burst (1000) and refill (100 a second) would allow as glitches.
    let n = 50_000;
    let out = std::process::Command::new("h2load")
        .args([
            "-n",
            &n.to_string(),
            "-c",
            "16",
            "-m",
            "16",
            "-t",
            "1",
            &url,
        ])
        .output()
        .expect("h2load is installed (scripts/setup.sh)");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("{n} succeeded, 0 failed")), "{said}");
    proxy.stop();
    drop(app);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains("flood budget"),
        "the app cut HAProxy's connection:\n{logged}"
    );
}
