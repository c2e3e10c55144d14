//! Server TLS with either rustls or OpenSSL, configured from one plain settings value.
//!
//! Knobs: min/max protocol version, TLS 1.2 cipher list and TLS 1.3 suites (OpenSSL
//! strings for OpenSSL, suite names for rustls), the ALPN list, and the certificate (PEM
//! files, or a CA + leaf generated on the spot).

mod openssl_stack;
mod rustls_stack;

use std::path::PathBuf;
use std::sync::Arc;

use h2lab_common::pki::{KeyType, Pki};

pub use openssl_stack::openssl_facts;
pub use rustls_stack::rustls_facts;

/// Which TLS implementation terminates connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsStack {
    /// rustls with the ring provider.
    Rustls,
    /// OpenSSL (vendored, 3.x).
    Openssl,
}

/// A TLS protocol version bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[value(name = "1.2")]
    Tls12,
    /// TLS 1.3.
    #[value(name = "1.3")]
    Tls13,
}

/// Where the server certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files: certificate chain (leaf first) and private key.
    Files {
        /// Certificate chain.
        chain: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Generate a CA and a leaf for the loopback names; write the CA where asked.
    SelfSigned {
        /// Key type of CA and leaf.
        key_type: KeyType,
        /// Where to write the CA certificate PEM so clients can verify.
        ca_out: Option<PathBuf>,
    },
}

/// Everything that configures server TLS.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Implementation.
    pub stack: TlsStack,
    /// Lowest protocol version accepted (default 1.2).
    pub min: Option<TlsVersion>,
    /// Highest protocol version accepted (default 1.3).
    pub max: Option<TlsVersion>,
    /// TLS 1.2 cipher list (OpenSSL string, or `:`/`,`-separated rustls suite names).
    pub ciphers: Option<String>,
    /// TLS 1.3 suites (OpenSSL string, or rustls suite names).
    pub tls13_suites: Option<String>,
    /// Key exchange groups (OpenSSL list syntax, or rustls group names).
    pub groups: Option<String>,
    /// ALPN protocols in server preference order; empty means ALPN is not negotiated.
    pub alpn: Vec<String>,
    /// Refuse HTTP/2 over TLS 1.2 with an RFC 7540 Appendix A suite (GOAWAY
    /// INADEQUATE_SECURITY).
    pub reject_weak_h2: bool,
    /// The certificate.
    pub cert: CertSource,
}

/// Why TLS could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{path}: {what}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// Generating the self-signed PKI failed.
    #[error(transparent)]
    Pki(#[from] h2lab_common::pki::PkiError),
    /// rustls rejected the configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// OpenSSL rejected the configuration.
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    /// A cipher or suite name is unknown, or the settings contradict each other.
    #[error("{0}")]
    Invalid(String),
}

/// PEM material after loading or generating.
#[derive(Debug, Clone)]
pub struct CertPem {
    /// Leaf first, then intermediates.
    pub chain: String,
    /// Private key.
    pub key: String,
}

impl CertSource {
    /// Loads the PEM files, or generates the PKI (writing the CA where asked).
    pub fn load(&self) -> Result<CertPem, TlsError> {
        match self {
            CertSource::Files { chain, key } => {
                let read = |p: &PathBuf| {
                    std::fs::read_to_string(p).map_err(|source| TlsError::Read {
                        path: p.clone(),
                        source,
                    })
                };
                Ok(CertPem {
                    chain: read(chain)?,
                    key: read(key)?,
                })
            }
            CertSource::SelfSigned { key_type, ca_out } => {
                let pki = Pki::generate(*key_type)?;
                if let Some(path) = ca_out {
                    std::fs::write(path, &pki.ca_cert_pem).map_err(|source| TlsError::Read {
                        path: path.clone(),
                        source,
                    })?;
                }
                Ok(CertPem {
                    chain: pki.chain_pem,
                    key: pki.key_pem,
                })
            }
        }
    }
}

/// A ready TLS acceptor of either stack.
#[derive(Clone)]
pub enum ServerTls {
    /// rustls.
    Rustls(tokio_rustls::TlsAcceptor),
    /// OpenSSL.
    Openssl(Arc<openssl::ssl::SslAcceptor>),
}

impl ServerTls {
    /// Builds the acceptor described by `settings`.
    pub fn build(settings: &TlsSettings) -> Result<ServerTls, TlsError> {
        if let (Some(min), Some(max)) = (settings.min, settings.max) {
            if min > max {
                return Err(TlsError::Invalid(
                    "--tls-min is above --tls-max: no protocol version is left".into(),
                ));
            }
        }
        let pem = settings.cert.load()?;
        match settings.stack {
            TlsStack::Rustls => Ok(ServerTls::Rustls(rustls_stack::acceptor(settings, &pem)?)),
            TlsStack::Openssl => Ok(ServerTls::Openssl(Arc::new(openssl_stack::acceptor(
                settings, &pem,
            )?))),
        }
    }
}

/// Splits a suite list on `:` or `,`.
fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split([':', ',']).map(str::trim).filter(|s| !s.is_empty())
}
