//! Requests encoded once and reused for every send: the HTTP/1.1 bytes and the HTTP/2
//! header block.

use bytes::Bytes;

use crate::model::LoadConfig;

/// One prepared request.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The whole HTTP/1.1 request (head and body).
    pub h1: Bytes,
    /// The HTTP/2 header block (HPACK, nothing indexed: valid on every connection).
    pub h2_block: Bytes,
    /// Path and query, for the HTTP/1.1 request of an h2c upgrade.
    pub path: String,
    /// Body.
    pub body: Bytes,
    /// Whether the response to this request has no body (HEAD).
    pub head: bool,
}

/// Encodes every target of `cfg` (round-robin order).
pub fn prepare(cfg: &LoadConfig) -> Result<Vec<Prepared>, String> {
    let method = http::Method::from_bytes(cfg.method.as_bytes())
        .map_err(|_| format!("-X `{}` is not a method", cfg.method))?;
    let mut headers = Vec::new();
    if !cfg
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        let user_agent = format!("h2lab/{}", env!("CARGO_PKG_VERSION"));
        headers.push(("user-agent".to_string(), user_agent));
    }
    for (k, v) in &cfg.headers {
        http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("-H `{k}`: bad header name"))?;
        http::HeaderValue::from_str(v).map_err(|_| format!("-H `{k}: {v}`: bad header value"))?;
        if !v.is_empty() {
            headers.push((k.clone(), v.clone()));
        }
    }
    let body = Bytes::from(cfg.body.clone());
    cfg.targets
        .iter()
        .map(|t| {
            let mut h1 = format!(
                "{} {} HTTP/1.1\r\nhost: {}\r\n",
                cfg.method, t.path, cfg.authority
            );
            let mut has_len = false;
            for (k, v) in &headers {
                has_len |= k.eq_ignore_ascii_case("content-length");
                h1.push_str(&format!("{k}: {v}\r\n"));
            }
            let mut h2_headers = headers.clone();
            if !body.is_empty() && !has_len {
                h1.push_str(&format!("content-length: {}\r\n", body.len()));
                h2_headers.push(("content-length".into(), body.len().to_string()));
            }
            h1.push_str("\r\n");
            let mut bytes = h1.into_bytes();
            bytes.extend_from_slice(&body);
            let uri = format!("{}://{}{}", cfg.scheme, cfg.authority, t.path)
                .parse::<http::Uri>()
                .map_err(|e| format!("URL path `{}`: {e}", t.path))?;
            let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
            let h2_block = crate::h2wire::hpack::request_block(
                method.as_str(),
                &cfg.scheme,
                &cfg.authority,
                &path,
                &h2_headers,
            );
            Ok(Prepared {
                h1: Bytes::from(bytes),
                h2_block: Bytes::from(h2_block),
                path,
                body: body.clone(),
                head: method == http::Method::HEAD,
            })
        })
        .collect()
}
