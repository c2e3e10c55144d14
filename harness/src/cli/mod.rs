//! Command-line interface: one file per subcommand. Flags become validated plain data
//! here, once.

pub mod load;

use clap::{Parser, Subcommand};

/// h2lab: a performance test harness and HTTP/2 negotiation lab.
#[derive(Debug, Parser)]
#[command(name = "h2lab", version, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate load against a URL (closed loop, or open loop at a constant rate) and
    /// record every request in HdrHistograms.
    Load(Box<load::LoadArgs>),
    /// Show where the lab finds its servers under test and which real proxies are installed.
    Doctor,
}

/// Bad flags or inputs: exit code 2, message names the flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
