//! Failure classes of a probe, and the mapping from TLS and HTTP/2 errors onto them.

use std::io;

use crate::model::TlsClientStack;
use crate::tls::{alert_in_text, alert_name};

/// Why a probe did not get what it asked for. The string forms (`Display`) are stable:
/// they are what `--json`, matrix.csv and the expectations compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureClass {
    /// TCP connect failed (refused, unreachable).
    ConnectFailed,
    /// A step did not finish in time: `connect`, `handshake` or `response`.
    Timeout(&'static str),
    /// The server answered the ClientHello with something that is not TLS.
    NoTls,
    /// A TLS alert ended the handshake (sent by either side), by RFC 8446 name:
    /// `handshake_failure`, `protocol_version`, `no_application_protocol`...
    Alert(String),
    /// The handshake failed without an alert (e.g. certificate verification).
    Tls(String),
    /// ALPN was offered without http/1.1 and the server selected nothing.
    AlpnIgnored,
    /// HTTP/2 refused with INADEQUATE_SECURITY (GOAWAY), by us (client policy) or the server.
    InadequateSecurity,
    /// The server answered `Upgrade: h2c` over HTTP/1.1 without switching.
    H2cUpgradeDeclined,
    /// The server did not accept the HTTP/2 connection preface on cleartext.
    H2cPriorKnowledgeRejected,
    /// Anything else that broke the exchange.
    Http(String),
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureClass::ConnectFailed => f.write_str("connect_failed"),
            FailureClass::Timeout(step) => write!(f, "timeout:{step}"),
            FailureClass::NoTls => f.write_str("no_tls"),
            FailureClass::Alert(a) => write!(f, "alert:{a}"),
            FailureClass::Tls(r) => write!(f, "tls:{r}"),
            FailureClass::AlpnIgnored => f.write_str("alpn_ignored"),
            FailureClass::InadequateSecurity => f.write_str("inadequate_security"),
            FailureClass::H2cUpgradeDeclined => f.write_str("h2c_upgrade_declined"),
            FailureClass::H2cPriorKnowledgeRejected => f.write_str("h2c_prior_knowledge_rejected"),
            FailureClass::Http(r) => write!(f, "http:{r}"),
        }
    }
}

/// Classifies a failed client handshake from the error text of either stack.
pub fn handshake(stack: TlsClientStack, err: &io::Error) -> FailureClass {
    if let Some(e) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        use rustls::{Error as E, PeerIncompatible as P, PeerMisbehaved as M};
        return match e {
            E::AlertReceived(a) => FailureClass::Alert(alert_name(&format!("{a:?}"))),
            E::InvalidMessage(_) => FailureClass::NoTls,
            E::PeerIncompatible(
                P::ServerTlsVersionIsDisabledByOurConfig
                | P::SupportedVersionsExtensionRequired
                | P::Tls12NotOffered
                | P::Tls12NotOfferedOrEnabled
                | P::Tls13RequiredForQuic,
            ) => FailureClass::Alert("protocol_version".into()),
            E::PeerIncompatible(p) => FailureClass::Alert(format!("handshake_failure({p:?})")),
            E::PeerMisbehaved(M::SelectedUnofferedCipherSuite) => {
                FailureClass::Alert("handshake_failure".into())
            }
            E::PeerMisbehaved(M::SelectedUnofferedApplicationProtocol) => {
                FailureClass::Tls("server_selected_unoffered_alpn".into())
            }
            E::NoApplicationProtocol => FailureClass::Alert("no_application_protocol".into()),
            E::InvalidCertificate(c) => FailureClass::Tls(format!("bad_certificate({c:?})")),
            other => FailureClass::Tls(alert_name(&format!("{other:?}").replace(['(', ')'], " "))),
        };
    }
    let text = err.to_string();
    if stack == TlsClientStack::Openssl {
        if let Some(alert) = alert_in_text(&text) {
            return FailureClass::Alert(alert);
        }
        if text.contains("wrong version number")
            || text.contains("packet length too long")
            || text.contains("record layer failure")
        {
            return FailureClass::NoTls;
        }
        if text.contains("unsupported protocol") || text.contains("no protocols available") {
            return FailureClass::Alert("protocol_version".into());
        }
        if text.contains("no shared cipher") || text.contains("no ciphers available") {
            return FailureClass::Alert("handshake_failure".into());
        }
        if text.contains("certificate verify failed") {
            return FailureClass::Tls("certificate_verify_failed".into());
        }
    }
    match err.kind() {
        io::ErrorKind::UnexpectedEof => FailureClass::Tls("closed_during_handshake".into()),
        io::ErrorKind::ConnectionReset => FailureClass::Tls("reset_during_handshake".into()),
        _ => FailureClass::Tls(text.replace(' ', "_")),
    }
}

/// Classifies an HTTP/2 error: GOAWAY INADEQUATE_SECURITY has its own class.
pub fn h2(e: &h2::Error) -> FailureClass {
    if e.reason() == Some(h2::Reason::INADEQUATE_SECURITY) {
        return FailureClass::InadequateSecurity;
    }
    FailureClass::Http(super::h2c_upgrade::h2_class(e))
}
