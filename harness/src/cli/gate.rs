//! `h2lab gate --baseline DIR --candidate DIR`: the CI regression verdict, its exit code,
//! JUnit and JSON; `h2lab gate --calibrate DIR...`: thresholds from A/A runs.

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
    #[arg(long, value_name = "DIR", required_unless_present = "calibrate")]
    pub baseline: Option<PathBuf>,
    /// The candidate results directory.
    #[arg(long, value_name = "DIR", required_unless_present = "calibrate")]
    pub candidate: Option<PathBuf>,
    /// Measure the noise of unchanged (A/A) runs of one scenario and propose thresholds
    /// (`--json FILE` keeps them for `--calibration`).
    #[arg(long, value_name = "DIR", num_args = 2.., conflicts_with_all = ["baseline", "candidate"])]
    pub calibrate: Vec<PathBuf>,
    /// Thresholds (and the noise that says how many repetitions would decide) from a file
    /// written by `--calibrate --json FILE`; `--max-regression` still wins.
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
    /// Largest change allowed per metric, e.g. `p99=10%,rps=5%,error_rate=0.1pp`
    /// (defaults: rps 5%, p50 10%, p99 10%, p99.9 15%, error_rate 0.1pp; the scenario's
    /// `[gate] max_regression` overrides them, `--calibration` that, and this flag all).
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
    use crate::analysis::{calibrate::Calibration, compare, gate, rundir::RunDir};
    if !args.calibrate.is_empty() {
        return calibrate(args);
    }
    let (Some(base_dir), Some(cand_dir)) = (&args.baseline, &args.candidate) else {
        return bad_input("give --baseline DIR and --candidate DIR (or --calibrate DIR...)");
    };
    let (base, cand) = match (RunDir::load(base_dir), RunDir::load(cand_dir)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => return bad_input(e),
    };
    let (scenario_max, scenario_slo) = match gate::from_scenario(&cand.scenario) {
        Ok(x) => x,
        Err(e) => return bad_input(format!("{}: {e}", cand_dir.display())),
    };
    let calibration = match &args.calibration {
        Some(p) => match Calibration::load(p) {
            Ok(c) => Some(c),
            Err(e) => return bad_input(format!("--calibration {e}")),
        },
        None => None,
    };
    // Defaults, then the scenario's [gate], then the calibration, then --max-regression.
    let scenario_thresholds = match gate::parse_thresholds(
        scenario_max.as_deref().unwrap_or_default(),
        compare::Thresholds::default(),
    ) {
        Ok(t) => t,
        Err(e) => return bad_input(format!("{}: [gate] max_regression {e}", cand_dir.display())),
    };
    let base_thresholds = match &calibration {
        Some(c) => c.thresholds(scenario_thresholds),
        None => scenario_thresholds,
    };
    let thresholds = match gate::parse_thresholds(
        args.max_regression.as_deref().unwrap_or_default(),
        base_thresholds,
    ) {
        Ok(t) => t,
        Err(e) => return bad_input(format!("--max-regression {e}")),
    };
    let noise = calibration.map(|c| c.noise()).unwrap_or_default();
    let mut slos = Vec::new();
    for s in scenario_slo.iter().chain(&args.slo) {
        match gate::parse_slo(s) {
            Ok(s) => slos.push(s),
            Err(e) => return bad_input(format!("--slo {e}")),
        }
    }
    let c = match compare::compare(&base, &cand, &thresholds, &noise) {
        Ok(c) => c,
        Err(e) => return bad_input(e),
    };
    let verdict = gate::decide(c, &base, &cand, &slos, args.fail_on_inconclusive);
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

/// `--calibrate DIR...`: the A/A noise table and the thresholds it suggests.
fn calibrate(args: &GateArgs) -> anyhow::Result<ExitCode> {
    use crate::analysis::{calibrate, rundir::RunDir};
    let mut runs = Vec::new();
    for d in &args.calibrate {
        match RunDir::load(d) {
            Ok(r) => runs.push(r),
            Err(e) => return bad_input(format!("--calibrate {e}")),
        }
    }
    let c = match calibrate::calibrate(&runs) {
        Ok(c) => c,
        Err(e) => return bad_input(format!("--calibrate: {e}")),
    };
    if let Some(p) = &args.json {
        let json = serde_json::to_string_pretty(&c)? + "\n";
        output::atomic_write(p, |w| std::io::Write::write_all(w, json.as_bytes()))
            .with_context(|| format!("cannot write --json {}", p.display()))?;
    }
    print_out(&c.text());
    Ok(ExitCode::SUCCESS)
}
