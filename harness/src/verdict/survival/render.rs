//! The survival matrix in words: a terminal table, Markdown for summary.md, HTML for the
//! report, and the colour each cell is drawn in (shared with the heatmap).

use std::fmt::Write as _;

use super::{damage, Cell, Survival};

/// The colour of a cell: green when it held, from orange (p99 within 2x, something else
/// broke) to dark red (p99 100x and more) on a log scale when it did not, grey without a
/// result.
pub fn shade(c: Option<&Cell>) -> (u8, u8, u8) {
    match c {
        None => (224, 224, 224),
        Some(c) if c.repetitions == 0 => (224, 224, 224),
        Some(c) if c.held => (200, 230, 201),
        Some(c) => {
            let t = if c.p99_ratio.is_finite() && c.p99_ratio > 2.0 {
                ((c.p99_ratio / 2.0).log10() / 50f64.log10()).min(1.0)
            } else {
                0.0
            };
            let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
            (mix(255.0, 183.0), mix(204.0, 28.0), mix(128.0, 28.0))
        }
    }
}

/// A short form of an ending for a crowded cell.
pub fn short_ending(label: &str) -> String {
    label
        .replace("ENHANCE_YOUR_CALM", "EYC")
        .replace("server stopped reading", "stopped reading")
}

/// `held 1.2x` / `FELL 6.1x` / `-`.
fn mark(c: Option<&Cell>) -> String {
    match c {
        None => "-".into(),
        Some(c) if c.repetitions == 0 => "no result".into(),
        Some(c) => format!(
            "{} {:.1}x",
            if c.held { "held" } else { "FELL" },
            c.p99_ratio
        ),
    }
}

fn calm(ms: Option<f64>) -> String {
    ms.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

const LEGEND: &str = "legitimate p99 under attack over calm; held = p99 and peak RSS within their bounds, no legitimate errors, every attacking connection cut off";

/// A fixed-width table for the terminal, then the sentence.
pub fn text(s: &Survival) -> String {
    let name_w = s
        .rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let col_w: Vec<usize> = s.attacks.iter().map(|a| a.len().max(11)).collect();
    let mut out = format!("survival matrix ({LEGEND})\n");
    let _ = write!(out, "  {:<name_w$} {:>11}", "topology", "calm p99 ms");
    for (a, w) in s.attacks.iter().zip(&col_w) {
        let _ = write!(out, "  {a:<w$}");
    }
    out.push('\n');
    for r in &s.rows {
        let _ = write!(out, "  {:<name_w$} {:>11}", r.name, calm(r.calm_p99_ms));
        for (c, w) in r.cells.iter().zip(&col_w) {
            let _ = write!(out, "  {:<w$}", mark(c.as_ref()));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "  {}", s.sentence);
    out
}

/// Markdown for summary.md.
pub fn markdown(s: &Survival) -> String {
    let mut out = format!("## Survival matrix\n\n{LEGEND}.\n\n| topology | calm p99 ms |");
    for a in &s.attacks {
        let _ = write!(out, " {a} |");
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(s.attacks.len()));
    out.push('\n');
    for r in &s.rows {
        let _ = write!(out, "| {} | {} |", r.name, calm(r.calm_p99_ms));
        for c in &r.cells {
            let text = match c {
                None => "-".to_string(),
                Some(c) if c.repetitions == 0 => "no result".into(),
                Some(c) => format!(
                    "{} {:.1}x · {}",
                    if c.held { "✅" } else { "❌" },
                    c.p99_ratio,
                    c.ending.as_deref().map(short_ending).unwrap_or_default()
                ),
            };
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "\n{}\n", s.sentence);
    out
}

use crate::output::html_escape as esc;

/// The report's section: the matrix as a coloured table (hover a cell for its reasons).
pub fn html(s: &Survival) -> String {
    let mut out = format!(
        "<h2>Survival matrix</h2>\n<p>{}. {}</p><table><tr><th>topology</th><th>calm p99 ms</th>",
        esc(LEGEND),
        esc(&s.sentence)
    );
    for a in &s.attacks {
        let _ = write!(out, "<th>{}</th>", esc(a));
    }
    out.push_str("</tr>\n");
    for r in &s.rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td>",
            esc(&r.name),
            calm(r.calm_p99_ms)
        );
        for c in &r.cells {
            let (red, green, blue) = shade(c.as_ref());
            let title = c
                .as_ref()
                .map(|c| {
                    let mut t = format!("{} · {}", c.cell, damage(c));
                    if let Some(r) = c.rss_ratio {
                        let _ = write!(t, " · RSS {r:.2}x");
                    }
                    for why in &c.reasons {
                        let _ = write!(t, " · {why}");
                    }
                    t
                })
                .unwrap_or_default();
            let ending = c
                .as_ref()
                .and_then(|c| c.ending.as_deref())
                .map(|e| format!("<br><small>{}</small>", esc(&short_ending(e))))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<td style=\"background:rgb({red},{green},{blue})\" title=\"{}\">{}{ending}</td>",
                esc(&title),
                esc(&mark(c.as_ref()))
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}
