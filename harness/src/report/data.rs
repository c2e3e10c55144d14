//! What the report shows, read from a results directory: per cell its axes, the
//! repetitions' summaries, the latency histogram merged over repetitions (never averaged
//! percentiles) and the per-second p50/p99 of the first repetition. Cells load in
//! parallel (rayon).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use rayon::prelude::*;
use serde_json::Value;

use crate::analysis::rundir::{
    ok_reps, plan_cell, read_manifest, rep_metrics, InputError, RepMetrics,
};
use crate::analysis::stats::median;
use crate::record::hlog;

/// One cell, ready to draw.
#[derive(Debug, Clone)]
pub struct CellData {
    /// Id.
    pub id: String,
    /// Readable name: the values of the axes that vary in the run.
    pub name: String,
    /// Axes.
    pub axes: BTreeMap<String, String>,
    /// Topology axis value.
    pub topology: String,
    /// Rate sweep this cell belongs to, and its target rate.
    pub sweep: Option<(String, f64)>,
    /// Repetitions with results.
    pub reps: Vec<RepMetrics>,
    /// Latency (us) merged over all repetitions' interval logs.
    pub latency: Option<Histogram<u64>>,
    /// (second, p50 us, p99 us) of the first repetition.
    pub timeline: Vec<(f64, f64, f64)>,
    /// Server-Timing entries, medians over repetitions, the app innermost.
    pub hops: Vec<crate::verdict::Hop>,
    /// The capacity search's steps, when the cell was a search.
    pub search: Option<SearchCurve>,
    /// Why the cell is suspicious, if it is.
    pub flags: Vec<String>,
    /// The protocol that reached the app and how it is known, e.g.
    /// `HTTP/1.1 (configured)`: a user's app behind a front reports nothing, so the lab
    /// says what it configured; the built-in app's is observed.
    pub app_protocol: Option<String>,
}

/// A cell's capacity search as drawn: latency against offered rate, the SLO, the knee.
#[derive(Debug, Clone, Default)]
pub struct SearchCurve {
    /// The percentile drawn (`p99` unless the first latency SLO names another).
    pub metric: String,
    /// Per search (one per repetition): (offered rate, that percentile in us, passed).
    pub searches: Vec<Vec<(f64, f64, bool)>>,
    /// The SLO's bound on that percentile, us.
    pub slo_us: Option<f64>,
    /// Where p99 stops being flat (the first search.json that says).
    pub knee: Option<f64>,
    /// Median capacity over the repetitions.
    pub capacity: Option<f64>,
}

/// Reads the repetitions' search.json files of a cell.
fn search_curve(dirs: &[PathBuf]) -> Option<SearchCurve> {
    use crate::analysis::rundir::Metric;
    let mut curve = SearchCurve::default();
    let mut caps = Vec::new();
    let mut any = false;
    for d in dirs {
        let Ok(text) = std::fs::read_to_string(d.join("search.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if !any {
            any = true;
            let slo = v
                .pointer("/spec/slos")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| crate::analysis::gate::parse_slo(s.as_str()?).ok())
                .find(|s| matches!(s.metric, Metric::P50 | Metric::P99 | Metric::P999));
            curve.metric = slo.as_ref().map_or("p99", |s| s.metric.name()).to_string();
            curve.slo_us = slo.map(|s| s.bound);
        }
        if curve.knee.is_none() {
            curve.knee = v["knee_rps"].as_f64();
        }
        let key = match curve.metric.as_str() {
            "p50" => "p50_us",
            "p99.9" => "p999_us",
            _ => "p99_us",
        };
        for run in v["searches"].as_array().into_iter().flatten() {
            caps.extend(run["capacity"].as_f64());
            let steps = run["steps"].as_array().into_iter().flatten();
            curve.searches.push(
                steps
                    .filter_map(|st| {
                        let pass = st["pass"].as_bool().unwrap_or(false);
                        Some((st["rate"].as_f64()?, st[key].as_f64()?, pass))
                    })
                    .collect(),
            );
        }
    }
    curve.capacity = (!caps.is_empty()).then(|| median(&caps));
    any.then_some(curve)
}

impl CellData {
    /// Median requests/s over repetitions.
    pub fn rps_median(&self) -> f64 {
        median(&self.reps.iter().map(|r| r.rps).collect::<Vec<_>>())
    }
}

/// A loaded run.
#[derive(Debug, Clone)]
pub struct RunData {
    /// Directory.
    pub dir: PathBuf,
    /// The manifest as JSON (environment, scenario text, pinning).
    pub manifest: Value,
    /// Cells in plan order.
    pub cells: Vec<CellData>,
}

fn load_cell(dir: &Path, manifest: &Value, plan: &Value) -> Result<CellData, InputError> {
    let (id, axes) = plan_cell(plan);
    let sweep = plan
        .pointer("/load/sweep")
        .and_then(Value::as_str)
        .zip(plan.pointer("/load/rate").and_then(Value::as_f64))
        .map(|(s, r)| (s.to_string(), r));
    let mut reps = Vec::new();
    let dirs: Vec<PathBuf> = ok_reps(manifest, &id).map(|rel| dir.join(rel)).collect();
    let search = search_curve(&dirs);
    let mut latency: Option<Histogram<u64>> = None;
    let mut timeline = Vec::new();
    for rel in ok_reps(manifest, &id) {
        reps.push(rep_metrics(&dir.join(rel).join("result.json"))?);
        let hpath = dir.join(rel).join("latency.hlog");
        let Ok(bytes) = std::fs::read(&hpath) else {
            continue;
        };
        let intervals = hlog::read_intervals(&bytes).map_err(|why| InputError::Invalid {
            path: hpath.clone(),
            why,
        })?;
        let first = timeline.is_empty();
        for i in intervals.iter().filter(|i| i.tag == "latency") {
            if first && !i.histogram.is_empty() {
                timeline.push((
                    i.start_s,
                    i.histogram.value_at_quantile(0.5) as f64,
                    i.histogram.value_at_quantile(0.99) as f64,
                ));
            }
            match &mut latency {
                Some(h) => {
                    let _ = h.add(&i.histogram);
                }
                None => latency = Some(i.histogram.clone()),
            }
        }
    }
    if let Some(t0) = timeline.first().map(|t| t.0) {
        for t in &mut timeline {
            t.0 -= t0;
        }
    }
    let mut flags = Vec::new();
    let worst_errors = reps.iter().map(|r| r.error_rate).fold(0.0, f64::max);
    if worst_errors > 0.01 {
        flags.push(format!("error rate up to {:.1}%", worst_errors * 100.0));
    }
    for r in &reps {
        if let Some(t) = r.target_rps {
            if r.rps < t * 0.98 {
                flags.push(format!("achieved {:.0} of {:.0} req/s", r.rps, t));
                break;
            }
        }
    }
    if let Some(r) = reps.iter().find(|r| r.generator_bound) {
        flags.push(format!(
            "generator-bound ({}): the numbers measure the generator",
            r.generator_bound_reason.as_deref().unwrap_or("saturated")
        ));
    }
    if reps.is_empty() {
        flags.push("no result (failed or skipped)".into());
    }
    let app_protocol = manifest["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["cell"] == id.as_str() && r["app_protocol"].is_string())
        .map(|r| {
            format!(
                "{} ({})",
                r["app_protocol"].as_str().unwrap_or("?"),
                r["app_protocol_source"].as_str().unwrap_or("observed")
            )
        });
    Ok(CellData {
        name: String::new(),
        hops: crate::verdict::hops(&reps),
        search,
        app_protocol,
        topology: axes.get("topology").cloned().unwrap_or_default(),
        id,
        axes,
        sweep,
        reps,
        latency,
        timeline,
        flags,
    })
}

/// Loads a results directory; cells in parallel.
pub fn load(dir: &Path) -> Result<RunData, InputError> {
    let manifest = read_manifest(dir)?;
    let plan_cells: Vec<Value> = manifest
        .pointer("/plan/cells")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut cells = plan_cells
        .par_iter()
        .map(|pc| load_cell(dir, &manifest, pc))
        .collect::<Result<Vec<_>, _>>()?;
    let names =
        crate::analysis::names::readable(&cells.iter().map(|c| &c.axes).collect::<Vec<_>>());
    for (c, n) in cells.iter_mut().zip(names) {
        c.name = n;
    }
    Ok(RunData {
        dir: dir.to_path_buf(),
        manifest,
        cells,
    })
}
