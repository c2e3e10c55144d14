//! `h2lab`: thin over the library. Parses flags, dispatches to the subcommand's `run`,
//! maps the outcome to an exit code: 0 ok; 1 the run completed but every request failed;
//! 2 bad usage or input; 3 an agent could not keep the shared start; 130 / 143
//! interrupted by SIGINT / SIGTERM (results recorded so far are written).

use std::process::ExitCode;

use clap::Parser;
use h2lab::cli::{self, Cli, Command, UsageError};
use h2lab::load;

// The engine allocates per request inside h2 and hyper-free paths alike; mimalloc's
// thread-local free lists beat glibc's here (measured with scripts/bench-peers.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("H2LAB_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Load(args) => cli::load::run(&args),
        Command::Probe(args) => cli::probe::run(&args),
        Command::Matrix(args) => cli::matrix::run(&args),
        Command::Search(args) => cli::search::run(&args),
        Command::Attack(args) => cli::attack::run(&args),
        Command::Conform(args) => cli::conform::run(&args),
        Command::Report(args) => cli::report::run(&args),
        Command::Compare(args) => cli::compare::run(&args),
        Command::Gate(args) => cli::gate::run(&args),
        Command::Doctor(args) => cli::doctor::run(&args),
        Command::Validate(args) => cli::validate::run(&args),
        Command::Run(args) => cli::run::run(&args),
        Command::Merge(args) => cli::merge::run(&args),
        Command::K8s(args) => cli::k8s::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("h2lab: error: {e:#}");
            let usage = e.downcast_ref::<UsageError>().is_some()
                || matches!(
                    e.downcast_ref::<load::LoadError>(),
                    Some(
                        load::LoadError::Tls(_)
                            | load::LoadError::Request(_)
                            | load::LoadError::Engine(_)
                    )
                );
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
