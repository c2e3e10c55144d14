//! Client TLS with rustls or OpenSSL behind one small interface: versions, cipher lists,
//! ALPN offer (empty = no extension), trust (CA file, built-in roots, or none), SNI. A
//! failed handshake is classified with the alert's name.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::model::{TlsClientConfig, TlsClientStack};

mod verify;

/// What a TLS handshake settled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFacts {
    /// e.g. `TLSv1.3`.
    pub version: String,
    /// Cipher suite name (IANA with rustls, OpenSSL's with OpenSSL).
    pub cipher: String,
    /// ALPN protocol selected, if any.
    pub alpn: Option<String>,
}

/// What a probe reports beyond [`TlsFacts`]; computed on demand, so the load engine's
/// handshakes do not pay for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TlsDetails {
    /// IANA code point of the cipher suite.
    pub cipher_code: u16,
    /// IANA name of the cipher suite.
    pub cipher_iana: String,
    /// Key exchange group, e.g. `X25519`, `secp256r1`, `ffdhe2048`.
    pub group: Option<String>,
    /// Server certificate key, e.g. `rsa-2048`, `ecdsa-p256`.
    pub cert_key: Option<String>,
}

fn key_name(key: &openssl::pkey::PKeyRef<openssl::pkey::Public>) -> String {
    use openssl::pkey::Id;
    match key.id() {
        Id::RSA => format!("rsa-{}", key.bits()),
        Id::EC => {
            let curve = key
                .ec_key()
                .ok()
                .and_then(|k| k.group().curve_name())
                .and_then(|n| n.short_name().ok())
                .unwrap_or("unknown");
            let curve = match curve {
                "prime256v1" => "p256",
                "secp384r1" => "p384",
                "secp521r1" => "p521",
                other => other,
            };
            format!("ecdsa-{curve}")
        }
        Id::ED25519 => "ed25519".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn group_name(key: &openssl::pkey::PKeyRef<openssl::pkey::Public>) -> String {
    use openssl::pkey::Id;
    match key.id() {
        Id::X25519 => "X25519".into(),
        Id::X448 => "X448".into(),
        Id::EC => key
            .ec_key()
            .ok()
            .and_then(|k| k.group().curve_name())
            .map(|n| match n.short_name().unwrap_or("unknown") {
                "prime256v1" => "secp256r1".to_string(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "ec".into()),
        Id::DH => format!("ffdhe{}", key.bits()),
        other => format!("{other:?}").to_lowercase(),
    }
}

impl Stream {
    /// TLS details of the connection (None on cleartext).
    pub fn details(&self) -> Option<TlsDetails> {
        match self {
            Stream::Tcp(_) => None,
            Stream::Rustls(s) => {
                let conn = s.get_ref().1;
                let suite = conn.negotiated_cipher_suite()?.suite();
                let cert_key = conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|der| openssl::x509::X509::from_der(der).ok())
                    .and_then(|x| x.public_key().ok())
                    .map(|k| key_name(&k));
                Some(TlsDetails {
                    cipher_code: u16::from(suite),
                    // rustls spells TLS 1.3 suites TLS13_*; IANA says TLS_*.
                    cipher_iana: format!("{suite:?}").replacen("TLS13_", "TLS_", 1),
                    group: conn
                        .negotiated_key_exchange_group()
                        .map(|g| format!("{:?}", g.name())),
                    cert_key,
                })
            }
            Stream::Openssl(s) => {
                let ssl = s.ssl();
                let cipher = ssl.current_cipher()?;
                Some(TlsDetails {
                    cipher_code: u16::from_be_bytes(cipher.protocol_id()),
                    cipher_iana: cipher.standard_name().unwrap_or(cipher.name()).to_string(),
                    group: ssl.peer_tmp_key().ok().map(|k| group_name(&k)),
                    cert_key: ssl
                        .peer_certificate()
                        .and_then(|x| x.public_key().ok())
                        .map(|k| key_name(&k)),
                })
            }
        }
    }
}

/// Why TLS could not be configured (bad flags or files).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsConfigError(pub String);

/// A ready client TLS configuration.
#[derive(Clone)]
pub enum ClientTls {
    /// rustls.
    Rustls(tokio_rustls::TlsConnector, ServerName<'static>),
    /// OpenSSL.
    Openssl(Arc<SslConnector>, String),
}

/// A connected stream, cleartext or TLS.
pub enum Stream {
    /// Cleartext.
    Tcp(TcpStream),
    /// rustls.
    Rustls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// OpenSSL.
    Openssl(Box<tokio_openssl::SslStream<TcpStream>>),
}

/// Maps an alert description text ("handshake failure", "NoApplicationProtocol") to its
/// RFC 8446 name ("handshake_failure", "no_application_protocol").
pub fn alert_name(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.trim().chars().enumerate() {
        if c == ' ' || c == '-' {
            out.push('_');
        } else if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The alert an OpenSSL error text names (`... tlsv1 alert protocol version:...`, as the
/// library and the `openssl`/`curl` tools print it), by its RFC 8446 name.
pub fn alert_in_text(text: &str) -> Option<String> {
    let i = text.find("alert ")?;
    let rest = &text[i + 6..];
    let end = rest.find([':', ')', '\n']).unwrap_or(rest.len());
    Some(alert_name(&rest[..end]))
}

/// Error class of a failed handshake: `alpn_mismatch` for alert 120, else
/// `tls_handshake:<alert>` or `tls_handshake:<reason>`.
pub fn classify_handshake_error(stack: TlsClientStack, err: &io::Error) -> String {
    let alert = match stack {
        TlsClientStack::Rustls => err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .map(|e| match e {
                rustls::Error::AlertReceived(a) => alert_name(&format!("{a:?}")),
                rustls::Error::InvalidCertificate(c) => certificate_class(c).to_string(),
                rustls::Error::PeerIncompatible(p) => format!("peer_incompatible({p:?})"),
                other => alert_name(&format!("{other:?}").replace(['(', ')'], " ")),
            }),
        TlsClientStack::Openssl => {
            let text = err.to_string();
            alert_in_text(&text)
                .or_else(|| {
                    text.contains("certificate verify failed")
                        .then(|| openssl_verify_class(&text).to_string())
                })
                .or_else(|| {
                    text.contains("no protocols available")
                        .then(|| "no_protocols_available".to_string())
                })
        }
    };
    match alert.as_deref() {
        Some("no_application_protocol") => "alpn_mismatch:no_application_protocol".to_string(),
        Some(a) => format!("tls_handshake:{a}"),
        None => "tls_handshake:unknown".to_string(),
    }
}

/// Handshake error classes (after `tls_handshake:`) that mean the client refused the
/// server's certificate: the fix is a CA to trust (`cacert`) or not verifying.
pub const CERTIFICATE_CLASSES: [&str; 8] = [
    "unknown_ca",
    "expired",
    "not_yet_valid",
    "name_mismatch",
    "revoked",
    "bad_signature",
    "bad_certificate_purpose",
    "bad_certificate",
];

/// Why rustls refused a certificate, as a person would say it.
fn certificate_class(c: &rustls::CertificateError) -> &'static str {
    use rustls::CertificateError as E;
    match c {
        E::UnknownIssuer => "unknown_ca",
        E::Expired | E::ExpiredContext { .. } => "expired",
        E::NotValidYet | E::NotValidYetContext { .. } => "not_yet_valid",
        E::NotValidForName | E::NotValidForNameContext { .. } => "name_mismatch",
        E::Revoked => "revoked",
        E::BadSignature => "bad_signature",
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => "bad_certificate_purpose",
        // A self-signed CA certificate served as the leaf: not in the trust store.
        E::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => "unknown_ca",
        _ => "bad_certificate",
    }
}

/// The class of an OpenSSL verification failure, from the `verify error N` the handshake
/// error carries.
fn openssl_verify_class(text: &str) -> &'static str {
    let code = text
        .split("verify error ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<i32>().ok());
    match code {
        Some(2 | 18 | 19 | 20 | 21) => "unknown_ca",
        Some(10) => "expired",
        Some(9) => "not_yet_valid",
        Some(62 | 64) => "name_mismatch",
        Some(23) => "revoked",
        Some(7) => "bad_signature",
        Some(26) => "bad_certificate_purpose",
        _ => "bad_certificate",
    }
}

fn version_ok(v: &str, flag: &str) -> Result<(), TlsConfigError> {
    match v {
        "1.2" | "1.3" => Ok(()),
        other => Err(TlsConfigError(format!(
            "{flag} `{other}`: expected 1.2 or 1.3"
        ))),
    }
}

impl ClientTls {
    /// Builds the client configuration.
    pub fn build(cfg: &TlsClientConfig) -> Result<ClientTls, TlsConfigError> {
        if let Some(v) = &cfg.min {
            version_ok(v, "--tls-min")?;
        }
        if let Some(v) = &cfg.max {
            version_ok(v, "--tls-max")?;
        }
        let min = cfg.min.as_deref().unwrap_or("1.2");
        let max = cfg.max.as_deref().unwrap_or("1.3");
        if min > max {
            return Err(TlsConfigError("--tls-min is above --tls-max".into()));
        }
        match cfg.stack {
            TlsClientStack::Rustls => rustls_client(cfg, min, max),
            TlsClientStack::Openssl => openssl_client(cfg, min, max),
        }
    }

    /// Performs the handshake over `tcp`.
    pub async fn connect(&self, tcp: TcpStream) -> Result<(Stream, TlsFacts), io::Error> {
        match self {
            ClientTls::Rustls(connector, name) => {
                let s = connector.connect(name.clone(), tcp).await?;
                let conn = s.get_ref().1;
                let version = match conn.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
                    Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
                    other => format!("{other:?}"),
                };
                let facts = TlsFacts {
                    version,
                    cipher: conn
                        .negotiated_cipher_suite()
                        .map(|s| format!("{:?}", s.suite()))
                        .unwrap_or_default(),
                    alpn: conn
                        .alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned()),
                };
                Ok((Stream::Rustls(Box::new(s)), facts))
            }
            ClientTls::Openssl(connector, sni) => {
                let ssl = connector
                    .configure()
                    .and_then(|c| c.into_ssl(sni))
                    .map_err(io::Error::other)?;
                let mut s = tokio_openssl::SslStream::new(ssl, tcp).map_err(io::Error::other)?;
                if let Err(e) = Pin::new(&mut s).connect().await {
                    let verify = s.ssl().verify_result();
                    let mut text = openssl_error_text(&e);
                    if verify != openssl::x509::X509VerifyResult::OK {
                        text.push_str(&format!(
                            " (verify error {}: {})",
                            verify.as_raw(),
                            verify.error_string()
                        ));
                    }
                    return Err(io::Error::other(text));
                }
                let ssl = s.ssl();
                let facts = TlsFacts {
                    version: ssl.version_str().to_string(),
                    cipher: ssl
                        .current_cipher()
                        .map(|c| c.name().to_string())
                        .unwrap_or_default(),
                    alpn: ssl
                        .selected_alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned()),
                };
                Ok((Stream::Openssl(Box::new(s)), facts))
            }
        }
    }

    /// The stack in use.
    pub fn stack(&self) -> TlsClientStack {
        match self {
            ClientTls::Rustls(..) => TlsClientStack::Rustls,
            ClientTls::Openssl(..) => TlsClientStack::Openssl,
        }
    }
}

fn openssl_error_text(e: &openssl::ssl::Error) -> String {
    match e.ssl_error() {
        Some(stack) => stack
            .errors()
            .iter()
            .map(|er| er.reason().unwrap_or("unknown").to_string())
            .collect::<Vec<_>>()
            .join(": "),
        None => e.to_string(),
    }
}

fn read_ca(cfg: &TlsClientConfig) -> Result<Option<String>, TlsConfigError> {
    cfg.cacert
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p)
                .map_err(|e| TlsConfigError(format!("--cacert {}: {e}", p.display())))
        })
        .transpose()
}

fn split(list: &str) -> Vec<&str> {
    list.split([':', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn rustls_client(cfg: &TlsClientConfig, min: &str, max: &str) -> Result<ClientTls, TlsConfigError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let known: Vec<String> = provider
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    for (list, flag, is13) in [
        (&cfg.ciphers, "--ciphers", false),
        (&cfg.tls13_suites, "--tls13-suites", true),
    ] {
        let Some(list) = list else { continue };
        let wanted = split(list);
        if let Some(bad) = wanted.iter().find(|w| !known.iter().any(|k| k == *w)) {
            return Err(TlsConfigError(format!(
                "{flag}: rustls has no suite `{bad}`; known: {}",
                known.join(", ")
            )));
        }
        provider.cipher_suites.retain(|s| {
            let name = format!("{:?}", s.suite());
            name.starts_with("TLS13_") != is13 || wanted.contains(&name.as_str())
        });
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        ("1.2", &rustls::version::TLS12),
        ("1.3", &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| *v >= min && *v <= max)
    .map(|(_, p)| p)
    .collect();
    let provider = Arc::new(provider);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsConfigError(format!("rustls: {e}")))?;
    let mut config = if cfg.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let mut pinned = Vec::new();
        match read_ca(cfg)? {
            Some(pem) => {
                for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
                    let cert = cert.map_err(|e| TlsConfigError(format!("--cacert: {e}")))?;
                    roots
                        .add(cert.clone())
                        .map_err(|e| TlsConfigError(format!("--cacert: {e}")))?;
                    pinned.push(cert);
                }
                if roots.is_empty() {
                    return Err(TlsConfigError(
                        "--cacert: no certificate in the file".into(),
                    ));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsConfigError(format!("--cacert: {e}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::TrustedOrPinned { webpki, pinned }))
            .with_no_client_auth()
    };
    config.alpn_protocols = cfg.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // Rule 11: every connection does a full handshake unless resumption is asked for.
    config.resumption = rustls::client::Resumption::disabled();
    let name = ServerName::try_from(cfg.sni.clone())
        .map_err(|e| TlsConfigError(format!("--sni `{}`: {e}", cfg.sni)))?;
    Ok(ClientTls::Rustls(
        tokio_rustls::TlsConnector::from(Arc::new(config)),
        name,
    ))
}

fn openssl_client(
    cfg: &TlsClientConfig,
    min: &str,
    max: &str,
) -> Result<ClientTls, TlsConfigError> {
    let err = |what: &str, e: openssl::error::ErrorStack| TlsConfigError(format!("{what}: {e}"));
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| err("openssl", e))?;
    let ver = |v: &str| {
        if v == "1.2" {
            SslVersion::TLS1_2
        } else {
            SslVersion::TLS1_3
        }
    };
    b.set_min_proto_version(Some(ver(min)))
        .map_err(|e| err("--tls-min", e))?;
    b.set_max_proto_version(Some(ver(max)))
        .map_err(|e| err("--tls-max", e))?;
    if let Some(list) = &cfg.ciphers {
        b.set_cipher_list(list)
            .map_err(|e| err(&format!("--ciphers `{list}`"), e))?;
    }
    if let Some(list) = &cfg.tls13_suites {
        b.set_ciphersuites(list)
            .map_err(|e| err(&format!("--tls13-suites `{list}`"), e))?;
    }
    if !cfg.alpn.is_empty() {
        let mut wire = Vec::new();
        for p in &cfg.alpn {
            wire.push(p.len() as u8);
            wire.extend_from_slice(p.as_bytes());
        }
        b.set_alpn_protos(&wire).map_err(|e| err("--alpn", e))?;
    }
    b.set_session_cache_mode(openssl::ssl::SslSessionCacheMode::OFF);
    if cfg.insecure {
        b.set_verify(SslVerifyMode::NONE);
    } else if let Some(path) = &cfg.cacert {
        read_ca(cfg)?;
        b.set_ca_file(path)
            .map_err(|e| err(&format!("--cacert {}", path.display()), e))?;
    }
    Ok(ClientTls::Openssl(Arc::new(b.build()), cfg.sni.clone()))
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => $e,
            Stream::Rustls($s) => $e,
            Stream::Openssl($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, data))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Rustls(s) => s.is_write_vectored(),
            Stream::Openssl(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_follow_the_rfc_spelling() {
        assert_eq!(
            alert_name("NoApplicationProtocol"),
            "no_application_protocol"
        );
        assert_eq!(alert_name("handshake failure"), "handshake_failure");
        assert_eq!(alert_name("protocol version"), "protocol_version");
        assert_eq!(alert_name("HandshakeFailure"), "handshake_failure");
    }
}
