//! `h2lab matrix` end to end: the shipped scenarios/h2-matrix.toml in full (real nginx,
//! Apache and HAProxy when installed), with the cross-check; the documented table is
//! reproduced, sample cells per profile with both server stacks show what the platform
//! rules say, every output parses, and no process is left behind.

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn cell<'a>(m: &'a serde_json::Value, axes: &[(&str, &str)]) -> &'a serde_json::Value {
    let cells = m["cells"].as_array().unwrap();
    let found: Vec<&serde_json::Value> = cells
        .iter()
        .filter(|c| axes.iter().all(|(k, v)| c[*k] == *v))
        .collect();
    assert_eq!(found.len(), 1, "{axes:?} matches {} cells", found.len());
    found[0]
}

/// Processes whose environment carries the run's owner marker.
fn leftovers(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .map(|env| {
                    env.split(|b| *b == 0)
                        .any(|kv| kv.starts_with(marker.as_bytes()))
                })
                .unwrap_or(false)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_h2_matrix_scenario_reproduces_the_documented_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .current_dir(repo())
        .args([
            "matrix",
            "scenarios/h2-matrix.toml",
            "--cross-check",
            "-q",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("matrix.json")).unwrap())
            .unwrap();
    assert_eq!(m["schema"], "h2lab.matrix/v1");
    assert_eq!(m["complete"], true);
    let s = &m["summary"];
    assert_eq!(s["documented_reproduced"], s["documented_total"]);
    assert!(s["documented_total"].as_u64().unwrap() >= 10);
    assert_eq!(s["servers_failed"], 0);
    let cells = m["cells"].as_array().unwrap();
    assert!(cells.len() >= 500, "{} cells", cells.len());

    // Samples per profile, with both server stacks where the profile allows.
    for stack in ["rustls", "openssl"] {
        let c = cell(
            &m,
            &[
                ("topology", "direct-edge"),
                ("server_tls", stack),
                ("profile", "modern"),
                ("cert", "ecdsa"),
                ("client_profile", "tls13-only"),
                ("offer", "h2"),
            ],
        );
        assert_eq!(c["observed"]["edge"], "HTTP/2");
        assert_eq!(c["observed"]["version"], "TLSv1.3");
        let c = cell(
            &m,
            &[
                ("topology", "in-process"),
                ("server_tls", stack),
                ("profile", "tls13-only"),
                ("cert", "rsa"),
                ("client_profile", "legacy"),
                ("offer", "h2,http/1.1"),
            ],
        );
        assert_eq!(c["observed"]["edge"], "alert:protocol_version");
    }
    let base = [("topology", "direct-edge"), ("server_tls", "openssl")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let c = cell(
        &m,
        &with(&[
            ("profile", "windows-2016+"),
            ("cert", "rsa"),
            ("client_profile", "browser"),
            ("offer", "h2,http/1.1"),
        ]),
    );
    assert_eq!(c["observed"]["cipher"], "ECDHE-RSA-AES256-GCM-SHA384");
    assert_eq!(c["observed"]["edge"], "HTTP/2");
    let c = cell(
        &m,
        &with(&[
            ("profile", "windows-2012r2"),
            ("cert", "rsa"),
            ("client_profile", "rustls-default"),
            ("offer", "h2,http/1.1"),
        ]),
    );
    assert_eq!(c["observed"]["edge"], "alert:handshake_failure");
    let c = cell(
        &m,
        &with(&[
            ("profile", "tls12-cbc-only"),
            ("cert", "ecdsa"),
            ("client_profile", "openssl-default"),
            ("offer", "h2"),
        ]),
    );
    assert_eq!(c["observed"]["edge"], "inadequate_security");
    assert_eq!(c["cross_check"]["tool"], "openssl s_client");
    assert_eq!(c["cross_check"]["agrees"], true, "{c}");
    let c = cell(
        &m,
        &with(&[
            ("profile", "openssl-1.0.1"),
            ("cert", "rsa"),
            ("client_profile", "browser"),
            ("offer", "h2"),
        ]),
    );
    assert_eq!(c["observed"]["edge"], "alpn_ignored");
    let c = cell(
        &m,
        &with(&[
            ("profile", "openssl-1.0.1"),
            ("cert", "rsa"),
            ("client_profile", "browser"),
            ("offer", "h2,http/1.1"),
        ]),
    );
    assert_eq!(c["observed"]["edge"], "HTTP/1.1");
    assert_eq!(c["cross_check"]["verdict"], "HTTP/1.1");
    let c = cell(
        &m,
        &[
            ("topology", "out-of-process"),
            ("server_tls", "rustls"),
            ("profile", "modern"),
            ("cert", "ecdsa"),
            ("client_profile", "browser"),
            ("offer", "h2,http/1.1"),
        ],
    );
    assert_eq!(
        (
            c["observed"]["edge"].as_str(),
            c["observed"]["app"].as_str()
        ),
        (Some("HTTP/2"), Some("HTTP/1.1"))
    );
    let c = cell(
        &m,
        &[("topology", "reverse-proxy:sut"), ("offer", "h2c-upgrade")],
    );
    assert_eq!(c["observed"]["edge"], "HTTP/2");
    assert_eq!(c["observed"]["app"], "HTTP/1.1");

    // Every disagreement is listed in the Markdown with its rule.
    let md = std::fs::read_to_string(dir.path().join("matrix.md")).unwrap();
    let disagree = cells.iter().filter(|c| c["agrees"] == false).count();
    assert_eq!(s["disagree"].as_u64().unwrap() as usize, disagree);
    if disagree > 0 {
        assert!(md.contains("## Disagreements"));
    }
    assert!(md.contains("## direct-edge") && md.contains("## out-of-process"));
    let csv = std::fs::read_to_string(dir.path().join("matrix.csv")).unwrap();
    assert_eq!(csv.lines().count(), cells.len() + 1);
    let svg = std::fs::read_to_string(dir.path().join("matrix.svg")).unwrap();
    assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.matches("<rect").count() > cells.len() / 8);
    assert!(leftovers("H2LAB_OWNER=h2-matrix-").is_empty());
}

#[test]
fn matrix_files_with_mistakes_exit_2_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[negotiation]\ntopology = [\"direct-edge\"]\nplatform_profile = [\"windows-95\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_h2lab"))
        .args(["matrix"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3:21") && err.contains("windows-95"),
        "{err}"
    );
}
