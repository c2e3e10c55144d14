//! Client TLS flags shared by `h2lab load` and `h2lab probe`, validated into a
//! [`TlsClientConfig`] once.

use std::path::PathBuf;

use clap::Args;
use h2lab_common::profiles::{self, ClientProfile, Stack};

use super::UsageError;
use crate::model::{Proto, TlsClientConfig, TlsClientStack};

/// Client TLS and ALPN flags.
#[derive(Debug, Args, Default, Clone)]
pub struct TlsClientArgs {
    /// ALPN offer, comma-separated; an empty string sends no ALPN extension.
    #[arg(long, value_name = "LIST")]
    pub alpn: Option<String>,
    /// Client TLS profile: versions and TLS 1.2 suites of a kind of client (browser,
    /// openssl-default, legacy, tls13-only, rustls-default); explicit flags override it.
    #[arg(long, value_name = "NAME")]
    pub client_profile: Option<String>,
    /// Client TLS implementation (default rustls, or the one the client profile needs).
    #[arg(long, value_enum)]
    pub tls_stack: Option<TlsClientStack>,
    /// Lowest TLS version offered (1.2 or 1.3).
    #[arg(long, value_name = "VER")]
    pub tls_min: Option<String>,
    /// Highest TLS version offered (1.2 or 1.3).
    #[arg(long, value_name = "VER")]
    pub tls_max: Option<String>,
    /// TLS 1.2 cipher list (OpenSSL syntax, or rustls suite names).
    #[arg(long, value_name = "LIST")]
    pub ciphers: Option<String>,
    /// TLS 1.3 cipher suites.
    #[arg(long, value_name = "LIST")]
    pub tls13_suites: Option<String>,
    /// Trust this CA certificate (PEM) instead of the built-in roots.
    #[arg(long, value_name = "PEM")]
    pub cacert: Option<PathBuf>,
    /// Do not verify the server certificate.
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Server name to send (SNI) and verify (default: the URL's host).
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
}

/// Looks up a client profile by name, with the list of names on error.
pub fn client_profile(name: &str) -> Result<&'static ClientProfile, UsageError> {
    profiles::client_profile(name).ok_or_else(|| {
        UsageError(format!(
            "--client-profile `{name}`: unknown; one of {}",
            profiles::client_profile_names()
        ))
    })
}

impl TlsClientArgs {
    fn flags_set(&self) -> Option<&'static str> {
        [
            (self.alpn.is_some(), "--alpn"),
            (self.client_profile.is_some(), "--client-profile"),
            (self.tls_stack.is_some(), "--tls-stack"),
            (self.tls_min.is_some(), "--tls-min"),
            (self.tls_max.is_some(), "--tls-max"),
            (self.ciphers.is_some(), "--ciphers"),
            (self.tls13_suites.is_some(), "--tls13-suites"),
            (self.cacert.is_some(), "--cacert"),
            (self.insecure, "--insecure"),
            (self.sni.is_some(), "--sni"),
        ]
        .into_iter()
        .find(|(set, _)| *set)
        .map(|(_, flag)| flag)
    }

    /// The client TLS configuration for a URL (`None` on cleartext, where any TLS flag is
    /// an error). `proto` picks the default ALPN offer.
    pub fn to_config(
        &self,
        https: bool,
        proto: Proto,
        host: &str,
    ) -> Result<Option<TlsClientConfig>, UsageError> {
        if !https {
            if let Some(flag) = self.flags_set() {
                return Err(UsageError(format!("{flag} applies to https:// URLs only")));
            }
            return Ok(None);
        }
        let profile = self
            .client_profile
            .as_deref()
            .map(client_profile)
            .transpose()?;
        let profile_stack = profile.map(|p| match p.stack {
            Stack::Rustls => TlsClientStack::Rustls,
            Stack::Openssl => TlsClientStack::Openssl,
        });
        let stack = match (self.tls_stack, profile_stack, profile) {
            (Some(TlsClientStack::Rustls), _, Some(p)) if p.tls12_suites.is_some() => {
                return Err(UsageError(format!(
                    "--client-profile {} needs --tls-stack openssl: rustls cannot offer its \
                     TLS 1.2 suites (CBC, RSA key exchange or DHE)",
                    p.name
                )))
            }
            (Some(s), _, _) => s,
            (None, Some(s), _) => s,
            (None, None, _) => TlsClientStack::Rustls,
        };
        let min = self.tls_min.clone().or(profile.map(|p| p.min.to_string()));
        let max = self.tls_max.clone().or(profile.map(|p| p.max.to_string()));
        for v in [&min, &max].into_iter().flatten() {
            if v != "1.2" && v != "1.3" {
                return Err(UsageError(format!(
                    "--tls-min/--tls-max `{v}`: expected 1.2 or 1.3"
                )));
            }
        }
        let ciphers = self.ciphers.clone().or_else(|| {
            profile
                .and_then(|p| p.tls12_suites)
                .map(|list| list.join(":"))
        });
        let alpn = match &self.alpn {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            None => match proto {
                Proto::H1 => vec!["http/1.1".into()],
                Proto::H2 => vec!["h2".into()],
                _ => vec!["h2".into(), "http/1.1".into()],
            },
        };
        Ok(Some(TlsClientConfig {
            stack,
            min,
            max,
            ciphers,
            tls13_suites: self.tls13_suites.clone(),
            alpn,
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            sni: self.sni.clone().unwrap_or_else(|| host.to_string()),
        }))
    }
}
