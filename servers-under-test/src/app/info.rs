//! `/info`: what the app itself saw of a request. It is how the lab sees which protocol
//! reached the app through each topology.

use std::collections::BTreeMap;

use http::{Request, Version};

use super::{HostingModel, RequestView, PAIRING_TOKEN_HEADER};
use crate::conn_info::{ConnInfo, TlsFacts};

/// The `/info` document.
#[derive(Debug, serde::Serialize)]
pub struct Info {
    /// Protocol of the request as it reached the app, e.g. `HTTP/1.1` or `HTTP/2`.
    pub http_version: &'static str,
    /// Scheme after the forwarded-headers middleware.
    pub scheme: String,
    /// Client address after the middleware.
    pub remote_addr: String,
    /// Address of the direct peer (a proxy, when there is one).
    pub peer_addr: String,
    /// Host after the middleware.
    pub host: String,
    /// Path base after the middleware.
    pub path_base: String,
    /// Request path.
    pub path: String,
    /// Request method.
    pub method: String,
    /// Request headers (repeated headers joined with `, `), pairing token left out.
    pub headers: BTreeMap<String, String>,
    /// Process id of the process that ran the handler.
    pub pid: u32,
    /// Hosting model of this app instance.
    pub hosting_model: HostingModel,
    /// Whether forwarded headers were applied.
    pub forwarded_applied: bool,
    /// TLS facts when TLS ended in this process.
    pub tls: Option<TlsFacts>,
    /// The process's `H2LAB_*` environment variables (pairing token left out): shows what
    /// a module passed to the app.
    pub environment: BTreeMap<String, String>,
}

/// Name of an HTTP version as `/info` reports it.
pub fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "unknown",
    }
}

impl Info {
    /// Collects the document for `req`.
    pub fn collect<B>(
        req: &Request<B>,
        conn: &ConnInfo,
        view: &RequestView,
        hosting: HostingModel,
    ) -> Info {
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in req.headers() {
            if name.as_str() == PAIRING_TOKEN_HEADER {
                continue;
            }
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            headers
                .entry(name.as_str().to_string())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        Info {
            http_version: version_name(req.version()),
            scheme: view.scheme.clone(),
            remote_addr: view.remote_addr.clone(),
            peer_addr: conn.remote.to_string(),
            host: view.host.clone(),
            path_base: view.path_base.clone(),
            path: req.uri().path().to_string(),
            method: req.method().to_string(),
            headers,
            pid: std::process::id(),
            hosting_model: hosting,
            forwarded_applied: view.forwarded_applied,
            tls: conn.tls.clone(),
            environment: std::env::vars()
                .filter(|(k, _)| k.starts_with("H2LAB_") && k != "H2LAB_PAIRING_TOKEN")
                .collect(),
        }
    }
}
