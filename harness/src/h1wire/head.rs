//! Response heads: parsed in place with httparse, and recognised without parsing when a
//! server repeats its last head byte for byte.

use crate::server_timing::ServerTiming;

/// A response the client cannot read; the text is the error class suffix
/// (`protocol:<text>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

#[derive(Debug, Clone, Copy)]
pub(super) struct Head {
    pub status: u16,
    pub body: BodyLen,
    pub close: bool,
    /// Where the value of the head's one `Server-Timing` field lies (start, end), when it
    /// has exactly one: the part that changes from response to response.
    pub timing_value: Option<(usize, usize)>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum BodyLen {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Parses a head at the start of `buf`: `None` while it is incomplete. Its
/// `Server-Timing` entries go to `timing` (emptied first).
pub(super) fn parse_head(
    buf: &[u8],
    head_request: bool,
    timing: &mut ServerTiming,
) -> Result<Option<(usize, Head)>, ParseError> {
    // Uninitialised: zeroing 64 headers (2 KiB) per response costs more than parsing.
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; 64];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    );
    let n = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ParseError(e.to_string().replace(' ', "_"))),
    };
    let status = resp.code.unwrap_or(0);
    let mut len = None;
    let mut chunked = false;
    let mut close = resp.version == Some(0);
    timing.clear();
    let mut timing_value = None;
    let mut timing_fields = 0;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            if len.is_none() {
                return Err(ParseError("bad_content_length".into()));
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("server-timing") {
            timing.add(h.value);
            timing_fields += 1;
            let start = h.value.as_ptr() as usize - buf.as_ptr() as usize;
            timing_value = Some((start, start + h.value.len()));
        } else if h.name.eq_ignore_ascii_case("connection") {
            let has = |token: &[u8]| {
                h.value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
            };
            if has(b"close") {
                close = true;
            } else if has(b"keep-alive") {
                close = false;
            }
        }
    }
    let body = if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        BodyLen::None
    } else if chunked {
        BodyLen::Chunked
    } else if let Some(l) = len {
        BodyLen::Length(l)
    } else {
        close = true;
        BodyLen::UntilClose
    };
    Ok(Some((
        n,
        Head {
            status,
            body,
            close,
            timing_value: timing_value.filter(|_| timing_fields == 1),
        },
    )))
}

/// The size on a chunk-size line (extensions ignored).
pub(super) fn chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    let bad = || ParseError("bad_chunk_size".into());
    let line = std::str::from_utf8(line).map_err(|_| bad())?;
    let digits = line.split(';').next().unwrap_or("").trim();
    // from_str_radix takes a sign; a chunk size has none.
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    u64::from_str_radix(digits, 16).map_err(|_| bad())
}

/// The last response head a connection parsed, kept as bytes. Servers repeat their head
/// byte for byte until the Date changes (once a second), and the same bytes mean the
/// same thing: one comparison instead of a parse. A `Server-Timing` value differs in
/// every response; a head equal but for it is recognised too, and only the value read.
#[derive(Debug, Default)]
pub(super) struct HeadCache {
    bytes: Vec<u8>,
    parsed: Option<(Head, bool)>,
    /// The `Server-Timing` entries of the last head (the same bytes, the same entries).
    pub timing: ServerTiming,
}

impl HeadCache {
    /// [`parse_head`], answered from the cache when `buf` starts with the cached head.
    pub fn parse(
        &mut self,
        buf: &[u8],
        head_request: bool,
    ) -> Result<Option<(usize, Head)>, ParseError> {
        if let Some((head, for_head)) = self.parsed {
            // The cached bytes end at their first blank line: a buffer starting with them
            // holds exactly that head.
            if for_head == head_request {
                if let Some(n) = self.matches(buf, head) {
                    return Ok(Some((n, head)));
                }
            }
        }
        let parsed = parse_head(buf, head_request, &mut self.timing)?;
        if let Some((n, head)) = parsed {
            self.bytes.clear();
            self.bytes.extend_from_slice(&buf[..n]);
            self.parsed = Some((head, head_request));
        }
        Ok(parsed)
    }

    /// The length of the head at the start of `buf` if it is the cached one, or the cached
    /// one with another `Server-Timing` value (then read into `timing`).
    fn matches(&mut self, buf: &[u8], head: Head) -> Option<usize> {
        let Some((start, end)) = head.timing_value else {
            return buf.starts_with(&self.bytes).then_some(self.bytes.len());
        };
        if !buf.starts_with(&self.bytes[..start]) {
            return None;
        }
        // A value ends at its line's CR; the cached rest of the head (from its CR to the
        // blank line) must follow it unchanged.
        let value_len = buf[start..]
            .iter()
            .take(MAX_TIMING_VALUE)
            .position(|&b| b == b'\r' || b == b'\n')?;
        let rest = &self.bytes[end..];
        let after = start + value_len;
        if !buf[after..].starts_with(rest) {
            return None;
        }
        self.timing.clear();
        self.timing.add(&buf[start..after]);
        Some(after + rest.len())
    }
}

/// The longest `Server-Timing` value the cache looks for; a longer one is parsed.
const MAX_TIMING_VALUE: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_head_is_recognised_and_a_changed_one_parsed() {
        let mut heads = HeadCache::default();
        let a = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let b = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
        let parse = |h: &mut HeadCache, buf: &[u8], head_req| {
            let (n, head) = h.parse(buf, head_req).unwrap().unwrap();
            (n, head.close, matches!(head.body, BodyLen::None))
        };
        assert_eq!(parse(&mut heads, a, false), (38, false, false));
        assert_eq!(
            parse(&mut heads, a, false),
            (38, false, false),
            "from the cache"
        );
        assert_eq!(
            parse(&mut heads, a, true),
            (38, false, true),
            "HEAD: no body"
        );
        assert_eq!(
            parse(&mut heads, b, false),
            (57, true, false),
            "a longer head"
        );
        assert_eq!(heads.parse(&b[..20], false).unwrap().map(|x| x.0), None);
    }

    #[test]
    fn server_timing_is_read_from_the_head_and_kept_with_the_cache() {
        let mut heads = HeadCache::default();
        let a = b"HTTP/1.1 200 OK\r\nServer-Timing: app;dur=0.5\r\nserver-timing: proxy;dur=2\r\ncontent-length: 0\r\n\r\n";
        heads.parse(a, false).unwrap().unwrap();
        let got: Vec<u64> = heads.timing.iter().map(|(_, d)| d).collect();
        assert_eq!(got, [500, 2000]);
        heads.parse(a, false).unwrap().unwrap();
        assert_eq!(
            heads.timing.iter().count(),
            2,
            "a cached head keeps its entries"
        );
        heads
            .parse(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(
            heads.timing.is_empty(),
            "a head without the header has none"
        );
    }

    #[test]
    fn a_head_differing_only_in_its_server_timing_value_is_recognised() {
        let mut heads = HeadCache::default();
        let head = |dur: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nserver-timing: app;dur={dur}\r\ncontent-length: 2\r\n\r\nok"
            )
        };
        let dur = |h: &HeadCache| h.timing.iter().map(|(_, d)| d).collect::<Vec<_>>();
        let first = head("0.005");
        assert_eq!(
            heads.parse(first.as_bytes(), false).unwrap().unwrap().0,
            first.len() - 2
        );
        let longer = head("12.25");
        let (n, h) = heads.parse(longer.as_bytes(), false).unwrap().unwrap();
        assert_eq!((n, h.status), (longer.len() - 2, 200));
        assert_eq!(dur(&heads), [12_250], "the new value is read");
        assert_eq!(
            heads.bytes,
            first.as_bytes()[..first.len() - 2],
            "answered from the cache: the first head is still the cached one"
        );
        let other = "HTTP/1.1 200 OK\r\nserver-timing: app;dur=1\r\ncontent-length: 20\r\n\r\n";
        let (n, h) = heads.parse(other.as_bytes(), false).unwrap().unwrap();
        assert_eq!(n, other.len());
        assert!(
            matches!(h.body, BodyLen::Length(20)),
            "another head is parsed"
        );
        assert_eq!(
            heads
                .parse(&other.as_bytes()[..30], false)
                .unwrap()
                .map(|x| x.0),
            None,
            "a head cut inside the value is incomplete"
        );
    }

    #[test]
    fn garbage_is_a_parse_error_not_a_panic() {
        let t = &mut ServerTiming::default();
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n", false, t).is_err());
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", false, t).unwrap_err(),
            ParseError("bad_content_length".into())
        );
        assert_eq!(chunk_size(b"1a;ext=1"), Ok(26));
        assert!(chunk_size(b"").is_err());
    }
}
