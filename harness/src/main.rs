//! `h2lab`: the lab's command-line interface. Thin: parse flags, call the library, map
//! the outcome to an exit code (0 ok, 1 the measured thing failed, 2 bad input).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// h2lab: a performance test harness and HTTP/2 negotiation lab.
#[derive(Debug, Parser)]
#[command(name = "h2lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print where the lab finds its servers under test and which real proxies are installed.
    Doctor,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor => {
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
            ExitCode::SUCCESS
        }
    }
}
