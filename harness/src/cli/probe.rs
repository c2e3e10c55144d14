//! `h2lab probe`: flags validated into a [`ProbeSpec`].

use std::process::ExitCode;

use anyhow::Context;

use super::print_out;
use crate::output;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::load::{parse_origin, resolve};
use super::tls::TlsClientArgs;
use super::UsageError;
use crate::model::Proto;
use crate::probe::ProbeSpec;

/// Flags of `h2lab probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The URL; its path is the request (default /info, which servers under test answer
    /// with the protocol that reached the app).
    #[arg(value_name = "URL")]
    pub url: String,
    /// What to speak: auto (ALPN decides over TLS, HTTP/1.1 on cleartext), h1, h2 (TLS,
    /// offers only h2), h2c (prior knowledge), h2c-upgrade.
    #[arg(long, value_enum, default_value = "auto")]
    pub proto: Proto,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: TlsClientArgs,
    /// Go on with HTTP/2 over TLS 1.2 on an RFC 7540 Appendix A suite (by default the
    /// probe refuses with GOAWAY INADEQUATE_SECURITY, as browsers do).
    #[arg(long)]
    pub allow_weak_h2: bool,
    /// Bound of each step: connect, handshake, response.
    #[arg(long, value_parser = super::load::duration, default_value = "5s", value_name = "DUR")]
    pub timeout: Duration,
    /// Print the report as JSON (schema h2lab.probe/v1) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

impl ProbeArgs {
    /// Validates the flags.
    pub fn to_spec(&self) -> Result<ProbeSpec, UsageError> {
        let (origin, path) = parse_origin(&self.url)?;
        let https = origin.scheme == "https";
        match (self.proto, https) {
            (Proto::H2c | Proto::H2cUpgrade, true) => {
                return Err(UsageError(
                    "--proto h2c and h2c-upgrade are cleartext: use an http:// URL".into(),
                ))
            }
            (Proto::H2, false) => {
                return Err(UsageError(
                    "--proto h2 needs an https:// URL; for cleartext use --proto h2c".into(),
                ))
            }
            _ => {}
        }
        if self.timeout.is_zero() {
            return Err(UsageError("--timeout must be longer than zero".into()));
        }
        let addr = resolve(&self.url, &origin)?;
        let path = if self.url.trim_end_matches('/').matches('/').count() <= 2 {
            "/info".to_string()
        } else {
            path
        };
        Ok(ProbeSpec {
            url: self.url.clone(),
            addr,
            authority: origin.authority.clone(),
            path,
            proto: self.proto,
            tls: self.tls.to_config(https, self.proto, &origin.host)?,
            strict_h2: !self.allow_weak_h2,
            timeout: self.timeout,
        })
    }
}

/// Runs `h2lab probe`: the exit code, or an error for `main` to report.
pub fn run(args: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let spec = args.to_spec()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let report = rt
        .block_on(crate::probe::probe(&spec))
        .map_err(|e| UsageError(e.0))?;
    let json = serde_json::to_string_pretty(&report).context("cannot encode the report")? + "\n";
    if let Some(path) = &args.out {
        output::atomic_write(path, |w| std::io::Write::write_all(w, json.as_bytes()))
            .with_context(|| format!("cannot write --out {}", path.display()))?;
    }
    if args.json {
        print_out(&json);
    } else {
        print_out(&crate::probe::render::human(&report));
    }
    Ok(if report.class.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
