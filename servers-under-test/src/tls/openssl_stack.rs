//! OpenSSL server configuration.

use openssl::pkey::PKey;
use openssl::ssl::{self, AlpnError, SslAcceptor, SslMethod, SslOptions, SslRef, SslVersion};
use openssl::x509::X509;

use super::{CertPem, TlsError, TlsSettings, TlsVersion};
use crate::conn_info::TlsFacts;

fn version(v: TlsVersion) -> SslVersion {
    match v {
        TlsVersion::Tls12 => SslVersion::TLS1_2,
        TlsVersion::Tls13 => SslVersion::TLS1_3,
    }
}

/// ALPN protocol list in wire format (length-prefixed).
pub fn alpn_wire(protocols: &[String]) -> Vec<u8> {
    let mut wire = Vec::new();
    for p in protocols {
        wire.push(p.len() as u8);
        wire.extend_from_slice(p.as_bytes());
    }
    wire
}

/// Iterates the protocols of a wire-format list.
fn wire_protocols(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = wire;
    std::iter::from_fn(move || {
        let (&len, tail) = rest.split_first()?;
        let len = (len as usize).min(tail.len());
        let (proto, next) = tail.split_at(len);
        rest = next;
        Some(proto)
    })
}

/// The first of the server's protocols that the client offered (server preference), as a
/// slice of the client's list.
fn select_alpn<'c>(server: &[u8], client: &'c [u8]) -> Option<&'c [u8]> {
    wire_protocols(server).find_map(|want| wire_protocols(client).find(|offered| *offered == want))
}

/// Builds an OpenSSL acceptor.
pub fn acceptor(settings: &TlsSettings, pem: &CertPem) -> Result<SslAcceptor, TlsError> {
    // Mozilla "intermediate" is the sane default for an edge; every knob overrides it.
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_min_proto_version(Some(version(settings.min.unwrap_or(TlsVersion::Tls12))))?;
    b.set_max_proto_version(Some(version(settings.max.unwrap_or(TlsVersion::Tls13))))?;
    if let Some(list) = &settings.ciphers {
        b.set_cipher_list(list).map_err(|e| {
            TlsError::Invalid(format!("OpenSSL rejected the cipher list `{list}`: {e}"))
        })?;
    }
    if let Some(list) = &settings.tls13_suites {
        b.set_ciphersuites(list).map_err(|e| {
            TlsError::Invalid(format!("OpenSSL rejected the TLS 1.3 suites `{list}`: {e}"))
        })?;
    }
    if let Some(list) = &settings.groups {
        b.set_groups_list(list)
            .map_err(|e| TlsError::Invalid(format!("OpenSSL rejected the groups `{list}`: {e}")))?;
    }
    b.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);

    let mut certs = X509::stack_from_pem(pem.chain.as_bytes())?.into_iter();
    let leaf = certs.next().ok_or_else(|| TlsError::BadPem {
        path: "certificate".into(),
        what: "no certificate found".into(),
    })?;
    b.set_certificate(&leaf)?;
    for extra in certs {
        b.add_extra_chain_cert(extra)?;
    }
    b.set_private_key(&*PKey::private_key_from_pem(pem.key.as_bytes())?)?;
    b.check_private_key()?;

    if !settings.alpn.is_empty() {
        let wire = alpn_wire(&settings.alpn);
        // No overlap with the client's offer: fatal no_application_protocol alert (120),
        // as nginx and rustls do.
        b.set_alpn_select_callback(move |_ssl, client| {
            select_alpn(&wire, client).ok_or(AlpnError::ALERT_FATAL)
        });
    }
    Ok(b.build())
}

/// The facts of an established OpenSSL connection.
pub fn openssl_facts(ssl: &SslRef) -> TlsFacts {
    TlsFacts {
        stack: "openssl",
        version: ssl.version_str().to_string(),
        cipher: ssl
            .current_cipher()
            .map(|c| c.name().to_string())
            .unwrap_or_default(),
        cipher_code: ssl
            .current_cipher()
            .map(|c| u16::from_be_bytes(c.protocol_id()))
            .unwrap_or_default(),
        alpn: ssl
            .selected_alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        sni: ssl.servername(ssl::NameType::HOST_NAME).map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_selection_follows_server_preference() {
        let server = alpn_wire(&["h2".into(), "http/1.1".into()]);
        let client = alpn_wire(&["http/1.1".into(), "h2".into()]);
        assert_eq!(select_alpn(&server, &client), Some(&b"h2"[..]));
        let client = alpn_wire(&["foo".into()]);
        assert_eq!(select_alpn(&server, &client), None);
    }
}
