//! `h2lab doctor [FILE]`: what the lab finds on this machine, and a scenario's app.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::print_out;

/// Flags of `h2lab doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// A scenario whose app (`[app]`) to check too.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Runs `h2lab doctor`: the exit code, or an error for `main` to report.
pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    match h2lab_common::launch::locate_sut() {
        Ok(p) => println!("sut: {}", p.display()),
        Err(e) => println!("sut: {e}"),
    }
    for kind in h2lab_common::launch::ProxyKind::ALL {
        match kind.version() {
            Some(v) => println!("{}: {v}", kind.name()),
            None => println!("{}: not installed ({})", kind.name(), kind.install_hint()),
        }
    }
    if let Some(file) = &args.file {
        match crate::scenario::load(file) {
            Ok(plan) if plan.app.is_some() => print_out(&crate::output::app::describe(&plan)),
            Ok(_) => println!(
                "app: the built-in test app ({} has no [app])",
                file.display()
            ),
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
