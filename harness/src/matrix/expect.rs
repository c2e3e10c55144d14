//! Expected outcome of each cell, from the documented table's rules (RFC 7540 section 9.2,
//! Appendix A, ALPN per RFC 7301) and the profiles' data: a small simulation of version,
//! suite and ALPN selection, so every expectation says which rule produced it.

use h2lab_common::launch::ProxyKind;
use h2lab_common::pki::KeyType;
use h2lab_common::profiles::{
    on_appendix_a, suite_auth, suite_code, Auth, ClientProfile, ServerProfile, RUSTLS_TLS12,
};

use super::spec::{MatrixOffer, ServerCell};
use crate::model::plan::{ServerTls, Topology};

/// What a cell should show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Expected {
    /// Protocol at the edge (`HTTP/2`, `HTTP/1.1`) or failure class.
    pub edge: String,
    /// Protocol at the app, when a request gets through.
    pub app: Option<String>,
    /// TLS version, when a handshake completes.
    pub version: Option<String>,
    /// TLS 1.2 suite the server picks (OpenSSL name), when predictable.
    pub cipher: Option<String>,
    /// The rule that decided.
    pub rule: String,
}

/// The protocol the app sees for a given edge protocol, per topology: the same process
/// for the edge and in-process hosting; one HTTP/1.1 hop for the module and every proxy
/// (nginx, Apache and HAProxy as the lab configures them).
fn app_protocol(t: &Topology, edge: &str) -> String {
    match t {
        Topology::DirectEdge | Topology::InProcess | Topology::External(_) => edge.to_string(),
        _ => "HTTP/1.1".to_string(),
    }
}

fn fail(edge: &str, rule: impl Into<String>) -> Expected {
    Expected {
        edge: edge.to_string(),
        app: None,
        version: None,
        cipher: None,
        rule: rule.into(),
    }
}

/// Expected outcome of a cleartext cell: h2c by prior knowledge or Upgrade.
fn cleartext(t: &Topology, offer: &MatrixOffer) -> Expected {
    let upgrade = *offer == MatrixOffer::H2cUpgrade;
    let (prior, upg, why) = match t {
        Topology::RealProxy(ProxyKind::Nginx) => (
            false,
            false,
            "nginx: h2c only on a `listen ... http2` port, never by Upgrade; a plain port is HTTP/1.1",
        ),
        Topology::RealProxy(ProxyKind::Haproxy) => (
            true,
            true,
            "HAProxy detects the HTTP/2 preface itself; Upgrade: h2c it does not implement but \
             forwards to the backend and tunnels, so the app's own h2c answers (HTTP/2 end to end)",
        ),
        Topology::RealProxy(ProxyKind::Apache) => (
            true,
            true,
            "Apache mod_http2 with `Protocols h2c http/1.1`: prior knowledge and Upgrade",
        ),
        _ => (
            true,
            true,
            "RFC 7540 3.2 and 3.4: the servers under test accept the preface and Upgrade: h2c",
        ),
    };
    let ok = if upgrade { upg } else { prior };
    let tunnel = upgrade && matches!(t, Topology::RealProxy(ProxyKind::Haproxy));
    if ok {
        Expected {
            edge: "HTTP/2".into(),
            app: Some(if tunnel {
                "HTTP/2".into()
            } else {
                app_protocol(t, "HTTP/2")
            }),
            version: None,
            cipher: None,
            rule: why.into(),
        }
    } else if upgrade {
        fail("h2c_upgrade_declined", why)
    } else {
        fail("h2c_prior_knowledge_rejected", why)
    }
}

/// The TLS 1.2 suite the server picks: OpenSSL servers (and the real proxies, configured
/// with server preference) in server order, rustls in client order.
fn pick_suite(
    server_list: &[&'static str],
    client_list: &[&'static str],
    cert: Auth,
    server_order: bool,
) -> Option<&'static str> {
    let fits = |s: &&&str| suite_auth(s) == cert;
    if server_order {
        server_list
            .iter()
            .filter(fits)
            .find(|s| client_list.contains(s))
            .copied()
    } else {
        client_list
            .iter()
            .filter(fits)
            .find(|s| server_list.contains(s))
            .copied()
    }
}

/// Why a known disagreement happens: behaviour of a real server that the RFC rules do not
/// predict, observed and explained here so the report can say it beside the cell.
pub fn explain(server: &ServerCell, offer: &MatrixOffer, observed: &str) -> Option<&'static str> {
    let no_alpn = server.profile.is_some_and(|p| !p.alpn);
    let h2_only = matches!(offer, MatrixOffer::Alpn(l) if !l.is_empty() && !l.iter().any(|p| p == "http/1.1"));
    match (&server.topology, no_alpn && h2_only, observed) {
        (Topology::RealProxy(ProxyKind::Nginx), true, "alert:no_application_protocol") => Some(
            "nginx cannot switch ALPN off: without `http2` it still negotiates, offering only http/1.1, and refuses an h2-only offer with alert 120",
        ),
        (Topology::RealProxy(ProxyKind::Apache), true, _) => Some(
            "Apache with `Protocols http/1.1` selects http/1.1 even when the client did not offer it (RFC 7301 3.2 forbids this); clients abort the handshake",
        ),
        _ => None,
    }
}

/// Expected outcome of a cell.
pub fn expect(
    server: &ServerCell,
    client: Option<&ClientProfile>,
    offer: &MatrixOffer,
    strict: bool,
) -> Expected {
    let (MatrixOffer::Alpn(alpn), Some(sp), Some(cert), Some(cp)) =
        (offer, server.profile, server.cert, client)
    else {
        return cleartext(&server.topology, offer);
    };
    expect_tls(&server.topology, server.stack, sp, cert, cp, alpn, strict)
}

fn expect_tls(
    t: &Topology,
    stack: ServerTls,
    sp: &ServerProfile,
    cert: KeyType,
    cp: &ClientProfile,
    alpn: &[String],
    strict: bool,
) -> Expected {
    let low = sp.min.max(cp.min);
    let high = sp.max.min(cp.max);
    if low > high {
        return fail(
            "alert:protocol_version",
            format!(
                "no TLS version in common: server {}-{}, client {}-{}",
                sp.min, sp.max, cp.min, cp.max
            ),
        );
    }
    let version = if high == "1.3" { "TLSv1.3" } else { "TLSv1.2" };
    let mut cipher = None;
    let mut weak = false;
    if version == "TLSv1.2" {
        let rustls = stack == ServerTls::Rustls && !matches!(t, Topology::RealProxy(_));
        let server_list = if rustls || sp.tls12_suites.is_empty() {
            RUSTLS_TLS12
        } else {
            sp.tls12_suites
        };
        let client_list = cp.tls12_suites.unwrap_or(RUSTLS_TLS12);
        let auth = match cert {
            KeyType::Rsa => Auth::Rsa,
            KeyType::Ecdsa => Auth::Ecdsa,
        };
        let Some(suite) = pick_suite(server_list, client_list, auth, !rustls) else {
            return fail(
                "alert:handshake_failure",
                format!(
                    "no TLS 1.2 suite in common for an {} certificate ({} vs {})",
                    cert.as_str().to_uppercase(),
                    sp.name,
                    cp.name
                ),
            );
        };
        weak = suite_code(suite).is_some_and(on_appendix_a);
        cipher = Some(suite.to_string());
    }
    let selected = if !sp.alpn || alpn.is_empty() {
        None
    } else {
        match ["h2", "http/1.1"]
            .into_iter()
            .find(|p| alpn.iter().any(|o| o == p))
        {
            Some(p) => Some(p),
            None => {
                return fail(
                    "alert:no_application_protocol",
                    "RFC 7301: no protocol in common, the server answers alert 120",
                )
            }
        }
    };
    let done = |edge: &str, rule: String| Expected {
        edge: edge.to_string(),
        app: Some(app_protocol(t, edge)),
        version: Some(version.to_string()),
        cipher: cipher.clone(),
        rule,
    };
    match selected {
        None if !alpn.is_empty() && !alpn.iter().any(|p| p == "http/1.1") => {
            let mut e = fail(
                "alpn_ignored",
                format!("{}: no ALPN, and h2 was the only offer", sp.name),
            );
            e.version = Some(version.into());
            e.cipher = cipher.clone();
            e
        }
        None => done(
            "HTTP/1.1",
            if sp.alpn {
                "no ALPN offered: HTTP/1.1".into()
            } else {
                format!("{}: no ALPN (NPN only), so no HTTP/2 over TLS", sp.name)
            },
        ),
        Some("h2") if weak && strict && version == "TLSv1.2" => {
            let mut e = fail(
                "inadequate_security",
                format!(
                    "RFC 7540 9.2.2: h2 over TLS 1.2 with {}, on Appendix A; a strict client sends GOAWAY INADEQUATE_SECURITY",
                    cipher.as_deref().unwrap_or("?")
                ),
            );
            e.version = Some(version.into());
            e.cipher = cipher.clone();
            e
        }
        Some("h2") => done("HTTP/2", "ALPN selected h2 over an adequate suite".into()),
        Some(_) => done("HTTP/1.1", "ALPN selected http/1.1".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use h2lab_common::profiles::{client_profile, server_profile};

    fn edge(p: &str, cert: KeyType, c: &str, alpn: &[&str]) -> Expected {
        let alpn: Vec<String> = alpn.iter().map(|s| s.to_string()).collect();
        expect_tls(
            &Topology::DirectEdge,
            ServerTls::Openssl,
            server_profile(p).unwrap(),
            cert,
            client_profile(c).unwrap(),
            &alpn,
            true,
        )
    }

    #[test]
    fn reproduces_the_observed_windows_2012r2_rows() {
        let h2 = ["h2", "http/1.1"];
        let e = edge("windows-2012r2", KeyType::Rsa, "openssl-default", &h2);
        assert_eq!(e.edge, "inadequate_security");
        assert_eq!(e.cipher.as_deref(), Some("ECDHE-RSA-AES256-SHA384"));
        let e = edge("windows-2012r2", KeyType::Rsa, "browser", &h2);
        assert_eq!(e.cipher.as_deref(), Some("ECDHE-RSA-AES256-SHA"));
        assert_eq!(e.edge, "inadequate_security");
        let e = edge("windows-2012r2", KeyType::Rsa, "rustls-default", &h2);
        assert_eq!(e.edge, "alert:handshake_failure");
        let e = edge("windows-2012r2", KeyType::Ecdsa, "openssl-default", &h2);
        assert_eq!(e.cipher.as_deref(), Some("ECDHE-ECDSA-AES256-GCM-SHA384"));
        assert_eq!(e.edge, "HTTP/2");
        let e = edge("windows-2012r2", KeyType::Ecdsa, "rustls-default", &h2);
        assert_eq!(e.edge, "HTTP/2");
    }

    #[test]
    fn alpn_and_version_rules() {
        assert_eq!(
            edge(
                "openssl-1.0.1",
                KeyType::Rsa,
                "browser",
                &["h2", "http/1.1"]
            )
            .edge,
            "HTTP/1.1"
        );
        assert_eq!(
            edge("openssl-1.0.1", KeyType::Rsa, "browser", &["h2"]).edge,
            "alpn_ignored"
        );
        assert_eq!(
            edge("modern", KeyType::Rsa, "browser", &["foo"]).edge,
            "alert:no_application_protocol"
        );
        assert_eq!(
            edge("tls13-only", KeyType::Rsa, "legacy", &["h2"]).edge,
            "alert:protocol_version"
        );
        assert_eq!(
            edge("modern", KeyType::Rsa, "legacy", &["h2"]).edge,
            "alert:handshake_failure"
        );
        let e = edge("modern", KeyType::Ecdsa, "tls13-only", &[]);
        assert_eq!(
            (e.edge.as_str(), e.version.as_deref()),
            ("HTTP/1.1", Some("TLSv1.3"))
        );
    }
}
