//! The human summary printed after a run.

use std::fmt::Write;

use crate::model::{Percentiles, ResultV1};

fn ms(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.3}ms", us as f64 / 1000.0)
    }
}

fn row(out: &mut String, name: &str, p: &Percentiles) {
    if p.count == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "  {name:<13} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.p999),
        ms(p.p9999),
        ms(p.max),
        ms(p.mean as u64)
    );
}

/// Renders the summary of `r`.
pub fn render(r: &ResultV1) -> String {
    let s = &r.summary;
    let mut out = String::new();
    let _ = writeln!(out, "{}", r.config["url"].as_str().unwrap_or(""));
    let _ = write!(
        out,
        "  {} requests in {:.2}s: {:.1} req/s",
        s.requests, s.duration_s, s.rps
    );
    if let (Some(t), Some(ratio)) = (s.target_rps, s.achieved_ratio) {
        let _ = write!(
            out,
            " (target {t:.0} req/s, achieved {:.1}%)",
            ratio * 100.0
        );
    }
    let _ = writeln!(out, "; {} ok, {} errors", s.ok, s.errors);
    let n = &r.negotiated;
    let tls = match (&n.tls_version, &n.cipher) {
        (Some(v), Some(c)) => format!(", {v}, {c}, ALPN {}", n.alpn.as_deref().unwrap_or("none")),
        _ => ", cleartext".into(),
    };
    if n.connections == 0 {
        let _ = writeln!(
            out,
            "  negotiated: nothing (no connection was established); I/O engine: {}",
            s.io_engine
        );
    } else {
        let _ = writeln!(
            out,
            "  negotiated: {}{tls} ({} connections); I/O engine: {}",
            n.protocol, n.connections, s.io_engine
        );
    }
    let _ = writeln!(
        out,
        "\n  {:<13} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"
    );
    row(&mut out, "latency", &r.latency_us);
    row(&mut out, "service time", &r.service_time_us);
    row(&mut out, "ttfb", &r.ttfb_us);
    row(&mut out, "connect", &r.connect_us);
    row(&mut out, "tls handshake", &r.tls_handshake_us);
    if !r.status.is_empty() {
        let codes: Vec<String> = r.status.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(out, "\n  status: {}", codes.join(", "));
    }
    if !r.errors.is_empty() {
        let errs: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(out, "  errors: {}", errs.join(", "));
    }
    if s.generator_bound {
        let _ = writeln!(
            out,
            "  WARNING generator-bound: {}",
            s.generator_bound_reason.as_deref().unwrap_or("")
        );
    }
    for w in &r.warnings {
        let _ = writeln!(out, "  WARNING {w}");
    }
    if r.interrupted {
        let _ = writeln!(
            out,
            "  (interrupted: results cover what was recorded until the signal)"
        );
    }
    out
}
