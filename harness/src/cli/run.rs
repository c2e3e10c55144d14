//! `h2lab run FILE [--dry-run]`: a scenario's matrix run (or listed), results written.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::print_out;

/// Flags of `h2lab run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// List the cells and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Results directory (default: reports/<run-id>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Pin servers to the last core and the generator to the others (recorded in the manifest).
    #[arg(long)]
    pub pin: bool,
    /// No live progress.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Measure the plan for this variant too (repeat: two or more), interleaved cell by
    /// cell and alternating which goes first, into `--out`/NAME/ each: the way to gate a
    /// change on a shared machine, whose drift between separate runs exceeds most
    /// thresholds.
    #[arg(long, value_name = "NAME")]
    pub variant: Vec<String>,
    /// Environment of a variant's servers and app, `NAME:KEY=VALUE` (repeatable).
    #[arg(long, value_name = "NAME:KEY=VALUE")]
    pub variant_env: Vec<String>,
    /// The `sut` binary a variant runs instead of the lab's own, `NAME:PATH`.
    #[arg(long, value_name = "NAME:PATH")]
    pub variant_sut: Vec<String>,
}

/// Runs `h2lab run`: the exit code, or an error for `main` to report.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let variants = crate::run::variant::parse(&args.variant, &args.variant_env, &args.variant_sut)
        .map_err(super::UsageError)?;
    let plan = match crate::scenario::load(&args.file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.dry_run {
        use std::fmt::Write as _;
        let mut out = format!(
            "{} cells x {} repetitions ({}):\n",
            plan.cells.len(),
            plan.repetitions,
            plan.name
        );
        for cell in &plan.cells {
            let axes: Vec<String> = cell.axes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "  {}  [{}]", cell.id, axes.join(" "));
        }
        out.push_str(&crate::output::app::describe(&plan));
        for (proxy, hint) in &plan.missing_proxies {
            let _ = writeln!(
                out,
                "  note: {proxy} is not installed; its cells will be skipped ({hint})"
            );
        }
        print_out(&out);
        return Ok(ExitCode::SUCCESS);
    }
    crate::run::execute(&plan, &args.file, args, &variants)
}
