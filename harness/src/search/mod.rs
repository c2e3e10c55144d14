//! Capacity search: the highest open-loop rate at which every SLO holds. Steps grow by a
//! factor until one fails, then bisect between the last good and the first bad rate until
//! they are within the precision (Nighthawk's adaptive controller, on the lab's
//! coordinated-omission-correct percentiles). A step counts only when its rate was
//! achieved and the generator kept its schedule; when the generator fell behind, the
//! search says the generator is the limit and stops. Repetitions give the capacity an
//! interval. The algorithm is a plain function over a step runner (`steps` runs real
//! ones), so it is tested against a model of a server.

pub mod steps;

use std::time::Duration;

use serde::Serialize;

use crate::analysis::gate::Slo;
use crate::analysis::rundir::RepMetrics;
use crate::analysis::stats::median;

/// Schema of `search.json`.
pub const SEARCH_SCHEMA: &str = "h2lab.search/v1";

/// How to search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchSpec {
    /// Objectives every passing step meets.
    #[serde(serialize_with = "slo_texts")]
    pub slos: Vec<Slo>,
    /// First rate tried, requests/s.
    pub start: f64,
    /// Highest rate tried.
    pub max: f64,
    /// Growth factor between steps until one fails.
    pub factor: f64,
    /// Bisection stops when (bad - good) / good is at most this.
    pub precision: f64,
    /// Measured length of a step.
    #[serde(serialize_with = "human")]
    pub step: Duration,
    /// Warmup of a step at its rate (recorded apart), so the step is in steady state.
    #[serde(serialize_with = "human")]
    pub step_warmup: Duration,
    /// Pause between steps, so one step's backlog does not spill into the next.
    #[serde(serialize_with = "human")]
    pub cooldown: Duration,
    /// Whole searches, for the capacity's interval.
    pub repetitions: u32,
    /// A step counts as achieved at this fraction of its rate.
    pub achieved_floor: f64,
}

impl SearchSpec {
    /// The defaults of `h2lab search` and of a scenario's `search` load.
    pub fn new(slos: Vec<Slo>) -> SearchSpec {
        SearchSpec {
            slos,
            start: 1000.0,
            max: 1_000_000.0,
            factor: 2.0,
            precision: 0.02,
            step: Duration::from_secs(5),
            step_warmup: Duration::from_secs(1),
            cooldown: Duration::from_secs(1),
            repetitions: 1,
            achieved_floor: 0.99,
        }
    }

    /// Checks the settings; the message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.slos.is_empty() {
            return Err("a search needs at least one SLO, e.g. \"p99 < 10ms\"".into());
        }
        if !(self.start.is_finite() && self.start > 0.0) {
            return Err(format!("start {} must be a positive rate", self.start));
        }
        if !(self.max.is_finite() && self.max >= self.start) {
            return Err(format!(
                "max {} must be at least start {}",
                self.max, self.start
            ));
        }
        if !(self.factor > 1.0 && self.factor <= 100.0) {
            return Err(format!(
                "factor {} must be above 1 (and at most 100)",
                self.factor
            ));
        }
        if !(self.precision > 0.0 && self.precision < 1.0) {
            return Err(format!(
                "precision {} must be between 0 and 1",
                self.precision
            ));
        }
        if self.step.is_zero() {
            return Err("the step must last longer than zero".into());
        }
        if self.repetitions == 0 {
            return Err("repetitions must be at least 1".into());
        }
        Ok(())
    }
}

fn human<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn slo_texts<S: serde::Serializer>(slos: &[Slo], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(slos.iter().map(|o| o.text.as_str()))
}

/// What one step measured.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Offered rate.
    pub rate: f64,
    /// Achieved rate.
    pub achieved: f64,
    /// Latency percentiles, microseconds (from the intended send: coordinated omission
    /// corrected).
    pub p50_us: f64,
    /// p99.
    pub p99_us: f64,
    /// p99.9.
    pub p999_us: f64,
    /// Failed requests.
    pub errors: u64,
    /// Failed / all.
    pub error_rate: f64,
    /// The generator could not keep its schedule (the step says nothing of the server).
    pub generator_bound: bool,
    /// Every SLO held and the rate was achieved.
    pub pass: bool,
    /// Why it did not pass.
    pub reasons: Vec<String>,
}

impl Step {
    /// A step judged against `spec`: passes when the generator kept up, the rate was
    /// achieved and every SLO holds.
    pub fn judged(spec: &SearchSpec, rate: f64, m: &RepMetrics, errors: u64) -> Step {
        let mut reasons = Vec::new();
        if m.generator_bound {
            reasons.push(format!(
                "generator-bound: {}",
                m.generator_bound_reason
                    .as_deref()
                    .unwrap_or("it fell behind")
            ));
        }
        if m.rps < rate * spec.achieved_floor {
            reasons.push(format!("achieved {:.0} of {rate:.0} req/s", m.rps));
        }
        for slo in &spec.slos {
            let v = slo.metric.of(m);
            let ok = if slo.less_than {
                v < slo.bound
            } else {
                v > slo.bound
            };
            if !ok {
                reasons.push(format!("{} not met ({})", slo.text, show(slo, v)));
            }
        }
        Step {
            rate,
            achieved: m.rps,
            p50_us: m.p50,
            p99_us: m.p99,
            p999_us: m.p999,
            errors,
            error_rate: m.error_rate,
            generator_bound: m.generator_bound,
            pass: reasons.is_empty(),
            reasons,
        }
    }
}

fn show(slo: &Slo, v: f64) -> String {
    use crate::analysis::rundir::Metric;
    match slo.metric {
        Metric::Rps => format!("{v:.0} req/s"),
        Metric::ErrorRate => format!("{:.3}%", v * 100.0),
        _ => format!("{:.2} ms", v / 1000.0),
    }
}

/// Why a search ended where it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    /// A step failed an SLO (or its rate was not achieved): the server's capacity.
    Slo,
    /// The generator fell behind: its capacity, not the server's, was found.
    Generator,
    /// Every step up to `max` passed: the capacity is at least `max`.
    Max,
    /// The first step failed: the capacity is below `start`.
    BelowStart,
    /// Stopped by a signal.
    Interrupted,
}

/// One whole search.
#[derive(Debug, Clone, Serialize)]
pub struct SearchRun {
    /// The highest rate that passed (None: none did).
    pub capacity: Option<f64>,
    /// The lowest rate that failed, if any.
    pub first_failing: Option<f64>,
    /// Why it ended.
    pub limit: Limit,
    /// Every step in the order run.
    pub steps: Vec<Step>,
}

/// A step runner's answer: a measured step, or a stop (signal, or the engine failed).
pub enum StepResult {
    /// Measured.
    Done(Step),
    /// Stop searching (interrupted).
    Stop,
}

/// Measures one rate and keeps the step: whether it passed, or why the search must stop.
/// A step where the generator fell behind is measured once more: a moment of noise on a
/// shared machine must not end the search; twice in a row, the generator is the limit.
fn measure(
    step: &mut impl FnMut(f64) -> StepResult,
    rate: f64,
    steps: &mut Vec<Step>,
) -> Result<bool, Limit> {
    for _ in 0..2 {
        let s = match step(rate) {
            StepResult::Done(s) => s,
            StepResult::Stop => return Err(Limit::Interrupted),
        };
        let (pass, bound) = (s.pass, s.generator_bound);
        steps.push(s);
        if !bound {
            return Ok(pass);
        }
    }
    Err(Limit::Generator)
}

/// Runs one search, asking `step` to measure each rate.
pub fn search(spec: &SearchSpec, mut step: impl FnMut(f64) -> StepResult) -> SearchRun {
    let mut steps = Vec::new();
    let mut good: Option<f64> = None;
    let mut bad: Option<f64> = None;
    let mut limit = None;
    let mut rate = spec.start;
    // Grow until a step fails or the maximum passes.
    while limit.is_none() {
        match measure(&mut step, rate, &mut steps) {
            Err(l) => limit = Some(l),
            Ok(true) => {
                good = Some(rate);
                if rate >= spec.max {
                    limit = Some(Limit::Max);
                }
                rate = (rate * spec.factor).min(spec.max);
            }
            Ok(false) => {
                bad = Some(rate);
                break;
            }
        }
    }
    // Bisect between the last good and the first bad rate.
    if let (None, Some(lo), Some(hi)) = (limit, good, bad) {
        let (mut lo, mut hi) = (lo, hi);
        while (hi - lo) / lo > spec.precision {
            let mid = (lo + hi) / 2.0;
            match measure(&mut step, mid, &mut steps) {
                Err(l) => {
                    limit = Some(l);
                    break;
                }
                Ok(true) => lo = mid,
                Ok(false) => hi = mid,
            }
        }
        good = Some(lo);
        bad = Some(hi);
    }
    let limit = limit.unwrap_or(match good {
        Some(_) => Limit::Slo,
        None => Limit::BelowStart,
    });
    SearchRun {
        capacity: good,
        first_failing: bad,
        limit,
        steps,
    }
}

/// The capacity over repetitions: median and interval.
#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    /// Median over the searches that found one.
    pub median: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// How the interval was made: `95% bootstrap` (3 or more searches), `range` (2),
    /// `single search` (1; the bisection's precision is the only bound).
    pub interval: String,
}

/// The capacity of several searches (None when none found one).
pub fn capacity(runs: &[SearchRun], precision: f64) -> Option<Capacity> {
    let caps: Vec<f64> = runs.iter().filter_map(|r| r.capacity).collect();
    let m = match caps.len() {
        0 => return None,
        _ => median(&caps),
    };
    let (low, high, interval) = match caps.len() {
        1 => (m, m * (1.0 + precision), "single search".to_string()),
        2 => (
            caps.iter().copied().fold(f64::INFINITY, f64::min),
            caps.iter().copied().fold(0.0, f64::max),
            "range".to_string(),
        ),
        _ => {
            let (lo, hi) = crate::analysis::stats::bootstrap_median_ci(&caps).unwrap_or((m, m));
            (lo, hi, "95% bootstrap".to_string())
        }
    };
    Some(Capacity {
        median: m,
        low,
        high,
        interval,
    })
}

/// The knee of a latency-versus-rate curve: the rate farthest below the chord from the
/// first to the last point (the "kneedle" criterion, on normalised axes), where latency
/// stops being flat. `points` are (rate, latency); None with fewer than three.
pub fn knee(points: &[(f64, f64)]) -> Option<f64> {
    let mut p: Vec<(f64, f64)> = points.to_vec();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    if p.len() < 3 {
        return None;
    }
    let (x0, x1) = (p[0].0, p[p.len() - 1].0);
    let ymin = p.iter().map(|q| q.1).fold(f64::INFINITY, f64::min);
    let ymax = p.iter().map(|q| q.1).fold(0.0, f64::max);
    if x1 <= x0 || ymax <= ymin {
        return None;
    }
    let norm = |q: &(f64, f64)| ((q.0 - x0) / (x1 - x0), (q.1 - ymin) / (ymax - ymin));
    let (a, b) = (norm(&p[0]), norm(&p[p.len() - 1]));
    // Distance below the chord from a to b: the convex curve's elbow is its maximum.
    let below = |q: (f64, f64)| {
        let chord = a.1 + (b.1 - a.1) * (q.0 - a.0) / (b.0 - a.0);
        chord - q.1
    };
    p.iter()
        .map(|q| (q.0, below(norm(q))))
        .filter(|(_, d)| *d > 0.0)
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(x, _)| x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::gate::parse_slo;

    /// A model of a server of capacity `cap`: p99 flat at 1 ms below it, growing with the
    /// overload above it; the rate is achieved only below it.
    fn model(spec: &SearchSpec, cap: f64) -> impl FnMut(f64) -> StepResult + '_ {
        move |rate| {
            let over = (rate / cap - 1.0).max(0.0);
            let m = RepMetrics {
                rps: rate.min(cap),
                p50: 500.0,
                p99: 1000.0 + over * 1e6,
                p999: 2000.0 + over * 1e6,
                error_rate: 0.0,
                generator_bound: false,
                generator_bound_reason: None,
                target_rps: Some(rate),
                ..Default::default()
            };
            StepResult::Done(Step::judged(spec, rate, &m, 0))
        }
    }

    fn spec() -> SearchSpec {
        SearchSpec::new(vec![parse_slo("p99 < 10ms").unwrap()])
    }

    #[test]
    fn grows_then_bisects_to_within_the_precision() {
        let spec = spec();
        let run = search(&spec, model(&spec, 4321.0));
        assert_eq!(run.limit, Limit::Slo);
        let (good, bad) = (run.capacity.unwrap(), run.first_failing.unwrap());
        assert!(good <= 4321.0 && bad > 4321.0, "{good} {bad}");
        assert!((bad - good) / good <= spec.precision);
        let rates: Vec<f64> = run.steps.iter().take(4).map(|s| s.rate).collect();
        assert_eq!(
            rates,
            [1000.0, 2000.0, 4000.0, 8000.0],
            "grows by the factor"
        );
        assert!(run.steps.len() < 12, "{} steps", run.steps.len());
    }

    #[test]
    fn a_failing_start_a_passing_max_and_a_slow_generator_are_said() {
        let mut spec = spec();
        assert_eq!(search(&spec, model(&spec, 500.0)).limit, Limit::BelowStart);
        spec.max = 3000.0;
        let run = search(&spec, model(&spec, 1e9));
        assert_eq!((run.limit, run.capacity), (Limit::Max, Some(3000.0)));
        let bound = |rate: f64| {
            let m = RepMetrics {
                rps: rate,
                p50: 1.0,
                p99: 1.0,
                p999: 1.0,
                error_rate: 0.0,
                generator_bound: rate > 1500.0,
                generator_bound_reason: Some("scheduler lag p99 3 ms".into()),
                target_rps: Some(rate),
                ..Default::default()
            };
            StepResult::Done(Step::judged(&spec, rate, &m, 0))
        };
        let run = search(&spec, bound);
        assert_eq!((run.limit, run.capacity), (Limit::Generator, Some(1000.0)));
        assert!(run.steps[1].reasons[0].contains("generator-bound"));
        assert_eq!(run.steps.len(), 3, "a bound step is measured once more");
        // Noise once: the step is measured again and the search goes on.
        let mut calls = 0;
        let once = |rate: f64| {
            calls += 1;
            let m = RepMetrics {
                rps: rate,
                p99: if rate > 4000.0 { 1e6 } else { 1.0 },
                generator_bound: calls == 2,
                target_rps: Some(rate),
                ..Default::default()
            };
            StepResult::Done(Step::judged(&spec, rate, &m, 0))
        };
        let run = search(&spec, once);
        assert_eq!(
            run.limit,
            Limit::Max,
            "{:?}",
            run.steps.iter().map(|s| s.rate).collect::<Vec<_>>()
        );
    }

    #[test]
    fn capacity_interval_and_knee() {
        let runs: Vec<SearchRun> = [980.0, 1000.0, 1010.0, 995.0, 1005.0]
            .iter()
            .map(|&c| SearchRun {
                capacity: Some(c),
                first_failing: None,
                limit: Limit::Slo,
                steps: Vec::new(),
            })
            .collect();
        let c = capacity(&runs, 0.02).unwrap();
        assert_eq!(c.median, 1000.0);
        assert!(
            c.low <= 1000.0 && c.high >= 1000.0 && c.low >= 980.0,
            "{c:?}"
        );
        let curve = [
            (100.0, 1.0),
            (200.0, 1.1),
            (400.0, 1.2),
            (800.0, 1.5),
            (900.0, 8.0),
            (1000.0, 40.0),
        ];
        assert_eq!(knee(&curve), Some(800.0));
    }
}

/// `search.json`: the searches, their steps, the capacity with its interval, the knee.
#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    /// Always [`SEARCH_SCHEMA`].
    pub schema: &'static str,
    /// What was searched (URL, or the cell id).
    pub target: String,
    /// How.
    pub spec: SearchSpec,
    /// The highest rate meeting every SLO, over the searches.
    pub capacity: Option<Capacity>,
    /// Why the (last) search ended.
    pub limit: Limit,
    /// Where p99 stops being flat, over every step of every search.
    pub knee_rps: Option<f64>,
    /// Every search with its steps.
    pub searches: Vec<SearchRun>,
    /// Seconds the searches took together.
    pub took_s: f64,
}

impl SearchReport {
    /// The report of `searches` of `target`.
    pub fn new(target: &str, spec: &SearchSpec, searches: Vec<SearchRun>, took_s: f64) -> Self {
        let points: Vec<(f64, f64)> = searches
            .iter()
            .flat_map(|r| &r.steps)
            .filter(|s| !s.generator_bound)
            .map(|s| (s.rate, s.p99_us))
            .collect();
        SearchReport {
            schema: SEARCH_SCHEMA,
            target: target.to_string(),
            spec: spec.clone(),
            capacity: capacity(&searches, spec.precision),
            limit: searches.last().map_or(Limit::Interrupted, |r| r.limit),
            knee_rps: knee(&points),
            searches,
            took_s,
        }
    }

    /// One line a person reads: the capacity and why the search ended.
    pub fn sentence(&self) -> String {
        let slos: Vec<&str> = self.spec.slos.iter().map(|s| s.text.as_str()).collect();
        let under = slos.join(", ");
        match (&self.capacity, self.limit) {
            (_, Limit::Generator) => format!(
                "the generator, not the server, is the limit: it fell behind at {} (twice in a row); {}",
                self.searches
                    .last()
                    .and_then(|r| r.steps.iter().find(|s| s.generator_bound))
                    .map_or("?".into(), |s| format!("{:.0} req/s", s.rate)),
                self.capacity.as_ref().map_or(
                    "no rate passed before that".into(),
                    |c| format!("capacity at least {:.0} req/s", c.median)
                )
            ),
            (Some(c), Limit::Max) => {
                format!("capacity at least {:.0} req/s (the maximum tried) under {under}", c.median)
            }
            (Some(c), _) => format!(
                "capacity {:.0} req/s [{:.0}, {:.0}] ({}) under {under}",
                c.median, c.low, c.high, c.interval
            ),
            (None, Limit::Interrupted) => "interrupted before any step passed".into(),
            (None, _) => format!(
                "capacity below the start rate {:.0} req/s under {under}",
                self.spec.start
            ),
        }
    }
}
