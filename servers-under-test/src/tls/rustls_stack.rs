//! rustls server configuration.

use std::sync::Arc;

use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, SupportedProtocolVersion};

use super::{split_list, CertPem, TlsError, TlsSettings, TlsVersion};
use crate::conn_info::TlsFacts;

fn parse_pem(
    pem: &CertPem,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let bad = |what: &str| TlsError::BadPem {
        path: "certificate".into(),
        what: what.to_string(),
    };
    let chain = rustls_pemfile::certs(&mut pem.chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&format!("bad certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(bad("no certificate found"));
    }
    let key = rustls_pemfile::private_key(&mut pem.key.as_bytes())
        .map_err(|e| bad(&format!("bad key PEM: {e}")))?
        .ok_or_else(|| bad("no private key found"))?;
    Ok((chain, key))
}

/// Builds a rustls acceptor.
pub fn acceptor(
    settings: &TlsSettings,
    pem: &CertPem,
) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let mut provider = ring::default_provider();
    let known: Vec<String> = provider
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    let mut wanted: Vec<String> = Vec::new();
    for list in [&settings.ciphers, &settings.tls13_suites]
        .into_iter()
        .flatten()
    {
        for name in split_list(list) {
            if !known.iter().any(|k| k == name) {
                return Err(TlsError::Invalid(format!(
                    "rustls has no cipher suite `{name}`; known: {}",
                    known.join(", ")
                )));
            }
            wanted.push(name.to_string());
        }
    }
    if !wanted.is_empty() {
        let is13 = |n: &str| n.starts_with("TLS13_");
        let restrict12 = settings.ciphers.is_some();
        let restrict13 = settings.tls13_suites.is_some();
        provider.cipher_suites.retain(|s| {
            let name = format!("{:?}", s.suite());
            let restricted = if is13(&name) { restrict13 } else { restrict12 };
            !restricted || wanted.contains(&name)
        });
    }
    if let Some(list) = &settings.groups {
        let mut keep = Vec::new();
        for name in split_list(list) {
            let wanted = match name {
                "P-256" | "prime256v1" => "secp256r1",
                "P-384" => "secp384r1",
                "x25519" => "X25519",
                other => other,
            };
            let group = provider
                .kx_groups
                .iter()
                .find(|g| format!("{:?}", g.name()) == wanted)
                .ok_or_else(|| {
                    TlsError::Invalid(format!("rustls has no key exchange group `{name}`"))
                })?;
            keep.push(*group);
        }
        provider.kx_groups = keep;
    }
    let min = settings.min.unwrap_or(TlsVersion::Tls12);
    let max = settings.max.unwrap_or(TlsVersion::Tls13);
    let versions: Vec<&'static SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| *v >= min && *v <= max)
    .map(|(_, p)| p)
    .collect();
    let (chain, key) = parse_pem(pem)?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = settings
        .alpn
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    config.max_early_data_size = 0;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The facts of an established rustls connection.
pub fn rustls_facts(conn: &rustls::ServerConnection) -> TlsFacts {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "unknown".to_string(),
    };
    TlsFacts {
        stack: "rustls",
        version,
        cipher: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default(),
        cipher_code: conn
            .negotiated_cipher_suite()
            .map(|s| u16::from(s.suite()))
            .unwrap_or_default(),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        sni: conn.server_name().map(str::to_string),
    }
}
