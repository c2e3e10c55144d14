//! `Server-Timing` response headers (W3C Server Timing): each hop names where its time
//! went, e.g. `app;dur=0.42, proxy;dur=1.1`. Parsed without allocating into a small inline
//! list, so that the load engine can record every response's entries into histograms of
//! their own (`hops_us` in the result). Besides the standard `dur` (milliseconds), `D`
//! (microseconds) is read too: Apache's mod_headers writes its `%D` so.

/// Entries kept per response; more are ignored.
pub const MAX_ENTRIES: usize = 4;
/// Bytes of an entry's name kept; longer names are cut.
pub const MAX_NAME: usize = 23;

/// The entries with a duration of one response's `Server-Timing` headers.
///
/// Names live in one array and lengths and durations beside it, so that clearing is one
/// store and nothing is zeroed per response: this runs once for every response the load
/// engine reads.
#[derive(Debug, Clone)]
pub struct ServerTiming {
    len: u8,
    name_len: [u8; MAX_ENTRIES],
    dur_us: [u64; MAX_ENTRIES],
    names: [[u8; MAX_NAME]; MAX_ENTRIES],
    shape: Shape,
}

/// The last value read first in a response, as a template for the next one: a server
/// repeats its value but for the numbers, so the next response compares the bytes around
/// them and reads only the numbers (the names are still in place).
#[derive(Debug, Clone, Default)]
struct Shape {
    value: Vec<u8>,
    /// Where each kept entry's duration lies in `value`; `count` of them.
    holes: [(u16, u16); MAX_ENTRIES],
    count: u8,
    valid: bool,
}

impl Default for ServerTiming {
    fn default() -> Self {
        ServerTiming {
            len: 0,
            name_len: [0; MAX_ENTRIES],
            dur_us: [0; MAX_ENTRIES],
            names: [[0; MAX_NAME]; MAX_ENTRIES],
            shape: Shape::default(),
        }
    }
}

impl PartialEq for ServerTiming {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for ServerTiming {}

/// RFC 9110 `tchar`s, as a table: the parser looks every byte up once.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

/// A cursor over one header value: the grammar is `entry *( OWS "," OWS entry )`, an
/// entry `token *( OWS ";" OWS token [ OWS "=" OWS ( token / quoted-string ) ] )`.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> &'a [u8] {
        let start = self.at;
        while self.peek().is_some_and(|c| TOKEN[usize::from(c)]) {
            self.at += 1;
        }
        &self.b[start..self.at]
    }

    /// A token or a quoted string (its inside, escapes left in: a duration has none).
    fn value(&mut self) -> &'a [u8] {
        if self.peek() != Some(b'"') {
            return self.token();
        }
        self.at += 1;
        let start = self.at;
        while let Some(c) = self.peek() {
            match c {
                b'"' => {
                    self.at += 1;
                    return &self.b[start..self.at - 1];
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
        self.at = self.b.len();
        &self.b[start..]
    }

    /// Past the next `,` outside a quoted string: where a malformed entry is left.
    fn skip_entry(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b',' => {
                    self.at += 1;
                    return;
                }
                b'"' => {
                    self.value();
                }
                _ => self.at += 1,
            }
        }
    }
}

/// Milliseconds as written (`0.42`, `12`) in whole microseconds, rounded.
fn dur_us(v: &[u8]) -> Option<u64> {
    fixed_point_us(v).or_else(|| {
        let ms: f64 = std::str::from_utf8(v).ok()?.trim().parse().ok()?;
        (ms.is_finite() && ms >= 0.0).then(|| (ms * 1000.0).round() as u64)
    })
}

/// `DIGITS[.DIGITS]` milliseconds in microseconds, rounded half up, without going through
/// a float; None for anything else (exponents, signs), which the float parse then reads.
fn fixed_point_us(v: &[u8]) -> Option<u64> {
    match scan_fixed_point(v) {
        Some((us, n)) if n == v.len() => Some(us),
        _ => None,
    }
}

/// The fixed-point number at the start of `v` (see [`fixed_point_us`]) and its length:
/// one pass, at most 16 bytes so that nothing overflows.
fn scan_fixed_point(v: &[u8]) -> Option<(u64, usize)> {
    let mut us = 0u64;
    // Fraction digits taken (None before the dot); a fourth decides the rounding.
    let mut frac: Option<usize> = None;
    let mut round = false;
    let mut n = 0;
    for &b in v.iter().take(17) {
        match (b, frac) {
            (b'0'..=b'9', None | Some(0..=2)) => {
                us = us * 10 + u64::from(b - b'0');
                frac = frac.map(|f| f + 1);
            }
            (b'0'..=b'9', Some(3)) => {
                round = b >= b'5';
                frac = Some(4);
            }
            (b'0'..=b'9', Some(_)) => {}
            (b'.', None) if n > 0 => frac = Some(0),
            _ => break,
        }
        n += 1;
    }
    if n == 0 || n > 16 {
        return None;
    }
    let scale = [1000, 100, 10, 1][frac.unwrap_or(0).min(3)];
    Some((us * scale + u64::from(round), n))
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
        let first = self.len == 0;
        if first && self.shape.valid && self.refill(value) {
            return;
        }
        self.parse(value, first);
    }

    /// The durations of `value` read by the shape of the last first value, if it has it.
    fn refill(&mut self, v: &[u8]) -> bool {
        let shape = &self.shape;
        let (mut at_v, mut at_shape) = (0, 0);
        for k in 0..usize::from(shape.count) {
            let (start, end) = shape.holes[k];
            let literal = &shape.value[at_shape..usize::from(start)];
            if !v[at_v..].starts_with(literal) {
                return false;
            }
            at_v += literal.len();
            let Some((us, n)) = scan_fixed_point(&v[at_v..]) else {
                return false;
            };
            self.dur_us[k] = us;
            at_v += n;
            at_shape = usize::from(end);
        }
        if v[at_v..] != shape.value[at_shape..] {
            return false;
        }
        self.len = shape.count;
        true
    }

    /// Reads `value` in full; `first` (no entry yet in this response) makes it the shape.
    fn parse(&mut self, value: &[u8], first: bool) {
        // A duration the shape can find again: a plain number, not a float's exponent
        // nor Apache's D.
        let mut shapeable = value.len() <= usize::from(u16::MAX);
        let mut holes = [(0u16, 0u16); MAX_ENTRIES];
        let mut c = Cursor { b: value, at: 0 };
        while c.at < value.len() && usize::from(self.len) < MAX_ENTRIES {
            c.skip_ows();
            let name = c.token();
            let mut dur = None;
            let mut hole = None;
            c.skip_ows();
            while c.peek() == Some(b';') {
                c.at += 1;
                c.skip_ows();
                let key = c.token();
                c.skip_ows();
                if c.peek() != Some(b'=') {
                    continue;
                }
                c.at += 1;
                c.skip_ows();
                let v = c.value();
                c.skip_ows();
                if dur.is_none() {
                    if key.eq_ignore_ascii_case(b"dur") {
                        dur = Some(dur_us(v));
                        let start = v.as_ptr() as usize - value.as_ptr() as usize;
                        hole = fixed_point_us(v)
                            .is_some()
                            .then_some((start as u16, (start + v.len()) as u16));
                    } else if key == b"D" {
                        // Apache's mod_headers `%D`: microseconds.
                        dur = Some(std::str::from_utf8(v).ok().and_then(|v| v.parse().ok()));
                    }
                }
            }
            // Anything but the end or the next entry here: a malformed entry.
            let well_formed = match c.peek() {
                None => true,
                Some(b',') => {
                    c.at += 1;
                    true
                }
                Some(_) => {
                    c.skip_entry();
                    false
                }
            };
            let (true, false, Some(Some(dur))) = (well_formed, name.is_empty(), dur) else {
                continue;
            };
            let at = usize::from(self.len);
            match hole {
                Some(h) => holes[at] = h,
                None => shapeable = false,
            }
            let n = name.len().min(MAX_NAME);
            self.names[at][..n].copy_from_slice(&name[..n]);
            self.name_len[at] = n as u8;
            self.dur_us[at] = dur;
            self.len += 1;
        }
        if first {
            let shape = &mut self.shape;
            shape.valid = shapeable;
            shape.value.clear();
            shape.value.extend_from_slice(value);
            shape.holes = holes;
            shape.count = self.len;
        }
    }

    /// The entries: name and duration in microseconds, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        (0..usize::from(self.len)).map(|i| {
            (
                &self.names[i][..usize::from(self.name_len[i])],
                self.dur_us[i],
            )
        })
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

    #[test]
    fn the_fixed_point_reading_agrees_with_the_float_one() {
        for i in (0..2_000_000u64).step_by(7_919) {
            // A fourth decimal of 5 is a tie the float may round either way.
            let v = format!("{}.{:04}", i / 10_000, (i % 10_000) / 10 * 10 + 3);
            let float = (v.parse::<f64>().unwrap() * 1000.0).round() as u64;
            assert_eq!(fixed_point_us(v.as_bytes()), Some(float), "{v}");
        }
        assert_eq!(fixed_point_us(b"7"), Some(7000));
        assert_eq!(fixed_point_us(b"1e3"), None, "left to the float parse");
        assert_eq!(parse(&["a;dur=1e3"]), [("a".into(), 1_000_000)]);
        assert_eq!(
            parse(&["a;desc=\"x, y\";dur=2, b ; dur = 3"]),
            [("a".into(), 2000), ("b".into(), 3000)],
            "a comma inside quotes, spaces around the parts"
        );
    }

    #[test]
    fn a_repeated_shape_reads_only_the_numbers_and_a_new_one_is_parsed() {
        let mut t = ServerTiming::default();
        let mut read = |v: &str| {
            t.clear();
            t.add(v.as_bytes());
            t.iter()
                .map(|(n, d)| (String::from_utf8_lossy(n).into_owned(), d))
                .collect::<Vec<_>>()
        };
        let two = |a: u64, b: u64| vec![("app".to_string(), a), ("proxy".to_string(), b)];
        assert_eq!(read("app;dur=0.005, proxy;dur=1"), two(5, 1000));
        assert_eq!(
            read("app;dur=12.5, proxy;dur=0.25"),
            two(12_500, 250),
            "same shape"
        );
        assert_eq!(
            read("app;dur=1e3, proxy;dur=1"),
            two(1_000_000, 1000),
            "an exponent"
        );
        assert_eq!(read("app;dur=2, proxy;dur=3"), two(2000, 3000));
        assert_eq!(
            read("app;dur=2x, proxy;dur=3"),
            [("proxy".to_string(), 3000)]
        );
        assert_eq!(
            read("app;dur=2, proxy;dur=3;x"),
            two(2000, 3000),
            "another tail"
        );
        assert_eq!(read("app;dur=2, proxy;dur=3, db;dur=4").len(), 3);
        assert_eq!(read("cdn;dur=\"7\""), [("cdn".to_string(), 7000)]);
        assert_eq!(
            read("cdn;dur=\"8\""),
            [("cdn".to_string(), 8000)],
            "quoted, same shape"
        );
        assert_eq!(read("cdn;dur=\"8.1.2\"").len(), 0);
        assert_eq!(read("apache;D=120"), [("apache".to_string(), 120)]);
        assert_eq!(
            read("apache;D=121"),
            [("apache".to_string(), 121)],
            "D: parsed"
        );
    }
}
