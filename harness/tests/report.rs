//! `h2lab report` on a real run: every file is written, the HTML is self-contained, every
//! SVG parses, suspicious cells are flagged, and headless Chromium (when installed, as
//! scripts/setup.sh does) renders a non-blank page.

use std::path::Path;
use std::process::Command;

fn run_scenario(dir: &Path) -> std::path::PathBuf {
    let scenario = dir.join("r.toml");
    std::fs::write(
        &scenario,
        "[scenario]\nname = \"rep\"\nduration = \"1s\"\nwarmup = \"200ms\"\nrepetitions = 2\n\
         [axes]\ntopology = [\"direct-edge\", \"in-process\"]\n\
         load = [{ connections = 2, rates = [100, 200] }]\n\
         request = [{ path = \"/delay/5\" }]\n\
         [negotiation]\ntopology = [\"direct-edge\"]\nclient_offer = [\"h2,http/1.1\", \"h2c\"]\n",
    )
    .unwrap();
    let out = dir.join("run");
    let st = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["run", "-q", "--out"])
        .arg(&out)
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    out
}

/// Distinct colours in a PNG (up to 50).
fn colours(path: &Path) -> usize {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let mut seen = std::collections::HashSet::new();
    for p in buf[..info.buffer_size()].chunks(info.color_type.samples()) {
        seen.insert(p.to_vec());
        if seen.len() >= 50 {
            break;
        }
    }
    seen.len()
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn report_writes_a_self_contained_page_with_charts_that_parse_and_render() {
    let t = tempfile::tempdir().unwrap();
    let run = run_scenario(t.path());
    let out = t.path().join("report");
    let st = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["report"])
        .arg(&run)
        .arg("--out")
        .arg(&out)
        .arg("--png")
        .output()
        .unwrap();
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    for f in [
        "spectrum.png",
        "throughput.png",
        "timeline.png",
        "sweep.png",
    ] {
        assert!(colours(&out.join(f)) > 5, "{f} is blank");
    }
    for f in [
        "index.html",
        "summary.md",
        "cells.csv",
        "spectrum.svg",
        "throughput.svg",
        "timeline.svg",
        "sweep.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    for f in [
        "spectrum.svg",
        "throughput.svg",
        "timeline.svg",
        "sweep.svg",
        "hops.svg",
    ] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(doc.descendants().count() > 20, "{f} is nearly empty");
    }
    // Each cell's spectrum line rises from p50 to the tail inside the plot: not clipped
    // to one edge.
    let text = std::fs::read_to_string(out.join("spectrum.svg")).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let lines: Vec<Vec<f64>> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .map(|n| {
            n.attribute("points")
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|p| p.split(',').nth(1)?.parse().ok())
                .collect()
        })
        .collect();
    assert_eq!(lines.len(), 4, "one line per cell");
    for ys in &lines {
        let (first, last) = (ys[0], ys[ys.len() - 1]);
        assert!(first > last, "the tail is above the median: {ys:?}");
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.matches("<svg").count() >= 4);
    for external in ["src=\"http", "href=\"http", "<link", "<script", "url(http"] {
        assert!(
            !html.contains(external),
            "index.html loads something: {external}"
        );
    }
    assert!(
        html.contains("Debian") || html.contains("os"),
        "environment missing"
    );
    assert!(html.contains("/delay/5"), "the scenario text is shown");
    // The scenario's [negotiation] section ran into the same directory: its heatmap shows.
    assert!(run.join("matrix.json").is_file());
    assert!(html.contains("HTTP/2 negotiation matrix"), "no heatmap");
    let csv = std::fs::read_to_string(out.join("cells.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4);
    assert!(csv.starts_with("cell,name,"), "{csv}");
    // The page opens with the verdict; cells carry readable names, their ids on hover.
    let (verdict, cells) = (
        html.find("<h2>Verdict</h2>").unwrap(),
        html.find("<h2>Cells</h2>").unwrap(),
    );
    assert!(verdict < cells);
    assert!(
        html.contains("ranked by p99, each against direct-edge"),
        "open loop ranks by p99"
    );
    assert!(
        html.contains("<td title=\"in-process."),
        "no full id on hover"
    );
    assert!(html.contains(">in-process · "), "no readable name");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("verdict.json")).unwrap()).unwrap();
    assert_eq!(v["schema"], "h2lab.verdict/v1");
    assert_eq!(
        v["workloads"].as_array().unwrap().len(),
        2,
        "one per offered rate"
    );
    let hops = std::fs::read_to_string(out.join("hops.svg")).unwrap();
    assert!(
        hops.contains("app") && hops.contains("rest"),
        "no breakdown legend"
    );

    let Some(browser) = chromium() else {
        eprintln!("chromium not installed (scripts/setup.sh installs it): render check skipped");
        return;
    };
    let shot = t.path().join("shot.png");
    let st = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,1600",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", out.join("index.html").display()))
        .env("HOME", t.path())
        .output()
        .unwrap();
    assert!(
        shot.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let n = colours(&shot);
    assert!(n > 20, "the screenshot is blank ({n} colours)");
}

/// A hand-made run whose one cell has errors, missed its rate and had a saturated
/// generator: all three are flagged.
#[test]
fn suspicious_cells_are_flagged() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    std::fs::create_dir_all(dir.join("c/r1")).unwrap();
    let result = serde_json::json!({
        "schema": "h2lab.result/v1",
        "summary": { "requests": 1000, "errors": 50, "rps": 500.0, "target_rps": 1000.0,
                     "generator_bound": true, "generator_bound_reason": "generator CPU 99%" },
        "latency_us": { "p50": 1000, "p99": 2000, "p999": 3000 },
    });
    std::fs::write(dir.join("c/r1/result.json"), result.to_string()).unwrap();
    let manifest = serde_json::json!({
        "schema": "h2lab.manifest/v1", "run_id": "fixture", "scenario": "",
        "environment": { "os": "test" },
        "plan": { "cells": [{ "id": "bad", "axes": { "topology": "direct-edge" } }] },
        "cells": [{ "cell": "bad", "rep": 1, "status": "ok", "dir": "c/r1" }],
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["report"])
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let md = std::fs::read_to_string(dir.join("report/summary.md")).unwrap();
    for needle in [
        "Suspicious cells",
        "error rate up to 5.0%",
        "achieved 500 of 1000",
        "generator CPU 99%",
    ] {
        assert!(md.contains(needle), "{needle}: {md}");
    }
    let html = std::fs::read_to_string(dir.join("report/index.html")).unwrap();
    assert!(html.contains("class=\"flag\""));
}

#[test]
fn report_of_a_missing_or_foreign_directory_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["report"])
        .arg(t.path())
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&st.stderr).contains("manifest.json"));
}
