//! `h2lab report RUN_DIR`: the HTML page, Markdown, CSV and charts of a results
//! directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{bad_input, print_out};

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

/// Runs `h2lab report`: the exit code, or an error for `main` to report.
pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run_dir.join("report"));
    let t = std::time::Instant::now();
    let written = match crate::report::build(&args.run_dir, &out, args.png) {
        Ok(w) => w,
        Err(e) => return bad_input(e),
    };
    let mut text = format!(
        "report of {} in {:.2} s ({} suspicious cells)\n",
        args.run_dir.display(),
        t.elapsed().as_secs_f64(),
        written.flagged
    );
    for f in &written.files {
        text.push_str(&format!("  wrote {}\n", f.display()));
    }
    text.push_str(&written.verdict_text);
    if let Some(index) = written.files.first() {
        let shown = std::fs::canonicalize(index).unwrap_or_else(|_| index.clone());
        text.push_str(&format!("open {}\n", shown.display()));
    }
    print_out(&text);
    Ok(ExitCode::SUCCESS)
}
