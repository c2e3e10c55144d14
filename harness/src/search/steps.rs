//! Real steps for the search: the load engine in open loop at each rate (warmup, then the
//! measured step), judged on its coordinated-omission-correct latency, with a cool-down
//! between steps.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{SearchSpec, Step, StepResult};
use crate::analysis::rundir::RepMetrics;
use crate::load;
use crate::model::{LoadConfig, LoadModel, ResultV1};

/// Measures `cfg` at `rate` for one step of `spec`; `Stop` when `stop` is raised (or the
/// engine cannot run, which `error` then says). The full result goes to `on_result`.
pub fn run_step(
    spec: &SearchSpec,
    cfg: &LoadConfig,
    rate: f64,
    stop: &AtomicBool,
    error: &mut Option<String>,
    on_result: &mut dyn FnMut(&ResultV1, &load::RunOutput),
) -> StepResult {
    if stop.load(Ordering::Relaxed) {
        return StepResult::Stop;
    }
    let mut cfg = cfg.clone();
    cfg.model = LoadModel::Open { rate };
    cfg.duration = Some(spec.step);
    cfg.warmup = spec.step_warmup;
    cfg.requests = None;
    let run = load::run_until(&cfg, stop);
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            *error = Some(e.to_string());
            return StepResult::Stop;
        }
    };
    if run.interrupted || stop.load(Ordering::Relaxed) {
        return StepResult::Stop;
    }
    let result = crate::output::result::build(&cfg, &run);
    on_result(&result, &run);
    let step = Step::judged(spec, rate, &metrics(&result, spec), result.summary.errors);
    // The cool-down lets the previous step's backlog drain before the next one.
    let until = std::time::Instant::now() + spec.cooldown;
    while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    StepResult::Done(step)
}

/// How late the generator may send at p99 before a step says nothing of the server: a
/// quarter of the tightest latency SLO (its lag is inside the measured latency), and at
/// least 1 ms. A step of a few hundred requests has its p99 in its one or two slowest
/// sends, so the engine's own 1 ms rule would throw out steps for one hiccup.
fn lag_limit_us(spec: &SearchSpec) -> f64 {
    use crate::analysis::rundir::Metric;
    spec.slos
        .iter()
        .filter(|s| s.less_than && !matches!(s.metric, Metric::Rps | Metric::ErrorRate))
        .map(|s| s.bound / 4.0)
        .fold(f64::INFINITY, f64::min)
        .max(1000.0)
}

/// The numbers a step is judged on; the generator is the limit when its CPU is saturated
/// or its scheduler lag is beyond [`lag_limit_us`].
pub fn metrics(r: &ResultV1, spec: &SearchSpec) -> RepMetrics {
    let s = &r.summary;
    let lag = r.scheduler_lag_us.p99 as f64;
    let limit = lag_limit_us(spec);
    let cpu_bound = s.generator_cpu > crate::output::result::CPU_LIMIT;
    let reason = if cpu_bound {
        Some(format!(
            "generator CPU at {:.0}% of its threads",
            s.generator_cpu * 100.0
        ))
    } else if lag > limit {
        Some(format!("scheduler lag p99 {lag:.0} us, over {limit:.0} us"))
    } else {
        None
    };
    RepMetrics {
        rps: s.rps,
        p50: r.latency_us.p50 as f64,
        p99: r.latency_us.p99 as f64,
        p999: r.latency_us.p999 as f64,
        error_rate: if s.requests > 0 {
            s.errors as f64 / s.requests as f64
        } else {
            1.0
        },
        generator_bound: reason.is_some(),
        generator_bound_reason: reason,
        target_rps: s.target_rps,
        ..Default::default()
    }
}
