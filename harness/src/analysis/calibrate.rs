//! Gate thresholds from measured noise. `h2lab gate --calibrate DIR...` reads unchanged
//! (A/A) runs of one scenario, measures how far each metric's median moves between any two
//! of them, and proposes per metric a threshold above that noise; `--calibration FILE`
//! applies it. The same noise says how many repetitions would decide an inconclusive
//! change.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::compare::{Limit, Thresholds};
use super::rundir::{read_json, CellSamples, InputError, Metric, RunDir};
use super::stats::median;

/// Schema of the calibration file.
pub const CALIBRATION_SCHEMA: &str = "h2lab.gate-calibration/v1";

/// Threshold = this margin x the 95th percentile of A/A changes.
const MARGIN: f64 = 1.25;
/// No threshold below this (percent): below it, a change is not worth a red build.
const FLOOR_PCT: f64 = 2.0;

/// One metric's measured noise.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricNoise {
    /// 95th percentile of |change| of the medians between two A/A runs, percent (worst cell).
    pub aa_change_p95_pct: f64,
    /// Largest |change| seen, percent.
    pub aa_change_max_pct: f64,
    /// Relative standard deviation of one repetition's value (median over cells); none
    /// when the runs had one repetition each.
    pub rep_cv: Option<f64>,
    /// The proposed threshold, percent.
    pub threshold_pct: f64,
}

/// The calibration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calibration {
    /// [`CALIBRATION_SCHEMA`].
    pub schema: String,
    /// The A/A runs measured.
    pub runs: Vec<String>,
    /// Pairs of runs compared.
    pub pairs: usize,
    /// Per metric name.
    pub metrics: BTreeMap<String, MetricNoise>,
    /// The thresholds, as `--max-regression` or `[gate] max_regression` takes them.
    pub max_regression: String,
}

fn values(c: &CellSamples, m: Metric) -> Vec<f64> {
    c.reps
        .iter()
        .filter(|r| !r.generator_bound)
        .map(|r| m.of(r))
        .collect()
}

fn cv(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    if mean <= 0.0 {
        return None;
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    Some(var.sqrt() / mean)
}

/// A repetition's relative noise for `m`, from the two cells' repetitions (two or more on
/// each side), else from the seconds of their interval logs (within-run noise of one
/// second, scaled to a run of that many seconds: a lower bound).
pub fn rep_noise(b: &CellSamples, n: &CellSamples, m: Metric) -> Option<f64> {
    if let (Some(x), Some(y)) = (cv(&values(b, m)), cv(&values(n, m))) {
        return Some(((x * x + y * y) / 2.0).sqrt());
    }
    let per_run = |c: &CellSamples| {
        c.reps
            .iter()
            .filter_map(|r| {
                let secs: Vec<f64> = r
                    .intervals
                    .iter()
                    .filter_map(|i| m.of_interval(i))
                    .collect();
                Some(cv(&secs)? / (secs.len() as f64).sqrt())
            })
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
    };
    match (per_run(b), per_run(n)) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

/// Measures the A/A noise of `runs` (two or more runs of the same scenario).
pub fn calibrate(runs: &[RunDir]) -> Result<Calibration, InputError> {
    if runs.len() < 2 {
        return Err(InputError::Mismatch(
            "--calibrate needs at least two unchanged runs of the same scenario (more pairs, a better estimate; 20 or more is good)".into(),
        ));
    }
    let first = &runs[0];
    for r in &runs[1..] {
        let same = r.cells.len() == first.cells.len()
            && r.cells
                .iter()
                .all(|c| first.cells.iter().any(|f| f.axes == c.axes));
        if !same {
            return Err(InputError::Mismatch(format!(
                "{} and {} have different cells: calibrate with runs of one scenario",
                first.path.display(),
                r.path.display()
            )));
        }
    }
    let mut metrics = BTreeMap::new();
    let mut pairs = 0;
    for m in Metric::ALL.into_iter().filter(|m| *m != Metric::ErrorRate) {
        let mut changes = Vec::new();
        let mut cvs = Vec::new();
        for cell in &first.cells {
            let per_run: Vec<Vec<f64>> = runs
                .iter()
                .filter_map(|r| r.cells.iter().find(|c| c.axes == cell.axes))
                .map(|c| values(c, m))
                .filter(|v| !v.is_empty())
                .collect();
            cvs.extend(per_run.iter().filter_map(|v| cv(v)));
            let medians: Vec<f64> = per_run.iter().map(|v| median(v)).collect();
            let mut cell_changes = Vec::new();
            for i in 0..medians.len() {
                for j in i + 1..medians.len() {
                    if medians[i] > 0.0 {
                        cell_changes.push(((medians[j] - medians[i]) / medians[i]).abs() * 100.0);
                    }
                }
            }
            pairs = pairs.max(cell_changes.len());
            changes.push(cell_changes);
        }
        let q95 = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(((v.len() as f64 - 1.0) * 0.95).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        // The worst cell decides: one threshold per metric must hold for every cell.
        let p95 = changes.iter_mut().map(q95).fold(0.0, f64::max);
        let max = changes.iter().flatten().copied().fold(0.0, f64::max);
        metrics.insert(
            m.name().to_string(),
            MetricNoise {
                aa_change_p95_pct: p95,
                aa_change_max_pct: max,
                rep_cv: (!cvs.is_empty()).then(|| median(&cvs)),
                threshold_pct: (p95 * MARGIN).max(FLOOR_PCT).ceil(),
            },
        );
    }
    let max_regression = metrics
        .iter()
        .map(|(k, v)| format!("{k}={}%", v.threshold_pct))
        .chain(["error_rate=0.1pp".to_string()])
        .collect::<Vec<_>>()
        .join(",");
    Ok(Calibration {
        schema: CALIBRATION_SCHEMA.into(),
        runs: runs.iter().map(|r| r.path.display().to_string()).collect(),
        pairs,
        metrics,
        max_regression,
    })
}

impl Calibration {
    /// Reads a calibration file written by `h2lab gate --calibrate --json FILE`.
    pub fn load(path: &Path) -> Result<Calibration, InputError> {
        let v = read_json(path)?;
        let c: Calibration = serde_json::from_value(v).map_err(|e| InputError::Invalid {
            path: path.to_path_buf(),
            why: format!("not a calibration file: {e}"),
        })?;
        if c.schema != CALIBRATION_SCHEMA {
            return Err(InputError::Invalid {
                path: path.to_path_buf(),
                why: format!(
                    "schema `{}`, this h2lab reads `{CALIBRATION_SCHEMA}`",
                    c.schema
                ),
            });
        }
        Ok(c)
    }

    /// The calibrated thresholds over `base` (error rate and unknown metrics kept).
    pub fn thresholds(&self, mut base: Thresholds) -> Thresholds {
        for (k, v) in &self.metrics {
            if let Some(m) = Metric::parse(k) {
                base.0.insert(m, Limit::Percent(v.threshold_pct));
            }
        }
        base
    }

    /// A repetition's relative noise per metric.
    pub fn noise(&self) -> BTreeMap<Metric, f64> {
        self.metrics
            .iter()
            .filter_map(|(k, v)| Some((Metric::parse(k)?, v.rep_cv?)))
            .collect()
    }

    /// A table for the terminal.
    pub fn text(&self) -> String {
        let mut out = format!(
            "A/A noise over {} runs ({} pairs per cell):\n  {:<8} {:>12} {:>10} {:>8} {:>10}\n",
            self.runs.len(),
            self.pairs,
            "metric",
            "p95 change",
            "max",
            "rep cv",
            "threshold"
        );
        for (k, v) in &self.metrics {
            out.push_str(&format!(
                "  {:<8} {:>11.1}% {:>9.1}% {:>8} {:>9}%\n",
                k,
                v.aa_change_p95_pct,
                v.aa_change_max_pct,
                v.rep_cv
                    .map_or("-".to_string(), |c| format!("{:.1}%", c * 100.0)),
                v.threshold_pct
            ));
        }
        out.push_str(&format!(
            "use: h2lab gate --max-regression {}   (or [gate] max_regression in the scenario)\n",
            self.max_regression
        ));
        out
    }
}
