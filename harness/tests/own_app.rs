//! A user's own app in the lab's topologies, with programs no one in this project wrote:
//! Python's `http.server` and hypercorn (from PyPI, installed by scripts/setup.sh) behind
//! nginx, the lab's own proxy and the out-of-process module, every cell ok, the hop each
//! front was configured for seen in the app's own access log; an app that never gets
//! ready, or exits first, fails its cell with its log tail and leaves nothing running;
//! an external target with its own CA works with `cacert` and says what to do without.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::leftovers;

fn repo() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

fn fixtures() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).to_path_buf()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// A finished `h2lab run`: exit code, results directory, manifest.
struct Ran {
    code: i32,
    out: PathBuf,
    manifest: serde_json::Value,
    stderr: String,
    _dir: tempfile::TempDir,
}

impl Ran {
    fn cells(&self) -> &Vec<serde_json::Value> {
        self.manifest["cells"].as_array().unwrap()
    }

    fn cell(&self, topology: &str) -> &serde_json::Value {
        let slug = topology.replace(':', "-");
        self.cells()
            .iter()
            .find(|c| c["cell"].as_str().unwrap().starts_with(&format!("{slug}.")))
            .unwrap_or_else(|| panic!("no {topology} cell in {:?}", self.cells()))
    }

    fn app_log(&self, topology: &str) -> String {
        let dir = self.out.join(self.cell(topology)["dir"].as_str().unwrap());
        std::fs::read_to_string(dir.join("app.log")).unwrap_or_default()
    }
}

/// Runs a scenario written into a fresh directory (relative paths start there).
fn run(scenario: &str) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, scenario).unwrap();
    let out = dir.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["run", "-q", "--out"])
        .arg(&out)
        .arg(&path)
        .output()
        .unwrap();
    let manifest = json(&out.join("manifest.json"));
    let left = leftovers(manifest["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "processes left: {left:?}");
    Ran {
        code: o.status.code().unwrap_or(-1),
        out,
        manifest,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        _dir: dir,
    }
}

/// Whether CI's packages are here; outside CI a missing one skips the test.
fn have(what: &str, found: bool) -> bool {
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is installed by scripts/setup.sh in CI"
        );
        eprintln!("skipping: {what} is not installed (scripts/setup.sh)");
    }
    found
}

fn hypercorn() -> PathBuf {
    repo().join(".tools/venv/bin/hypercorn")
}

const FRONTS: &str = r#"topology = ["reverse-proxy:nginx", "reverse-proxy:sut", "out-of-process"]"#;

#[test]
fn python_http_server_serves_through_nginx_the_own_proxy_and_the_module() {
    if !have(
        "nginx",
        h2lab_common::launch::ProxyKind::Nginx.find().is_some(),
    ) {
        return;
    }
    let site = repo().join("scenarios/own-app/site");
    let ran = run(&format!(
        r#"[scenario]
name = "pyhttp"
duration = "1s"
warmup = "200ms"
[app]
command = ["python3", "-m", "http.server", "{{port}}", "--bind", "127.0.0.1"]
cwd = "{}"
[axes]
{FRONTS}
load = [{{ connections = 4, streams = 2 }}]
request = [{{ path = "/hello.txt", headers = {{ x-test = "own-app" }} }}]
"#,
        site.display()
    ));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.cells().len(), 3);
    for c in ran.cells() {
        assert_eq!(c["status"], "ok", "{c}");
        assert_eq!(c["app_protocol"], "HTTP/1.1", "{c}");
        assert_eq!(c["app_protocol_source"], "configured", "{c}");
        let d = ran.out.join(c["dir"].as_str().unwrap());
        let r = json(&d.join("result.json"));
        assert!(r["status"]["200"].as_u64().unwrap() > 0, "{r}");
        assert!(r["errors"].as_object().unwrap().is_empty(), "{r}");
        assert!(
            !d.join("info.json").exists(),
            "a user's app is not asked for /info"
        );
    }
    for t in ["reverse-proxy:nginx", "reverse-proxy:sut", "out-of-process"] {
        let log = ran.app_log(t);
        assert!(
            log.contains("\"GET /hello.txt HTTP/1.1\" 200"),
            "{t}: {log}"
        );
    }
}

#[test]
fn hypercorn_speaking_h2c_gets_http2_where_the_front_can_and_http11_where_it_cannot() {
    if !have(
        "nginx",
        h2lab_common::launch::ProxyKind::Nginx.find().is_some(),
    ) || !have("hypercorn", hypercorn().is_file())
    {
        return;
    }
    let ran = run(&format!(
        r#"[scenario]
name = "hypercorn"
duration = "1s"
warmup = "200ms"
[app]
command = ["{}", "--bind", "127.0.0.1:{{port}}", "--access-logfile", "-", "--access-logformat", "%(r)s %(s)s x-test=%({{x-test}}i)s", "asgi_hello:app"]
cwd = "{}"
protocol = "h2c"
ready = {{ path = "/ready", timeout = "30s" }}
[axes]
{FRONTS}
load = [{{ connections = 4, streams = 2 }}]
request = [{{ name = "shop", mix = [
    {{ path = "/hello", weight = 3, headers = {{ x-test = "browse" }} }},
    {{ path = "/order", method = "POST", body_file = "{}", headers = {{ x-test = "order" }} }},
] }}]
"#,
        hypercorn().display(),
        fixtures().display(),
        fixtures().join("order.json").display()
    ));
    for c in ran.cells() {
        assert_eq!(c["status"], "ok", "{c}");
        assert_eq!(c["app_protocol_source"], "configured", "{c}");
    }
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // What each front was configured for, and what hypercorn's own log says it got.
    for (t, configured, logged) in [
        ("reverse-proxy:sut", "HTTP/2", "GET /hello 2"),
        ("reverse-proxy:nginx", "HTTP/1.1", "GET /hello 1.1"),
        ("out-of-process", "HTTP/1.1", "GET /hello 1.1"),
    ] {
        let c = ran.cell(t);
        assert_eq!(c["app_protocol"], configured, "{c}");
        let log = ran.app_log(t);
        assert!(
            log.contains(logged),
            "{t}: {logged} not in the app's log:\n{log}"
        );
        let other = if logged.ends_with(" 2") {
            "GET /hello 1.1"
        } else {
            "GET /hello 2 "
        };
        assert!(!log.contains(other), "{t}: {other} in the app's log");
        // The mix: three GETs to one POST with its body file and each one's header.
        let gets = log.matches("GET /hello").count() as f64;
        let posts = log.matches("POST /order").count() as f64;
        assert!(
            posts > 10.0 && (gets / posts - 3.0).abs() < 0.3,
            "{t}: {gets} GET, {posts} POST"
        );
        assert_eq!(
            log.matches("POST /order").count(),
            log.matches("x-test=order").count()
        );
        assert!(
            !log.contains(" 500 ") && !log.contains(" 400 "),
            "{t}: {log}"
        );
    }
    let nginx = ran.cell("reverse-proxy:nginx");
    assert!(
        nginx["notes"][0]
            .as_str()
            .unwrap()
            .contains("nginx cannot speak HTTP/2 to a backend"),
        "{nginx}"
    );
}

#[test]
fn an_app_that_never_gets_ready_fails_its_cells_with_its_log_tail_and_leaves_nothing() {
    // The app prints a line and sleeps: its port never opens.
    let ran = run(r#"[scenario]
name = "neverready"
duration = "1s"
[app]
command = ["sh", "-c", "echo 'app: pretending to start on {port}'; exec sleep 600"]
ready = { tcp = true, timeout = "1s" }
[axes]
topology = ["reverse-proxy:sut", "out-of-process"]
load = [{ connections = 1 }]
[[include]]
topology = "direct-edge"
server_tls = "none"
client_offer = "h1"
"#);
    assert_eq!(ran.code, 1, "failed cells make the run exit 1");
    assert_eq!(
        ran.cells().len(),
        3,
        "the run went on after each failed cell"
    );
    for c in ran.cells() {
        assert_eq!(c["status"], "failed", "{c}");
        let reason = c["reason"].as_str().unwrap();
        assert!(reason.contains("not ready"), "{reason}");
        assert!(reason.contains("app: pretending to start on"), "{reason}");
        assert!(
            c["leftover_processes"].as_array().unwrap().is_empty(),
            "{c}"
        );
    }
}

#[test]
fn an_app_that_exits_before_it_is_ready_fails_its_cell_with_its_exit_status_and_log() {
    let ran = run(r#"[scenario]
name = "exits"
duration = "1s"
[app]
command = ["sh", "-c", "echo 'app: cannot open the database' >&2; exit 3", "{port}"]
[axes]
topology = ["reverse-proxy:sut", "out-of-process"]
load = [{ connections = 1 }]
"#);
    assert_eq!(ran.code, 1);
    for c in ran.cells() {
        assert_eq!(c["status"], "failed", "{c}");
        let reason = c["reason"].as_str().unwrap();
        assert!(reason.contains("exit status: 3"), "{reason}");
        assert!(reason.contains("app: cannot open the database"), "{reason}");
    }
}

/// A server with its own CA, as `openssl req -x509` makes one: a self-signed certificate
/// that is its own CA (which the web PKI refuses as a leaf unless it is trusted as itself).
struct OwnCa {
    edge: h2lab_common::launch::RunningServer,
    cert: PathBuf,
    _dir: tempfile::TempDir,
}

fn edge_with_its_own_ca() -> OwnCa {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let edge = support::edge(&["--tls", "rustls", "--cert", &c, "--key", &k]);
    OwnCa {
        edge,
        cert,
        _dir: dir,
    }
}

fn external_scenario(port: u16, target: &str) -> String {
    format!(
        r#"[scenario]
name = "external"
duration = "1s"
[axes]
topology = ["external:https://localhost:{port}"]
client_tls = ["rustls", "openssl"]
load = [{{ connections = 2, streams = 2 }}]
{target}
"#
    )
}

#[test]
fn an_external_target_with_its_own_ca_works_with_cacert_and_says_what_to_do_without() {
    let own = edge_with_its_own_ca();
    let port = own.edge.addr.port();
    let target = format!(
        "[target]\ncacert = \"{}\"\nhost = \"localhost:{port}\"",
        own.cert.display()
    );
    let trusted = run(&external_scenario(port, &target));
    assert_eq!(trusted.code, 0, "{}", trusted.stderr);
    for c in trusted.cells() {
        assert_eq!(c["status"], "ok", "both client stacks trust the CA: {c}");
    }

    let untrusted = run(&external_scenario(port, ""));
    assert_eq!(untrusted.code, 1);
    for c in untrusted.cells() {
        assert_eq!(c["status"], "failed", "{c}");
        let reason = c["reason"].as_str().unwrap();
        assert!(reason.contains("tls_handshake:unknown_ca"), "{reason}");
        assert!(reason.contains("pass cacert = "), "{reason}");
        assert!(reason.contains("insecure = true"), "{reason}");
    }

    let insecure = run(&external_scenario(port, "[target]\ninsecure = true"));
    assert_eq!(insecure.code, 0, "{}", insecure.stderr);
}

#[test]
fn certificate_failures_read_as_a_person_would_say_them() {
    let own = edge_with_its_own_ca();
    let url = format!("https://localhost:{}/plaintext", own.edge.addr.port());
    let ca = own.cert.display().to_string();
    for stack in ["rustls", "openssl"] {
        let base = ["-n", "2", "-c", "1", "--tls-stack", stack];
        let cases: [(&[&str], &str); 2] = [
            (&[], "tls_handshake:unknown_ca"),
            (
                &["--cacert", &ca, "--sni", "other.example"],
                "tls_handshake:name_mismatch",
            ),
        ];
        for (extra, class) in cases {
            let mut args: Vec<&str> = vec![&url];
            args.extend(base);
            args.extend(extra);
            let r = support::h2lab(&args);
            assert_eq!(r.code, 1, "{stack} {extra:?}: {}", r.stderr);
            let errors = r.json["errors"].as_object().unwrap();
            assert!(errors.contains_key(class), "{stack} {extra:?}: {errors:?}");
        }
    }
}

#[test]
fn an_app_on_the_ancm_contract_runs_out_of_process_without_being_given_a_port() {
    let fixture = repo().join("servers-under-test/tests/fixtures/ancm_app.py");
    let ran = run(&format!(
        r#"[scenario]
name = "ancm"
duration = "1s"
[app]
command = ["python3", "{}"]
module_contract = "ancm"
ready = "tcp"
[axes]
topology = ["out-of-process"]
load = [{{ connections = 2, streams = 2 }}]
request = [{{ path = "/checkout" }}]
"#,
        fixture.display()
    ));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let c = ran.cell("out-of-process");
    let r = json(&ran.out.join(c["dir"].as_str().unwrap()).join("result.json"));
    // The fixture answers 400 to any request without the module's token.
    assert!(r["status"]["200"].as_u64().unwrap() > 0, "{r}");
    assert!(r["status"].get("400").is_none(), "{r}");
}
