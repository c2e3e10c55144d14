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
    for name in ["quick", "topologies", "open-loop-sweep"] {
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
