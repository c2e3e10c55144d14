//! The out-of-process module behaves like the ASP.NET Core Module: lazy start, a random
//! port in H2LAB_APP_PORT, a pairing token the app enforces, HTTP/1.1 on the hop,
//! restart after a crash, environment passed, output captured.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn pid_of_app(host: &TlsServer, ca: &str) -> (u32, serde_json::Value) {
    let r = curl(&["--cacert", ca, &host.url("/info")]);
    assert_eq!(r.status, 200, "{r:?}");
    let info = json(&r.body);
    (info["pid"].as_u64().unwrap() as u32, info)
}

fn children_of(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn app_starts_on_first_request_with_env_and_log_and_rejects_requests_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let log_s = log.display().to_string();
    let host = start_tls(
        "host",
        "rustls",
        "ecdsa",
        &[
            "--hosting",
            "out-of-process",
            "--app-env",
            "H2LAB_GREETING=hello",
            "--app-log",
            &log_s,
        ],
    );
    assert!(
        children_of(host.server.child.pid()).is_empty(),
        "no app before the first request"
    );
    let ca = host.ca.display().to_string();
    let (pid, info) = pid_of_app(&host, &ca);
    assert_eq!(children_of(host.server.child.pid()), vec![pid]);
    assert_eq!(info["environment"]["H2LAB_GREETING"], "hello");
    let port: u16 = info["environment"]["H2LAB_APP_PORT"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(port, host.port());

    // Straight to the app port: no token, no answer but 400.
    let direct = curl(&[&format!("http://127.0.0.1:{port}/plaintext")]);
    assert_eq!(direct.status, 400, "{direct:?}");
    assert!(direct.body.contains("pairing token"));
    let wrong = curl(&[
        "-H",
        "x-h2lab-pairing-token: guess",
        &format!("http://127.0.0.1:{port}/plaintext"),
    ]);
    assert_eq!(wrong.status, 400);
    // The app listens on loopback only.
    let bound = std::fs::read_to_string("/proc/net/tcp").unwrap();
    assert!(
        bound.contains(&format!("0100007F:{port:04X}")),
        "app bound to 127.0.0.1:{port}"
    );

    // Its stdout (the listening line) went to the log file.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"event\":\"listening\""), "log: {text}");
}

#[test]
fn eager_start_and_restart_after_the_app_is_killed() {
    let host = start_tls(
        "host",
        "openssl",
        "ecdsa",
        &[
            "--hosting",
            "out-of-process",
            "--eager-start",
            "--max-restart-backoff",
            "200ms",
        ],
    );
    let ca = host.ca.display().to_string();
    let (first, _) = pid_of_app(&host, &ca);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    // Every request below is answered: 502/503 while the app is down, 200 once restarted.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut statuses = Vec::new();
    let second = loop {
        let r = curl(&["--cacert", &ca, &host.url("/info")]);
        statuses.push(r.status);
        if r.status == 200 {
            let pid = json(&r.body)["pid"].as_u64().unwrap() as u32;
            if pid != first {
                break pid;
            }
        } else {
            assert!(matches!(r.status, 502 | 503), "while restarting: {r:?}");
        }
        assert!(
            Instant::now() < deadline,
            "no restart within 20 s: {statuses:?}"
        );
    };
    assert_ne!(second, first);
    assert_eq!(children_of(host.server.child.pid()), vec![second]);
}

#[test]
fn sigterm_stops_host_and_app() {
    let host = start_tls(
        "host",
        "rustls",
        "ecdsa",
        &["--hosting", "out-of-process", "--eager-start"],
    );
    let ca = host.ca.display().to_string();
    let (app, _) = pid_of_app(&host, &ca);
    let TlsServer { server, .. } = host;
    let status = server.stop();
    assert!(status.success(), "graceful exit: {status}");
    assert!(
        !std::path::Path::new(&format!("/proc/{app}")).exists()
            || std::fs::read_to_string(format!("/proc/{app}/stat"))
                .unwrap_or_default()
                .contains(" Z ")
    );
}
