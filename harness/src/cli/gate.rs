//! `h2lab gate --baseline DIR --candidate DIR`: the CI regression verdict, its exit code,
//! JUnit and JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{bad_input, print_out};
use crate::output;

/// Flags of `h2lab gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// The baseline results directory.
    #[arg(long, value_name = "DIR")]
    pub baseline: PathBuf,
    /// The candidate results directory.
    #[arg(long, value_name = "DIR")]
    pub candidate: PathBuf,
    /// Largest change allowed per metric, e.g. `p99=10%,rps=5%,error_rate=0.1pp`
    /// (defaults: rps 5%, p50 10%, p99 10%, p99.9 15%, error_rate 0.1pp; the scenario's
    /// `[gate] max_regression` applies when this flag is absent).
    #[arg(long, value_name = "LIST")]
    pub max_regression: Option<String>,
    /// Absolute objective on the candidate, e.g. `p99 < 5ms`, `error_rate < 0.1%`
    /// (repeatable; adds to the scenario's `[gate] slo`).
    #[arg(long, value_name = "SLO")]
    pub slo: Vec<String>,
    /// Write JUnit XML (one test case per cell x metric) here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the verdict as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Fail when a metric is inconclusive (default: pass with a warning).
    #[arg(long)]
    pub fail_on_inconclusive: bool,
}

/// Runs `h2lab gate`: the exit code, or an error for `main` to report.
pub fn run(args: &GateArgs) -> anyhow::Result<ExitCode> {
    use crate::analysis::{compare, gate, rundir::RunDir};
    let (base, cand) = match (RunDir::load(&args.baseline), RunDir::load(&args.candidate)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => return bad_input(e),
    };
    let (scenario_max, scenario_slo) = match gate::from_scenario(&cand.scenario) {
        Ok(x) => x,
        Err(e) => return bad_input(format!("{}: {e}", args.candidate.display())),
    };
    let spec = args
        .max_regression
        .clone()
        .or(scenario_max)
        .unwrap_or_default();
    let thresholds = match gate::parse_thresholds(&spec, compare::Thresholds::default()) {
        Ok(t) => t,
        Err(e) => return bad_input(format!("--max-regression {e}")),
    };
    let mut slos = Vec::new();
    for s in scenario_slo.iter().chain(&args.slo) {
        match gate::parse_slo(s) {
            Ok(s) => slos.push(s),
            Err(e) => return bad_input(format!("--slo {e}")),
        }
    }
    let c = match compare::compare(&base, &cand, &thresholds) {
        Ok(c) => c,
        Err(e) => return bad_input(e),
    };
    let verdict = gate::decide(c, &cand, &slos, args.fail_on_inconclusive);
    let md = gate::markdown(&verdict);
    if let Some(p) = &args.junit {
        let xml = gate::junit(&verdict);
        output::atomic_write(p, |w| std::io::Write::write_all(w, xml.as_bytes()))
            .with_context(|| format!("cannot write --junit {}", p.display()))?;
    }
    if let Some(p) = &args.json {
        let json = serde_json::to_string_pretty(&verdict)? + "\n";
        output::atomic_write(p, |w| std::io::Write::write_all(w, json.as_bytes()))
            .with_context(|| format!("cannot write --json {}", p.display()))?;
    }
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&summary)
            .with_context(|| {
                format!(
                    "cannot append to $GITHUB_STEP_SUMMARY {}",
                    summary.to_string_lossy()
                )
            })?;
        f.write_all(md.as_bytes())?;
        f.write_all(b"\n")?;
    }
    print_out(&md);
    eprintln!(
        "h2lab gate: {} (thresholds {})",
        if verdict.pass { "pass" } else { "FAIL" },
        gate::describe(&verdict.comparison.thresholds)
    );
    Ok(if verdict.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
