//! `h2lab run` end to end on the embedded servers: results for every cell, the protocol
//! that reached the app through each topology, no process left behind, a topology that
//! fails to start recorded while the rest completes, and an interrupted run leaving a
//! valid manifest.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::leftovers;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn short_scenario(dir: &Path, topologies: &str) -> std::path::PathBuf {
    let path = dir.join("s.toml");
    std::fs::write(
        &path,
        format!(
            "[scenario]\nname = \"t\"\nduration = \"1s\"\nwarmup = \"200ms\"\nrepetitions = 2\n[axes]\ntopology = [{topologies}]\nload = [{{ connections = 4, streams = 4 }}]\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn quick_scenario_runs_every_cell_and_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let status = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["run", "-q", "--out"])
        .arg(&out)
        .arg(repo().join("scenarios/quick.toml"))
        .status()
        .unwrap();
    assert!(status.success());
    let m = json(&out.join("manifest.json"));
    assert_eq!(m["schema"], "h2lab.manifest/v1");
    assert_eq!(m["complete"], true);
    assert!(m["environment"]["openssl"]
        .as_str()
        .unwrap()
        .contains("OpenSSL"));
    let cells = m["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for c in cells {
        assert_eq!(c["status"], "ok", "{c}");
        assert!(
            c["start_s"].as_f64().unwrap() < 1.0 && c["stop_s"].as_f64().unwrap() < 1.0,
            "orchestration overhead: {c}"
        );
        let cell_dir = out.join(c["dir"].as_str().unwrap());
        let result = json(&cell_dir.join("result.json"));
        assert_eq!(result["schema"], "h2lab.result/v1");
        assert!(result["summary"]["ok"].as_u64().unwrap() > 0);
        assert_eq!(
            result["negotiated"]["protocol"], "h2",
            "HTTP/2 at the edge: {c}"
        );
        assert!(cell_dir.join("latency.hlog").exists());
        // Which protocol reached the app, and whether https was restored.
        let info = json(&cell_dir.join("info.json"));
        let id = c["cell"].as_str().unwrap();
        let (expect, scheme) =
            if id.starts_with("reverse-proxy") || id.starts_with("out-of-process") {
                ("HTTP/1.1", "https")
            } else {
                ("HTTP/2", "https")
            };
        assert_eq!(info["http_version"], expect, "{id}");
        assert_eq!(info["scheme"], scheme, "{id}");
    }
    let left = leftovers(m["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_topology_that_fails_to_start_is_recorded_and_the_rest_completes() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = short_scenario(dir.path(), "\"in-process\", \"direct-edge\"");
    let out = dir.path().join("run");
    let status = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["run", "-q", "--pin", "--out"])
        .arg(&out)
        .arg(&scenario)
        .env("H2LAB_FAULT_START", "in-process")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1), "a failed cell makes the run exit 1");
    let m = json(&out.join("manifest.json"));
    let cells = m["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4, "both cells, two interleaved repetitions");
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if cpus > 1 {
        assert_eq!(m["pinning"]["enabled"], true);
        assert_eq!(m["pinning"]["server_core"], cpus - 1);
        let ok = cells.iter().find(|c| c["status"] == "ok").unwrap();
        let r = json(&out.join(ok["dir"].as_str().unwrap()).join("result.json"));
        assert_eq!(
            r["config"]["cpu_affinity"].as_array().unwrap().len(),
            cpus - 1,
            "generator on the other cores"
        );
    }
    for c in cells {
        assert!(
            c["leftover_processes"].as_array().unwrap().is_empty(),
            "{c}"
        );
    }
    let order: Vec<&str> = cells
        .iter()
        .map(|c| c["cell"].as_str().unwrap().split('.').next().unwrap())
        .collect();
    assert_eq!(
        order,
        ["in-process", "direct-edge", "in-process", "direct-edge"],
        "interleaved A B A B"
    );
    for c in cells {
        if c["cell"].as_str().unwrap().starts_with("in-process") {
            assert_eq!(c["status"], "failed");
            assert!(
                c["reason"].as_str().unwrap().contains("did not start"),
                "{c}"
            );
        } else {
            assert_eq!(c["status"], "ok", "{c}");
        }
    }
    assert!(leftovers(m["run_id"].as_str().unwrap()).is_empty());
}

#[test]
fn an_interrupted_run_leaves_a_valid_manifest_of_completed_cells() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = short_scenario(
        dir.path(),
        "\"direct-edge\", \"in-process\", \"reverse-proxy:sut\"",
    );
    let out = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["run", "--out"])
        .arg(&out)
        .arg(&scenario)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first progress line means one cell is complete and in the manifest.
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let first = lines.next().expect("a progress line").unwrap();
    assert!(first.starts_with("[1/6]"), "{first}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "run did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let m = json(&out.join("manifest.json"));
    assert_eq!(m["interrupted"], true);
    assert_eq!(m["complete"], false);
    let n = m["cells"].as_array().unwrap().len();
    assert!((1..6).contains(&n), "{n} cells recorded");
    let left = leftovers(m["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn peer_engines_sit_beside_h2lab_in_the_same_results() {
    let have = |t: &str| {
        std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .any(|d| Path::new(d).join(t).is_file())
    };
    if !(have("wrk") && have("h2load")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "wrk and h2load are installed by scripts/setup.sh in CI"
        );
        eprintln!("skipping: wrk or h2load not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("p.toml");
    std::fs::write(
        &scenario,
        "[scenario]\nname = \"peers\"\nduration = \"1s\"\nengines = [\"h2lab\", \"wrk\", \"h2load\"]\n[axes]\ntopology = [\"direct-edge\"]\nserver_tls = [\"none\"]\nclient_offer = [\"h1\", \"h2c\"]\nload = [{ connections = 4, streams = 2 }]\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let status = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["run", "-q", "--out"])
        .arg(&out)
        .arg(&scenario)
        .status()
        .unwrap();
    assert!(status.success());
    let m = json(&out.join("manifest.json"));
    let mut tools = std::collections::BTreeMap::new();
    for c in m["cells"].as_array().unwrap() {
        let id = c["cell"].as_str().unwrap();
        if id.contains(".h2c.") && id.ends_with(".wrk") {
            assert_eq!(c["status"], "skipped", "wrk cannot speak h2c: {c}");
            assert!(c["reason"].as_str().unwrap().contains("HTTP/1.1 only"));
            continue;
        }
        assert_eq!(c["status"], "ok", "{c}");
        let r = json(&out.join(c["dir"].as_str().unwrap()).join("result.json"));
        assert_eq!(r["schema"], "h2lab.result/v1");
        assert!(r["summary"]["ok"].as_u64().unwrap() > 0, "{id}");
        let name = r["tool"]["name"].as_str().unwrap().to_string();
        assert!(!r["tool"]["version"].as_str().unwrap().is_empty());
        *tools.entry(name).or_insert(0) += 1;
    }
    assert_eq!(tools.get("h2lab"), Some(&2));
    assert_eq!(tools.get("wrk"), Some(&1));
    assert_eq!(tools.get("h2load"), Some(&2));
}

#[test]
fn real_proxies_in_a_run_forward_http11_and_the_app_restores_https() {
    let installed = h2lab_common::launch::ProxyKind::ALL
        .iter()
        .all(|k| k.find().is_some());
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx, apache2 and haproxy are installed by scripts/setup.sh in CI"
        );
        eprintln!("skipping: a real proxy is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = short_scenario(
        dir.path(),
        "\"reverse-proxy:nginx\", \"reverse-proxy:apache\", \"reverse-proxy:haproxy\"",
    );
    let out = dir.path().join("run");
    let status = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["run", "-q", "--out"])
        .arg(&out)
        .arg(&scenario)
        .status()
        .unwrap();
    assert!(status.success());
    let m = json(&out.join("manifest.json"));
    assert!(m["environment"]["proxies"]["nginx"]
        .as_str()
        .unwrap()
        .contains("nginx"));
    let cells = m["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 6);
    for c in cells {
        assert_eq!(c["status"], "ok", "{c}");
        let d = out.join(c["dir"].as_str().unwrap());
        let info = json(&d.join("info.json"));
        assert_eq!(
            (info["http_version"].as_str(), info["scheme"].as_str()),
            (Some("HTTP/1.1"), Some("https")),
            "{c}"
        );
        assert_eq!(
            json(&d.join("result.json"))["negotiated"]["protocol"],
            "h2",
            "{c}"
        );
    }
    assert!(leftovers(m["run_id"].as_str().unwrap()).is_empty());
}

#[test]
fn bad_variant_flags_exit_2_naming_the_flag_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = short_scenario(dir.path(), "\"direct-edge\"");
    let out_dir = dir.path().join("out");
    for (flags, says) in [
        (vec!["--variant", "a"], "two or more"),
        (vec!["--variant", "a", "--variant", "a"], "named twice"),
        (
            vec!["--variant", "a", "--variant", "../b"],
            "--variant `../b`",
        ),
        (
            vec!["--variant", "a", "--variant", "b", "--variant-env", "c:K=V"],
            "no --variant named `c`",
        ),
        (
            vec![
                "--variant",
                "a",
                "--variant",
                "b",
                "--variant-sut",
                "b:/no/sut",
            ],
            "/no/sut is not a file",
        ),
        (vec!["--variant-env", "a:K=V"], "--variant-env"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_h2lab"))
            .args(["run", "-q", "--out"])
            .arg(&out_dir)
            .args(&flags)
            .arg(&scenario)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(says), "{flags:?}: {err}");
        assert!(!out_dir.exists(), "{flags:?} started a run");
    }
}
