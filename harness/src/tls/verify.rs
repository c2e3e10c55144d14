//! Certificate verification of the rustls client: the web PKI against the trusted roots,
//! and, as OpenSSL and curl do, a certificate given in `--cacert` trusted as itself when the
//! server presents it as its leaf (a self-signed certificate made with
//! `openssl req -x509` is a CA certificate, which the web PKI refuses as a leaf). The
//! name and validity dates of such a certificate are still checked.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

/// The web PKI, with the CA file's certificates also accepted as leaves.
#[derive(Debug)]
pub struct TrustedOrPinned {
    /// Verification against the roots.
    pub webpki: Arc<WebPkiServerVerifier>,
    /// The certificates of the CA file.
    pub pinned: Vec<CertificateDer<'static>>,
}

/// Whether `der` is valid at `now` (not before its start, not after its end).
fn in_validity(der: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
    let x = openssl::x509::X509::from_der(der)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let at = openssl::asn1::Asn1Time::from_unix(now.as_secs() as i64)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let after_start = at.diff(x.not_before()).map(|d| d.days <= 0 && d.secs <= 0);
    let before_end = at.diff(x.not_after()).map(|d| d.days >= 0 && d.secs >= 0);
    match (after_start, before_end) {
        (Ok(true), Ok(true)) => Ok(()),
        (Ok(false), _) => Err(Error::InvalidCertificate(CertificateError::NotValidYet)),
        _ => Err(Error::InvalidCertificate(CertificateError::Expired)),
    }
}

impl ServerCertVerifier for TrustedOrPinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(v) => Ok(v),
            Err(_)
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                in_validity(end_entity, now)?;
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
