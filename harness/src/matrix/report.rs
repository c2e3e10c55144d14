//! matrix.csv and matrix.md (grouped by topology, readable as a PR comment), and the check
//! of the documented rows.

use std::fmt::Write as _;

use super::spec::MatrixSpec;
use super::{CellResult, DocumentedResult, MatrixResult};
use crate::output::unique_in_order;

/// Checks each documented row against the cells it names.
pub fn documented(spec: &MatrixSpec, cells: &[CellResult]) -> Vec<DocumentedResult> {
    spec.documented
        .iter()
        .map(|row| {
            let matching: Vec<&CellResult> = cells
                .iter()
                .filter(|c| {
                    row.filter
                        .iter()
                        .all(|(k, v)| c.axis(k) == Some(v.as_str()))
                })
                .collect();
            let mismatches: Vec<String> = matching
                .iter()
                .filter(|c| {
                    row.edge.as_ref().is_some_and(|e| *e != c.observed.edge)
                        || row
                            .app
                            .as_ref()
                            .is_some_and(|a| Some(a) != c.observed.app.as_ref())
                })
                .map(|c| {
                    format!(
                        "{} {} {} {} {} {}: {} (app {})",
                        c.topology,
                        c.server_tls,
                        c.profile,
                        c.cert,
                        c.client_profile,
                        c.offer,
                        c.observed.edge,
                        c.observed.app.as_deref().unwrap_or("-")
                    )
                })
                .collect();
            DocumentedResult {
                row: row.row.clone(),
                edge: row.edge.clone(),
                app: row.app.clone(),
                cells: matching.len(),
                reproduced: !matching.is_empty() && mismatches.is_empty(),
                mismatches,
            }
        })
        .collect()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per cell.
pub fn csv(r: &MatrixResult) -> String {
    let mut out = String::from(
        "topology,server_tls,profile,cert,client_profile,offer,expected_edge,observed_edge,expected_app,observed_app,tls_version,cipher,group,cert_key,alpn,agrees,cross_check_tool,cross_check_verdict,cross_check_agrees,rule,detail,explanation\n",
    );
    for c in &r.cells {
        let o = &c.observed;
        let cc = c.cross_check.as_ref();
        let fields = [
            c.topology.as_str(),
            &c.server_tls,
            &c.profile,
            &c.cert,
            &c.client_profile,
            &c.offer,
            &c.expected.edge,
            &o.edge,
            c.expected.app.as_deref().unwrap_or(""),
            o.app.as_deref().unwrap_or(""),
            o.version.as_deref().unwrap_or(""),
            o.cipher.as_deref().unwrap_or(""),
            o.group.as_deref().unwrap_or(""),
            o.cert_key.as_deref().unwrap_or(""),
            o.alpn.as_deref().unwrap_or(""),
            if c.agrees { "yes" } else { "no" },
            cc.map_or("", |x| x.tool.as_str()),
            cc.map_or("", |x| x.verdict.as_str()),
            cc.map_or("", |x| if x.agrees { "yes" } else { "no" }),
            &c.expected.rule,
            o.detail.as_deref().unwrap_or(""),
        ];
        let mut line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        line.push(csv_field(c.explanation.unwrap_or("")));
        let _ = writeln!(out, "{}", line.join(","));
    }
    out
}

fn short(edge: &str) -> String {
    match edge {
        "HTTP/2" => "**h2**".into(),
        "HTTP/1.1" => "http/1.1".into(),
        other => format!("`{other}`"),
    }
}

/// Markdown grouped by topology: one table per topology, rows = server configuration x
/// client profile, columns = offers.
pub fn markdown(r: &MatrixResult) -> String {
    let s = &r.summary;
    let mut out = format!("# HTTP/2 negotiation matrix: {}\n\n", r.name);
    let _ = writeln!(
        out,
        "{} cells on {} servers in {:.1} s: **{} as expected, {} not**{}{}.\n",
        s.cells,
        s.servers,
        s.elapsed_s,
        s.agree,
        s.disagree,
        if s.documented_total > 0 {
            format!(
                "; documented rows reproduced: {}/{}",
                s.documented_reproduced, s.documented_total
            )
        } else {
            String::new()
        },
        if r.cells.iter().any(|c| c.cross_check.is_some()) {
            format!("; cross-check disagreements: {}", s.cross_check_disagree)
        } else {
            String::new()
        }
    );
    if !r.documented.is_empty() {
        out.push_str("## The documented table\n\n| row | expected edge | expected app | cells | reproduced |\n|---|---|---|---|---|\n");
        for d in &r.documented {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                d.row,
                d.edge.as_deref().unwrap_or("-"),
                d.app.as_deref().unwrap_or("-"),
                d.cells,
                if d.reproduced {
                    "yes".to_string()
                } else if d.cells == 0 {
                    "NO: no cell matches".to_string()
                } else {
                    format!("NO: {}", d.mismatches.join("; "))
                }
            );
        }
        out.push('\n');
    }
    let disagreements: Vec<&CellResult> = r.cells.iter().filter(|c| !c.agrees).collect();
    if !disagreements.is_empty() {
        out.push_str("## Disagreements (findings to explain)\n\n| topology | server | profile | cert | client | offer | expected | observed | rule | detail / explanation |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for c in &disagreements {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} (app {}) | {} (app {}) | {} | {} |",
                c.topology,
                c.server_tls,
                c.profile,
                c.cert,
                c.client_profile,
                c.offer,
                short(&c.expected.edge),
                c.expected.app.as_deref().unwrap_or("-"),
                short(&c.observed.edge),
                c.observed.app.as_deref().unwrap_or("-"),
                c.expected.rule,
                match c.explanation {
                    Some(why) => format!(
                        "{}; explained: {why}",
                        c.observed.detail.as_deref().unwrap_or("")
                    ),
                    None => c.observed.detail.as_deref().unwrap_or("").to_string(),
                }
                .replace('|', "/")
            );
        }
        out.push('\n');
    }
    let offers = unique_in_order(r.cells.iter().map(|c| c.offer.as_str()));
    let topologies = unique_in_order(r.cells.iter().map(|c| c.topology.as_str()));
    for t in topologies {
        let _ = writeln!(out, "## {t}\n");
        let cells: Vec<&CellResult> = r.cells.iter().filter(|c| c.topology == t).collect();
        let _ = writeln!(
            out,
            "| server | profile | cert | client | {} |",
            offers.join(" | ")
        );
        let _ = writeln!(out, "|---|---|---|---|{}", "---|".repeat(offers.len()));
        let rows = unique_in_order(cells.iter().map(|c| {
            (
                c.server_tls.as_str(),
                c.profile.as_str(),
                c.cert.as_str(),
                c.client_profile.as_str(),
            )
        }));
        for (stack, profile, cert, client) in rows {
            let mut line = format!("| {stack} | {profile} | {cert} | {client} |");
            for offer in &offers {
                let cell = cells.iter().find(|c| {
                    c.server_tls == stack
                        && c.profile == profile
                        && c.cert == cert
                        && c.client_profile == client
                        && c.offer == *offer
                });
                let text = match cell {
                    None => " |".to_string(),
                    Some(c) => {
                        let app = match c.observed.app.as_deref() {
                            Some(a) if Some(a) != Some(c.observed.edge.as_str()) => {
                                format!(" → app {}", if a == "HTTP/2" { "h2" } else { a })
                            }
                            _ => String::new(),
                        };
                        let flag = if c.agrees { "" } else { " ⚠" };
                        format!(" {}{app}{flag} |", short(&c.observed.edge))
                    }
                };
                line.push_str(&text);
            }
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
    if !r.skipped.is_empty() {
        out.push_str("## Left out\n\n");
        for s in &r.skipped {
            let _ = writeln!(out, "- {}: {}", s.what, s.why);
        }
    }
    out
}
