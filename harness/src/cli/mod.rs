//! Command-line interface: one file per subcommand. Flags become validated plain data
//! here, once.

pub mod agent;
pub mod attack;
pub mod compare;
pub mod conform;
pub mod doctor;
pub mod gate;
pub mod k8s;
pub mod load;
pub mod matrix;
pub mod merge;
pub mod probe;
pub mod report;
pub mod run;
pub mod search;
pub mod tls;
pub mod validate;

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
    /// Probe one URL with one connection: TCP, TLS version, cipher, key exchange group,
    /// certificate key, ALPN, the protocol a real request used and the one that reached
    /// the app, or the precise failure class (exit 1 on failure).
    Probe(Box<probe::ProbeArgs>),
    /// Run the HTTP/2 negotiation matrix of a scenario's `[negotiation]` section: every
    /// topology x server TLS x platform profile x certificate x client profile x offer,
    /// observed vs expected; writes matrix.json, .csv, .md and .svg.
    Matrix(matrix::MatrixArgs),
    /// Check a scenario file: unknown keys, wrong types, impossible combinations, missing
    /// proxies, each with file:line:column and a hint (exit 2 when anything is wrong).
    Validate(validate::ValidateArgs),
    /// Run a scenario matrix: start each topology, drive it, tear it down, and write a
    /// results directory (`--dry-run` lists the cells).
    Run(run::RunArgs),
    /// Find the capacity of a URL under SLOs: open-loop steps growing by a factor until
    /// one fails, then bisection; writes search.json (`--out`).
    Search(Box<search::SearchArgs>),
    /// Attack a URL beside a legitimate open-loop load: calm, attacked and after phases
    /// (p50/p99/p99.9, errors), the target's memory and CPU (`--pid`), how each attacking
    /// connection was cut off; exit 0 the target held, 1 it did not. Loopback only.
    Attack(Box<attack::AttackArgs>),
    /// Run the HTTP/2 conformance suite (httpwg-cli, RFC 9113) against a URL on loopback
    /// (h2c, or h2 over TLS through a relay): each failure with its RFC section and, when
    /// the lab accepts it, why; conform.json and JUnit (`--out`); exit 1 on a failure not
    /// accepted.
    Conform(Box<conform::ConformArgs>),
    /// Turn a results directory into index.html (self-contained), summary.md, cells.csv
    /// and SVG charts (percentile spectrum, throughput, latency over time, rate sweeps,
    /// the negotiation heatmap).
    Report(report::ReportArgs),
    /// Compare two results directories cell by cell: base, new, change and its
    /// significance over the repetitions (Mann-Whitney U, bootstrap interval).
    Compare(compare::CompareArgs),
    /// Gate a candidate run against a baseline: exit 0 pass, 1 regressed (significant and
    /// beyond its threshold) or an SLO not met, 2 bad input; JUnit XML and a Markdown
    /// verdict (appended to $GITHUB_STEP_SUMMARY when set).
    Gate(gate::GateArgs),
    /// Show where the lab finds its servers under test and which real proxies are
    /// installed; with a scenario, also the app command it would run and whether its
    /// program is found.
    Doctor(doctor::DoctorArgs),
    /// Merge the results of distributed agents (`h2lab load --agent I/N`): histograms
    /// summed bucket by bucket per interval and in total, counts and errors summed; writes
    /// one results directory that report, compare and gate take, plus the per-agent table
    /// (exit 2 when the agents' results do not belong together).
    Merge(merge::MergeArgs),
    /// Run the generator as a Kubernetes Indexed Job: `render` writes the Job, its
    /// headless Service and each pod's environment; `collect` gathers the agents' results
    /// (from `kubectl logs` or a shared volume) and merges them.
    K8s(k8s::K8sArgs),
}

/// Bad flags or inputs: exit code 2, message names the flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Writes to stdout; a reader that went away (`| head`) is not an error worth a panic.
pub fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Reports bad input (a file or flag the user gave) and answers exit code 2.
pub fn bad_input(e: impl std::fmt::Display) -> anyhow::Result<std::process::ExitCode> {
    eprintln!("h2lab: error: {e}");
    Ok(std::process::ExitCode::from(2))
}
