//! The verdict in words: the sentence of each entry, a terminal table, Markdown for
//! summary.md and HTML for the report's opening.

use std::fmt::Write as _;

use super::samples::Change;
use super::{Entry, Verdict};

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

fn signed_ms(us: f64) -> String {
    format!("{:+.2}", us / 1000.0)
}

/// `-67% [-70%, -64%]` or `+0.96 ms [+0.90, +1.02]`.
pub fn change_text(c: &Change) -> String {
    let (point, interval) = if c.unit == "%" {
        (
            format!("{:+.1}%", c.change),
            c.interval
                .map(|(lo, hi)| format!(" [{lo:+.1}%, {hi:+.1}%]"))
                .unwrap_or_default(),
        )
    } else {
        (
            format!("{} ms", signed_ms(c.change)),
            c.interval
                .map(|(lo, hi)| format!(" [{}, {}]", signed_ms(lo), signed_ms(hi)))
                .unwrap_or_default(),
        )
    };
    let test = match c.p_value {
        Some(p) if c.significant => format!(" (p = {p:.3})"),
        Some(p) if p < crate::analysis::compare::ALPHA => {
            format!(" (not significant: p = {p:.3} but the interval includes no change)")
        }
        Some(p) => format!(" (not significant, p = {p:.3})"),
        None => " (too few samples for a test)".to_string(),
    };
    format!("{point}{interval}{test}")
}

/// The entry's verdict in one sentence.
pub fn sentence(e: &Entry) -> String {
    if e.repetitions == 0 {
        return format!("{}: no result (failed or skipped)", e.name);
    }
    let hop = e
        .hop_cost_us
        .map(|h| format!(", where the hop costs {} at p50", ms(h)))
        .unwrap_or_default();
    if e.baseline {
        let first = match (&e.capacity, &e.throughput) {
            (Some(c), _) => format!("capacity {:.0} req/s", c.value),
            (None, Some(t)) => format!("{:.0} req/s", t.value),
            _ => String::new(),
        };
        let lat = match (&e.p50, &e.p99) {
            (Some(a), Some(b)) => format!(", p50 {}, p99 {}", ms(a.value), ms(b.value)),
            _ => String::new(),
        };
        return format!("{}: the baseline, {first}{lat}{hop}", e.name);
    }
    let mut parts = Vec::new();
    if let Some(c) = &e.capacity {
        parts.push(format!(
            "capacity {} over {}",
            change_text(c),
            match c.samples {
                super::Source::Repetitions(n) =>
                    format!("{n} search{}", if n == 1 { "" } else { "es" }),
                s => s.describe(),
            }
        ));
    } else if let Some(t) = &e.throughput {
        parts.push(format!("throughput {}", change_text(t)));
    }
    let at = if e.at_capacity { " at capacity" } else { "" };
    if let Some(c) = &e.p50 {
        parts.push(format!("p50{at} {}", change_text(c)));
    }
    if let Some(c) = &e.p99 {
        parts.push(format!("p99 {}", change_text(c)));
    }
    format!(
        "{}: {}{hop}; latency over {}",
        e.name,
        parts.join(", "),
        e.samples.describe()
    )
}

fn cells(e: &Entry) -> [String; 6] {
    let v = |c: &Option<Change>, f: &dyn Fn(f64) -> String| {
        c.as_ref().map(|c| f(c.value)).unwrap_or_else(|| "-".into())
    };
    let d = |c: &Option<Change>| match c {
        Some(_) if e.baseline => "baseline".to_string(),
        Some(c) if c.unit == "%" => {
            format!("{:+.1}%{}", c.change, if c.significant { "" } else { "?" })
        }
        Some(c) => format!(
            "{}{}",
            signed_ms(c.change),
            if c.significant { "" } else { "?" }
        ),
        None => "-".into(),
    };
    let rate = if e.capacity.is_some() {
        &e.capacity
    } else {
        &e.throughput
    };
    [
        v(rate, &|x| format!("{x:.0}")),
        d(rate),
        v(&e.p50, &|x| format!("{:.2}", x / 1000.0)),
        d(&e.p50),
        v(&e.p99, &|x| format!("{:.2}", x / 1000.0)),
        d(&e.p99),
    ]
}

fn hop_cell(e: &Entry) -> String {
    let parts: Vec<String> = e
        .hops
        .iter()
        .map(|h| format!("{} {:.3}", h.name, h.overhead_p50_us / 1000.0))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" + ")
    }
}

/// A fixed-width table for the terminal, one block per workload, and the sentences.
pub fn text(v: &Verdict) -> String {
    let mut out = String::new();
    for w in &v.workloads {
        let rate = if w.ranked_by == "capacity" {
            "capacity"
        } else {
            "req/s"
        };
        let _ = writeln!(
            out,
            "verdict{}: {} ranked by {}, against {}",
            if w.name.is_empty() {
                String::new()
            } else {
                format!(" [{}]", w.name)
            },
            v.compare,
            w.ranked_by,
            w.baseline
        );
        let _ = writeln!(
            out,
            "  {:<3} {:<34} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}  hops p50 ms",
            "#", "name", rate, "change", "p50 ms", "change", "p99 ms", "change"
        );
        for e in &w.entries {
            let c = cells(e);
            let _ = writeln!(
                out,
                "  {:<3} {:<34} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}  {}",
                e.rank,
                e.name,
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                hop_cell(e)
            );
        }
        for e in &w.entries {
            let _ = writeln!(out, "  - {}", e.sentence);
        }
    }
    out.push_str("  (? = not significant)\n");
    if let Some(s) = &v.survival {
        out.push_str(&super::survival::render::text(s));
    }
    out.push_str(&super::conformance::text(&v.conformance));
    out
}

/// Markdown for summary.md.
pub fn markdown(v: &Verdict) -> String {
    let mut out = String::from("## Verdict\n\n");
    for w in &v.workloads {
        if !w.name.is_empty() {
            let _ = writeln!(out, "**{}**\n", w.name);
        }
        let _ = writeln!(
            out,
            "| # | name | {} | change | p50 ms | change | p99 ms | change | hops (p50 ms) |\n|---|---|---|---|---|---|---|---|---|",
            if w.ranked_by == "capacity" { "capacity" } else { "req/s" }
        );
        for e in &w.entries {
            let c = cells(e);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                e.rank,
                e.name,
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                hop_cell(e)
            );
        }
        out.push('\n');
        for e in &w.entries {
            let _ = writeln!(out, "- {}", e.sentence);
        }
        out.push('\n');
    }
    if let Some(s) = &v.survival {
        out.push_str(&super::survival::render::markdown(s));
    }
    out.push_str(&super::conformance::markdown(&v.conformance));
    out
}

use crate::output::html_escape as esc;

/// The report's opening section: the survival matrix first when there is one.
pub fn html(v: &Verdict) -> String {
    let mut out = v
        .survival
        .as_ref()
        .map(super::survival::render::html)
        .unwrap_or_default();
    out.push_str(&super::conformance::html(&v.conformance));
    out.push_str("<h2>Verdict</h2>\n");
    for w in &v.workloads {
        if !w.name.is_empty() {
            let _ = writeln!(out, "<h3>{}</h3>", esc(&w.name));
        }
        let _ = writeln!(
            out,
            "<p>{} ranked by {}, each against {}. A change marked ? is not significant.</p><table><tr><th>#</th><th>name</th><th>{}</th><th>change</th><th>p50 ms</th><th>change</th><th>p99 ms</th><th>change</th><th>hops (p50 ms)</th></tr>",
            esc(&v.compare),
            w.ranked_by,
            esc(&w.baseline),
            if w.ranked_by == "capacity" { "capacity" } else { "req/s" }
        );
        for e in &w.entries {
            let c = cells(e);
            let _ = write!(
                out,
                "<tr><td>{}</td><td title=\"{}\">{}</td>",
                e.rank,
                esc(&e.cell),
                esc(&e.name)
            );
            for x in &c {
                let _ = write!(out, "<td>{}</td>", esc(x));
            }
            let _ = writeln!(out, "<td>{}</td></tr>", esc(&hop_cell(e)));
        }
        out.push_str("</table>\n<ul>\n");
        for e in &w.entries {
            let _ = writeln!(out, "<li>{}</li>", esc(&e.sentence));
        }
        out.push_str("</ul>\n");
    }
    out
}
