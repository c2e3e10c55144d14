//! `Server-Timing` response headers (W3C Server Timing): each hop names where its time
//! went, e.g. `app;dur=0.42, proxy;dur=1.1`. Parsed without allocating into a small inline
//! list, so that the load engine can record every response's entries into histograms of
//! their own (`hops_us` in the result). Besides the standard `dur` (milliseconds), `D`
//! (microseconds) is read too: Apache's mod_headers writes its `%D` so.

/// Entries kept per response; more are ignored.
pub const MAX_ENTRIES: usize = 4;
/// Bytes of an entry's name kept; longer names are cut.
pub const MAX_NAME: usize = 23;

/// One `name;dur=MS` entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    name: [u8; MAX_NAME],
    name_len: u8,
    dur_us: u64,
}

/// The entries with a duration of one response's `Server-Timing` headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerTiming {
    len: u8,
    entries: [Entry; MAX_ENTRIES],
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Milliseconds as written (`0.42`, `12`, `"1.5"`) in whole microseconds, rounded.
fn dur_us(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    let v = v
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(v);
    let ms: f64 = std::str::from_utf8(v).ok()?.parse().ok()?;
    (ms.is_finite() && ms >= 0.0).then(|| (ms * 1000.0).round() as u64)
}

impl ServerTiming {
    /// Forgets every entry (a new response begins).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Whether no entry with a duration was seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds the entries of one header value; entries without a valid `dur` (a
    /// description only) and malformed ones are skipped, never an error.
    pub fn add(&mut self, value: &[u8]) {
        for part in value.split(|&b| b == b',') {
            if usize::from(self.len) == MAX_ENTRIES {
                return;
            }
            let mut params = part.split(|&b| b == b';');
            let name = params.next().unwrap_or_default().trim_ascii();
            if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
                continue;
            }
            let dur = params.find_map(|p| {
                let (k, v) = p.split_at(p.iter().position(|&b| b == b'=')?);
                match k.trim_ascii() {
                    k if k.eq_ignore_ascii_case(b"dur") => dur_us(&v[1..]),
                    // Apache's mod_headers `%D`: "D=" and microseconds.
                    b"D" => std::str::from_utf8(&v[1..]).ok()?.trim().parse().ok(),
                    _ => None,
                }
            });
            let Some(dur_us) = dur else { continue };
            let mut entry = Entry {
                dur_us,
                ..Entry::default()
            };
            let n = name.len().min(MAX_NAME);
            entry.name[..n].copy_from_slice(&name[..n]);
            entry.name_len = n as u8;
            self.entries[usize::from(self.len)] = entry;
            self.len += 1;
        }
    }

    /// The entries: name and duration in microseconds, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.entries[..usize::from(self.len)]
            .iter()
            .map(|e| (&e.name[..usize::from(e.name_len)], e.dur_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Vec<(String, u64)> {
        let mut t = ServerTiming::default();
        for v in values {
            t.add(v.as_bytes());
        }
        t.iter()
            .map(|(n, d)| (String::from_utf8_lossy(n).into_owned(), d))
            .collect()
    }

    #[test]
    fn entries_with_a_duration_are_kept_in_microseconds() {
        assert_eq!(
            parse(&["app;dur=0.42, proxy;desc=\"nginx\";dur=1.1"]),
            [("app".into(), 420), ("proxy".into(), 1100)]
        );
        assert_eq!(
            parse(&["apache;D=1234"]),
            [("apache".into(), 1234)],
            "Apache's %D: microseconds"
        );
        assert_eq!(
            parse(&["db;dur=\"12\"", "cache;desc=hit", "total;dur=53.2"]),
            [("db".into(), 12_000), ("total".into(), 53_200)],
            "several headers, an entry without dur skipped"
        );
    }

    #[test]
    fn malformed_entries_are_skipped_and_the_list_is_bounded() {
        assert!(parse(&["", ",,", "bad name;dur=1", "x;dur=abc", "y;dur=-1"]).is_empty());
        let many = parse(&["a;dur=1,b;dur=2,c;dur=3,d;dur=4,e;dur=5"]);
        assert_eq!(many.len(), MAX_ENTRIES);
        let long = parse(&["a-very-long-server-timing-name-indeed;dur=1"]);
        assert_eq!(long[0].0.len(), MAX_NAME);
    }
}
