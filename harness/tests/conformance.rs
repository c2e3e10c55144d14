//! HTTP/2 conformance for real: httpwg-cli's RFC 9113 cases (installed by
//! scripts/setup.sh) against `sut edge` over h2c and over TLS (through the relay), and a
//! scenario with `[conformance]` over every topology, nginx, Apache and HAProxy included.
//! The lab's servers must fail no case beyond the accepted deviations; the real proxies
//! are measured and reported, never asserted. Loopback only.

mod support;

use std::process::Command;

use support::{edge, sut_tls};

/// Suites take turns: two at once on two cores would time each other's frames out.
static SUITES: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Conformed {
    code: i32,
    report: serde_json::Value,
    junit: String,
    stdout: String,
    stderr: String,
}

fn conform(url: &str, extra: &[&str]) -> Conformed {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["conform", url, "--out"])
        .arg(dir.path())
        .args(extra)
        .output()
        .unwrap();
    let report = std::fs::read_to_string(dir.path().join("conform.json"))
        .map(|s| serde_json::from_str(&s).unwrap())
        .unwrap_or(serde_json::Value::Null);
    Conformed {
        code: o.status.code().unwrap_or(-1),
        report,
        junit: std::fs::read_to_string(dir.path().join("junit.xml")).unwrap_or_default(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Every failure of a lab server is an accepted deviation with its section and reason.
fn only_accepted(c: &Conformed, what: &str) {
    assert_eq!(c.code, 0, "{what}:\n{}{}", c.stdout, c.stderr);
    let r = &c.report;
    assert_eq!(r["schema"], "h2lab.conform/v1");
    assert!(r["total"].as_u64().unwrap() >= 100, "{what}: {r}");
    assert_eq!(r["unexpected"], 0, "{what}:\n{}", c.stdout);
    let passed = r["passed"].as_u64().unwrap();
    assert!(passed >= 85, "{what}: {passed} passed\n{}", c.stdout);
    for case in r["cases"].as_array().unwrap() {
        if case["passed"] == false {
            let d = &case["accepted"];
            assert!(
                d["section"].is_string() && case["why"].is_string(),
                "{what}: {case}"
            );
        }
    }
    assert!(
        c.junit
            .contains(&format!("tests=\"{}\" failures=\"0\"", r["total"])),
        "{}",
        c.junit
    );
}

#[test]
fn the_edge_over_h2c_fails_only_accepted_cases_and_the_exit_code_says_so() {
    let _turn = SUITES.lock().unwrap_or_else(|e| e.into_inner());
    let server = edge(&[]);
    let url = format!("http://{}", server.addr);
    let c = conform(&url, &["--lab"]);
    only_accepted(&c, "edge h2c");
    // The lab's engine passes every case: nothing needs accepting.
    assert_eq!(c.report["passed"], c.report["total"], "{}", c.stdout);
    // The malformed requests the edge rejects itself (RFC 9113 8.2.1, 8.3.1, 8.5) and a
    // client's PUSH_PROMISE (8.4) pass.
    let cases = c.report["cases"].as_array().unwrap();
    for name in [
        "sends headers frame with leading space in field value",
        "sends headers frame with mismatched host authority",
        "sends connect without authority",
        "client sends push promise frame",
    ] {
        let case = cases.iter().find(|x| x["name"] == name).unwrap();
        assert_eq!(case["passed"], true, "{case}");
    }
    // The hyper engine (h2 crate) fails some cases the known way: with --lab they are
    // accepted, without it nothing is, and the same failure fails the run.
    let hyper = edge(&["--h2-engine", "hyper"]);
    let url = format!("http://{}", hyper.addr);
    let c = conform(&url, &["--lab"]);
    only_accepted(&c, "edge h2c, hyper engine");
    assert!(c.report["accepted"].as_u64().unwrap() > 0, "{}", c.stdout);
    let strict = conform(&url, &["--filter", "sends ping frame with invalid length"]);
    assert_eq!(strict.code, 1, "{}{}", strict.stdout, strict.stderr);
    assert_eq!(strict.report["unexpected"], 1, "{}", strict.report);
    assert!(strict.stdout.contains("RFC 9113 §6"), "{}", strict.stdout);
    assert!(strict.junit.contains("<failure message=\"Expected GOAWAY"));
}

#[test]
fn the_edge_over_tls_with_both_stacks_fails_only_accepted_cases() {
    let _turn = SUITES.lock().unwrap_or_else(|e| e.into_inner());
    for stack in ["rustls", "openssl"] {
        let tls = sut_tls(stack, &[]);
        let url = format!("https://{}", tls.server.addr);
        let ca = tls.ca.display().to_string();
        let c = conform(&url, &["--lab", "--cacert", &ca]);
        only_accepted(&c, stack);
        assert_eq!(c.report["alpn"], serde_json::json!(["h2"]), "{stack}");
        assert_eq!(c.report["transport"], "h2 over TLS (relayed)");
    }
}

#[test]
fn conform_refuses_other_hosts_and_names_a_missing_suite() {
    let o = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["conform", "http://192.0.2.1:80"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("loopback"));
    let o = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["conform", "http://127.0.0.1:1"])
        .env("H2LAB_HTTPWG", "/nonexistent/httpwg")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr.contains("/nonexistent/httpwg") && stderr.contains("scripts/setup.sh"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_scenario_runs_the_suite_against_every_topology_and_the_report_lists_it() {
    let _turn = SUITES.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/conformance.toml");
    let out = dir.path().join("out");
    let o = support::run_scenario(std::path::Path::new(scenario), &out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("HTTP/2 conformance"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("verdict.json")).unwrap()).unwrap();
    let rows = v["conformance"].as_array().unwrap();
    assert_eq!(rows.len(), 9, "every cell ran the suite: {v}");
    for row in rows {
        let name = row["name"].as_str().unwrap();
        let o = &row["outcome"];
        assert!(o["total"].as_u64().unwrap() >= 100, "{name}: {o}");
        let real = ["nginx", "apache", "haproxy"]
            .iter()
            .any(|p| name.contains(p));
        if real {
            // Measured as configured; nothing of the lab's is accepted for them.
            assert_eq!(o["accepted"], 0, "{name}: {o}");
        } else {
            assert_eq!(o["unexpected"], 0, "{name}: {o}");
            assert_eq!(o["passed"], o["total"], "{name}: {o}");
        }
    }
    let report = dir.path().join("report");
    let o = support::report(&out, &report);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    // The lab's cells pass every case; the real proxies' failures are listed by section.
    assert!(html.contains("<h2>HTTP/2 conformance</h2>") && html.contains("§5"));
    let md = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(md.contains("## HTTP/2 conformance"));
}
