//! HTTP/2 requests RFC 9113 calls malformed that the h2 crate lets through: a field value
//! with leading or trailing whitespace (section 8.2.1), a Host that names another entity
//! than `:authority` (8.3.1), CONNECT without `:authority` (8.5). The server answers them
//! with a stream error of type PROTOCOL_ERROR (8.1.1), as the RFC asks.

use http::{header, Method, Request};

/// Why a request is malformed, or None.
pub fn check<B>(req: &Request<B>) -> Option<&'static str> {
    let authority = req.uri().authority();
    if req.method() == Method::CONNECT && authority.is_none() {
        return Some("CONNECT without :authority (RFC 9113 section 8.5)");
    }
    for (name, value) in req.headers() {
        let v = value.as_bytes();
        let ws = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
        if ws(v.first()) || ws(v.last()) {
            return Some("a field value starts or ends with whitespace (RFC 9113 section 8.2.1)");
        }
        if name == header::HOST {
            if let Some(a) = authority {
                if !v.eq_ignore_ascii_case(a.as_str().as_bytes()) {
                    return Some("Host differs from :authority (RFC 9113 section 8.3.1)");
                }
            }
        }
    }
    None
}

/// The error that makes hyper reset the stream with PROTOCOL_ERROR: hyper looks for an
/// `h2::Error` in the service error's sources and resets with its reason.
pub fn stream_error() -> h2::Error {
    h2::Error::from(h2::Reason::PROTOCOL_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn malformed_requests_are_named_and_sound_ones_pass() {
        assert!(check(&req("GET", "https://a.test/", &[("host", "a.test")])).is_none());
        assert!(check(&req("GET", "https://a.test/", &[("host", "A.TEST")])).is_none());
        assert!(check(&req("GET", "/", &[("host", "b.test")])).is_none());
        assert!(check(&req("GET", "https://a.test/", &[("host", "b.test")]))
            .unwrap()
            .contains("8.3.1"));
        assert!(check(&req("GET", "/", &[("x", " a")]))
            .unwrap()
            .contains("8.2.1"));
        assert!(check(&req("GET", "/", &[("x", "a\t")]))
            .unwrap()
            .contains("8.2.1"));
        assert!(check(&req("GET", "/", &[("x", "a b")])).is_none());
        assert!(check(&req("CONNECT", "/", &[])).unwrap().contains("8.5"));
        assert!(check(&req("CONNECT", "a.test:443", &[])).is_none());
    }
}
