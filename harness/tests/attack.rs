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
        .args([
            "attack", kind, url, "-r", "200", "-c", "4", "-d", "1s", "-q",
        ])
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
                    match e["code"].as_str() {
                        Some(code) => format!("{} {code}", e["how"].as_str().unwrap_or("")),
                        None => e["how"].as_str().unwrap_or("").to_string(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_rapid_reset_is_cut_off_by_the_edge_within_a_bounded_number_of_requests() {
    let _turn = REAL_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let server = edge(&[]);
    let pid = server.child.pid().to_string();
    let url = format!("http://{}/plaintext", server.addr);
    let a = attack("rapid-reset", &url, &["--pid", &pid]);
    assert!(a.code == 0 || a.code == 1, "{} {}", a.stdout, a.stderr);
    assert_eq!(a.report["schema"], "h2lab.attack/v1");
    // The h2 crate sends GOAWAY ENHANCE_YOUR_CALM and closes; with the attacker's frames
    // still unread, closing makes the kernel send a TCP reset that may overtake it.
    let e = endings(&a.report);
    assert!(
        e == ["goaway ENHANCE_YOUR_CALM"] || e == ["reset"],
        "{e:?}: {}",
        a.stdout
    );
    assert_eq!(a.report["judgement"]["cut_off"], serde_json::json!([1, 1]));
    let units = a.report["connections"][0]["units"].as_u64().unwrap();
    assert!(
        units > 20 && units < 100_000,
        "cut off after {units} requests"
    );
    assert!(a.report["target"]["attacked_peak_rss"].as_u64().unwrap() > 1 << 20);
    assert_eq!(a.report["after"]["errors"], 0, "still serving afterwards");
    assert!(a.stdout.contains("1 connection(s) ended"), "{}", a.stdout);
}

#[test]
fn a_ping_flood_is_not_cut_off_by_the_edge_and_the_verdict_says_so() {
    // The h2 crate answers PINGs for as long as they come (one pong queued at a time):
    // the edge has no PING limit of its own yet, so the attacker is never cut off.
    let _turn = REAL_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let server = edge(&[]);
    let url = format!("http://{}/plaintext", server.addr);
    let a = attack("ping-flood", &url, &["--attack-max", "200000"]);
    assert_eq!(a.code, 1, "{} {}", a.stdout, a.stderr);
    assert_eq!(endings(&a.report), ["open"], "{}", a.stdout);
    let pongs = a.report["connections"][0]["frames_received"]["PING"]
        .as_u64()
        .unwrap_or(0);
    assert!(pongs > 1000, "the server answered {pongs} pings");
    assert_eq!(a.report["judgement"]["held"], false);
    assert!(a.stdout.contains("never cut off"), "{}", a.stdout);
}

#[test]
fn slowloris_is_answered_408_when_the_header_timeout_is_short() {
    let _turn = REAL_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let server = edge(&["--header-timeout", "300ms"]);
    let url = format!("http://{}/plaintext", server.addr);
    let a = attack(
        "slowloris",
        &url,
        &["--attack-conns", "20", "--attack-rate", "40"],
    );
    assert!(a.code == 0 || a.code == 1, "{} {}", a.stdout, a.stderr);
    let e = endings(&a.report);
    assert_eq!(e.len(), 20);
    assert!(e.iter().all(|e| e == "status"), "{e:?}");
    let statuses: Vec<_> = a.report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ending"]["status"].as_u64())
        .collect();
    assert!(statuses.iter().all(|s| *s == Some(408)), "{statuses:?}");
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
