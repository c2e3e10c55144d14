//! `h2lab compare` and `h2lab gate`: flags.

use std::path::PathBuf;

use clap::Args;

/// Flags of `h2lab compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline results directory.
    #[arg(value_name = "BASE_DIR")]
    pub base: PathBuf,
    /// The new results directory.
    #[arg(value_name = "NEW_DIR")]
    pub new: PathBuf,
    /// Thresholds that decide the verdict column, e.g. `p99=10%,rps=5%` (over the defaults).
    #[arg(long, value_name = "LIST")]
    pub max_regression: Option<String>,
    /// Write the comparison as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Print JSON instead of the Markdown table.
    #[arg(long)]
    pub print_json: bool,
}

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

/// Flags of `h2lab report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The results directory of `h2lab run`.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Where to write the report (default: RUN_DIR/report/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also write every chart as PNG.
    #[arg(long)]
    pub png: bool,
}
