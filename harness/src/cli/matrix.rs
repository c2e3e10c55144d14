//! `h2lab matrix`: flags.

use std::path::PathBuf;

use clap::Args;

/// Flags of `h2lab matrix`.
#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// Scenario file with a `[negotiation]` section (e.g. scenarios/h2-matrix.toml).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Results directory (default: reports/<name>-<time>-<pid>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also probe each cell with an independent client (curl, openssl s_client).
    #[arg(long)]
    pub cross_check: bool,
    /// Servers started and probed at once (default: the file's, else 2 per core).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Exit 1 on any cell that disagrees with its expectation (default: only on a
    /// documented row not reproduced or a server that did not start).
    #[arg(long)]
    pub strict: bool,
    /// List the cells and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress lines.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}
