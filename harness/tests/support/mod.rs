//! What the load tests share: servers under test and runs of `h2lab load`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use h2lab_common::launch::{self, RunningServer};

pub mod netns;

/// Starts `sut` with `args` and waits until it listens.
pub fn sut(args: &[&str]) -> RunningServer {
    let bin = launch::locate_sut()
        .expect("build sut first: cargo build --workspace (scripts/test.sh does)");
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    launch::start_sut(&bin, &args, &[], None, Duration::from_secs(30)).expect("sut starts")
}

/// `sut edge` on a port the OS picks on loopback, one worker, then `extra`.
pub fn edge(extra: &[&str]) -> RunningServer {
    let mut args = vec!["edge", "--listen", "127.0.0.1:0", "--workers", "1"];
    args.extend_from_slice(extra);
    sut(&args)
}

/// A TLS server under test and the CA that signed its certificate.
pub struct Tls {
    pub server: RunningServer,
    pub ca: PathBuf,
    _dir: tempfile::TempDir,
}

/// `sut edge` with TLS from `stack` and a self-signed ECDSA certificate.
pub fn sut_tls(stack: &str, extra: &[&str]) -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let ca_s = ca.display().to_string();
    let mut args = launch::tls_test_args("edge", stack, "ecdsa", &ca_s);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Tls {
        server: sut(&args),
        ca,
        _dir: dir,
    }
}

/// One finished `h2lab load` run.
pub struct Run {
    pub code: i32,
    pub json: serde_json::Value,
    pub stdout: String,
    pub stderr: String,
    pub dir: tempfile::TempDir,
}

/// Runs `h2lab load ARGS --quiet --json FILE` and reads the result back.
pub fn h2lab(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("result.json");
    let out = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .arg("load")
        .args(args)
        .args(["--quiet", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let json = std::fs::read_to_string(&json)
        .map(|s| serde_json::from_str(&s).unwrap())
        .unwrap_or(serde_json::Value::Null);
    Run {
        code: out.status.code().unwrap_or(-1),
        json,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    }
}

/// Microseconds in a result, as milliseconds.
pub fn ms(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap() / 1000.0
}

/// Processes still running with our run's owner marker in their environment.
pub fn leftovers(run_id: &str) -> Vec<String> {
    let marker = format!("H2LAB_OWNER={run_id}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| {
            let env = std::fs::read(e.path().join("environ")).ok()?;
            let cmd = String::from_utf8_lossy(
                &std::fs::read(e.path().join("cmdline")).unwrap_or_default(),
            )
            .replace('\0', " ");
            env.split(|b| *b == 0)
                .any(|kv| kv == marker.as_bytes())
                .then(|| format!("{} {cmd}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// `h2lab run -q SCENARIO --out OUT`.
pub fn run_scenario(scenario: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["run", "-q"])
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// `h2lab report RUN --out OUT`.
pub fn report(run: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .arg("report")
        .arg(run)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}
