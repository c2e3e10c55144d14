//! Cross-check: the same cell probed by an independent client that is on the machine
//! (curl for offers with http/1.1 or none and for h2c, `openssl s_client -alpn` for an
//! offer of h2 alone), its verdict beside ours.

use std::process::{Command, Stdio};

use h2lab_common::profiles::{ClientProfile, RUSTLS_TLS12};

use super::spec::MatrixOffer;
use super::Observed;
use crate::probe::ProbeSpec;

/// The independent client's view of a cell.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CrossCheck {
    /// `curl` or `openssl s_client`.
    pub tool: String,
    /// The command line, to rerun by hand.
    pub command: String,
    /// Its verdict in our vocabulary (`HTTP/2`, `alert:handshake_failure`, `alpn:h2`...).
    pub verdict: String,
    /// Whether it agrees with our probe.
    pub agrees: bool,
    /// Why a difference is expected, when it is.
    pub note: Option<String>,
}

fn alert_in(text: &str) -> Option<String> {
    crate::tls::alert_in_text(text).map(|a| format!("alert:{a}"))
}

fn tls_flags(client: &ClientProfile, openssl_style: bool) -> Vec<String> {
    let mut a = Vec::new();
    let list = client.tls12_suites.unwrap_or(RUSTLS_TLS12).join(":");
    if openssl_style {
        if client.min == "1.3" {
            a.push("-tls1_3".into());
        } else if client.max == "1.2" {
            a.push("-tls1_2".into());
        }
        a.extend(["-cipher".into(), list]);
    } else {
        a.push(
            if client.min == "1.3" {
                "--tlsv1.3"
            } else {
                "--tlsv1.2"
            }
            .into(),
        );
        a.extend(["--tls-max".into(), client.max.into()]);
        a.extend(["--ciphers".into(), list]);
    }
    a
}

/// Runs a tool to its end; bounded by the tools' own limits (curl --max-time; s_client
/// ends at stdin EOF).
fn run_tool(bin: &str, args: &[String]) -> Option<(bool, String, String)> {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd.output().ok()?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn curl(ps: &ProbeSpec, offer: &MatrixOffer, client: Option<&ClientProfile>) -> Option<CrossCheck> {
    let port = ps.addr.port();
    let mut args: Vec<String> = vec![
        "-sS".into(),
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_version}".into(),
        "--max-time".into(),
        format!("{}", ps.timeout.as_secs().max(1)),
        "--resolve".into(),
        format!("localhost:{port}:{}", ps.addr.ip()),
    ];
    match offer {
        MatrixOffer::H2c => args.push("--http2-prior-knowledge".into()),
        MatrixOffer::H2cUpgrade => args.push("--http2".into()),
        MatrixOffer::Alpn(l) if l.is_empty() => {
            args.extend(["--http1.1".into(), "--no-alpn".into()])
        }
        MatrixOffer::Alpn(l) if l.iter().any(|p| p == "h2") => args.push("--http2".into()),
        MatrixOffer::Alpn(_) => args.push("--http1.1".into()),
    }
    if let (Some(tls), Some(c)) = (&ps.tls, client) {
        if let Some(ca) = &tls.cacert {
            args.extend(["--cacert".into(), ca.display().to_string()]);
        }
        args.extend(tls_flags(c, false));
    }
    let scheme = if ps.tls.is_some() { "https" } else { "http" };
    args.push(format!("{scheme}://localhost:{port}{}", ps.path));
    let (ok, stdout, stderr) = run_tool("curl", &args)?;
    let version = stdout.trim();
    let verdict = match (ok, version, offer) {
        (true, "2", _) => "HTTP/2".to_string(),
        (true, "1.1", MatrixOffer::H2cUpgrade) => "h2c_upgrade_declined".to_string(),
        (true, "1.1", _) => "HTTP/1.1".to_string(),
        (false, _, MatrixOffer::H2c) => "h2c_prior_knowledge_rejected".to_string(),
        (false, _, _) => alert_in(&stderr)
            .unwrap_or_else(|| format!("error:{}", stderr.trim().replace('\n', " "))),
        (true, other, _) => format!("HTTP/{other}"),
    };
    Some(CrossCheck {
        tool: "curl".into(),
        command: format!("curl {}", args.join(" ")),
        verdict,
        agrees: false,
        note: None,
    })
}

fn s_client(ps: &ProbeSpec, alpn: &[String], client: &ClientProfile) -> Option<CrossCheck> {
    let mut args: Vec<String> = vec![
        "s_client".into(),
        "-connect".into(),
        ps.addr.to_string(),
        "-servername".into(),
        "localhost".into(),
        "-alpn".into(),
        alpn.join(","),
    ];
    if let Some(ca) = ps.tls.as_ref().and_then(|t| t.cacert.as_ref()) {
        args.extend(["-CAfile".into(), ca.display().to_string()]);
    }
    args.extend(tls_flags(client, true));
    let (_, stdout, stderr) = run_tool("openssl", &args)?;
    let text = format!("{stderr}\n{stdout}");
    let verdict = match alert_in(&text) {
        Some(a) => a,
        None => {
            let field = |key: &str| {
                text.lines()
                    .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
            };
            let alpn = field("ALPN protocol:").unwrap_or_else(|| "none".into());
            // The session block's "Protocol  :" is the protocol; it is missing when a TLS 1.3
            // session ends before its ticket, and then "New, TLSv1.3, Cipher is ..." says
            // it (that line names the cipher's version, which is the protocol only for 1.3).
            let version = field("Protocol  :")
                .or_else(|| field("New, ").and_then(|v| v.split(',').next().map(str::to_string)));
            match version {
                Some(v) => format!("alpn:{alpn} {v}"),
                None => "error:no handshake".into(),
            }
        }
    };
    Some(CrossCheck {
        tool: "openssl s_client".into(),
        command: format!("openssl {} </dev/null", args.join(" ")),
        verdict,
        agrees: false,
        note: None,
    })
}

/// Probes the cell with an independent client and compares verdicts; None when no
/// suitable tool is installed.
pub fn run(
    ps: &ProbeSpec,
    offer: &MatrixOffer,
    client: Option<&ClientProfile>,
    ours: &Observed,
) -> Option<CrossCheck> {
    let h2_only = matches!(offer, MatrixOffer::Alpn(l) if !l.is_empty() && !l.iter().any(|p| p == "http/1.1"));
    let mut cc = match (offer, client) {
        (MatrixOffer::Alpn(l), Some(c)) if h2_only => s_client(ps, l, c)?,
        _ => curl(ps, offer, client)?,
    };
    if cc.tool == "curl" {
        cc.agrees = cc.verdict == ours.edge;
        if !cc.agrees && ours.edge == "inadequate_security" && cc.verdict == "HTTP/2" {
            cc.agrees = true;
            cc.note = Some("curl does not apply RFC 7540 Appendix A: a lenient client".into());
        }
        let refused = cc.verdict.contains("(52)") || cc.verdict.contains("(16)");
        if !cc.agrees && ours.edge == "inadequate_security" && refused {
            cc.agrees = true;
            cc.note = Some(
                "the server itself refused HTTP/2 on the Appendix A suite (GOAWAY before any \
                 response; curl: empty reply), as RFC 7540 9.2.2 allows"
                    .into(),
            );
        }
    } else {
        let ours_facts = match ours.edge.as_str() {
            e if e.starts_with("alert:") => e.to_string(),
            _ => format!(
                "alpn:{} {}",
                ours.alpn.as_deref().unwrap_or("none"),
                ours.version.as_deref().unwrap_or("?")
            ),
        };
        cc.agrees = cc.verdict == ours_facts;
        if !cc.agrees {
            cc.note = Some(format!("our handshake: {ours_facts}"));
        }
    }
    Some(cc)
}
