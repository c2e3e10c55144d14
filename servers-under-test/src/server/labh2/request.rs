//! A request's header block as the lab engine gathers it, field by field, and the checks
//! RFC 9113 §8 makes of it: pseudo-headers first and once each, no connection-specific
//! field, `te` only `trailers`, lowercase names, values without NUL/CR/LF or surrounding
//! whitespace (§8.2), the pseudo-headers a method needs (§8.3), Host agreeing with
//! `:authority` (§8.3.1), CONNECT's form (§8.5), a consistent content-length (§8.1.1).
//! A malformed request is a stream error of type PROTOCOL_ERROR.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Uri, Version};

use super::hpack::{Field, Name, Next};

/// How far over the header list limit a block may decode before the connection is
/// closed instead (the h2 crate's bound: an HPACK bomb ends the connection).
pub const WAY_TOO_LARGE: usize = 4;
/// Most fields a head may carry (a `HeaderMap` holds no more); beyond, it is too large.
const MAX_FIELDS: usize = 24_576;

/// The pseudo-headers and fields of one header block.
#[derive(Debug, Default)]
pub struct Head {
    /// `:method`.
    pub method: Option<Bytes>,
    /// `:scheme`.
    pub scheme: Option<Bytes>,
    /// `:authority`.
    pub authority: Option<Bytes>,
    /// `:path`.
    pub path: Option<Bytes>,
    /// `:protocol` (extended CONNECT, which this server does not offer).
    pub protocol: bool,
    /// Regular fields, in order.
    pub fields: Vec<(HeaderName, Bytes)>,
    /// The Host field, if any.
    host: Option<Bytes>,
    /// The declared content-length, if any.
    pub content_length: Option<u64>,
    /// Decoded size so far (RFC 9113 §6.5.2).
    pub size: usize,
    /// Why the block is malformed, if it is.
    pub malformed: Option<&'static str>,
    /// The decoded list is over the limit: answered 431, not served.
    pub oversize: bool,
    /// The decoded list is over [`WAY_TOO_LARGE`] times the limit: the connection ends.
    pub way_too_large: bool,
    regular_seen: bool,
}

impl Head {
    /// Empties the head for reuse, keeping the fields' allocation.
    pub fn clear(&mut self) {
        let mut fields = std::mem::take(&mut self.fields);
        fields.clear();
        *self = Head {
            fields,
            ..Head::default()
        };
    }

    /// Takes one decoded field of a request head (`trailers`: of a trailer block) whose
    /// list may hold `limit` bytes.
    pub fn add(&mut self, f: &Field, limit: usize, trailers: bool) -> Next {
        self.size += f.size;
        if self.size > limit.saturating_mul(WAY_TOO_LARGE) {
            self.way_too_large = true;
            return Next::Stop;
        }
        if self.size > limit {
            self.oversize = true;
        }
        let mut bad = |why| {
            self.malformed.get_or_insert(why);
        };
        if !f.value_ok {
            bad("a field value holds NUL, CR, LF or another control byte (RFC 9113 section 8.2.1)");
        } else if f.padded && matches!(f.name, Name::Field(_)) {
            bad("a field value starts or ends with whitespace (RFC 9113 section 8.2.1)");
        }
        let pseudo = match &f.name {
            Name::Method => &mut self.method,
            Name::Scheme => &mut self.scheme,
            Name::Authority => &mut self.authority,
            Name::Path => &mut self.path,
            Name::Protocol => {
                self.protocol = true;
                return Next::Go;
            }
            Name::BadPseudo => {
                bad("an unknown or response pseudo-header (RFC 9113 section 8.3)");
                return Next::Go;
            }
            Name::ConnectionSpecific => {
                bad("a connection-specific field (RFC 9113 section 8.2.2)");
                return Next::Go;
            }
            Name::Invalid => {
                bad("a field name with uppercase or forbidden characters (RFC 9113 section 8.2.1)");
                return Next::Go;
            }
            Name::Field(name) => {
                self.regular_seen = true;
                self.field(name, &f.value);
                return Next::Go;
            }
        };
        if trailers {
            self.malformed
                .get_or_insert("a pseudo-header in trailers (RFC 9113 section 8.1)");
        } else if self.regular_seen {
            self.malformed
                .get_or_insert("a pseudo-header after a regular field (RFC 9113 section 8.3)");
        } else if pseudo.is_some() {
            self.malformed
                .get_or_insert("a pseudo-header given twice (RFC 9113 section 8.3)");
        } else if !self.oversize {
            *pseudo = Some(f.value.clone());
        }
        Next::Go
    }

    fn field(&mut self, name: &HeaderName, value: &Bytes) {
        if *name == header::TE && &value[..] != b"trailers" {
            self.malformed
                .get_or_insert("te other than trailers (RFC 9113 section 8.2.2)");
        } else if *name == header::CONTENT_LENGTH {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok());
            match (n, self.content_length) {
                (None, _) => {
                    self.malformed
                        .get_or_insert("content-length is not a number (RFC 9113 section 8.1.1)");
                }
                (Some(n), Some(m)) if n != m => {
                    self.malformed.get_or_insert(
                        "content-length given twice with different values (RFC 9110 section 8.6)",
                    );
                }
                (n, _) => self.content_length = n,
            }
        } else if *name == header::HOST {
            if self.host.is_some() {
                self.malformed
                    .get_or_insert("Host given more than once (RFC 9110 section 7.2)");
            }
            self.host = Some(value.clone());
        }
        if self.fields.len() >= MAX_FIELDS {
            self.oversize = true;
        }
        if !self.oversize {
            self.fields.push((name.clone(), value.clone()));
        }
    }

    /// Checks the complete head of a request (not trailers); `Err` names why it is
    /// malformed.
    pub fn check(&self) -> Result<(), &'static str> {
        if let Some(why) = self.malformed {
            return Err(why);
        }
        let Some(method) = &self.method else {
            return Err("no :method (RFC 9113 section 8.3.1)");
        };
        if self.protocol {
            return Err(":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 section 4)");
        }
        if &method[..] == b"CONNECT" {
            if self.authority.is_none() {
                return Err("CONNECT without :authority (RFC 9113 section 8.5)");
            }
            if self.scheme.is_some() || self.path.is_some() {
                return Err("CONNECT with :scheme or :path (RFC 9113 section 8.5)");
            }
            return Ok(());
        }
        if self.scheme.is_none() {
            return Err("no :scheme (RFC 9113 section 8.3.1)");
        }
        match self.path.as_deref() {
            None | Some([]) => return Err("no :path, or an empty one (RFC 9113 section 8.3.1)"),
            Some(p) if p[0] != b'/' && !(p == b"*" && &method[..] == b"OPTIONS") => {
                return Err(":path neither absolute nor * for OPTIONS (RFC 9113 section 8.3.1)")
            }
            _ => {}
        }
        if let (Some(host), Some(authority)) = (&self.host, &self.authority) {
            if !host.eq_ignore_ascii_case(authority) {
                return Err("Host differs from :authority (RFC 9113 section 8.3.1)");
            }
        }
        Ok(())
    }

    /// Whether the method is HEAD (its response has no content).
    pub fn is_head(&self) -> bool {
        self.method.as_deref() == Some(b"HEAD")
    }

    /// The request for a handler, or why its method or target cannot be represented
    /// (also a stream error). Call after [`Head::check`].
    pub fn take_request<B>(&mut self, body: B) -> Result<Request<B>, &'static str> {
        let method = Method::from_bytes(self.method.as_deref().unwrap_or_default())
            .map_err(|_| "an invalid :method")?;
        let mut parts = http::uri::Parts::default();
        if let Some(a) = self.authority.take() {
            parts.authority =
                Some(Authority::from_maybe_shared(a).map_err(|_| "an invalid :authority")?);
            // As the h2 crate: a URI has a scheme only beside an authority.
            if let Some(s) = &self.scheme {
                parts.scheme = Some(Scheme::try_from(&s[..]).map_err(|_| "an invalid :scheme")?);
            }
        }
        if let Some(p) = self.path.take() {
            parts.path_and_query =
                Some(PathAndQuery::from_maybe_shared(p).map_err(|_| "an invalid :path")?);
        }
        let uri = Uri::from_parts(parts).map_err(|_| "an invalid request target")?;
        let mut headers = HeaderMap::with_capacity(self.fields.len());
        for (name, value) in self.fields.drain(..) {
            let value =
                HeaderValue::from_maybe_shared(value).map_err(|_| "an invalid field value")?;
            headers.append(name, value);
        }
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_2;
        *req.headers_mut() = headers;
        Ok(req)
    }

    /// The fields of a trailer block, as a map.
    pub fn take_trailers(&mut self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.fields.len());
        for (name, value) in self.fields.drain(..) {
            if let Ok(v) = HeaderValue::from_maybe_shared(value) {
                map.append(name, v);
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(fields: &[(&str, &str)]) -> Head {
        let mut h = Head::default();
        for (n, v) in fields {
            let f = Field::new(n.as_bytes(), Bytes::copy_from_slice(v.as_bytes()));
            assert_eq!(h.add(&f, 16_384, false), Next::Go);
        }
        h
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "a.test"),
        (":path", "/x?y"),
    ];

    fn with(extra: &[(&str, &str)]) -> Head {
        let mut all = GET.to_vec();
        all.extend_from_slice(extra);
        head(&all)
    }

    #[test]
    fn a_sound_request_becomes_an_http_request() {
        let mut h = with(&[("host", "A.TEST"), ("te", "trailers"), ("x", "a b")]);
        assert_eq!(h.check(), Ok(()));
        let req = h.take_request(()).unwrap();
        assert_eq!(req.uri(), "https://a.test/x?y");
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.headers()["x"], "a b");
        let mut h = head(&[(":method", "GET"), (":scheme", "http"), (":path", "/")]);
        assert_eq!(h.check(), Ok(()));
        assert_eq!(h.take_request(()).unwrap().uri(), "/");
        let h = head(&[(":method", "CONNECT"), (":authority", "a.test:443")]);
        assert_eq!(h.check(), Ok(()));
        let h = head(&[(":method", "OPTIONS"), (":scheme", "http"), (":path", "*")]);
        assert_eq!(h.check(), Ok(()));
    }

    #[test]
    fn each_malformation_names_its_section() {
        let cases: Vec<(Head, &str)> = vec![
            (with(&[("connection", "close")]), "8.2.2"),
            (with(&[("te", "gzip")]), "8.2.2"),
            (with(&[("X", "1")]), "8.2.1"),
            (with(&[("x", " 1")]), "8.2.1"),
            (with(&[("x", "1\0")]), "8.2.1"),
            (with(&[(":status", "200")]), "8.3"),
            (with(&[("x", "1"), (":path", "/")]), "8.3"),
            (with(&[(":method", "GET")]), "8.3"),
            (with(&[("host", "b.test")]), "8.3.1"),
            (with(&[("host", "b.test"), ("host", "a.test")]), "7.2"),
            (with(&[("content-length", "x")]), "8.1.1"),
            (
                with(&[("content-length", "1"), ("content-length", "2")]),
                "8.6",
            ),
            (head(&[(":method", "GET"), (":scheme", "http")]), "8.3.1"),
            (head(&[(":method", "GET"), (":path", "/")]), "8.3.1"),
            (
                head(&[(":method", "GET"), (":scheme", "http"), (":path", "")]),
                "8.3.1",
            ),
            (
                head(&[(":method", "GET"), (":scheme", "http"), (":path", "x")]),
                "8.3.1",
            ),
            (head(&[(":method", "CONNECT")]), "8.5"),
            (
                head(&[
                    (":method", "CONNECT"),
                    (":authority", "a:1"),
                    (":path", "/"),
                ]),
                "8.5",
            ),
            (head(&[(":scheme", "http"), (":path", "/")]), "8.3.1"),
        ];
        for (h, section) in cases {
            let why = h.check().expect_err(section);
            assert!(why.contains(section), "{why} is not {section}");
        }
    }

    #[test]
    fn the_list_size_is_counted_to_431_then_to_the_end_of_the_connection() {
        let mut h = Head::default();
        let big = Field::new(b"x", Bytes::from(vec![b'a'; 1000]));
        for _ in 0..4 {
            assert_eq!(h.add(&big, 2000, false), Next::Go);
        }
        assert!(h.oversize && !h.way_too_large);
        assert_eq!(h.fields.len(), 1, "fields over the limit are not kept");
        for _ in 0..4 {
            h.add(&big, 2000, false);
        }
        assert!(h.way_too_large);
    }

    #[test]
    fn trailers_hold_no_pseudo_headers() {
        let mut h = Head::default();
        let f = Field::new(b":path", Bytes::from_static(b"/"));
        h.add(&f, 1000, true);
        assert!(h.malformed.unwrap().contains("trailers"));
        let mut h = Head::default();
        h.add(&Field::new(b"x-sum", Bytes::from_static(b"1")), 1000, true);
        assert_eq!(h.take_trailers()["x-sum"], "1");
    }
}
