//! The survival matrix for real: every topology (the lab's edge, its own proxy, the
//! in-process and out-of-process hosts, and real nginx, Apache and HAProxy as the lab's
//! templates configure them) under a legitimate HTTP/2-over-TLS load, against a PING flood
//! and Rapid Reset. The lab's servers must hold and cut the attacker off with
//! ENHANCE_YOUR_CALM; the real proxies are measured and reported, never asserted.
//! Short, bounded phases (1 s each); loopback only.

mod support;

use std::path::Path;

const LAB: [&str; 4] = [
    "direct-edge",
    "reverse-proxy:sut",
    "in-process",
    "out-of-process",
];
const REAL: [&str; 3] = [
    "reverse-proxy:nginx",
    "reverse-proxy:apache",
    "reverse-proxy:haproxy",
];
const ATTACKS: [&str; 2] = ["ping-flood", "rapid-reset"];

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_survival_matrix_holds_for_the_lab_and_measures_the_real_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("survival.toml");
    let topologies: Vec<String> = LAB.iter().chain(&REAL).map(|t| format!("{t:?}")).collect();
    std::fs::write(
        &scenario,
        format!(
            r#"[scenario]
name = "survival-test"
duration = "1s"
[axes]
topology = [{}]
server_tls = ["rustls"]
cert = ["ecdsa"]
client_offer = ["h2"]
load = [{{ connections = 2, rate = 200 }}]
request = [{{ path = "/plaintext" }}]
attack = {ATTACKS:?}
[attack]
after = "500ms"
# A debug build on two shared cores: the bound is about being cut off, not about noise.
p99_bound = 10
"#,
            topologies.join(", ")
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = support::run_scenario(&scenario, &out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("survival matrix"), "{stdout}");

    let v = json(&out.join("verdict.json"));
    let s = &v["survival"];
    assert_eq!(s["attacks"], serde_json::json!(ATTACKS), "{s}");
    let rows = s["rows"].as_array().unwrap();
    assert_eq!(rows.len(), LAB.len() + REAL.len(), "{s}");
    for row in rows {
        let name = row["name"].as_str().unwrap();
        for (attack, c) in ATTACKS.iter().zip(row["cells"].as_array().unwrap()) {
            assert_eq!(c["repetitions"], 1, "{name} x {attack} measured: {c}");
            assert!(c["p99_ratio"].as_f64().unwrap() > 0.0, "{name}: {c}");
            assert!(c["ending"].is_string(), "{name} x {attack}: {c}");
            if LAB.contains(&name) {
                assert_eq!(c["held"], true, "{name} x {attack}: {c}");
                assert_eq!(c["ending"], "GOAWAY ENHANCE_YOUR_CALM", "{name}: {c}");
            }
        }
    }
    let held: Vec<&str> = s["held_everywhere"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(LAB.iter().all(|t| held.contains(t)), "{held:?}");

    let report = dir.path().join("report");
    let o = support::report(&out, &report);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(report.join("survival.svg")).unwrap();
    for t in LAB.iter().chain(&REAL).chain(&ATTACKS) {
        assert!(svg.contains(t), "{t} in the heatmap");
    }
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("<h2>Survival matrix</h2>"));
    let md = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(md.contains("## Survival matrix") && md.contains("| reverse-proxy:nginx |"));
}
