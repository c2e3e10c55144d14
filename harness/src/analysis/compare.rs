//! `h2lab compare`: cells matched by their axes, per metric base vs new, the change, and
//! whether it is significant given the repetitions.

use std::collections::BTreeMap;

use serde::Serialize;

use super::rundir::{CellSamples, InputError, Metric, RunDir};
use super::stats::{bootstrap_ratio_ci, mann_whitney_p, median};

/// Significance level of the test.
pub const ALPHA: f64 = 0.05;

/// Significance level of the tails (p99, p99.9). Between identical interleaved repetitions
/// on a shared VM they move by tens of percent, and a gate tests every cell's two tails
/// at once. On 20 interleaved A/A pairs of scenarios/ci-gate.toml (scripts/bench-gate.sh)
/// 1 gate failed on a tail at 0.05 and none at this level, while a +20% slowdown was caught
/// as often (19 of 20, by p50). Five against five repetitions reach it only when every
/// candidate repetition is worse than every baseline one.
pub const ALPHA_TAIL: f64 = 0.01;

/// The significance level of `metric`.
pub fn alpha(metric: Metric) -> f64 {
    match metric {
        Metric::P99 | Metric::P999 => ALPHA_TAIL,
        _ => ALPHA,
    }
}

/// How much worse a metric may get: percent of the base, or percentage points (error rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "unit", content = "value", rename_all = "snake_case")]
pub enum Limit {
    /// Percent of the base value.
    Percent(f64),
    /// Percentage points (for rates).
    Points(f64),
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Percent(p) => write!(f, "{p}%"),
            Limit::Points(p) => write!(f, "{p}pp"),
        }
    }
}

/// Regression thresholds per metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thresholds(pub BTreeMap<Metric, Limit>);

impl Default for Thresholds {
    /// Throughput -5%, p50 and p99 +10%, p99.9 +15%, error rate +0.1 percentage points.
    fn default() -> Self {
        Thresholds(BTreeMap::from([
            (Metric::Rps, Limit::Percent(5.0)),
            (Metric::P50, Limit::Percent(10.0)),
            (Metric::P99, Limit::Percent(10.0)),
            (Metric::P999, Limit::Percent(15.0)),
            (Metric::ErrorRate, Limit::Points(0.1)),
        ]))
    }
}

/// The verdict of one metric of one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No change beyond the threshold with significance.
    Pass,
    /// Better beyond the threshold, significantly.
    Improved,
    /// Worse beyond the threshold, significantly.
    Regressed,
    /// Worse beyond the threshold, but the repetitions cannot tell it from noise.
    Inconclusive,
}

/// One metric of one cell.
#[derive(Debug, Clone, Serialize)]
pub struct MetricComparison {
    /// The metric.
    pub metric: Metric,
    /// Median over the base repetitions.
    pub base: f64,
    /// Median over the new repetitions.
    pub new: f64,
    /// Change in percent of the base (rates: percentage points).
    pub change: f64,
    /// Unit of `change`: `%` or `pp`.
    pub change_unit: &'static str,
    /// Mann-Whitney U two-sided p-value (None under 3 repetitions).
    pub p_value: Option<f64>,
    /// 95% bootstrap interval of new/base medians.
    pub ratio_ci: Option<(f64, f64)>,
    /// Significant: p < 0.05 and the interval excludes 1.
    pub significant: bool,
    /// How significance was judged.
    pub method: String,
    /// The threshold applied.
    pub threshold: Limit,
    /// The verdict.
    pub verdict: Verdict,
    /// For an inconclusive change: repetitions a side that would decide it.
    pub reps_needed: Option<usize>,
}

/// One cell.
#[derive(Debug, Clone, Serialize)]
pub struct CellComparison {
    /// Cell id (of the new run).
    pub id: String,
    /// Its axes.
    pub axes: BTreeMap<String, String>,
    /// Repetitions used in base and new.
    pub reps: (usize, usize),
    /// Repetitions left out because the generator could not keep its schedule.
    pub generator_bound_excluded: (usize, usize),
    /// Per metric.
    pub metrics: Vec<MetricComparison>,
}

/// A whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Schema of the JSON output.
    pub schema: &'static str,
    /// Base run id and directory.
    pub base: String,
    /// New run id and directory.
    pub new: String,
    /// Thresholds applied.
    pub thresholds: Thresholds,
    /// Cells.
    pub cells: Vec<CellComparison>,
}

fn label(axes: &BTreeMap<String, String>) -> String {
    axes.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Compares one metric's samples; `noise` (a repetition's relative standard deviation, when
/// known) says how many repetitions would decide an inconclusive change.
pub fn compare_metric(
    metric: Metric,
    base: &[f64],
    new: &[f64],
    limit: Limit,
    noise: Option<f64>,
) -> MetricComparison {
    let (mb, mn) = (median(base), median(new));
    let (change, unit) = match limit {
        Limit::Points(_) => ((mn - mb) * 100.0, "pp"),
        Limit::Percent(_) => (
            if mb == 0.0 {
                if mn == 0.0 {
                    0.0
                } else {
                    100.0
                }
            } else {
                (mn - mb) / mb * 100.0
            },
            "%",
        ),
    };
    let worse = if metric.higher_is_better() {
        -change
    } else {
        change
    };
    let limit_value = match limit {
        Limit::Percent(p) | Limit::Points(p) => p,
    };
    let enough = base.len() >= 3 && new.len() >= 3;
    let (p_value, ratio_ci, significant, method, verdict);
    if enough {
        let p = mann_whitney_p(base, new);
        let ci = bootstrap_ratio_ci(base, new);
        let ci_excludes_one = ci.is_some_and(|(lo, hi)| lo > 1.0 || hi < 1.0);
        // Both must agree: either alone raises the A/A false-alarm rate.
        significant = p < alpha(metric) && ci_excludes_one;
        method = format!(
            "Mann-Whitney U over {}+{} repetitions at p < {}, bootstrap 95% CI of the ratio",
            base.len(),
            new.len(),
            alpha(metric)
        );
        verdict = if worse > limit_value && significant {
            Verdict::Regressed
        } else if worse > limit_value {
            Verdict::Inconclusive
        } else if -worse > limit_value && significant {
            Verdict::Improved
        } else {
            Verdict::Pass
        };
        p_value = Some(p);
        ratio_ci = ci;
    } else {
        p_value = None;
        ratio_ci = None;
        significant = false;
        method = format!(
            "{}+{} repetitions: too few for a test; a change beyond the threshold is inconclusive",
            base.len(),
            new.len()
        );
        // One run against one run cannot tell a regression from an unlucky rerun.
        verdict = if worse > limit_value {
            Verdict::Inconclusive
        } else {
            Verdict::Pass
        };
    }
    let reps_needed = (verdict == Verdict::Inconclusive)
        .then(|| noise.map(|cv| reps_to_decide(cv, worse.abs() / 100.0)))
        .flatten()
        .filter(|_| matches!(limit, Limit::Percent(_)));
    MetricComparison {
        metric,
        base: mb,
        new: mn,
        change,
        change_unit: unit,
        p_value,
        ratio_ci,
        significant,
        method,
        threshold: limit,
        verdict,
        reps_needed,
    }
}

/// Repetitions a side for a Mann-Whitney test at 5% to catch, with 80% power, a change of
/// `effect` (a fraction) given a repetition's relative noise `cv` (normal approximation,
/// at least 5: fewer cannot reach p < 0.05 with the bootstrap agreeing).
pub fn reps_to_decide(cv: f64, effect: f64) -> usize {
    if effect <= 0.0 || !cv.is_finite() {
        return 5;
    }
    let z = 1.96 + 0.84;
    let n = 2.0 * (z * cv / effect).powi(2);
    // The rank test's efficiency relative to the t-test is about 0.95.
    ((n / 0.95).ceil() as usize).clamp(5, 1000)
}

/// Values of repetitions whose generator kept up.
fn samples(c: &CellSamples, m: Metric) -> Vec<f64> {
    c.reps
        .iter()
        .filter(|r| !r.generator_bound)
        .map(|r| m.of(r))
        .collect()
}

fn bound(c: &CellSamples) -> usize {
    c.reps.iter().filter(|r| r.generator_bound).count()
}

/// Matches the cells of two runs by their axes and compares every metric. Missing or
/// extra cells and cells without results are refused; generator-bound repetitions are
/// left out.
/// `noise` (from a calibration) gives a repetition's relative noise per metric; without it
/// the noise is estimated from the two runs themselves.
pub fn compare(
    base: &RunDir,
    new: &RunDir,
    t: &Thresholds,
    noise: &BTreeMap<Metric, f64>,
) -> Result<Comparison, InputError> {
    let mut cells = Vec::new();
    for b in &base.cells {
        if !new.cells.iter().any(|n| n.axes == b.axes) {
            return Err(InputError::Mismatch(format!(
                "cell `{}` ({}) of the baseline is missing from the candidate {}",
                b.id,
                label(&b.axes),
                new.path.display()
            )));
        }
    }
    for n in &new.cells {
        let Some(b) = base.cells.iter().find(|b| b.axes == n.axes) else {
            return Err(InputError::Mismatch(format!(
                "cell `{}` ({}) of the candidate is not in the baseline {}: the scenario axes differ",
                n.id,
                label(&n.axes),
                base.path.display()
            )));
        };
        for (run, c) in [(base, b), (new, n)] {
            if c.reps.is_empty() {
                return Err(InputError::Mismatch(format!(
                    "cell `{}` has no result in {} (failed or skipped): nothing to compare",
                    c.id,
                    run.path.display()
                )));
            }
        }
        // A repetition whose generator fell behind its schedule (on a shared VM mostly a
        // wake-up stall of the machine) is left out. A side left with fewer than 3 cannot
        // be tested: its changes are inconclusive (or pass), never a failure or a refusal.
        let judged = |c: &CellSamples, m: Metric| {
            let kept = samples(c, m);
            if kept.is_empty() {
                c.reps.iter().map(|r| m.of(r)).collect()
            } else {
                kept
            }
        };
        let testable = [b, n].iter().all(|c| c.reps.len() - bound(c) >= 3);
        let metrics = Metric::ALL
            .iter()
            .filter_map(|&m| {
                let limit = *t.0.get(&m)?;
                let cv = noise
                    .get(&m)
                    .copied()
                    .or_else(|| super::calibrate::rep_noise(b, n, m));
                let mut c = compare_metric(m, &judged(b, m), &judged(n, m), limit, cv);
                if !testable {
                    c.verdict = match c.verdict {
                        Verdict::Regressed | Verdict::Inconclusive => Verdict::Inconclusive,
                        Verdict::Improved | Verdict::Pass => Verdict::Pass,
                    };
                    c.method = format!(
                        "generator-bound repetitions left out ({} of {} base, {} of {} new): too few left for a test",
                        bound(b),
                        b.reps.len(),
                        bound(n),
                        n.reps.len()
                    );
                }
                Some(c)
            })
            .collect();
        cells.push(CellComparison {
            id: n.id.clone(),
            axes: n.axes.clone(),
            reps: (b.reps.len() - bound(b), n.reps.len() - bound(n)),
            generator_bound_excluded: (bound(b), bound(n)),
            metrics,
        });
    }
    Ok(Comparison {
        schema: "h2lab.compare/v1",
        base: format!("{} ({})", base.run_id, base.path.display()),
        new: format!("{} ({})", new.run_id, new.path.display()),
        thresholds: t.clone(),
        cells,
    })
}

fn fmt_value(m: Metric, v: f64) -> String {
    match m {
        Metric::Rps => format!("{v:.0}"),
        Metric::ErrorRate => format!("{:.3}%", v * 100.0),
        _ => {
            if v >= 10_000.0 {
                format!("{:.2} ms", v / 1000.0)
            } else {
                format!("{v:.0} us")
            }
        }
    }
}

/// Markdown table: one row per cell and metric.
pub fn markdown(c: &Comparison) -> String {
    let mut out = String::from(
        "| cell | metric | base | new | change | p | verdict |\n|---|---|---|---|---|---|---|\n",
    );
    for cell in &c.cells {
        for m in &cell.metrics {
            let p = match m.p_value {
                Some(p) => format!("{p:.3}"),
                None => format!("n={}+{}", cell.reps.0, cell.reps.1),
            };
            let verdict = match (m.verdict, m.reps_needed) {
                (Verdict::Pass, _) => "pass".to_string(),
                (Verdict::Improved, _) => "improved".to_string(),
                (Verdict::Regressed, _) => "**REGRESSED**".to_string(),
                (Verdict::Inconclusive, Some(n)) => {
                    format!("inconclusive: about {n} or more repetitions a side would decide")
                }
                (Verdict::Inconclusive, None) => "inconclusive".to_string(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:+.1}{} | {} | {} |\n",
                cell.id,
                m.metric.name(),
                fmt_value(m.metric, m.base),
                fmt_value(m.metric, m.new),
                m.change,
                m.change_unit,
                p,
                verdict
            ));
        }
    }
    for cell in &c.cells {
        let (b, n) = cell.generator_bound_excluded;
        if b + n > 0 {
            out.push_str(&format!(
                "\n`{}`: {b} base and {n} new repetition(s) left out, the generator fell behind its schedule (scheduler lag or its own CPU; see their result.json).\n",
                cell.id
            ));
        }
    }
    if c.cells
        .iter()
        .any(|cell| cell.reps.0 < 3 || cell.reps.1 < 3)
    {
        out.push_str(
            "\nFewer than 3 repetitions on a side: no significance test, so a change beyond its threshold is inconclusive, never a failure; `repetitions` in the scenario decides.\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::rundir::RepMetrics;

    #[test]
    fn a_clear_slowdown_is_a_significant_regression() {
        let base = [1000.0, 1010.0, 990.0, 1005.0, 995.0];
        let new = [1300.0, 1310.0, 1290.0, 1305.0, 1295.0];
        let m = compare_metric(Metric::P99, &base, &new, Limit::Percent(10.0), None);
        assert_eq!(m.verdict, Verdict::Regressed);
        assert!((m.change - 30.0).abs() < 1e-9);
        assert!(m.p_value.unwrap() < 0.05);
        // The same numbers for throughput are an improvement.
        let m = compare_metric(Metric::Rps, &base, &new, Limit::Percent(5.0), None);
        assert_eq!(m.verdict, Verdict::Improved);
    }

    #[test]
    fn noise_within_threshold_passes_and_big_noise_is_inconclusive() {
        let base = [1000.0, 1010.0, 990.0, 1005.0, 995.0];
        let new = [1020.0, 1000.0, 1015.0, 995.0, 1010.0];
        assert_eq!(
            compare_metric(Metric::P99, &base, &new, Limit::Percent(10.0), None).verdict,
            Verdict::Pass
        );
        let noisy = [900.0, 1500.0, 1000.0, 1300.0, 1100.0];
        let m = compare_metric(Metric::P99, &base, &noisy, Limit::Percent(5.0), None);
        assert_eq!(m.verdict, Verdict::Inconclusive, "{m:?}");
    }

    #[test]
    fn a_single_repetition_is_never_a_failure_and_says_what_would_decide() {
        let m = compare_metric(
            Metric::P99,
            &[1000.0],
            &[1040.0],
            Limit::Percent(10.0),
            None,
        );
        assert_eq!(m.verdict, Verdict::Pass);
        assert!(m.method.contains("too few"));
        // +187% on one repetition a side: inconclusive, with the repetitions that would tell.
        let m = compare_metric(
            Metric::P999,
            &[1000.0],
            &[2870.0],
            Limit::Percent(15.0),
            Some(0.3),
        );
        assert_eq!(m.verdict, Verdict::Inconclusive);
        assert_eq!(m.reps_needed, Some(5));
        let m = compare_metric(
            Metric::P99,
            &[1000.0],
            &[1120.0],
            Limit::Percent(10.0),
            Some(0.2),
        );
        let n = m.reps_needed.unwrap();
        assert!((40..=60).contains(&n), "{n}");
        let m = compare_metric(
            Metric::ErrorRate,
            &[0.0],
            &[0.002],
            Limit::Points(0.1),
            None,
        );
        assert_eq!((m.change_unit, m.verdict), ("pp", Verdict::Inconclusive));
    }

    #[test]
    fn repetitions_to_decide_grow_with_noise_and_shrink_with_the_effect() {
        assert_eq!(reps_to_decide(0.01, 0.2), 5);
        assert!(reps_to_decide(0.1, 0.05) > reps_to_decide(0.1, 0.1));
        assert!(reps_to_decide(0.2, 0.1) > reps_to_decide(0.1, 0.1));
    }

    fn run(p50s: &[f64], bound: usize) -> RunDir {
        let reps = p50s
            .iter()
            .enumerate()
            .map(|(i, &p50)| RepMetrics {
                rps: 2000.0,
                p50,
                p99: p50 * 4.0,
                p999: p50 * 8.0,
                generator_bound: i < bound,
                ..RepMetrics::default()
            })
            .collect();
        RunDir {
            path: "/tmp/x".into(),
            run_id: "x".into(),
            scenario: String::new(),
            cells: vec![CellSamples {
                id: "c".into(),
                axes: BTreeMap::from([("topology".to_string(), "direct-edge".to_string())]),
                reps,
            }],
            started_at: None,
            interleaved: None,
        }
    }

    #[test]
    fn generator_bound_repetitions_are_left_out_and_too_many_make_it_inconclusive() {
        let base = run(&[100.0, 101.0, 99.0, 100.5, 99.5], 0);
        // Twice as slow: with 2 of 5 left out, 3 remain and the regression is found.
        let slow = run(&[200.0, 202.0, 198.0, 201.0, 199.0], 2);
        let t = Thresholds::default();
        let c = compare(&base, &slow, &t, &BTreeMap::new()).unwrap();
        let p50 = |c: &Comparison| {
            c.cells[0]
                .metrics
                .iter()
                .find(|m| m.metric == Metric::P50)
                .cloned()
                .unwrap()
        };
        assert_eq!(p50(&c).verdict, Verdict::Regressed);
        assert_eq!(c.cells[0].generator_bound_excluded, (0, 2));
        // 3 of 5 left out: no test, so inconclusive, and the gate is not refused.
        let slow = run(&[200.0, 202.0, 198.0, 201.0, 199.0], 3);
        let c = compare(&base, &slow, &t, &BTreeMap::new()).unwrap();
        assert_eq!(p50(&c).verdict, Verdict::Inconclusive);
        assert!(
            p50(&c).method.contains("generator-bound"),
            "{}",
            p50(&c).method
        );
        assert!(markdown(&c).contains("3 new repetition(s) left out"));
        // Every repetition bound: still judged (inconclusive), from all of them.
        let slow = run(&[200.0, 202.0, 198.0, 201.0, 199.0], 5);
        let c = compare(&base, &slow, &t, &BTreeMap::new()).unwrap();
        assert_eq!(p50(&c).verdict, Verdict::Inconclusive);
        assert!((p50(&c).change - 100.0).abs() < 1.0);
    }
}
