//! Forwarding a request to an upstream over a pooled keep-alive connection: what the
//! reverse proxy and the out-of-process module both do. Drops hop-by-hop headers, adds
//! X-Forwarded-For/-Proto/-Host (and -Prefix), applies connect and response timeouts and
//! answers 502/504 with a body that says what failed.

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::app::forwarded::request_host;
use crate::body::{self, Body};
use crate::conn_info::ConnInfo;

/// How to reach the upstream.
#[derive(Debug, Clone)]
pub struct ForwardOptions {
    /// Speak HTTP/2 (prior knowledge, cleartext) to the upstream instead of HTTP/1.1.
    pub upstream_h2: bool,
    /// Time allowed to connect to the upstream (502 when exceeded).
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response head (504 when exceeded).
    pub response_timeout: Duration,
    /// Path prefix this front serves the app under: stripped before forwarding and sent
    /// as X-Forwarded-Prefix; requests outside it get 404.
    pub path_base: Option<String>,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            upstream_h2: false,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            path_base: None,
        }
    }
}

/// A forwarding client (one per worker thread).
pub struct Forwarder {
    client: Client<HttpConnector, Body>,
    opts: ForwardOptions,
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) and their common non-standard kin.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those the Connection header lists.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(listed.iter()) {
        headers.remove(name);
    }
    headers.remove("http2-settings");
}

/// Strips `base` from `path`; `None` when `path` is outside it.
fn strip_base<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(base)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') || rest.starts_with('?') {
        Some(rest)
    } else {
        None
    }
}

impl Forwarder {
    /// A forwarder with its own connection pool.
    pub fn new(opts: ForwardOptions) -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(opts.connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(4096)
            .http2_only(opts.upstream_h2)
            .build(connector);
        Forwarder { client, opts }
    }

    /// Forwards `req` (from `conn`) to `upstream`, adding `extra` headers.
    pub async fn forward(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
        upstream: SocketAddr,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Response<Body> {
        let (mut parts, incoming) = req.into_parts();
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let pq = match &self.opts.path_base {
            Some(base) => match strip_base(pq, base) {
                Some(rest) => rest,
                None => {
                    return body::text(
                        StatusCode::NOT_FOUND,
                        format!("outside the path base {base}"),
                    )
                }
            },
            None => pq,
        };
        let uri: Uri = match format!("http://{upstream}{pq}").parse() {
            Ok(u) => u,
            Err(e) => {
                return body::text(StatusCode::BAD_REQUEST, format!("bad request target: {e}"))
            }
        };
        let host = request_host(&Request::from_parts(parts.clone(), ()));
        let headers = &mut parts.headers;
        strip_hop_by_hop(headers);
        if let Ok(h) = HeaderValue::from_str(&host) {
            headers.insert(header::HOST, h.clone());
            headers.insert("x-forwarded-host", h);
        }
        let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {}", conn.remote.ip()),
            None => conn.remote.ip().to_string(),
        };
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_str(&xff).expect("ip is a valid header"),
        );
        headers.insert("x-forwarded-proto", HeaderValue::from_static(conn.scheme()));
        if let Some(base) = &self.opts.path_base {
            if let Ok(v) = HeaderValue::from_str(base) {
                headers.insert("x-forwarded-prefix", v);
            }
        }
        for (k, v) in extra {
            headers.insert(k.clone(), v.clone());
        }
        parts.uri = uri;
        parts.version = if self.opts.upstream_h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let limit = conn.max_body as usize;
        let body = http_body_util::Limited::new(incoming, limit).boxed_unsync();
        let upstream_req = Request::from_parts(parts, body);

        let result = tokio::time::timeout(
            self.opts.response_timeout,
            self.client.request(upstream_req),
        )
        .await;
        match result {
            Err(_) => body::text(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "upstream {upstream} did not answer within {:?}",
                    self.opts.response_timeout
                ),
            ),
            Ok(Err(e)) => upstream_error(&e, upstream, limit),
            Ok(Ok(resp)) => {
                let (mut parts, incoming) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, incoming.map_err(Into::into).boxed_unsync())
            }
        }
    }
}

fn upstream_error(
    e: &hyper_util::client::legacy::Error,
    upstream: SocketAddr,
    limit: usize,
) -> Response<Body> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return body::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over the limit of {limit} bytes"),
            );
        }
        source = err.source();
    }
    let what = if e.is_connect() {
        "cannot connect to"
    } else {
        "error from"
    };
    let detail = std::error::Error::source(e)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    body::text(
        StatusCode::BAD_GATEWAY,
        format!("bad gateway: {what} upstream {upstream}{detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
    }

    #[test]
    fn path_base_is_stripped_only_on_a_segment_boundary() {
        assert_eq!(strip_base("/app/info", "/app"), Some("/info"));
        assert_eq!(strip_base("/app", "/app"), Some("/"));
        assert_eq!(strip_base("/app?x=1", "/app"), Some("?x=1"));
        assert_eq!(strip_base("/apple", "/app"), None);
        assert_eq!(strip_base("/other", "/app"), None);
    }
}
