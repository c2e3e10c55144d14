//! `Server-Timing` entries (W3C Server Timing) that every hop of the lab's servers adds to
//! its responses: the app its handler time, the proxy and the module their own time from
//! request in to response out. Each hop appends its entry after its upstream's, so a
//! client reads the chain innermost first: `app;dur=0.021, proxy;dur=0.183`.

use std::time::Instant;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The header's name.
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Appends `NAME;dur=MS` (milliseconds, microsecond precision) for the time since `since`.
pub fn append(headers: &mut HeaderMap, name: &'static str, since: Instant) {
    let (buf, n) = format(name, since);
    if let Ok(v) = HeaderValue::from_bytes(&buf[..n]) {
        headers.append(SERVER_TIMING, v);
    }
}

/// `NAME;dur=MS` for the time since `since`, in a buffer and its length, for engines
/// that encode headers without a `HeaderMap`.
pub fn format(name: &'static str, since: Instant) -> ([u8; 48], usize) {
    format_between(name, since, Instant::now())
}

/// `NAME;dur=MS` for the time from `start` to `end`.
pub fn format_between(name: &'static str, start: Instant, end: Instant) -> ([u8; 48], usize) {
    let us = end.saturating_duration_since(start).as_micros();
    // Formatted by hand: `format!` of a float costs several times this on the hot path.
    let mut buf = [0u8; 48];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        let end = (n + bytes.len()).min(buf.len());
        buf[n..end].copy_from_slice(&bytes[..end - n]);
        n = end;
    };
    put(name.as_bytes());
    put(b";dur=");
    let mut digits = [0u8; 20];
    let mut d = 0;
    let mut v = us;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // At least four digits, so that the last three are the fraction.
    while d < 4 {
        digits[d] = b'0';
        d += 1;
    }
    for i in (3..d).rev() {
        put(&[digits[i]]);
    }
    put(b".");
    for i in (0..3).rev() {
        put(&[digits[i]]);
    }
    (buf, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_are_milliseconds_with_microseconds_and_append() {
        let mut h = HeaderMap::new();
        let long_ago = Instant::now() - Duration::from_micros(12_345_678);
        append(&mut h, "app", Instant::now());
        append(&mut h, "proxy", long_ago);
        let v: Vec<&str> = h
            .get_all(SERVER_TIMING)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert!(v[0].starts_with("app;dur=0.0"), "{v:?}");
        let ms: f64 = v[1].strip_prefix("proxy;dur=").unwrap().parse().unwrap();
        assert!((12345.678..12400.0).contains(&ms), "{v:?}");
        assert!(v[1].split('.').nth(1).unwrap().len() == 3, "{v:?}");
    }
}
