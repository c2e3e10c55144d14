//! `sut host --app-command` hosts a program no one in this project wrote the way the
//! ASP.NET Core Module hosts an ASP.NET Core app: a fixture app (Python's standard
//! library) that checks the ANCM contract as ASP.NET Core's IIS integration does refuses
//! direct requests, and through the host sees https, the client's address and its path
//! base; a killed app is restarted; an app that crashes at start more often than the
//! rapid-fail limit gets 503 with the reason, and `--wait-for-app` exits with its log tail.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::*;

fn fixture() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ancm_app.py")
        .display()
        .to_string()
}

fn ancm_host(extra: &[&str]) -> (TlsServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log").display().to_string();
    let fixture = fixture();
    let mut args = vec![
        "--hosting",
        "out-of-process",
        "--module-contract",
        "ancm",
        "--max-restart-backoff",
        "100ms",
        "--app-log",
        &log,
    ];
    args.extend_from_slice(extra);
    args.extend(["--app-command", "python3", &fixture]);
    (start_tls("host", "rustls", "ecdsa", &args), dir)
}

#[test]
fn an_ancm_app_refuses_direct_requests_and_through_the_host_sees_https_the_client_and_its_path_base(
) {
    let (host, _dir) = ancm_host(&["--path-base", "/shop", "--wait-for-app"]);
    let ca = host.ca.display().to_string();
    // From another loopback address, so the restored client differs from the app's peer.
    let r = curl(&[
        "--cacert",
        &ca,
        "--interface",
        "127.0.0.2",
        &host.url("/shop/cart?x=1"),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = json(&r.body);
    assert_eq!(seen["scheme"], "https", "{seen}");
    assert_eq!(seen["remote"], "127.0.0.2", "{seen}");
    assert_eq!(seen["original_proto"], "http", "{seen}");
    assert!(
        seen["original_for"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{seen}"
    );
    assert_eq!(
        (seen["path_base"].as_str(), seen["path"].as_str()),
        (Some("/shop"), Some("/cart")),
        "ASPNETCORE_APPL_PATH reached the app and the module kept the path whole: {seen}"
    );
    assert_eq!(seen["http_version"], "HTTP/1.1", "{seen}");
    assert_eq!(
        curl(&["--cacert", &ca, &host.url("/elsewhere")]).status,
        404,
        "outside the app's path"
    );

    // Straight to the app's port: no token, 400.
    let port = seen["port"].as_u64().unwrap();
    let direct = curl(&[&format!("http://127.0.0.1:{port}/shop/cart")]);
    assert_eq!(direct.status, 400, "{direct:?}");
    let guessed = curl(&[
        "-H",
        "MS-ASPNETCORE-TOKEN: guess",
        &format!("http://127.0.0.1:{port}/shop/cart"),
    ]);
    assert_eq!(guessed.status, 400, "{guessed:?}");
}

#[test]
fn a_killed_ancm_app_is_restarted_on_a_new_port_and_token() {
    let (host, _dir) = ancm_host(&["--wait-for-app"]);
    let ca = host.ca.display().to_string();
    let first = json(&curl(&["--cacert", &ca, &host.url("/")]).body);
    let pid = first["pid"].as_u64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let second = loop {
        let r = curl(&["--cacert", &ca, &host.url("/")]);
        if r.status == 200 {
            let seen = json(&r.body);
            if seen["pid"] != first["pid"] {
                break seen;
            }
        } else {
            assert!(matches!(r.status, 502 | 503), "while restarting: {r:?}");
        }
        assert!(Instant::now() < deadline, "no restart within 20 s");
    };
    assert_ne!(
        second["port"], first["port"],
        "each start gets its own port"
    );
    let old = curl(&[&format!("http://127.0.0.1:{}/", first["port"])]);
    assert_ne!(old.status, 200, "the killed app's port is closed: {old:?}");
}

#[test]
fn an_app_crashing_at_start_beyond_the_rapid_fail_limit_gets_503_with_the_reason() {
    let (host, dir) = ancm_host(&[
        "--rapid-fails-per-minute",
        "2",
        "--app-env",
        "CRASH_AT_START=1",
    ]);
    let ca = host.ca.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let body = loop {
        let r = curl(&["--cacert", &ca, &host.url("/")]);
        assert!(matches!(r.status, 502 | 503), "{r:?}");
        if r.body.contains("rapid-fails-per-minute") {
            break r.body;
        }
        seen.push(r.body);
        assert!(
            Instant::now() < deadline,
            "no rapid-fail answer in 30 s: {seen:?}"
        );
    };
    assert!(body.contains("failed 3 times within a minute"), "{body}");
    assert!(body.contains("not restarting for"), "{body}");
    assert!(body.contains("exit status: 3"), "{body}");
    // It stays given up: the next request gets the same answer, and no app is running.
    let again = curl(&["--cacert", &ca, &host.url("/")]);
    assert_eq!(again.status, 503);
    assert!(again.body.contains("rapid-fails-per-minute"), "{again:?}");
    let log = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
    assert_eq!(log.matches("crashing at start").count(), 3, "{log}");
}

#[test]
fn wait_for_app_exits_with_the_apps_log_tail_when_it_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log").display().to_string();
    let fixture = fixture();
    let out = std::process::Command::new(sut_bin())
        .args([
            "host",
            "--listen",
            "127.0.0.1:0",
            "--hosting",
            "out-of-process",
            "--module-contract",
            "ancm",
            "--wait-for-app",
            "--app-env",
            "CRASH_AT_START=1",
            "--app-log",
            &log,
            "--app-command",
            "python3",
            &fixture,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no listening line");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the app did not start"), "{stderr}");
    assert!(stderr.contains("crashing at start as asked"), "{stderr}");
}

#[test]
fn ancm_without_an_app_command_is_a_usage_error() {
    let out = std::process::Command::new(sut_bin())
        .args([
            "host",
            "--listen",
            "127.0.0.1:0",
            "--hosting",
            "out-of-process",
            "--module-contract",
            "ancm",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--app-command"));
}
