//! `h2lab merge DIR...`: the agents' results of one shared load made into one results
//! directory (exact histogram sums), with the per-agent table.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::{bad_input, print_out};
use crate::agents::merge::{self, AgentFiles, Merged};

/// Flags of `h2lab merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Each agent's directory (its result.json and latency.hlog), or a shared results
    /// directory holding agent-I directories.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Results directory to write (default reports/merged-<time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Merges `files` into `out` and prints the outcome: exit 0, 1 when no request was
/// answered, 2 when the results cannot be merged.
pub fn merge_into(files: &[AgentFiles], out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let began = Instant::now();
    let merged: Merged = match merge::merge(files) {
        Ok(m) => m,
        Err(e) => return bad_input(e),
    };
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("reports").join(crate::run::run_id("merged")));
    merge::write_run_dir(&out, &merged)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let took = began.elapsed();
    let mut text = crate::output::summary::render(&merged.result);
    text.push('\n');
    text.push_str(&merge::agents_table(&merged.result.agents));
    text.push_str(&format!(
        "\nmerged {} agents in {:.3} s into {}\n",
        merged.result.agents.len(),
        took.as_secs_f64(),
        out.display()
    ));
    print_out(&text);
    Ok(if merged.result.summary.ok == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs `h2lab merge`.
pub fn run(args: &MergeArgs) -> anyhow::Result<ExitCode> {
    match crate::agents::read_dirs(&args.dirs) {
        Ok(files) => merge_into(&files, args.out.as_deref()),
        Err(e) => bad_input(e),
    }
}
