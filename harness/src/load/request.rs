//! Requests encoded once and reused for every send: the HTTP/1.1 bytes, and the parts
//! an HTTP/2 request is built from.

use bytes::Bytes;

use crate::model::LoadConfig;

/// One prepared request.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The whole HTTP/1.1 request (head and body).
    pub h1: Bytes,
    /// Method.
    pub method: http::Method,
    /// URI for HTTP/2 (scheme, authority, path).
    pub uri: http::Uri,
    /// Extra headers for HTTP/2.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Whether the response to this request has no body (HEAD).
    pub head: bool,
}

/// Encodes every target of `cfg` (round-robin order).
pub fn prepare(cfg: &LoadConfig) -> Result<Vec<Prepared>, String> {
    let method = http::Method::from_bytes(cfg.method.as_bytes())
        .map_err(|_| format!("-X `{}` is not a method", cfg.method))?;
    let mut headers = http::HeaderMap::new();
    for (k, v) in &cfg.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("-H `{k}`: bad header name"))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| format!("-H `{k}: {v}`: bad header value"))?;
        headers.append(name, value);
    }
    let body = Bytes::from(cfg.body.clone());
    cfg.targets
        .iter()
        .map(|t| {
            let mut h1 = format!(
                "{} {} HTTP/1.1\r\nhost: {}\r\nuser-agent: h2lab/{}\r\n",
                cfg.method,
                t.path,
                cfg.authority,
                env!("CARGO_PKG_VERSION")
            );
            let mut has_len = false;
            for (k, v) in &cfg.headers {
                has_len |= k.eq_ignore_ascii_case("content-length");
                h1.push_str(&format!("{k}: {v}\r\n"));
            }
            if !body.is_empty() && !has_len {
                h1.push_str(&format!("content-length: {}\r\n", body.len()));
            }
            h1.push_str("\r\n");
            let mut bytes = h1.into_bytes();
            bytes.extend_from_slice(&body);
            let uri = format!("{}://{}{}", cfg.scheme, cfg.authority, t.path)
                .parse::<http::Uri>()
                .map_err(|e| format!("URL path `{}`: {e}", t.path))?;
            Ok(Prepared {
                h1: Bytes::from(bytes),
                method: method.clone(),
                uri,
                headers: headers.clone(),
                body: body.clone(),
                head: method == http::Method::HEAD,
            })
        })
        .collect()
}
