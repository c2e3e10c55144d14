//! Running a plan: placeholder until the orchestrator lands.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::scenario::RunArgs;
use crate::model::Plan;

/// Runs every cell of `plan` and writes the results directory.
pub fn execute(_plan: &Plan, _file: &Path, _args: &RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("h2lab run is not implemented yet; use --dry-run")
}
