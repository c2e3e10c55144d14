//! Distributed load for real on one machine: the Job `h2lab k8s render` writes, run with
//! each agent in its own network namespace and given exactly its pod's environment,
//! against a target in another namespace that checks every scheduled index arrives once;
//! the pods' logs collected and merged; and the rendered manifests validated against
//! the Kubernetes schemas of two versions.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use support::netns::{self, Lab, TARGET_IP};

/// One namespace lab at a time: each runs several generators on this machine's cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn h2lab() -> &'static str {
    env!("CARGO_BIN_EXE_h2lab")
}

fn run(args: &[&str]) -> Output {
    Command::new(h2lab())
        .args(args)
        .output()
        .expect("run h2lab")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The target: HTTP/1.1 (hyper) in its own namespace, recording each request's
/// `x-seq` header.
struct Target {
    seen: Arc<Mutex<Vec<u64>>>,
    requests: Arc<AtomicU64>,
    port: u16,
    _runtime: tokio::runtime::Runtime,
}

fn target(lab: &Lab) -> Target {
    let listener = lab.listen(&lab.target, SocketAddr::from((TARGET_IP, 0)));
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let requests = Arc::new(AtomicU64::new(0));
    let (record, count) = (seen.clone(), requests.clone());
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (record, count) = (record.clone(), count.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        count.fetch_add(1, Ordering::Relaxed);
                        if let Some(n) = req
                            .headers()
                            .get("x-seq")
                            .and_then(|v| v.to_str().ok()?.parse().ok())
                        {
                            record.lock().unwrap().push(n);
                        }
                        async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                            ))
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Target {
        seen,
        requests,
        port,
        _runtime: runtime,
    }
}

/// What the rendered Job gives each pod: its container's arguments and environment.
struct Pod {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn render(dir: &Path, flags: &[&str], load: &[String]) -> Pod {
    let out_dir = dir.display().to_string();
    let mut args = vec!["k8s", "render", "--image", "h2lab:test", "--out", &out_dir];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend(load.iter().map(String::as_str));
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out));
    let job: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("job.json")).unwrap()).unwrap();
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"][0], "h2lab");
    Pod {
        args: c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect(),
        env: c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["value"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    }
}

/// Starts pod `i` of `pod` in its namespace, its log (stdout and stderr, as `kubectl
/// logs` shows them) going to `log`.
fn start_pod(lab: &Lab, pod: &Pod, i: usize, log: &Path) -> std::process::Child {
    let mut env = pod.env.clone();
    env.push(("JOB_COMPLETION_INDEX".into(), i.to_string()));
    env.push(("HOSTNAME".into(), format!("h2lab-load-{i}")));
    env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    let file = std::fs::File::create(log).unwrap();
    lab.command(&lab.agents[i], &env, h2lab(), &pod.args)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start agent")
}

fn hlog_total(path: &Path) -> hdrhistogram::Histogram<u64> {
    let totals = h2lab::record::hlog::read_totals(&std::fs::read(path).unwrap()).unwrap();
    totals["latency"].clone()
}

fn skip() -> bool {
    match netns::unavailable() {
        Some(why) => {
            eprintln!("skipping: {why} (run the tests as root to put each agent in its own network namespace)");
            true
        }
        None => false,
    }
}

const RATE: u64 = 600;
const SECONDS: u64 = 3;

#[test]
fn three_weighted_agents_in_their_namespaces_send_every_index_once_and_merge_exactly() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip() {
        return;
    }
    let hosts = [("h2lab-load-0.h2lab-load".to_string(), netns::agent_ip(0))];
    let lab = Lab::new(3, &hosts);
    let target = target(&lab);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{TARGET_IP}:{}/", target.port);
    let load: Vec<String> = [
        "-r",
        &RATE.to_string(),
        "-c",
        "8",
        "-d",
        &format!("{SECONDS}s"),
        "--seq-header",
        "x-seq",
        &url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let pod = render(
        &dir.path().join("manifests"),
        &[
            "--agents",
            "3",
            "--weights",
            "2,1,1",
            "--release-timeout",
            "30s",
        ],
        &load,
    );
    assert!(pod
        .env
        .iter()
        .any(|(k, v)| k == "H2LAB_RELEASE_FROM" && v == "h2lab-load-0.h2lab-load:7070"));

    let logs: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("pod-{i}.log")))
        .collect();
    let mut pods: Vec<_> = (0..3).map(|i| start_pod(&lab, &pod, i, &logs[i])).collect();
    for (i, p) in pods.iter_mut().enumerate() {
        let status = p.wait().unwrap();
        assert!(
            status.success(),
            "agent {i}: {status}\n{}",
            std::fs::read_to_string(&logs[i]).unwrap()
        );
    }

    // The target saw every index of the schedule exactly once.
    let mut seen = target.seen.lock().unwrap().clone();
    seen.sort_unstable();
    let expected: Vec<u64> = (0..RATE * SECONDS).collect();
    if seen != expected {
        let mut count: BTreeMap<u64, u32> = BTreeMap::new();
        for n in &seen {
            *count.entry(*n).or_default() += 1;
        }
        let twice: Vec<_> = count
            .iter()
            .filter(|(_, &c)| c > 1)
            .map(|(n, _)| n)
            .take(10)
            .collect();
        let missing: Vec<_> = expected
            .iter()
            .filter(|n| !count.contains_key(n))
            .take(10)
            .collect();
        panic!(
            "{} indices arrived; twice: {twice:?}; missing: {missing:?}",
            seen.len()
        );
    }

    let out_dir = dir.path().join("merged");
    let mut args = vec![
        "k8s".to_string(),
        "collect".into(),
        "--out".into(),
        out_dir.display().to_string(),
        "--logs".into(),
    ];
    args.extend(logs.iter().map(|l| l.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let collected = run(&args);
    assert!(collected.status.success(), "{}", text(&collected));
    let printed = String::from_utf8_lossy(&collected.stdout);
    assert!(printed.contains("merged 3 agents"), "{printed}");

    let cell = out_dir.join("cells/merged/rep-1");
    let merged = hlog_total(&cell.join("latency.hlog"));
    assert_eq!(
        merged.len(),
        RATE * SECONDS,
        "the merged log holds rate x duration latencies"
    );
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cell.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["summary"]["requests"], RATE * SECONDS);
    assert_eq!(result["latency_us"]["p99"], merged.value_at_quantile(0.99));
    let agents = result["agents"].as_array().unwrap();
    let requests: Vec<u64> = agents
        .iter()
        .map(|a| a["requests"].as_u64().unwrap())
        .collect();
    assert_eq!(
        requests,
        vec![RATE * SECONDS / 2, RATE * SECONDS / 4, RATE * SECONDS / 4],
        "weights 2,1,1"
    );
    for a in agents {
        assert_eq!(a["agent"]["start"], "release");
        assert!(a["agent"]["host"]
            .as_str()
            .unwrap()
            .starts_with("h2lab-load-"));
    }

    // p99 of the merged run against one generator sending the same total rate.
    let single = dir.path().join("single.json");
    let alone = lab
        .command(
            &lab.agents[0],
            &[("PATH".into(), "/usr/bin:/bin".into())],
            h2lab(),
            &{
                let mut a: Vec<String> = vec![
                    "load".into(),
                    "--quiet".into(),
                    "--json".into(),
                    single.display().to_string(),
                ];
                a.extend(load.iter().cloned());
                a
            },
        )
        .output()
        .unwrap();
    assert!(alone.status.success(), "{}", text(&alone));
    let alone: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&single).unwrap()).unwrap();
    let (p99_one, p99_merged) = (
        alone["latency_us"]["p99"].as_f64().unwrap(),
        result["latency_us"]["p99"].as_f64().unwrap(),
    );
    eprintln!("p99: merged {p99_merged} us, one generator {p99_one} us");
    // Within noise: a 2-core machine running three generators beside the target.
    assert!(
        p99_merged <= p99_one * 4.0 + 2000.0 && p99_one <= p99_merged * 4.0 + 2000.0,
        "p99 merged {p99_merged} us, one generator {p99_one} us"
    );

    // The merged run is a results directory like any other.
    let report = run(&["report", &out_dir.display().to_string()]);
    assert!(report.status.success(), "{}", text(&report));
    let summary = std::fs::read_to_string(out_dir.join("report/summary.md")).unwrap();
    assert!(summary.contains("merged"), "{summary}");
    assert!(out_dir.join("report/index.html").exists());
    let compared = run(&[
        "compare",
        &out_dir.display().to_string(),
        &out_dir.display().to_string(),
    ]);
    assert!(compared.status.success(), "{}", text(&compared));
    assert!(std::fs::read_to_string(out_dir.join("agents.md"))
        .unwrap()
        .contains("| 2/3 |"));
}

#[test]
fn an_agent_that_starts_past_the_tolerance_fails_the_run_with_its_message() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip() {
        return;
    }
    let lab = Lab::new(3, &[]);
    let target = target(&lab);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{TARGET_IP}:{}/", target.port);
    let load: Vec<String> = ["-r", "300", "-c", "3", "-d", "1s", &url]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // T0 far enough ahead for two agents to start in time.
    let t0 = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    let t0 = format!(
        "{:.3}",
        t0.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    );
    let pod = render(
        &dir.path().join("manifests"),
        &[
            "--agents",
            "3",
            "--start-at",
            &t0,
            "--start-tolerance",
            "500ms",
        ],
        &load,
    );
    let logs: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("pod-{i}.log")))
        .collect();
    let mut early: Vec<_> = (0..2).map(|i| start_pod(&lab, &pod, i, &logs[i])).collect();
    for p in &mut early {
        assert!(p.wait().unwrap().success());
    }
    // Agent 2's pod came up after the others had finished.
    let late = start_pod(&lab, &pod, 2, &logs[2])
        .wait_with_output()
        .unwrap();
    assert_eq!(
        late.status.code(),
        Some(3),
        "{}",
        std::fs::read_to_string(&logs[2]).unwrap()
    );
    let message = std::fs::read_to_string(&logs[2]).unwrap();
    assert!(
        message.contains("agent 2 of 3") && message.contains("after T0"),
        "{message}"
    );
    // Only the two agents in time sent: their two thirds of 300 requests.
    assert_eq!(target.requests.load(Ordering::Relaxed), 200);

    let logs_s: Vec<String> = logs.iter().map(|l| l.display().to_string()).collect();
    let mut args = vec!["k8s", "collect", "--out"];
    let out = dir.path().join("merged").display().to_string();
    args.push(&out);
    args.push("--logs");
    args.extend(logs_s.iter().map(String::as_str));
    let collected = run(&args);
    assert_eq!(collected.status.code(), Some(2), "{}", text(&collected));
    let err = String::from_utf8_lossy(&collected.stderr);
    assert!(
        err.contains("pod-2.log: no h2lab agent results") && err.contains("agent 2 of 3"),
        "{err}"
    );
    // Without the late pod's log, the merge names the missing agent.
    let collected = run(&args[..args.len() - 1]);
    assert_eq!(collected.status.code(), Some(2), "{}", text(&collected));
    assert!(
        String::from_utf8_lossy(&collected.stderr).contains("agents 2 of 3 are missing"),
        "{}",
        text(&collected)
    );
    assert!(
        !Path::new(&out).join("manifest.json").exists(),
        "nothing is merged from a failed run"
    );
}

fn kubernetes_validate() -> Option<PathBuf> {
    let tool = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.tools/venv/bin/kubernetes-validate"
    ))
    .to_path_buf();
    if tool.exists() {
        return Some(tool);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "kubernetes-validate is installed by scripts/setup.sh in CI"
    );
    eprintln!("skipping: kubernetes-validate is not installed (scripts/setup.sh)");
    None
}

/// Kubernetes versions the manifests are checked against.
const VERSIONS: [&str; 2] = ["1.29", "1.34"];

fn validate(tool: &Path, files: &[PathBuf]) -> Output {
    let mut c = Command::new(tool);
    c.arg("--strict");
    for v in VERSIONS {
        c.args(["-k", v]);
    }
    c.args(files).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn every_rendered_manifest_is_valid_for_two_kubernetes_versions_in_strict_mode() {
    let Some(tool) = kubernetes_validate() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let variants: [&[&str]; 3] = [
        &["--agents", "4"],
        &[
            "--agents",
            "3",
            "--weights",
            "2,1,1",
            "--start-at",
            "2030-01-01T00:00:00Z",
            "--results-claim",
            "h2lab-results",
            "--namespace",
            "perf",
        ],
        &[
            "--agents",
            "1",
            "--cpu",
            "500m",
            "--memory",
            "1Gi",
            "--deadline",
            "20m",
            "--name",
            "nightly",
        ],
    ];
    let mut files = Vec::new();
    for (k, flags) in variants.iter().enumerate() {
        let out_dir = dir.path().join(format!("v{k}"));
        let out_s = out_dir.display().to_string();
        let mut args = vec![
            "k8s",
            "render",
            "--image",
            "registry.example/h2lab:1",
            "--out",
            &out_s,
        ];
        args.extend_from_slice(flags);
        args.extend([
            "--",
            "-r",
            "1000",
            "-c",
            "8",
            "-d",
            "30s",
            "http://app.perf.svc:8080/",
        ]);
        let out = run(&args);
        assert!(out.status.success(), "{}", text(&out));
        files.push(out_dir.join("job.json"));
        files.push(out_dir.join("service.json"));
    }
    let out = validate(&tool, &files);
    let said = text(&out);
    assert!(
        out.status.success() && !said.contains("WARN") && !said.contains("ERROR"),
        "{said}"
    );
    for f in &files {
        assert!(said.contains(&f.display().to_string()), "{said}");
    }

    // The check has teeth: a field Kubernetes does not know fails strict validation.
    let mut job: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    job["spec"]["completionsMode"] = "Indexed".into();
    let bad = dir.path().join("bad-job.json");
    std::fs::write(&bad, serde_json::to_vec(&job).unwrap()).unwrap();
    let out = validate(&tool, &[bad]);
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn collect_without_a_cluster_or_results_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "k8s",
        "collect",
        "--kubectl",
        "/nonexistent/kubectl",
        "--job",
        "load",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot run `/nonexistent/kubectl`"),
        "{}",
        text(&out)
    );
    let out = run(&[
        "k8s",
        "collect",
        "--volume",
        &dir.path().display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("neither an agent's directory"),
        "{}",
        text(&out)
    );
}
