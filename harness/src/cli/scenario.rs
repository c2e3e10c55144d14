//! `h2lab validate FILE` and `h2lab run FILE [--dry-run]`: scenario files in, a plan or
//! located diagnostics out.

use std::path::PathBuf;

use clap::Args;

/// Flags of `h2lab validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

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
}

/// Flags of `h2lab doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// A scenario whose app (`[app]`) to check too.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}
