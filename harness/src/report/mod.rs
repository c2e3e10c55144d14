//! `h2lab report`: a results directory -> a self-contained index.html (inline CSS and
//! SVG, no network), summary.md (a pull-request comment), cells.csv and the charts as
//! SVG files. Cells load and charts render in parallel (rayon).

pub mod charts;
pub mod data;
pub mod hop_chart;
pub mod png;
pub mod search_chart;
pub mod survival_chart;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::analysis::rundir::InputError;
use crate::analysis::stats::median;
use crate::verdict::Verdict;
use data::{CellData, RunData};

use crate::output::html_escape as esc;

fn pct(c: &CellData, q: f64) -> String {
    c.latency
        .as_ref()
        .filter(|h| !h.is_empty())
        .map(|h| format!("{:.2}", h.value_at_quantile(q) as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

fn error_rate(c: &CellData) -> String {
    if c.reps.is_empty() {
        return "-".into();
    }
    format!(
        "{:.3}%",
        median(&c.reps.iter().map(|r| r.error_rate).collect::<Vec<_>>()) * 100.0
    )
}

/// cells.csv: one row per cell, percentiles from the merged histogram.
pub fn csv(run: &RunData) -> String {
    let mut out = String::from("cell,name,topology,repetitions,rps_median,rps_min,rps_max,p50_ms,p90_ms,p99_ms,p999_ms,p9999_ms,error_rate,app_protocol,flags\n");
    for c in &run.cells {
        let rps: Vec<f64> = c.reps.iter().map(|r| r.rps).collect();
        let _ = writeln!(
            out,
            "{},\"{}\",{},{},{:.1},{:.1},{:.1},{},{},{},{},{},{},{},\"{}\"",
            c.id,
            c.name.replace('"', "\"\""),
            c.topology,
            c.reps.len(),
            median(&rps),
            rps.iter().copied().fold(f64::NAN, f64::min),
            rps.iter().copied().fold(f64::NAN, f64::max),
            pct(c, 0.5),
            pct(c, 0.9),
            pct(c, 0.99),
            pct(c, 0.999),
            pct(c, 0.9999),
            error_rate(c),
            c.app_protocol.as_deref().unwrap_or(""),
            c.flags.join("; ").replace('"', "\"\"")
        );
    }
    out
}

/// summary.md: environment line, the verdict, the cells table, flagged cells.
pub fn markdown(run: &RunData, verdict: &Verdict) -> String {
    let m = &run.manifest;
    let env = &m["environment"];
    let mut out = format!(
        "# h2lab run {}\n\n{} · {} · {} CPUs · h2lab {} ({})\n\n| cell | topology | protocol at the app | reps | req/s (median) | p50 ms | p99 ms | p99.9 ms | errors |\n|---|---|---|---|---|---|---|---|---|\n",
        m["run_id"].as_str().unwrap_or("?"),
        env["os"].as_str().unwrap_or("?"),
        env["cpu_model"].as_str().unwrap_or("?"),
        env["cpus"],
        env["h2lab_version"].as_str().unwrap_or("?"),
        env["h2lab_commit"].as_str().unwrap_or("?"),
    );
    let table = std::mem::take(&mut out);
    let (head, columns) = table.split_at(table.find("| cell |").unwrap_or(table.len()));
    out = format!(
        "{head}{}## Cells\n\n{columns}",
        crate::verdict::render::markdown(verdict)
    );
    for c in &run.cells {
        let _ = writeln!(
            out,
            "| {}{} | {} | {} | {} | {:.0} | {} | {} | {} | {} |",
            c.name,
            if c.flags.is_empty() { "" } else { " ⚠" },
            c.topology,
            c.app_protocol.as_deref().unwrap_or("-"),
            c.reps.len(),
            c.rps_median(),
            pct(c, 0.5),
            pct(c, 0.99),
            pct(c, 0.999),
            error_rate(c)
        );
    }
    let flagged: Vec<&CellData> = run.cells.iter().filter(|c| !c.flags.is_empty()).collect();
    if !flagged.is_empty() {
        out.push_str("\n**Suspicious cells**\n\n");
        for c in flagged {
            let _ = writeln!(out, "- {} (`{}`): {}", c.name, c.id, c.flags.join("; "));
        }
    }
    out
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}tr.flag{background:#fff3cd}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}h2{margin-top:1.6em}figure{margin:1em 0}.warn{color:#8a6d00}";

/// index.html with everything inline; it opens with the verdict.
pub fn html(run: &RunData, verdict: &Verdict, charts: &[(String, String)]) -> String {
    let m = &run.manifest;
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>h2lab {}</title><style>{CSS}</style></head><body>\n<h1>h2lab run {}</h1>\n",
        esc(m["run_id"].as_str().unwrap_or("?")),
        esc(m["run_id"].as_str().unwrap_or("?"))
    );
    let _ = writeln!(
        out,
        "<p>{} cells · complete: {} · interrupted: {} · started {} · finished {}</p>",
        run.cells.len(),
        m["complete"],
        m["interrupted"],
        esc(m["started_at"].as_str().unwrap_or("?")),
        esc(m["finished_at"].as_str().unwrap_or("-"))
    );
    out.push_str(&crate::verdict::render::html(verdict));
    out.push_str("<h2>Cells</h2><p>Hover a name for the cell's full id.</p><table><tr><th>cell</th><th>topology</th><th>protocol at the app</th><th>reps</th><th>req/s median</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>p99.99 ms</th><th>errors</th><th>flags</th></tr>\n");
    for c in &run.cells {
        let _ = writeln!(
            out,
            "<tr{}><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"warn\">{}</td></tr>",
            if c.flags.is_empty() { "" } else { " class=\"flag\"" },
            esc(&c.id),
            esc(&c.name),
            esc(&c.topology),
            esc(c.app_protocol.as_deref().unwrap_or("-")),
            c.reps.len(),
            c.rps_median(),
            pct(c, 0.5),
            pct(c, 0.99),
            pct(c, 0.999),
            pct(c, 0.9999),
            error_rate(c),
            esc(&c.flags.join("; "))
        );
    }
    out.push_str("</table>\n");
    for (name, svg) in charts {
        let _ = writeln!(out, "<h2>{}</h2><figure>{}</figure>", esc(name), svg);
    }
    out.push_str("<h2>Environment</h2><table>\n");
    if let Some(env) = m["environment"].as_object() {
        for (k, v) in env {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = writeln!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&text));
        }
    }
    let _ = write!(
        out,
        "<tr><td>pinning</td><td>{}</td></tr></table>\n<h2>Scenario</h2><p>{}</p><pre>{}</pre>\n</body></html>\n",
        esc(&m["pinning"].to_string()),
        esc(m["scenario_file"].as_str().unwrap_or("")),
        esc(m["scenario"].as_str().unwrap_or(""))
    );
    out
}

/// Files written by [`build`].
pub struct Written {
    /// Every file, index.html first.
    pub files: Vec<PathBuf>,
    /// The verdict as a terminal table.
    pub verdict_text: String,
    /// Cells flagged as suspicious.
    pub flagged: usize,
}

/// Builds the report of `run_dir` into `out`; `png` also writes each chart as PNG.
pub fn build(run_dir: &Path, out: &Path, png: bool) -> Result<Written, InputError> {
    let run = data::load(run_dir)?;
    let verdict = crate::verdict::build(&crate::analysis::rundir::RunDir::load(run_dir)?);
    let matrix_svg = std::fs::read_to_string(run_dir.join("matrix.svg")).ok();
    let jobs: Vec<(&str, &str)> = vec![
        ("Capacity search: latency vs offered rate", "capacity.svg"),
        ("Throughput", "throughput.svg"),
        ("Where the time goes: app, each hop, the rest", "hops.svg"),
        ("Latency percentile spectrum", "spectrum.svg"),
        ("Latency over time", "timeline.svg"),
        ("Latency vs offered rate", "sweep.svg"),
    ];
    use rayon::prelude::*;
    let mut charts: Vec<(String, String, String)> = jobs
        .par_iter()
        .filter_map(|(title, file)| {
            let svg = match *file {
                "spectrum.svg" => Some(charts::spectrum(&run.cells)),
                "throughput.svg" => Some(charts::throughput(&run.cells)),
                "timeline.svg" => Some(charts::timeline(&run.cells)),
                "hops.svg" => hop_chart::breakdown(&run.cells),
                "capacity.svg" => search_chart::curve(&run.cells),
                _ => charts::sweep(&run.cells),
            }?;
            Some((title.to_string(), file.to_string(), svg))
        })
        .collect();
    if let Some(s) = &verdict.survival {
        charts.insert(
            0,
            (
                "Survival matrix".into(),
                "survival.svg".into(),
                survival_chart::heatmap(s),
            ),
        );
    }
    if let Some(svg) = matrix_svg {
        charts.push(("HTTP/2 negotiation matrix".into(), "matrix.svg".into(), svg));
    }
    let write = |path: PathBuf, text: &str| -> Result<PathBuf, InputError> {
        crate::output::atomic_write(&path, |w| std::io::Write::write_all(w, text.as_bytes()))
            .map_err(|e| InputError::Read {
                path: path.clone(),
                why: e.to_string(),
            })?;
        Ok(path)
    };
    std::fs::create_dir_all(out).map_err(|e| InputError::Read {
        path: out.to_path_buf(),
        why: e.to_string(),
    })?;
    let inline: Vec<(String, String)> = charts
        .iter()
        .map(|(t, _, s)| (t.clone(), s.clone()))
        .collect();
    let mut files = vec![
        write(out.join("index.html"), &html(&run, &verdict, &inline))?,
        write(out.join("summary.md"), &markdown(&run, &verdict))?,
        write(out.join("cells.csv"), &csv(&run))?,
    ];
    for (_, file, svg) in &charts {
        if out != run_dir || file != "matrix.svg" {
            files.push(write(out.join(file), svg)?);
        }
    }
    if png {
        let rendered: Vec<(PathBuf, Result<Vec<u8>, String>)> = charts
            .par_iter()
            .map(|(_, file, svg)| (out.join(file).with_extension("png"), png::from_svg(svg)))
            .collect();
        for (path, bytes) in rendered {
            let bytes = bytes.map_err(|why| InputError::Invalid {
                path: path.clone(),
                why,
            })?;
            crate::output::atomic_write(&path, |w| std::io::Write::write_all(w, &bytes)).map_err(
                |e| InputError::Read {
                    path: path.clone(),
                    why: e.to_string(),
                },
            )?;
            files.push(path);
        }
    }
    Ok(Written {
        files,
        verdict_text: crate::verdict::render::text(&verdict),
        flagged: run.cells.iter().filter(|c| !c.flags.is_empty()).count(),
    })
}
