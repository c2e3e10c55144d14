//! HTTP/2 conformance per cell, when the scenario ran the suite: passed of all, the
//! failures the lab accepts (with the RFC section and why) and the ones it does not;
//! a terminal table, Markdown and HTML.

use std::fmt::Write as _;

use serde::Serialize;

use crate::analysis::names;
use crate::analysis::rundir::RunDir;
use crate::run::conform::ConformOutcome;

/// One cell's conformance.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The cell's readable name.
    pub name: String,
    /// The cell's id.
    pub cell: String,
    /// The first repetition's outcome (the suite's cases do not vary with the load).
    pub outcome: ConformOutcome,
}

/// The rows of a run, in plan order (empty when the suite did not run).
pub fn build(run: &RunDir) -> Vec<Row> {
    let all: Vec<_> = run.cells.iter().map(|c| &c.axes).collect();
    let readable = names::readable(&all);
    run.cells
        .iter()
        .zip(readable)
        .filter_map(|(c, name)| {
            let outcome = c.reps.iter().find_map(|r| r.conform.clone())?;
            Some(Row {
                name,
                cell: c.id.clone(),
                outcome,
            })
        })
        .collect()
}

/// The terminal table and the unexpected failures.
pub fn text(rows: &[Row]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "HTTP/2 conformance ({}, RFC 9113)\n  {:<w$} {:>9} {:>9} {:>10}  transport\n",
        first.outcome.suite, "cell", "passed", "accepted", "unexpected"
    );
    for r in rows {
        let o = &r.outcome;
        let _ = writeln!(
            out,
            "  {:<w$} {:>9} {:>9} {:>10}  {}",
            r.name,
            format!("{}/{}", o.passed, o.total),
            o.accepted,
            o.unexpected,
            o.transport
        );
    }
    for r in rows {
        for f in r.outcome.failures.iter().filter(|f| f.accepted.is_none()) {
            let _ = writeln!(
                out,
                "  - {}: {} {}: {}",
                r.name, f.section, f.name, f.message
            );
        }
    }
    out
}

/// Markdown for summary.md: the table, then each cell's unexpected failures.
pub fn markdown(rows: &[Row]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut out = format!(
        "## HTTP/2 conformance\n\n{} (RFC 9113). Accepted failures are understood and harmless; the reasons are in conform.json and the HTML report.\n\n| cell | passed | accepted | unexpected | transport |\n|---|---|---|---|---|\n",
        first.outcome.suite
    );
    for r in rows {
        let o = &r.outcome;
        let _ = writeln!(
            out,
            "| {} | {}/{} | {} | {} | {} |",
            r.name, o.passed, o.total, o.accepted, o.unexpected, o.transport
        );
    }
    let unexpected: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.outcome
                .failures
                .iter()
                .filter(|f| f.accepted.is_none())
                .map(move |f| format!("- {}: {} *{}*: {}", r.name, f.section, f.name, f.message))
        })
        .collect();
    if !unexpected.is_empty() {
        let _ = write!(
            out,
            "\n**Unexpected failures**\n\n{}\n",
            unexpected.join("\n")
        );
    }
    out.push('\n');
    out
}

use crate::output::html_escape as esc;

/// The report's section: the table, and per cell every failure with its section, the
/// suite's message and, when accepted, why.
pub fn html(rows: &[Row]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut out = format!(
        "<h2>HTTP/2 conformance</h2>\n<p>{} (RFC 9113 cases) against each cell's topology.</p><table><tr><th>cell</th><th>passed</th><th>accepted</th><th>unexpected</th><th>transport</th></tr>\n",
        esc(&first.outcome.suite)
    );
    for r in rows {
        let o = &r.outcome;
        let _ =
            writeln!(
            out,
            "<tr{}><td title=\"{}\">{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if o.unexpected > 0 { " class=\"flag\"" } else { "" },
            esc(&r.cell),
            esc(&r.name),
            o.passed,
            o.total,
            o.accepted,
            o.unexpected,
            esc(&o.transport)
        );
    }
    out.push_str("</table>\n");
    for r in rows.iter().filter(|r| !r.outcome.failures.is_empty()) {
        let _ = writeln!(
            out,
            "<details><summary>{}: {} failed</summary><table><tr><th>section</th><th>case</th><th>suite says</th><th>accepted because</th></tr>",
            esc(&r.name),
            r.outcome.failures.len()
        );
        for f in &r.outcome.failures {
            let _ = writeln!(
                out,
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if f.accepted.is_none() {
                    " class=\"flag\""
                } else {
                    ""
                },
                esc(&f.section),
                esc(&f.name),
                esc(&f.message),
                esc(f.accepted.as_deref().unwrap_or("not accepted"))
            );
        }
        out.push_str("</table></details>\n");
    }
    out
}
