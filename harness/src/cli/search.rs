//! `h2lab search URL --slo "p99 < 10ms"`: the capacity of a server under its SLOs, with
//! the steps that found it, written as `search.json`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::load::{duration, LoadArgs};
use super::{print_out, UsageError};
use crate::search::{self, steps, SearchReport, SearchSpec, StepResult};

/// Flags of `h2lab search`: the load flags (`-c`, `-m`, protocol, TLS, headers...; `-d`
/// is each step's length, 5 s by default, and `--warmup` each step's warmup, 1 s by
/// default) and the search's own.
#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub load: LoadArgs,
    /// Objective every step must meet, e.g. `p99 < 10ms`, `error_rate < 0.1%`
    /// (repeatable; at least one).
    #[arg(long, value_name = "SLO", required = true)]
    pub slo: Vec<String>,
    /// First rate tried, requests/s.
    #[arg(long, default_value_t = 1000.0, value_name = "REQ/S")]
    pub start: f64,
    /// Highest rate tried.
    #[arg(long, default_value_t = 1_000_000.0, value_name = "REQ/S")]
    pub max: f64,
    /// Growth factor until a step fails.
    #[arg(long, default_value_t = 2.0, value_name = "X")]
    pub factor: f64,
    /// Bisect until the good and bad rates are this close, e.g. `2%`.
    #[arg(long, default_value = "2%", value_name = "PCT")]
    pub precision: String,
    /// Pause between steps.
    #[arg(long, value_parser = duration, default_value = "1s", value_name = "DUR")]
    pub cooldown: Duration,
    /// Whole searches, for the capacity's interval.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub repetitions: u32,
    /// Write search.json here.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// A fraction written `2%` or `0.02`.
pub fn fraction(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    };
    v.map_err(|_| format!("`{s}` is not a fraction such as 2% or 0.02"))
}

impl SearchArgs {
    /// The search's settings and the load engine's base configuration.
    pub fn to_spec(&self) -> Result<(SearchSpec, crate::model::LoadConfig), UsageError> {
        if self.load.rate.is_some() {
            return Err(UsageError(
                "-r/--rate: the search chooses the rates (--start, --max)".into(),
            ));
        }
        if self.load.json.is_some() || self.load.hlog.is_some() || self.load.requests.is_some() {
            return Err(UsageError(
                "--json, --hlog and -n are load flags; the search writes --out search.json".into(),
            ));
        }
        let mut slos = Vec::new();
        for s in &self.slo {
            slos.push(
                crate::analysis::gate::parse_slo(s)
                    .map_err(|e| UsageError(format!("--slo {e}")))?,
            );
        }
        let mut spec = SearchSpec::new(slos);
        spec.start = self.start;
        spec.max = self.max;
        spec.factor = self.factor;
        spec.precision =
            fraction(&self.precision).map_err(|e| UsageError(format!("--precision {e}")))?;
        spec.step = self.load.duration.unwrap_or(spec.step);
        if !self.load.warmup.is_zero() {
            spec.step_warmup = self.load.warmup;
        }
        spec.cooldown = self.cooldown;
        spec.repetitions = self.repetitions;
        spec.validate().map_err(UsageError)?;
        let cfg = self.load.to_config()?;
        Ok((spec, cfg))
    }
}

/// Runs `h2lab search`: 0 a capacity was found, 1 none (or the generator was the limit),
/// 130/143 interrupted (what was measured is written).
pub fn run(args: &SearchArgs) -> anyhow::Result<ExitCode> {
    let (spec, cfg) = args.to_spec()?;
    let signals = crate::run::Signals::install()?;
    let t0 = Instant::now();
    let mut searches = Vec::new();
    let mut error = None;
    for rep in 1..=spec.repetitions {
        let run = search::search(&spec, |rate| {
            let step = steps::run_step(&spec, &cfg, rate, &signals.any, &mut error, &mut |_, _| {});
            if let (false, StepResult::Done(s)) = (args.load.quiet, &step) {
                eprintln!(
                    "search {rep}/{}: {:>9.0} req/s offered, {:>9.0} achieved, p50 {:.2} ms, p99 {:.2} ms: {}",
                    spec.repetitions,
                    s.rate,
                    s.achieved,
                    s.p50_us / 1000.0,
                    s.p99_us / 1000.0,
                    if s.pass { "pass".to_string() } else { s.reasons.join("; ") }
                );
            }
            step
        });
        let stopped = run.limit == search::Limit::Interrupted;
        searches.push(run);
        if stopped {
            break;
        }
    }
    if let Some(e) = error {
        anyhow::bail!(e);
    }
    let report = SearchReport::new(&cfg.url, &spec, searches, t0.elapsed().as_secs_f64());
    if let Some(path) = &args.out {
        crate::output::atomic_write(path, |w| {
            serde_json::to_writer_pretty(&mut *w, &report).map_err(std::io::Error::other)?;
            std::io::Write::write_all(w, b"\n")
        })
        .with_context(|| format!("cannot write --out {}", path.display()))?;
    }
    print_out(&format!("{}\n", report.sentence()));
    Ok(if signals.int.load(Ordering::Relaxed) {
        ExitCode::from(130)
    } else if signals.term.load(Ordering::Relaxed) {
        ExitCode::from(143)
    } else if report.capacity.is_none() || report.limit == search::Limit::Generator {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
