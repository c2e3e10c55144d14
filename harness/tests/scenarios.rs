//! Scenario files: the shipped ones are valid; every file of the bad-scenario corpus is
//! refused with exit 2 at its expected file:line:column with the expected message; the
//! matrix expands as the axes and rules say.

use std::path::Path;
use std::process::Command;

fn h2lab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn every_bad_scenario_is_refused_at_its_location() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus has {} files", files.len());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expect = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# expect: ")
            .unwrap_or_else(|| panic!("{} lacks `# expect:`", f.display()));
        let (loc, needle) = expect.split_once(' ').unwrap();
        let path = f.display().to_string();
        for cmd in ["validate", "run"] {
            let (code, _, stderr) = h2lab(&[cmd, &path]);
            assert_eq!(code, 2, "{cmd} {path}: {stderr}");
            assert!(
                stderr.contains(&format!("{path}:{loc}: error:")),
                "{cmd} {path}: expected at {loc}, got:\n{stderr}"
            );
            assert!(
                stderr.contains(needle.trim()),
                "{cmd} {path}: expected `{needle}`, got:\n{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn shipped_scenarios_are_valid_and_list_their_cells() {
    for name in [
        "quick",
        "topologies",
        "open-loop-sweep",
        "own-app",
        "capacity",
        "ci-gate",
        "k8s-agents",
    ] {
        let path = repo().join(format!("scenarios/{name}.toml"));
        let (code, out, err) = h2lab(&["run", "--dry-run", &path.display().to_string()]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.contains(" cells x "), "{out}");
    }
    let (_, out, _) = h2lab(&[
        "run",
        "--dry-run",
        &repo().join("scenarios/quick.toml").display().to_string(),
    ]);
    for t in [
        "direct-edge",
        "reverse-proxy:sut",
        "in-process",
        "out-of-process",
    ] {
        assert!(out.contains(&format!("topology={t}")), "{out}");
    }
}

#[test]
fn matrix_is_the_cross_product_minus_excludes_plus_includes() {
    let text = r#"
[scenario]
name = "m"
duration = "1s"
repetitions = 2
engines = ["h2lab"]
[axes]
topology = ["direct-edge", "in-process"]
server_tls = ["rustls", "openssl"]
cert = ["rsa", "ecdsa"]
client_offer = ["h2,http/1.1", "http/1.1"]
load = [{ connections = 4 }, { connections = 8, rates = [100, 200, 300] }]
[[exclude]]
topology = "in-process"
server_tls = "openssl"
[[include]]
topology = "direct-edge"
server_tls = "none"
client_offer = "h2c"
"#;
    let plan = h2lab::scenario::parse(Path::new("m.toml"), text).unwrap();
    // (2 x 2 x 2 x 2 = 16) - (1 x 1 x 2 x 2 = 4) + 1 include = 13 axis cells, x 4 loads.
    assert_eq!(plan.cells.len(), 13 * 4);
    assert_eq!(plan.repetitions, 2);
    let ids: std::collections::HashSet<_> = plan.cells.iter().map(|c| &c.id).collect();
    assert_eq!(ids.len(), plan.cells.len(), "ids are unique");
    let sweep: Vec<_> = plan
        .cells
        .iter()
        .filter(|c| {
            c.load.sweep.is_some()
                && c.axes["topology"] == "direct-edge"
                && c.axes["server_tls"] == "rustls"
                && c.axes["cert"] == "rsa"
                && c.axes["client_offer"] == "http/1.1"
        })
        .collect();
    assert_eq!(sweep.len(), 3, "one cell per rate of the sweep");
    assert!(plan
        .cells
        .iter()
        .any(|c| c.axes["client_offer"] == "h2c" && c.axes["server_tls"] == "none"));
    assert!(!plan
        .cells
        .iter()
        .any(|c| c.axes["topology"] == "in-process" && c.axes["server_tls"] == "openssl"));
}

#[test]
fn app_target_and_request_mixes_reach_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("site")).unwrap();
    std::fs::write(dir.path().join("order.json"), br#"{"item": 1}"#).unwrap();
    let text = r#"
[scenario]
name = "own"
duration = "1s"
[app]
command = ["python3", "-m", "http.server", "{port}"]
cwd = "site"
env = { APP_MODE = "bench", TLS_FILES = "{cert}:{key}", JSON = '{"a": 1}' }
port_env = "PORT"
protocol = "h2c"
ready = { tcp = true, timeout = "45s" }
module_contract = "ancm"
[axes]
topology = ["reverse-proxy:sut", "out-of-process", "external:https://example.test:8443"]
load = [{ connections = 2 }]
request = [
  { path = "/", headers = { Accept = "text/html", X-Trace = "1" } },
  { name = "shop", mix = [
      { path = "/", weight = 3 },
      { path = "/order", method = "post", body_file = "order.json", headers = { content-type = "application/json" } },
  ] },
]
[target]
insecure = true
sni = "example.test"
host = "shop.example.test"
"#;
    let path = dir.path().join("own.toml");
    let plan = h2lab::scenario::parse(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let app = plan.app.as_ref().unwrap();
    assert!(
        app.cwd.is_absolute() && app.cwd.ends_with("site"),
        "{:?}",
        app.cwd
    );
    assert_eq!(
        app.env["TLS_FILES"], "{cert}:{key}",
        "placeholders stay for the launch"
    );
    assert_eq!(app.env["JSON"], r#"{"a": 1}"#, "other braces are text");
    assert_eq!(app.port_env.as_deref(), Some("PORT"));
    assert_eq!(app.ready, h2lab_common::app::Readiness::Tcp);
    assert_eq!(app.ready_timeout, std::time::Duration::from_secs(45));
    assert_eq!(app.module_contract, "ancm");
    assert!(plan.target.insecure);
    assert_eq!(plan.target.host.as_deref(), Some("shop.example.test"));
    assert_eq!(plan.cells.len(), 6, "3 topologies x 2 requests");
    for c in &plan.cells {
        assert_eq!(
            c.app,
            !c.axes["topology"].starts_with("external:"),
            "{}",
            c.id
        );
    }
    let single = plan
        .cells
        .iter()
        .find(|c| c.request.name.is_none())
        .unwrap();
    assert_eq!(single.axes["request"], "GET / {accept, x-trace}");
    assert_eq!(
        single.request.requests[0].headers,
        [
            ("accept".to_string(), "text/html".to_string()),
            ("x-trace".into(), "1".into())
        ],
        "headers in the order written"
    );
    let mix = plan
        .cells
        .iter()
        .find(|c| c.axes["request"] == "shop")
        .unwrap();
    assert!(mix.id.ends_with(".mix-shop"), "{}", mix.id);
    let weights: Vec<u32> = mix.request.requests.iter().map(|r| r.weight).collect();
    assert_eq!(weights, [3, 1]);
    assert_eq!(mix.request.requests[1].method, "POST");
    assert!(matches!(
        mix.request.requests[1].body,
        h2lab::model::plan::RequestBody::File { bytes: 11, .. }
    ));
}

#[test]
fn the_apps_own_tls_at_the_edge_is_one_cell_whatever_server_tls_says() {
    let text = r#"
[scenario]
name = "own"
duration = "1s"
[app]
command = ["python3", "app.py", "--port", "{port}", "--cert", "{cert}", "--key", "{key}"]
tls = true
[axes]
topology = ["direct-edge"]
server_tls = ["rustls", "openssl"]
load = [{ connections = 2 }]
"#;
    let err = h2lab::scenario::parse(Path::new("own.toml"), text).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("the app's own TLS serves every server_tls value (openssl, rustls)"),
        "{text}"
    );
    assert!(
        text.contains("own.toml:10:"),
        "points at server_tls: {text}"
    );
}
