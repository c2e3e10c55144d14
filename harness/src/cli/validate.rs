//! `h2lab validate FILE`: a scenario file checked, every problem at its file:line:column.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Flags of `h2lab validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Runs `h2lab validate`: the exit code, or an error for `main` to report.
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file).unwrap_or_default();
    let matrix = crate::scenario::negotiation::load(&args.file);
    let has_axes = text
        .parse::<toml::Table>()
        .map(|t| t.contains_key("axes"))
        .unwrap_or(true);
    if let (false, Ok(Some(spec))) = (has_axes, &matrix) {
        let (servers, cells, _) = spec.expand();
        println!(
            "{}: ok, negotiation matrix of {} cells on {} servers",
            args.file.display(),
            cells.len(),
            servers.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Err(e) = &matrix {
        eprintln!("{e}");
        return Ok(ExitCode::from(2));
    }
    let mut diags = match crate::scenario::load(&args.file) {
        Ok(plan) => {
            println!(
                "{}: ok, {} cells x {} repetitions",
                args.file.display(),
                plan.cells.len(),
                plan.repetitions
            );
            Vec::new()
        }
        Err(e) => e.0,
    };
    diags.extend(crate::scenario::missing_proxy_diagnostics(
        &args.file, &text,
    ));
    for d in &diags {
        eprintln!("{d}");
    }
    Ok(if diags.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
