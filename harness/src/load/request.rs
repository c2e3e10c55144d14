//! Requests encoded once and reused for every send: the HTTP/1.1 bytes and the HTTP/2
//! header block.

use bytes::Bytes;
use std::borrow::Cow;

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
    /// Where the blank line ending the HTTP/1.1 head starts in `h1`.
    h1_head_end: usize,
}

impl Prepared {
    /// The HTTP/1.1 request, with `header: seq` at the end of its head when a sequence
    /// header is asked for.
    pub fn h1_numbered(&self, header: Option<&str>, seq: u64) -> Cow<'_, [u8]> {
        let Some(name) = header else {
            return Cow::Borrowed(&self.h1);
        };
        let mut out = Vec::with_capacity(self.h1.len() + name.len() + 24);
        out.extend_from_slice(&self.h1[..self.h1_head_end]);
        out.extend_from_slice(format!("{name}: {seq}\r\n").as_bytes());
        out.extend_from_slice(&self.h1[self.h1_head_end..]);
        Cow::Owned(out)
    }

    /// The HTTP/2 header block, with the field `header: seq` at its end when a sequence
    /// header is asked for.
    pub fn h2_numbered(&self, header: Option<&str>, seq: u64) -> Cow<'_, [u8]> {
        let Some(name) = header else {
            return Cow::Borrowed(&self.h2_block);
        };
        let mut out = self.h2_block.to_vec();
        crate::h2wire::hpack::put_literal(&mut out, name, &seq.to_string());
        Cow::Owned(out)
    }
}

/// Headers of one request: h2lab's User-Agent unless a header replaces it, then the
/// configuration's and the target's, those with an empty value left out.
fn request_headers(
    common: &[(String, String)],
    own: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    let all = || common.iter().chain(own);
    if !all().any(|(k, _)| k.eq_ignore_ascii_case("user-agent")) {
        let user_agent = format!("h2lab/{}", env!("CARGO_PKG_VERSION"));
        headers.push(("user-agent".to_string(), user_agent));
    }
    for (k, v) in all() {
        http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("-H `{k}`: bad header name"))?;
        http::HeaderValue::from_str(v).map_err(|_| format!("-H `{k}: {v}`: bad header value"))?;
        if !v.is_empty() {
            headers.push((k.clone(), v.clone()));
        }
    }
    Ok(headers)
}

/// The order in which a weighted round-robin sends targets of these weights: smooth (as
/// nginx balances upstreams), so weights 3 and 1 go `A A B A`, never `A A A B` bursts
/// against a shorter cycle, and every request keeps its share on any stretch of the run.
pub fn weighted_order(weights: &[u32]) -> Vec<usize> {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let weights: Vec<i64> = weights.iter().map(|w| i64::from(*w / g)).collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&weights) {
            *c += w;
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .expect("at least one target");
        current[best] -= total;
        order.push(best);
    }
    order
}

/// Encodes every target of `cfg`, repeated and ordered as its weights say: the engines
/// send the returned list round-robin.
pub fn prepare(cfg: &LoadConfig) -> Result<Vec<Prepared>, String> {
    let one: Vec<Prepared> = cfg
        .targets
        .iter()
        .map(|t| prepare_one(cfg, t))
        .collect::<Result<_, _>>()?;
    if one.len() == 1 {
        return Ok(one);
    }
    let weights: Vec<u32> = cfg.targets.iter().map(|t| t.weight.max(1)).collect();
    Ok(weighted_order(&weights)
        .into_iter()
        .map(|i| one[i].clone())
        .collect())
}

fn prepare_one(cfg: &LoadConfig, t: &crate::model::Target) -> Result<Prepared, String> {
    let method_name = t.method.as_deref().unwrap_or(&cfg.method);
    let method = http::Method::from_bytes(method_name.as_bytes())
        .map_err(|_| format!("-X `{method_name}` is not a method"))?;
    let headers = request_headers(&cfg.headers, &t.headers)?;
    let body = Bytes::from(t.body.clone().unwrap_or_else(|| cfg.body.clone()));
    let mut h1 = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\n",
        method_name, t.path, cfg.authority
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
    let h1_head_end = h1.len();
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
        body,
        head: method == http::Method::HEAD,
        h1_head_end,
    })
}

#[cfg(test)]
mod tests {
    use super::weighted_order;

    #[test]
    fn a_sequence_header_joins_the_head_and_the_block() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "h2lab",
            "load",
            "http://127.0.0.1:1/p",
            "--body",
            "xy",
        ])
        .unwrap();
        let crate::cli::Command::Load(args) = cli.command else {
            unreachable!()
        };
        let r = &super::prepare(&args.to_config().unwrap()).unwrap()[0];
        let h1 = String::from_utf8(r.h1_numbered(Some("x-seq"), 42).into_owned()).unwrap();
        assert!(
            h1.ends_with("content-length: 2\r\nx-seq: 42\r\n\r\nxy"),
            "{h1}"
        );
        let block = r.h2_numbered(Some("x-seq"), 42);
        assert!(block.starts_with(&r.h2_block));
        assert_eq!(block[r.h2_block.len()..], *b"\x00\x05x-seq\x0242");
    }

    #[test]
    fn weighted_order_is_smooth_and_keeps_each_share() {
        assert_eq!(weighted_order(&[3, 1]), [0, 0, 1, 0]);
        assert_eq!(weighted_order(&[6, 2]), [0, 0, 1, 0], "reduced by the gcd");
        assert_eq!(weighted_order(&[1, 1, 1]), [0, 1, 2]);
        let order = weighted_order(&[5, 3, 2]);
        assert_eq!(order.len(), 10);
        for (i, w) in [5, 3, 2].iter().enumerate() {
            assert_eq!(order.iter().filter(|&&o| o == i).count(), *w);
        }
        assert!(
            order.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
            "{order:?}"
        );
    }
}
