//! `h2lab attack` for real against `sut edge`: the attack is sent beside a legitimate
//! open-loop load, every attacking connection's ending is read from the server's own
//! frames, and attack.json says which attacks the server cut off and which it did not.
//! Short, bounded phases (1 s each); loopback only.

mod support;

use support::edge;

/// Attacks take turns: two at once on two cores would measure each other.
static REAL_RUNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Attacked {
    code: i32,
    report: serde_json::Value,
    stdout: String,
    stderr: String,
}

fn attack(kind: &str, url: &str, extra: &[&str]) -> Attacked {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("attack.json");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["attack", kind, url, "-r", "200", "-c", "4", "-q"])
        .args(if extra.contains(&"-d") {
            &[][..]
        } else {
            &["-d", "1s"][..]
        })
        .args(["--after", "500ms", "--out"])
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&out)
        .map(|s| serde_json::from_str(&s).unwrap())
        .unwrap_or(serde_json::Value::Null);
    Attacked {
        code: o.status.code().unwrap_or(-1),
        report,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn endings(r: &serde_json::Value) -> Vec<String> {
    r["connections"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    let e = &c["ending"];
                    let how = e["how"].as_str().unwrap_or("");
                    match (e["code"].as_str(), e["status"].as_u64()) {
                        (Some(code), _) => format!("{how} {code}"),
                        (_, Some(status)) => format!("{how} {status}"),
                        _ => how.to_string(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every limit short enough to act within the 1 s attack phase.
const DEFENDED: &[&str] = &[
    "--header-timeout",
    "500ms",
    "--send-timeout",
    "500ms",
    "--min-body-rate",
    "1000",
    "--body-rate-grace",
    "300ms",
];

/// Every limit the edge can turn off, off; header lists of up to 1 GB accepted.
const UNDEFENDED: &[&str] = &[
    "--h2-flood-burst",
    "0",
    "--h2-max-pending-resets",
    "0",
    "--h2-max-local-resets",
    "0",
    "--send-timeout",
    "0s",
    "--min-body-rate",
    "0",
    "--header-timeout",
    "1h",
    // h2 allows 1.25 x this / 16 KiB CONTINUATION frames per header block, always: at
    // 1 GB a fast machine sends the 76,000 growing frames that reach it within the 1 s
    // attack; at 4 GB (h2's u32 limit) it would take about 1.2 GB of headers.
    "--max-header-bytes",
    "4000000000",
];

/// Runs `kind` against a defended edge, which must cut every attacking connection off
/// with one of `cut` and keep serving, and, when `provable`, against the edge with its
/// limits off, which must not cut the attacker off: the exit code tells them apart.
fn defended_and_not(kind: &str, path: &str, extra: &[&str], cut: &[&str], provable: bool) {
    let _turn = REAL_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let server = edge(DEFENDED);
    let pid = server.child.pid().to_string();
    let url = format!("http://{}/plaintext", server.addr);
    let mut args = vec!["--attack-path", path, "--pid", &pid];
    if !extra.contains(&"--p99-bound") {
        args.extend(["--p99-bound", "10"]);
    }
    if !extra.contains(&"-d") {
        // 400 legitimate requests a phase: p99 is then not one stalled request of the VM.
        args.extend(["-d", "2s"]);
    }
    args.extend_from_slice(extra);
    let a = attack(kind, &url, &args);
    let e = endings(&a.report);
    assert!(!e.is_empty(), "{kind}: {} {}", a.stdout, a.stderr);
    assert!(
        e.iter().all(|e| cut.contains(&e.as_str())),
        "{kind} defended: {e:?}\n{}",
        a.stdout
    );
    assert_eq!(a.code, 0, "{kind} defended:\n{}{}", a.stdout, a.stderr);
    assert_eq!(a.report["judgement"]["held"], true);
    assert_eq!(
        a.report["after"]["errors"], 0,
        "{kind}: still serving afterwards"
    );
    drop(server);
    if !provable {
        return;
    }
    let server = edge(UNDEFENDED);
    let url = format!("http://{}/plaintext", server.addr);
    let mut args = vec!["--attack-path", path];
    args.extend_from_slice(extra);
    let a = attack(kind, &url, &args);
    assert_eq!(a.code, 1, "{kind} undefended:\n{}{}", a.stdout, a.stderr);
    assert_eq!(a.report["judgement"]["held"], false);
    let e = endings(&a.report);
    assert!(
        e.iter()
            .any(|e| ["open", "stalled", "exhausted"].contains(&e.as_str())),
        "{kind} undefended was cut off: {e:?}\n{}",
        a.stdout
    );
    assert!(a.stdout.contains("never cut off"), "{}", a.stdout);
}

const CALM: &str = "goaway ENHANCE_YOUR_CALM";

#[test]
fn rapid_reset() {
    defended_and_not("rapid-reset", "/plaintext", &[], &[CALM], true);
}

#[test]
fn made_you_reset_by_window_overflow() {
    let cut = [CALM, "goaway PROTOCOL_ERROR"];
    defended_and_not(
        "made-you-reset:window-overflow",
        "/plaintext",
        &[],
        &cut,
        true,
    );
}

#[test]
fn made_you_reset_by_zero_window_update_and_half_closed_frames() {
    // The h2 crate answers these with GOAWAY PROTOCOL_ERROR itself, with no switch to
    // turn that off, so there is no undefended edge to compare with.
    let cut = [CALM, "goaway PROTOCOL_ERROR"];
    defended_and_not(
        "made-you-reset:window-update-0",
        "/plaintext",
        &[],
        &cut,
        false,
    );
    defended_and_not("made-you-reset:half-closed", "/plaintext", &[], &cut, false);
}

#[test]
fn continuation_floods() {
    defended_and_not(
        "continuation-flood:growing",
        "/plaintext",
        &[],
        &[CALM],
        true,
    );
    // h2 bounds CONTINUATION frames per header block (RUSTSEC-2024-0332), always.
    defended_and_not(
        "continuation-flood:empty",
        "/plaintext",
        &[],
        &[CALM],
        false,
    );
}

#[test]
fn hpack_bomb() {
    defended_and_not("hpack-bomb", "/plaintext", &[], &[CALM], true);
}

#[test]
fn ping_and_settings_floods() {
    defended_and_not("ping-flood", "/plaintext", &[], &[CALM], true);
    defended_and_not("settings-flood", "/plaintext", &[], &[CALM], true);
}

#[test]
fn empty_frames_and_data_dribble() {
    // h2 keeps its own budget for empty DATA frames (GOAWAY ENHANCE_YOUR_CALM), always.
    defended_and_not("empty-frames", "/plaintext", &[], &[CALM], false);
    defended_and_not("data-dribble", "/bytes/65536", &[], &[CALM], true);
}

#[test]
fn reset_flood() {
    // A malformed request is a connection error to h2 (GOAWAY PROTOCOL_ERROR), always.
    let cut = [CALM, "goaway PROTOCOL_ERROR"];
    defended_and_not("reset-flood", "/plaintext", &[], &cut, false);
}

#[test]
fn stream_exhaustion() {
    defended_and_not("stream-exhaustion", "/echo", &[], &[CALM], true);
}

#[test]
fn zero_window() {
    // The send timeout drops the connection: no frame can reach a peer that does not read.
    // The kernel's buffers take about half a second to fill, then the timeout runs.
    let cut = ["reset", "closed"];
    let longer = ["-d", "2s"];
    defended_and_not("zero-window", "/bytes/1000000", &longer, &cut, true);
}

#[test]
fn slowloris_and_slow_post() {
    let few = ["--attack-conns", "20", "--attack-rate", "40"];
    defended_and_not("slowloris", "/plaintext", &few, &["status 408"], true);
    defended_and_not("slow-post", "/echo", &few, &["status 408"], true);
}

#[test]
fn connection_flood() {
    // 100 connections opened at once share the 2 cores of CI with the generator and the
    // server: the legitimate p99 briefly rises 10-18x here whatever the defence, which is
    // the 408 that cuts every one of them off.
    let conns = ["--attack-conns", "100", "--p99-bound", "25"];
    defended_and_not(
        "connection-flood",
        "/plaintext",
        &conns,
        &["status 408"],
        true,
    );
}

#[test]
fn attacks_refuse_targets_off_loopback_and_unknown_kinds() {
    let a = attack("rapid-reset", "http://192.0.2.1:80/", &[]);
    assert_eq!(a.code, 2);
    assert!(a.stderr.contains("loopback"), "{}", a.stderr);
    let a = attack("ping", "http://127.0.0.1:1/", &[]);
    assert_eq!(a.code, 2);
    assert!(a.stderr.contains("unknown attack `ping`"), "{}", a.stderr);
}

#[test]
fn a_scenario_attack_axis_gives_each_cell_its_attack_outcome() {
    let _turn = REAL_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("survival.toml");
    std::fs::write(
        &scenario,
        r#"[scenario]
name = "survival-test"
duration = "1s"
[axes]
topology = ["direct-edge"]
server_tls = ["none"]
client_offer = ["h2c"]
load = [{ connections = 2, rate = 200 }]
request = [{ path = "/plaintext" }]
attack = ["none", "ping-flood"]
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = support::run_scenario(&scenario, &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let cells = m["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2, "{m}");
    let calm = cells.iter().find(|c| c["attack"].is_null()).unwrap();
    assert_eq!(calm["status"], "ok");
    let attacked = cells.iter().find(|c| !c["attack"].is_null()).unwrap();
    assert!(attacked["cell"].as_str().unwrap().ends_with(".ping-flood"));
    assert_eq!(attacked["status"], "ok", "{attacked}");
    assert_eq!(attacked["attack"]["kind"], "ping-flood");
    assert_eq!(
        attacked["attack"]["endings"],
        serde_json::json!({"GOAWAY ENHANCE_YOUR_CALM": 1})
    );
    let rel = attacked["dir"].as_str().unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(rel).join("attack.json")).unwrap())
            .unwrap();
    assert_eq!(report["schema"], "h2lab.attack/v1");
    assert!(
        report["target"]["attacked_peak_rss"].as_u64().unwrap() > 1 << 20,
        "the topology's processes were sampled"
    );
    assert!(out.join(rel).join("result.json").exists());
}
