//! Human output of a probe: one fact per line, the verdict first.

use std::fmt::Write as _;

use super::ProbeReport;

/// Renders a report for a terminal.
pub fn human(r: &ProbeReport) -> String {
    let mut out = String::new();
    let verdict = match (&r.class, &r.protocol) {
        (None, Some(p)) => format!("ok: {p}"),
        (Some(c), _) => format!("FAILED: {c}"),
        (None, None) => "unknown".into(),
    };
    let _ = writeln!(out, "{}  ({} , {} ms)", verdict, r.url, r.elapsed_ms);
    let _ = writeln!(
        out,
        "  tcp connect     {}",
        match r.connect_ms {
            Some(ms) => format!("ok ({ms} ms)"),
            None => "failed".into(),
        }
    );
    if let Some(offer) = &r.alpn_offered {
        let offered = if offer.is_empty() {
            "(no ALPN extension)".to_string()
        } else {
            offer.join(",")
        };
        let _ = writeln!(out, "  alpn offered    {offered}");
    }
    if let Some(t) = &r.tls {
        let _ = writeln!(
            out,
            "  alpn selected   {}",
            r.alpn_selected.as_deref().unwrap_or("(none)")
        );
        let _ = writeln!(
            out,
            "  tls             {} ({} client, {} ms)",
            t.version, t.stack, t.handshake_ms
        );
        let weak = if t.version == "TLSv1.2" && t.appendix_a {
            "  [on RFC 7540 Appendix A]"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  cipher          {} ({}){weak}",
            t.cipher, t.cipher_iana
        );
        let _ = writeln!(
            out,
            "  key exchange    {}",
            t.group.as_deref().unwrap_or("unknown")
        );
        let _ = writeln!(
            out,
            "  server key      {}",
            t.cert_key.as_deref().unwrap_or("unknown")
        );
    }
    if let Some(p) = &r.protocol {
        let status = r
            .status
            .map(|s| format!(" (status {s})"))
            .unwrap_or_default();
        let _ = writeln!(out, "  protocol        {p}{status}");
    }
    if let Some(app) = &r.app_protocol {
        let hosting = r
            .app_hosting
            .as_deref()
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        let _ = writeln!(out, "  at the app      {app}{hosting}");
    }
    if let Some(d) = &r.detail {
        let _ = writeln!(out, "  why             {d}");
    }
    for n in &r.notes {
        let _ = writeln!(out, "  note            {n}");
    }
    out
}
