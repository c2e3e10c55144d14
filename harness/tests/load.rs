//! The load engine against real servers under test on loopback: coordinated omission,
//! known delays, rate accuracy, every protocol, ALPN mismatch, interval logs, exit codes
//! and interruption. Every run is bounded in time and count.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use h2lab_common::launch;

mod support;
use support::{h2lab, ms, sut, sut_tls};

#[test]
fn open_loop_p99_reflects_server_stall_while_service_time_does_not() {
    // Ground truth: stalls of S = 400 ms every P = 2 s delay a fifth of the requests
    // uniformly in (0, S]: p90 ~ 200 ms, p99 ~ 380 ms, measured from intended times.
    let s = sut(&[
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--stall",
        "2s:400ms",
        "--max-streams",
        "5",
    ]);
    for proto in [
        &["--proto", "h1", "-c", "10"][..],
        &["--proto", "h1", "--io", "epoll", "-c", "10"][..],
        &["--proto", "h2c", "-c", "2", "-m", "5"][..],
        // More streams asked for than the server allows: the five it does not are no
        // room for a request either.
        &["--proto", "h2c", "-c", "2", "-m", "10"][..],
    ] {
        let url = format!("http://{}/plaintext", s.addr);
        let mut args = vec![url.as_str(), "-r", "2000", "-d", "6s"];
        args.extend_from_slice(proto);
        let r = h2lab(&args);
        assert_eq!(r.code, 0, "{proto:?}: {}", r.stderr);
        let (lat, svc) = (&r.json["latency_us"], &r.json["service_time_us"]);
        let (p90, p99) = (ms(&lat["p90"]), ms(&lat["p99"]));
        assert!(
            (150.0..=260.0).contains(&p90),
            "{proto:?} latency p90 {p90} ms"
        );
        assert!(
            (340.0..=420.0).contains(&p99),
            "{proto:?} latency p99 {p99} ms"
        );
        assert!(
            ms(&svc["p90"]) < 50.0,
            "{proto:?} service p90 {} ms",
            ms(&svc["p90"])
        );
        assert!(
            ms(&svc["p99"]) < 100.0,
            "{proto:?} service p99 {} ms",
            ms(&svc["p99"])
        );
        assert!(
            ms(&svc["max"]) > 300.0,
            "{proto:?}: the requests caught in a stall still show it in their service time"
        );
        // During a stall every connection is held by the server: the requests that wait
        // for one are late because of the server, not the generator.
        let lag = ms(&r.json["scheduler_lag_us"]["p99"]);
        assert!(
            lag < 50.0,
            "{proto:?}: scheduler lag p99 {lag} ms counts the wait for the stalled server"
        );
    }
}

#[test]
fn open_loop_percentiles_match_a_known_delay() {
    let s = sut(&["edge", "--listen", "127.0.0.1:0", "--workers", "1"]);
    let url = format!("http://{}/delay/20", s.addr);
    let r = h2lab(&[&url, "-r", "200", "-c", "20", "-d", "2s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lat = &r.json["latency_us"];
    assert!(
        ms(&lat["min"]) >= 20.0,
        "nothing faster than the delay: {lat}"
    );
    assert!((20.0..=30.0).contains(&ms(&lat["p50"])), "{lat}");
    assert!(ms(&lat["p99"]) < 45.0, "{lat}");
    assert_eq!(r.json["summary"]["requests"], 400);
}

#[test]
fn open_loop_over_capacity_reports_the_rate_it_achieved_not_the_target() {
    // One HTTP/1.1 connection serves at most 50 req/s of /delay/20; 200 req/s for 0.5 s
    // schedules 100 requests that take about 2 s to drain.
    let s = sut(&["edge", "--listen", "127.0.0.1:0", "--workers", "1"]);
    let url = format!("http://{}/delay/20", s.addr);
    let r = h2lab(&[&url, "-r", "200", "-c", "1", "-d", "500ms"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let sum = &r.json["summary"];
    assert_eq!(sum["requests"], 100, "{sum}");
    let duration = sum["duration_s"].as_f64().unwrap();
    assert!(duration >= 1.9, "backlog drain counted: {sum}");
    let ratio = sum["achieved_ratio"].as_f64().unwrap();
    assert!(ratio < 0.3, "far below the target: {sum}");
}

#[test]
fn achieved_rate_is_within_two_percent_of_target() {
    let s = sut(&["edge", "--listen", "127.0.0.1:0", "--workers", "1"]);
    let url = format!("http://{}/plaintext", s.addr);
    let r = h2lab(&[
        &url, "-r", "1000", "-c", "8", "-d", "3s", "--warmup", "500ms",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ratio = r.json["summary"]["achieved_ratio"].as_f64().unwrap();
    assert!((0.98..=1.02).contains(&ratio), "achieved {ratio}");
    let n = r.json["summary"]["requests"].as_u64().unwrap();
    assert!((2940..=3060).contains(&n), "{n} requests");
    assert!(
        r.json["warmup"]["requests"].as_u64().unwrap() >= 450,
        "warmup kept apart: {}",
        r.json["warmup"]
    );
}

#[test]
fn every_protocol_completes_against_the_servers_under_test() {
    let s = sut(&["edge", "--listen", "127.0.0.1:0", "--workers", "1"]);
    let url = format!("http://{}/json", s.addr);
    for (proto, expected) in [
        ("h1", "h1"),
        ("auto", "h1"),
        ("h2c", "h2"),
        ("h2c-upgrade", "h2"),
    ] {
        let r = h2lab(&[&url, "--proto", proto, "-c", "2", "-m", "4", "-n", "400"]);
        assert_eq!(r.code, 0, "{proto}: {}", r.stderr);
        assert_eq!(
            r.json["summary"]["ok"], 400,
            "{proto}: {}",
            r.json["summary"]
        );
        assert_eq!(r.json["status"]["200"], 400, "{proto}");
        assert_eq!(r.json["negotiated"]["protocol"], expected, "{proto}");
    }
    // Bodies past the 1 MiB stream window and the read buffer, in 16 KiB frames.
    let big = format!("http://{}/bytes/3000000", s.addr);
    for proto in ["h1", "h2c"] {
        let r = h2lab(&[&big, "--proto", proto, "-c", "2", "-m", "4", "-n", "12"]);
        assert_eq!(r.code, 0, "{proto}: {}", r.stderr);
        assert_eq!(r.json["status"]["200"], 12, "{proto}: {}", r.json["errors"]);
    }
    for stack in ["rustls", "openssl"] {
        let t = sut_tls(stack, &[]);
        let url = format!("https://localhost:{}/plaintext", t.server.addr.port());
        let ca = t.ca.display().to_string();
        for client in ["rustls", "openssl"] {
            let r = h2lab(&[
                &url,
                "--cacert",
                &ca,
                "--tls-stack",
                client,
                "-c",
                "2",
                "-m",
                "4",
                "-n",
                "200",
            ]);
            assert_eq!(r.code, 0, "{stack}/{client}: {}", r.stderr);
            let n = &r.json["negotiated"];
            assert_eq!(
                (n["protocol"].as_str(), n["alpn"].as_str()),
                (Some("h2"), Some("h2")),
                "{stack}/{client}"
            );
            assert_eq!(r.json["summary"]["ok"], 200);
            let h1 = h2lab(&[
                &url,
                "--cacert",
                &ca,
                "--tls-stack",
                client,
                "--alpn",
                "http/1.1",
                "-c",
                "2",
                "-n",
                "100",
            ]);
            assert_eq!(
                h1.json["negotiated"]["protocol"], "h1",
                "{stack}/{client}: --alpn http/1.1"
            );
            assert_eq!(h1.json["negotiated"]["alpn"], "http/1.1");
        }
    }
}

#[test]
fn alpn_offer_the_server_cannot_accept_is_an_error_class_not_a_crash() {
    for stack in ["rustls", "openssl"] {
        let t = sut_tls(stack, &["--alpn", "h2"]);
        let url = format!("https://localhost:{}/plaintext", t.server.addr.port());
        let ca = t.ca.display().to_string();
        let r = h2lab(&[
            &url, "--cacert", &ca, "--alpn", "http/1.1", "-c", "2", "-d", "2s",
        ]);
        assert_eq!(
            r.code, 1,
            "{stack}: every request failed -> exit 1; {}",
            r.stderr
        );
        let errors = r.json["errors"].as_object().unwrap();
        assert!(
            errors.contains_key("alpn_mismatch:no_application_protocol"),
            "{stack}: {errors:?}"
        );
        // --proto h2 against a server that only speaks HTTP/1.1.
        let t = sut_tls(stack, &["--alpn", "http/1.1"]);
        let url = format!("https://localhost:{}/plaintext", t.server.addr.port());
        let ca = t.ca.display().to_string();
        let r = h2lab(&[
            &url,
            "--cacert",
            &ca,
            "--proto",
            "h2",
            "--alpn",
            "h2,http/1.1",
            "-c",
            "1",
            "-d",
            "1s",
        ]);
        assert!(
            r.json["errors"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with("alpn_mismatch:selected_http_1.1")),
            "{stack}: {}",
            r.json["errors"]
        );
    }
}

#[test]
fn interval_log_parses_back_and_its_total_matches_the_json() {
    let s = sut(&["edge", "--listen", "127.0.0.1:0", "--workers", "1"]);
    let url = format!("http://{}/plaintext", s.addr);
    let dir = tempfile::tempdir().unwrap();
    let hlog = dir.path().join("run.hlog");
    let hlog_s = hlog.display().to_string();
    let r = h2lab(&[&url, "-r", "500", "-c", "4", "-d", "3s", "--hlog", &hlog_s]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bytes = std::fs::read(&hlog).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("#[StartTime:")
            && text.contains("Tag=latency")
            && text.contains("Tag=service")
    );
    let totals = h2lab::record::hlog::read_totals(&bytes).unwrap();
    let ok = r.json["summary"]["ok"].as_u64().unwrap();
    assert_eq!(totals["latency"].len(), ok);
    assert_eq!(totals["service"].len(), ok);
    assert_eq!(
        totals["latency"].value_at_quantile(0.99),
        r.json["latency_us"]["p99"].as_u64().unwrap()
    );
    let intervals = text
        .lines()
        .filter(|l| l.starts_with("Tag=latency"))
        .count();
    assert!(
        (3..=4).contains(&intervals),
        "one interval per second: {intervals}"
    );
}

#[test]
fn bad_flags_exit_2_and_an_unreachable_server_exits_1() {
    let r = h2lab(&["http://127.0.0.1:1/", "--proto", "h2"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--proto h2"), "{}", r.stderr);
    for bad in [["-m", "4", "--batch", "5"], ["-m", "4", "--batch", "0"]] {
        let r = h2lab(&["http://127.0.0.1:1/", bad[0], bad[1], bad[2], bad[3]]);
        assert_eq!(r.code, 2);
        assert!(r.stderr.contains("--batch"), "{}", r.stderr);
    }
    let port = launch::free_loopback_port().unwrap().to_string();
    let r = h2lab(&[&format!("http://127.0.0.1:{port}/"), "-c", "2", "-d", "5s"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.json["errors"]["connect_refused"].as_u64().unwrap() >= 1,
        "{}",
        r.json
    );
    assert!(r.json["warnings"][0]
        .as_str()
        .unwrap()
        .contains("every connection failed"));
    assert!(
        r.stdout.contains("no connection was established"),
        "{}",
        r.stdout
    );
}

fn wait_for_line(stderr: impl std::io::Read, needle: &str) {
    for line in std::io::BufReader::new(stderr).lines() {
        if line.unwrap().contains(needle) {
            return;
        }
    }
    panic!("h2lab ended before printing {needle:?}");
}

#[test]
fn sigint_writes_everything_recorded_and_exits_130() {
    let s = sut(&["edge", "--listen", "127.0.0.1:0", "--workers", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let hlog = dir.path().join("r.hlog");
    let mut child = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args([
            "load",
            &format!("http://{}/plaintext", s.addr),
            "-c",
            "4",
            "-d",
            "60s",
            "-q",
            "--json",
        ])
        .arg(&json)
        .arg("--hlog")
        .arg(&hlog)
        .env("H2LAB_LOG", "h2lab=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_line(child.stderr.take().unwrap(), "measured phase started");
    // The signal lands right at the start of the measured phase: whatever was recorded
    // (possibly nothing yet) must still be written, marked interrupted.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(130));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["interrupted"], true);
    assert!(hlog.exists());
    assert_no_temp_files(dir.path());
}

fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("h2lab did not stop within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_no_temp_files(dir: &Path) {
    let tmp: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(tmp.is_empty(), "half-written files left: {tmp:?}");
}

#[test]
fn summary_is_printed_for_humans() {
    let s = sut(&["edge", "--listen", "127.0.0.1:0", "--workers", "1"]);
    let r = h2lab(&[
        &format!("http://{}/plaintext", s.addr),
        "-c",
        "2",
        "-n",
        "100",
    ]);
    assert!(
        r.stdout.contains("p99.99")
            && r.stdout.contains("negotiated: h1")
            && r.stdout.contains("I/O engine: "),
        "{}",
        r.stdout
    );
    let _ = r.dir;
}

#[test]
fn h2c_against_a_server_that_answers_http1_is_an_error_class() {
    // A server that speaks only HTTP/1.1 answers the HTTP/2 preface with a 400.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(64) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut conn, &mut buf);
            let _ = std::io::Write::write_all(
                &mut conn,
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    let r = h2lab(&[
        &format!("http://{addr}/"),
        "--proto",
        "h2c",
        "-c",
        "1",
        "-n",
        "3",
    ]);
    assert_eq!(r.code, 1, "every request failed: {}", r.stdout);
    assert_eq!(
        r.json["errors"]["protocol:http1_reply"], 3,
        "{}",
        r.json["errors"]
    );
}
