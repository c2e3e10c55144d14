//! `h2lab conform URL`: the HTTP/2 conformance suite (httpwg-cli, RFC 9113) against a URL
//! on loopback, h2c directly or h2 over TLS through the lab's relay; every failure with
//! its RFC section and, for the lab's own servers (`--lab`), whether the lab accepts it and
//! why. Exit 0 when every failure is an accepted one (none are without `--lab`;
//! `--strict`: when every case passed), 1 otherwise, 2 bad input.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::load::{parse_origin, resolve};
use super::tls::TlsClientArgs;
use super::{print_out, UsageError};
use crate::conform::{self, ConformError, Options};
use crate::model::Proto;
use crate::tls::ClientTls;

/// Flags of `h2lab conform`.
#[derive(Debug, Args)]
pub struct ConformArgs {
    /// The server: http://HOST:PORT (h2c with prior knowledge) or https://HOST:PORT (h2
    /// over TLS, ALPN h2); loopback only.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Client TLS for https:// (the relay's side).
    #[command(flatten)]
    pub tls: TlsClientArgs,
    /// Only cases whose name contains this.
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    /// The target is one of the lab's own servers (sut edge, proxy or host with the
    /// built-in app): the failures the lab understands and accepts are marked so, with
    /// their reason, and do not fail the run.
    #[arg(long)]
    pub lab: bool,
    /// Fail on any failed case, accepted or not.
    #[arg(long)]
    pub strict: bool,
    /// Longest the suite may run.
    #[arg(long, value_parser = super::load::duration, default_value = "120s", value_name = "DUR")]
    pub timeout: Duration,
    /// How long the suite waits for each frame, milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub frame_timeout: u64,
    /// Directory for conform.json and junit.xml.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `h2lab conform`.
pub fn run(args: &ConformArgs) -> anyhow::Result<ExitCode> {
    let (origin, _) = parse_origin(&args.url)?;
    let addr = resolve(&args.url, &origin)?;
    let tls = args
        .tls
        .to_config(origin.scheme == "https", Proto::H2, &origin.host)?
        .map(|cfg| ClientTls::build(&cfg).map_err(|e| UsageError(e.to_string())))
        .transpose()?;
    let opts = Options {
        filter: args.filter.clone(),
        timeout: args.timeout,
        frame_timeout_ms: args.frame_timeout,
        lab: args.lab,
    };
    let report = match conform::run(&args.url, addr, tls, &opts) {
        Err(e @ ConformError::NotLoopback(_)) => return Err(UsageError(format!("URL: {e}")).into()),
        other => other?,
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create --out {}", dir.display()))?;
        crate::output::atomic_write(&dir.join("conform.json"), |w| {
            serde_json::to_writer_pretty(&mut *w, &report).map_err(std::io::Error::other)?;
            std::io::Write::write_all(w, b"\n")
        })
        .with_context(|| format!("cannot write {}/conform.json", dir.display()))?;
        let junit = conform::junit(&report);
        crate::output::atomic_write(&dir.join("junit.xml"), |w| {
            std::io::Write::write_all(w, junit.as_bytes())
        })
        .with_context(|| format!("cannot write {}/junit.xml", dir.display()))?;
    }
    print_out(&conform::text(&report));
    let failed = report.total - report.passed;
    Ok(if report.unexpected > 0 || (args.strict && failed > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
