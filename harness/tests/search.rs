//! Capacity search against a server whose capacity is known by construction: `sut edge
//! --serial-service 2ms` serves one request at a time for exactly 2 ms, so it can take
//! 500 requests/s and no more. The search lands within 10% of it, says why it stopped,
//! and writes every step in search.json.

mod support;

use support::edge;

/// The searches take turns: two open loops on two cores would make each other's generator
/// fall behind.
static REAL_RUNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_search_finds_a_known_capacity_within_ten_percent() {
    let _one_at_a_time = REAL_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let server = edge(&["--serial-service", "2ms"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("search.json");
    let url = format!("http://{}/plaintext", server.addr);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args([
            "search",
            &url,
            "--slo",
            "p99 < 20ms",
            "--slo",
            "error_rate < 1%",
        ])
        .args(["--start", "100", "--precision", "2%", "-c", "32", "-q"])
        .args([
            "-d",
            "1s",
            "--warmup",
            "500ms",
            "--cooldown",
            "200ms",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["schema"], "h2lab.search/v1");
    assert_eq!(doc["limit"], "slo");
    let capacity = doc["capacity"]["median"].as_f64().unwrap();
    assert!(
        (450.0..=550.0).contains(&capacity),
        "capacity {capacity} req/s, 500 by construction"
    );
    assert!(
        stdout.contains(&format!("capacity {capacity:.0} req/s")),
        "{stdout}"
    );
    let steps = doc["searches"][0]["steps"].as_array().unwrap();
    // A step where the generator fell behind is measured once more: count each rate once.
    let mut rates: Vec<f64> = steps.iter().map(|s| s["rate"].as_f64().unwrap()).collect();
    rates.dedup();
    assert_eq!(
        &rates[..4],
        [100.0, 200.0, 400.0, 800.0],
        "grows by the factor"
    );
    // Every step above capacity failed, every one below passed.
    for s in steps.iter().filter(|s| s["generator_bound"] == false) {
        let rate = s["rate"].as_f64().unwrap();
        assert_eq!(s["pass"], rate <= capacity, "{s}");
        assert!(s["p99_us"].as_f64().is_some() && s["achieved"].as_f64().is_some());
    }
    let failing = doc["searches"][0]["first_failing"].as_f64().unwrap();
    assert!(
        (failing - capacity) / capacity <= 0.02 + 1e-9,
        "bisected to 2%"
    );
}

#[test]
fn a_search_without_an_slo_or_with_a_rate_is_refused() {
    let _one_at_a_time = REAL_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    for args in [
        vec!["search", "http://127.0.0.1:9/"],
        vec![
            "search",
            "http://127.0.0.1:9/",
            "--slo",
            "p99 < 1ms",
            "-r",
            "100",
        ],
        vec!["search", "http://127.0.0.1:9/", "--slo", "p99 < soon"],
        vec![
            "search",
            "http://127.0.0.1:9/",
            "--slo",
            "p99 < 1ms",
            "--factor",
            "1",
        ],
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_h2lab"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn a_scenario_search_records_capacity_ranks_by_it_and_draws_the_curve() {
    let _one_at_a_time = REAL_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let scenario = t.path().join("s.toml");
    std::fs::write(
        &scenario,
        "[scenario]\nname = \"cap\"\nduration = \"1s\"\nrepetitions = 1\n[axes]\n\
         topology = [\"direct-edge\", \"reverse-proxy:sut\"]\n\
         load = [{ connections = 8, search = { slo = [\"p99 < 100ms\"], start = 100, max = 400, step = \"1s\", step_warmup = \"200ms\", cooldown = \"100ms\" } }]\n",
    )
    .unwrap();
    let run = t.path().join("run");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["run", "-q", "--out"])
        .arg(&run)
        .arg(&scenario)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("ranked by capacity"), "{stdout}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    for rec in manifest["cells"].as_array().unwrap() {
        assert_eq!(rec["capacity"], 400.0, "both take the maximum: {rec}");
        let dir = run.join(rec["dir"].as_str().unwrap());
        let search: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("search.json")).unwrap())
                .unwrap();
        assert_eq!(search["limit"], "max");
        assert!(dir.join("result.json").is_file() && dir.join("latency.hlog").is_file());
    }
    let verdict: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("verdict.json")).unwrap()).unwrap();
    let entries = verdict["workloads"][0]["entries"].as_array().unwrap();
    assert_eq!(verdict["workloads"][0]["ranked_by"], "capacity");
    assert!(
        entries.iter().all(|e| e["capacity"]["value"] == 400.0),
        "{entries:?}"
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .arg("report")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let svg = std::fs::read_to_string(run.join("report/capacity.svg")).unwrap();
    assert!(
        svg.contains("SLO p99 &lt; 100 ms") || svg.contains("SLO p99 < 100 ms"),
        "no SLO line"
    );
    assert!(svg.contains("capacity 400/s"), "no capacity in the legend");
}
