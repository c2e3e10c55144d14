//! `h2lab compare BASE NEW`: the comparison table (Markdown or JSON) of two results
//! directories.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{bad_input, print_out};
use crate::output;

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

/// Runs `h2lab compare`: the exit code, or an error for `main` to report.
pub fn run(args: &CompareArgs) -> anyhow::Result<ExitCode> {
    use crate::analysis::{compare, gate, rundir::RunDir};
    let thresholds = match &args.max_regression {
        Some(s) => match gate::parse_thresholds(s, compare::Thresholds::default()) {
            Ok(t) => t,
            Err(e) => return bad_input(format!("--max-regression {e}")),
        },
        None => compare::Thresholds::default(),
    };
    let (base, new) = match (RunDir::load(&args.base), RunDir::load(&args.new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => return bad_input(e),
    };
    let c = match compare::compare(&base, &new, &thresholds, &Default::default()) {
        Ok(c) => c,
        Err(e) => return bad_input(e),
    };
    let json = serde_json::to_string_pretty(&c)? + "\n";
    if let Some(p) = &args.json {
        output::atomic_write(p, |w| std::io::Write::write_all(w, json.as_bytes()))
            .with_context(|| format!("cannot write --json {}", p.display()))?;
    }
    if args.print_json {
        print_out(&json);
    } else {
        print_out(&compare::markdown(&c));
    }
    Ok(ExitCode::SUCCESS)
}
