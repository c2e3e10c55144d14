//! The two I/O engines of the load generator against a real server under test on
//! loopback: io_uring (HTTP/1.1 over cleartext TCP) and tokio (everything). They must
//! count the same, and the io_uring engine must survive what servers do to connections:
//! close them, refuse them, or not answer. Every run is bounded in count or time.

mod support;
use support::{edge, h2lab};

/// Whether this kernel should give the io_uring engine what it needs: Linux 6.1 or later,
/// io_uring not disabled by sysctl, and no seccomp filter that could forbid it.
fn io_uring_expected() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim() != "0")
        .unwrap_or(false);
    let seccomp = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Seccomp:") && l.trim_end() != "Seccomp:\t0");
    (major, minor) >= (6, 1) && !disabled && !seccomp
}

#[test]
fn cleartext_h1_runs_on_io_uring_where_the_kernel_allows_it_and_both_engines_agree() {
    let server = edge(&[]);
    let url = format!("{}/plaintext", server.url());
    let epoll = h2lab(&[&url, "--io", "epoll", "-c", "4", "-n", "400"]);
    assert_eq!(epoll.code, 0, "{}", epoll.stderr);
    assert_eq!(epoll.json["summary"]["io_engine"], "tokio");
    let uring = h2lab(&[&url, "--io", "uring", "-c", "4", "-n", "400"]);
    if !io_uring_expected() {
        assert_eq!(uring.code, 2, "{}", uring.stderr);
        assert!(uring.stderr.contains("--io uring"), "{}", uring.stderr);
        return;
    }
    assert_eq!(uring.code, 0, "{}", uring.stderr);
    for r in [&epoll, &uring] {
        assert_eq!(r.json["summary"]["ok"], 400, "{}", r.json);
        assert_eq!(r.json["status"]["200"], 400);
        assert_eq!(r.json["negotiated"]["protocol"], "h1");
        assert_eq!(r.json["negotiated"]["connections"], 4);
        assert!(r.json["ttfb_us"]["p50"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(uring.json["summary"]["io_engine"], "io_uring");
    let auto = h2lab(&[&url, "-c", "2", "-n", "10"]);
    assert_eq!(
        auto.json["summary"]["io_engine"], "io_uring",
        "auto picks it"
    );
}

#[test]
fn io_uring_asked_for_a_load_it_cannot_run_is_a_usage_error() {
    let r = h2lab(&["http://127.0.0.1:1/", "--io", "uring", "--proto", "h2c"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--io uring"), "{}", r.stderr);
    assert!(r.stderr.contains("cleartext"), "{}", r.stderr);
}

#[test]
fn io_uring_engine_reconnects_after_closes_and_times_out_silent_requests() {
    if !io_uring_expected() {
        eprintln!("io_uring is not available on this kernel: nothing to test");
        return;
    }
    // Two connections at most: the others are answered 503 and closed, again and again.
    let server = edge(&["--max-connections", "2"]);
    let url = format!("{}/plaintext", server.url());
    let r = h2lab(&[&url, "--io", "uring", "-c", "4", "-d", "500ms"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ok = r.json["status"]["200"].as_u64().unwrap_or(0);
    let refused = r.json["status"]["503"].as_u64().unwrap_or(0);
    assert!(ok > 0 && refused > 0, "{}", r.json["status"]);
    assert_eq!(
        ok + refused + r.json["summary"]["errors"].as_u64().unwrap(),
        r.json["summary"]["requests"].as_u64().unwrap(),
        "{}",
        r.json
    );
    assert!(
        r.json["negotiated"]["connections"].as_u64().unwrap() > 4,
        "closed connections are opened again: {}",
        r.json["negotiated"]
    );
    drop(server);

    // A server that does not answer in time: each request fails as a timeout, and its
    // connection is replaced.
    let server = edge(&[]);
    let url = format!("{}/delay/3000", server.url());
    let started = std::time::Instant::now();
    let r = h2lab(&[
        &url,
        "--io",
        "uring",
        "-c",
        "2",
        "-n",
        "4",
        "--timeout",
        "200ms",
    ]);
    assert_eq!(r.code, 1, "every request failed: {}", r.stderr);
    assert_eq!(r.json["errors"]["timeout"], 4, "{}", r.json["errors"]);
    assert_eq!(r.json["negotiated"]["connections"], 4);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "timeouts, not the server's delay, ended the requests"
    );
}

#[test]
fn a_server_closing_idle_connections_costs_no_request_on_either_engine() {
    // Open loop at 10 req/s on 2 connections: each is idle for about 200 ms between its
    // requests, and the server closes idle connections after 100 ms.
    let server = edge(&["--idle-timeout", "100ms"]);
    let url = format!("{}/plaintext", server.url());
    let mut engines = vec!["epoll"];
    if io_uring_expected() {
        engines.push("uring");
    }
    for io in engines {
        let r = h2lab(&[&url, "--io", io, "-c", "2", "-r", "10", "-d", "1500ms"]);
        assert_eq!(r.code, 0, "--io {io}: {}", r.stderr);
        let ok = r.json["status"]["200"].as_u64().unwrap_or(0);
        assert!(ok >= 10, "--io {io}: {}", r.json);
        assert_eq!(
            r.json["summary"]["errors"], 0,
            "--io {io}: {}",
            r.json["errors"]
        );
        assert!(
            r.json["negotiated"]["connections"].as_u64().unwrap() > 2,
            "--io {io}: closed connections are replaced: {}",
            r.json["negotiated"]
        );
    }
}
