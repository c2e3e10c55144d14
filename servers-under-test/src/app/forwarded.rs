//! Forwarded-headers middleware: when the peer is a trusted proxy, restore the client's
//! address, scheme, host and path base from X-Forwarded-For / -Proto / -Host / -Prefix,
//! as ASP.NET Core's ForwardedHeadersMiddleware does (rightmost value, one hop).

use std::net::{IpAddr, SocketAddr};

use http::Request;

use crate::conn_info::ConnInfo;

/// Settings of the middleware.
#[derive(Debug, Clone, Default)]
pub struct ForwardedHeaders {
    /// Apply the headers at all.
    pub enabled: bool,
    /// Peers trusted besides loopback addresses.
    pub trusted: Vec<IpAddr>,
}

/// The request as the app sees it after the middleware.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestView {
    /// Client address (restored from X-Forwarded-For when applied).
    pub remote_addr: String,
    /// `http` or `https` (restored from X-Forwarded-Proto when applied).
    pub scheme: String,
    /// Host (restored from X-Forwarded-Host when applied).
    pub host: String,
    /// Path base (from X-Forwarded-Prefix when applied), empty when none.
    pub path_base: String,
    /// Whether any forwarded header was applied.
    pub forwarded_applied: bool,
}

fn last_value<B>(req: &Request<B>, name: &str) -> Option<String> {
    let joined = req
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    joined
        .rsplit(',')
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_string)
}

/// Host as the client sent it: the URI authority (HTTP/2) or the Host header (HTTP/1.1).
pub fn request_host<B>(req: &Request<B>) -> String {
    req.uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

impl ForwardedHeaders {
    fn trusts(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
            v4 => v4,
        };
        peer.is_loopback() || self.trusted.contains(&peer)
    }

    /// What the app sees for `req` on `conn`.
    pub fn apply<B>(&self, req: &Request<B>, conn: &ConnInfo) -> RequestView {
        let mut view = RequestView {
            remote_addr: conn.remote.to_string(),
            scheme: conn.scheme().to_string(),
            host: request_host(req),
            path_base: String::new(),
            forwarded_applied: false,
        };
        if !self.enabled || !self.trusts(conn.remote.ip()) {
            return view;
        }
        if let Some(ip) = last_value(req, "x-forwarded-for") {
            let restored = ip
                .parse::<SocketAddr>()
                .map(|a| a.to_string())
                .or_else(|_| {
                    ip.parse::<IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 0).to_string())
                });
            if let Ok(addr) = restored {
                view.remote_addr = addr;
                view.forwarded_applied = true;
            }
        }
        if let Some(proto) = last_value(req, "x-forwarded-proto") {
            view.scheme = proto.to_ascii_lowercase();
            view.forwarded_applied = true;
        }
        if let Some(host) = last_value(req, "x-forwarded-host") {
            view.host = host;
            view.forwarded_applied = true;
        }
        if let Some(prefix) = last_value(req, "x-forwarded-prefix") {
            view.path_base = prefix;
            view.forwarded_applied = true;
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(remote: &str) -> ConnInfo {
        ConnInfo {
            remote: remote.parse().unwrap(),
            local: "127.0.0.1:80".parse().unwrap(),
            tls: None,
            max_body: 0,
            remote_ip: Default::default(),
        }
    }

    fn req() -> Request<()> {
        Request::builder()
            .uri("/info")
            .header("host", "backend:8080")
            .header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "example.test")
            .header("x-forwarded-prefix", "/app")
            .body(())
            .unwrap()
    }

    #[test]
    fn trusted_loopback_peer_restores_rightmost_values() {
        let mw = ForwardedHeaders {
            enabled: true,
            trusted: vec![],
        };
        let v = mw.apply(&req(), &conn("127.0.0.1:5000"));
        assert_eq!(v.remote_addr, "198.51.100.7:0");
        assert_eq!(v.scheme, "https");
        assert_eq!(v.host, "example.test");
        assert_eq!(v.path_base, "/app");
        assert!(v.forwarded_applied);
    }

    #[test]
    fn untrusted_peer_or_disabled_middleware_changes_nothing() {
        let on = ForwardedHeaders {
            enabled: true,
            trusted: vec![],
        };
        let v = on.apply(&req(), &conn("192.0.2.1:5000"));
        assert_eq!((v.scheme.as_str(), v.forwarded_applied), ("http", false));
        let off = ForwardedHeaders::default();
        let v = off.apply(&req(), &conn("127.0.0.1:5000"));
        assert_eq!(
            (v.host.as_str(), v.forwarded_applied),
            ("backend:8080", false)
        );
    }
}
