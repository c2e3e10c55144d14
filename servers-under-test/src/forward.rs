//! Forwarding a request to an upstream over a pooled keep-alive connection: what the
//! reverse proxy and the out-of-process module both do. Drops hop-by-hop headers, adds
//! X-Forwarded-For/-Proto/-Host (and -Prefix), applies connect and response timeouts and
//! answers 502/504 with a body that says what failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::request_body::RequestBody;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;

use crate::upstream::{UpstreamError, UpstreamPool};

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
    /// Strip the path base (false: keep the whole path and send no X-Forwarded-Prefix, as
    /// the ASP.NET Core Module, whose app strips it itself).
    pub strip_path_base: bool,
    /// The name of this hop's `Server-Timing` entry (`proxy`, `host`).
    pub timing_name: &'static str,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            upstream_h2: false,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            path_base: None,
            strip_path_base: true,
            timing_name: "proxy",
        }
    }
}

/// A forwarding client (one per worker thread).
pub struct Forwarder {
    pool: Arc<UpstreamPool>,
    opts: ForwardOptions,
    /// The last upstream's authority, parsed once instead of per request.
    authority: std::sync::Mutex<Option<(SocketAddr, Authority)>>,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

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
    // Most messages carry none: one pass over the few names beats nine hashed removals.
    let present = headers
        .keys()
        .any(|k| HOP_BY_HOP.contains(k) || k.as_str() == "http2-settings");
    if !present {
        return;
    }
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
        let pool = UpstreamPool::new(opts.upstream_h2, opts.connect_timeout);
        Forwarder {
            pool,
            opts,
            authority: std::sync::Mutex::new(None),
        }
    }

    fn authority(&self, upstream: SocketAddr) -> Authority {
        let mut cached = self.authority.lock().expect("authority cache lock");
        match &*cached {
            Some((addr, a)) if *addr == upstream => a.clone(),
            _ => {
                let a = Authority::try_from(upstream.to_string())
                    .expect("a socket address is an authority");
                *cached = Some((upstream, a.clone()));
                a
            }
        }
    }

    /// The request target: HTTP/1.1 sends the origin form (`/path`); HTTP/2 needs scheme
    /// and authority, which is the client's host (the Host header is then left out: a
    /// Host that differs from :authority makes the request malformed, RFC 9113 8.3.1, and
    /// servers such as hypercorn refuse the connection), or the upstream's address.
    fn upstream_uri(
        &self,
        upstream: SocketAddr,
        host: Option<&HeaderValue>,
        path_and_query: PathAndQuery,
    ) -> Uri {
        let mut uri = http::uri::Parts::default();
        if self.opts.upstream_h2 {
            uri.scheme = Some(Scheme::HTTP);
            let client_host = host.and_then(|h| Authority::try_from(h.as_bytes()).ok());
            uri.authority = Some(client_host.unwrap_or_else(|| self.authority(upstream)));
        }
        uri.path_and_query = Some(path_and_query);
        Uri::from_parts(uri).expect("scheme, authority and path make a valid URI")
    }

    /// Forwards `req` (from `conn`) to `upstream`, adding `extra` headers; the answer
    /// carries this hop's `Server-Timing` entry after the upstream's.
    pub async fn forward(
        &self,
        req: Request<RequestBody>,
        conn: &ConnInfo,
        upstream: SocketAddr,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Response<Body> {
        let start = std::time::Instant::now();
        let mut resp = self.forward_untimed(req, conn, upstream, extra).await;
        crate::server_timing::append(resp.headers_mut(), self.opts.timing_name, start);
        resp
    }

    async fn forward_untimed(
        &self,
        req: Request<RequestBody>,
        conn: &ConnInfo,
        upstream: SocketAddr,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Response<Body> {
        let (mut parts, incoming) = req.into_parts();
        let path_and_query = match (&self.opts.path_base, parts.uri.path_and_query()) {
            (None, Some(pq)) => pq.clone(),
            (None, None) => PathAndQuery::from_static("/"),
            (Some(base), pq) => {
                let pq = pq.map(|p| p.as_str()).unwrap_or("/");
                let kept = if self.opts.strip_path_base {
                    strip_base(pq, base)
                } else {
                    strip_base(pq, base).map(|_| pq)
                };
                match kept.map(PathAndQuery::try_from) {
                    Some(Ok(rest)) => rest,
                    _ => {
                        return body::text(
                            StatusCode::NOT_FOUND,
                            format!("outside the path base {base}"),
                        )
                    }
                }
            }
        };
        // HTTP/2 carries the host in :authority, HTTP/1.1 in Host.
        let host = match parts.uri.authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => parts.headers.get(header::HOST).cloned(),
        };
        let headers = &mut parts.headers;
        strip_hop_by_hop(headers);
        if let Some(h) = host {
            headers.insert(header::HOST, h.clone());
            headers.insert(X_FORWARDED_HOST, h);
        }
        let xff = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", conn.remote.ip()))
                .expect("ip is a valid header"),
            None => conn.remote_ip_header(),
        };
        headers.insert(X_FORWARDED_FOR, xff);
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(conn.scheme()));
        if let Some(base) = self
            .opts
            .path_base
            .as_ref()
            .filter(|_| self.opts.strip_path_base)
        {
            if let Ok(v) = HeaderValue::from_str(base) {
                headers.insert(X_FORWARDED_PREFIX, v);
            }
        }
        for (k, v) in extra {
            headers.insert(k.clone(), v.clone());
        }
        let host = if self.opts.upstream_h2 {
            parts.headers.remove(header::HOST)
        } else {
            None
        };
        let uri = self.upstream_uri(upstream, host.as_ref(), path_and_query);
        let limit = conn.max_body as usize;
        let inline = self
            .pool
            .takes_inline(&parts.method, incoming.is_end_stream());
        let sent = async {
            if inline {
                self.pool
                    .send_inline(upstream, &parts.method, uri, &parts.headers)
                    .await
            } else {
                // Boxed: the hot path's future stays small.
                Box::pin(self.send_hyper(parts, incoming, limit, upstream, uri)).await
            }
        };
        match tokio::time::timeout(self.opts.response_timeout, sent).await {
            Err(_) => body::text(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "upstream {upstream} did not answer within {:?}",
                    self.opts.response_timeout
                ),
            ),
            Ok(Err(e)) => upstream_error(&e, limit),
            Ok(Ok(resp)) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body)
            }
        }
    }

    /// Sends through a hyper client connection: requests with a body (at most `limit`
    /// bytes of it) or with a method other than GET and HEAD.
    async fn send_hyper(
        &self,
        mut parts: http::request::Parts,
        incoming: RequestBody,
        limit: usize,
        upstream: SocketAddr,
        uri: Uri,
    ) -> Result<Response<Body>, UpstreamError> {
        parts.uri = uri;
        parts.version = if self.opts.upstream_h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let body = http_body_util::Limited::new(incoming, limit).boxed_unsync();
        self.pool
            .send(upstream, Request::from_parts(parts, body))
            .await
    }
}

fn upstream_error(e: &UpstreamError, limit: usize) -> Response<Body> {
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
    body::text(StatusCode::BAD_GATEWAY, format!("bad gateway: {e}"))
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
