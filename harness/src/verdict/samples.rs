//! The numbers behind each change of the verdict: per-repetition values when there are at
//! least three repetitions, else the per-second values of the interval logs (within-run
//! noise only, and said so); the point estimate is always the per-repetition median.

use serde::Serialize;

use crate::analysis::compare::{compare_metric, Limit};
use crate::analysis::rundir::{CellSamples, Metric};
use crate::analysis::stats::median;

/// Repetitions needed a side before they, not seconds, carry the statistics: 3 against 3
/// can never reach p < 0.05 (the smallest exact two-sided p is 0.1), 4 against 4 can.
const MIN_REPS: usize = 4;

/// What a change's interval and p-value were computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "count", rename_all = "snake_case")]
pub enum Source {
    /// One value per repetition.
    Repetitions(usize),
    /// One value per measured second, pooled over the (fewer than three) repetitions.
    Seconds(usize),
}

impl Source {
    /// For sentences: `5 repetitions`, `per-second samples (9 s)`.
    pub fn describe(self) -> String {
        match self {
            Source::Repetitions(n) => format!("{n} repetition{}", if n == 1 { "" } else { "s" }),
            Source::Seconds(n) => format!("{n} one-second samples, within-run noise only"),
        }
    }
}

/// One metric of an entry against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The entry's value: median over its repetitions.
    pub value: f64,
    /// The baseline's value.
    pub base: f64,
    /// The change: percent of the baseline for rates, microseconds for latency.
    pub change: f64,
    /// `%` or `us`.
    pub unit: &'static str,
    /// 95% bootstrap interval of the change, same unit.
    pub interval: Option<(f64, f64)>,
    /// Mann-Whitney U two-sided p-value (None under three samples a side).
    pub p_value: Option<f64>,
    /// p < 0.05 and the interval excludes no change.
    pub significant: bool,
    /// What the interval and p-value were computed over.
    pub samples: Source,
}

fn rep_values(c: &CellSamples, metric: Metric) -> Vec<f64> {
    c.reps.iter().map(|r| metric.of(r)).collect()
}

fn second_values(c: &CellSamples, metric: Metric) -> Vec<f64> {
    c.reps
        .iter()
        .flat_map(|r| r.intervals.iter().filter_map(|i| metric.of_interval(i)))
        .collect()
}

/// The samples of `metric` for `base` and `c`, of one kind on both sides: repetitions when
/// both have enough, else seconds when both have enough, else the (too few) repetitions.
pub fn values(base: &CellSamples, c: &CellSamples, metric: Metric) -> (Source, Vec<f64>, Vec<f64>) {
    let (br, nr) = (rep_values(base, metric), rep_values(c, metric));
    if br.len() >= MIN_REPS && nr.len() >= MIN_REPS {
        return (Source::Repetitions(br.len().min(nr.len())), br, nr);
    }
    let (bs, ns) = (second_values(base, metric), second_values(c, metric));
    if bs.len() >= MIN_REPS && ns.len() >= MIN_REPS {
        (Source::Seconds(bs.len().min(ns.len())), bs, ns)
    } else {
        (Source::Repetitions(br.len().min(nr.len())), br, nr)
    }
}

fn build(
    source: Source,
    metric: Metric,
    base_reps: &[f64],
    new_reps: &[f64],
    base_s: &[f64],
    new_s: &[f64],
) -> Change {
    let (b, n) = (median(base_reps), median(new_reps));
    let tested = compare_metric(metric, base_s, new_s, Limit::Percent(0.0), None);
    let point = if b == 0.0 { 1.0 } else { n / b };
    // The samples' interval, centred on the per-repetition ratio.
    let sample_ratio = {
        let mb = median(base_s);
        if mb == 0.0 {
            1.0
        } else {
            median(new_s) / mb
        }
    };
    let ratio_ci = tested
        .ratio_ci
        .filter(|_| sample_ratio > 0.0)
        .map(|(lo, hi)| (point * lo / sample_ratio, point * hi / sample_ratio));
    // Judged on the interval as shown, so a `?` never sits beside an interval clear of 0.
    let clear = ratio_ci.is_some_and(|(lo, hi)| lo > 1.0 || hi < 1.0);
    let significant = tested
        .p_value
        .is_some_and(|p| p < crate::analysis::compare::ALPHA)
        && clear;
    let rate = matches!(metric, Metric::Rps);
    let to_unit = |r: f64| {
        if rate {
            (r - 1.0) * 100.0
        } else {
            (r - 1.0) * b
        }
    };
    Change {
        value: n,
        base: b,
        change: if rate { (point - 1.0) * 100.0 } else { n - b },
        unit: if rate { "%" } else { "us" },
        interval: ratio_ci.map(|(lo, hi)| (to_unit(lo), to_unit(hi))),
        p_value: tested.p_value,
        significant,
        samples: source,
    }
}

/// `metric` of `c` against `base`.
pub fn change(base: &CellSamples, c: &CellSamples, metric: Metric) -> Change {
    let (source, bs, ns) = values(base, c, metric);
    build(
        source,
        metric,
        &rep_values(base, metric),
        &rep_values(c, metric),
        &bs,
        &ns,
    )
}

/// The capacities the searches of `c` found against those of `base`.
pub fn capacity_change(base: &CellSamples, c: &CellSamples) -> Change {
    let caps = |x: &CellSamples| {
        x.reps
            .iter()
            .filter_map(|r| r.capacity)
            .collect::<Vec<f64>>()
    };
    let (b, n) = (caps(base), caps(c));
    build(
        Source::Repetitions(b.len().min(n.len())),
        Metric::Rps,
        &b,
        &n,
        &b,
        &n,
    )
}
