//! `sut`: the servers under test. Thin: parse flags, set up logging, run, map errors to
//! exit codes (2 bad usage, 1 failure).

use std::process::ExitCode;

use clap::Parser;
use sut::cli::{Cli, UsageError};
use sut::server::ServerError;

// Servers allocate per request (headers, bodies, tasks); mimalloc's thread-local free
// lists cost less than glibc's arenas there (measured with scripts/bench-servers.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match sut::run::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sut: error: {e:#}");
            let bad_config = matches!(e.downcast_ref::<ServerError>(), Some(ServerError::Tls(_)));
            if e.downcast_ref::<UsageError>().is_some() || bad_config {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
