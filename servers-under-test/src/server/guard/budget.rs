//! The flood budget: which HTTP/2 frames cost the server work without asking for any
//! (PING, SETTINGS, PRIORITY, resets, empty frames, tiny window updates, streams the server
//! had to reset), and a token bucket that says when a connection has sent too many.
//! The h2 crate bounds resets of streams not yet accepted, but answers PING and SETTINGS
//! floods for as long as they last; this is the limit it lacks.

use std::time::Instant;

use super::scan::{flag, kind, Frame};

/// A frame that does no useful work for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Glitch {
    /// PING without ACK: the server must answer it.
    Ping,
    /// SETTINGS without ACK: the server must acknowledge it.
    Settings,
    /// PRIORITY: ignored by the server, read all the same.
    Priority,
    /// RST_STREAM from the client: a request started and abandoned (Rapid Reset).
    Reset,
    /// DATA without END_STREAM, or a header fragment without END_HEADERS, that is empty.
    Empty,
    /// WINDOW_UPDATE of fewer than [`SMALL_WINDOW`] bytes while the server's output is
    /// starved by flow control: it forces tiny DATA frames (the data dribble).
    SmallWindow,
    /// RST_STREAM sent by the server with an error code: a stream the client made the
    /// server reset (malformed requests, MadeYouReset, refused streams).
    ServerReset,
}

const GLITCHES: usize = 7;

impl Glitch {
    fn index(self) -> usize {
        self as usize
    }

    fn name(i: usize) -> &'static str {
        [
            "PING",
            "SETTINGS",
            "PRIORITY",
            "RST_STREAM",
            "empty",
            "small WINDOW_UPDATE",
            "server-reset stream",
        ][i]
    }
}

/// Window increments below this many bytes count as a glitch; clients that batch their
/// updates (every common one) send at least half a window at a time.
pub const SMALL_WINDOW: u32 = 1024;

/// What a frame from the client costs; `starved` says the server's last DATA frame was
/// a small one cut short by flow control (see [`starves`]).
pub fn inbound(f: &Frame, starved: bool) -> Option<Glitch> {
    match f.kind {
        kind::PING if f.flags & flag::ACK == 0 => Some(Glitch::Ping),
        kind::SETTINGS if f.flags & flag::ACK == 0 => Some(Glitch::Settings),
        kind::PRIORITY => Some(Glitch::Priority),
        kind::RST_STREAM => Some(Glitch::Reset),
        kind::DATA if f.len == 0 && f.flags & flag::END_STREAM == 0 => Some(Glitch::Empty),
        kind::HEADERS | kind::CONTINUATION if f.len == 0 && f.flags & flag::END_HEADERS == 0 => {
            Some(Glitch::Empty)
        }
        kind::WINDOW_UPDATE => {
            let increment = f.prefix & 0x7fff_ffff;
            // An increment of 0 is an error h2 answers itself (and counts as a reset). A
            // small increment that returns credit for small whole responses (a proxy's
            // backend connection: an update per 13-byte answer) asks for nothing tiny.
            (starved && increment > 0 && increment < SMALL_WINDOW).then_some(Glitch::SmallWindow)
        }
        _ => None,
    }
}

/// Whether a frame the server sends shows its output starved by flow control: DATA
/// smaller than [`SMALL_WINDOW`] that does not end its stream. `None` for frames that
/// say nothing either way.
pub fn starves(f: &Frame) -> Option<bool> {
    (f.kind == kind::DATA)
        .then_some(f.len < SMALL_WINDOW as usize && f.flags & flag::END_STREAM == 0)
}

/// What a frame the server sends says about the client.
pub fn outbound(f: &Frame) -> Option<Glitch> {
    const NO_ERROR: u32 = 0;
    (f.kind == kind::RST_STREAM && f.prefix != NO_ERROR).then_some(Glitch::ServerReset)
}

/// How many glitches a connection may send: `burst` at once, refilled at `per_second`.
/// A `burst` of 0 turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodLimits {
    /// Glitches allowed at once.
    pub burst: u32,
    /// Glitches allowed per second, sustained.
    pub per_second: u32,
}

/// One connection's token bucket.
#[derive(Debug)]
pub struct Budget {
    limits: FloodLimits,
    tokens: f64,
    last: Option<Instant>,
    counts: [u64; GLITCHES],
}

impl Budget {
    /// A full bucket.
    pub fn new(limits: FloodLimits) -> Budget {
        Budget {
            limits,
            tokens: f64::from(limits.burst),
            last: None,
            counts: [0; GLITCHES],
        }
    }

    /// Whether the limit is on.
    pub fn enabled(&self) -> bool {
        self.limits.burst > 0
    }

    /// Spends one token at `now`; `false` once the connection is over its budget.
    pub fn spend(&mut self, g: Glitch, now: Instant) -> bool {
        if !self.enabled() {
            return true;
        }
        self.counts[g.index()] += 1;
        if let Some(last) = self.last {
            let refill = now.duration_since(last).as_secs_f64() * f64::from(self.limits.per_second);
            self.tokens = (self.tokens + refill).min(f64::from(self.limits.burst));
        }
        self.last = Some(now);
        self.tokens -= 1.0;
        self.tokens >= 0.0
    }

    /// Why the connection is being closed, for GOAWAY's debug data: the kind it sent most.
    pub fn describe(&self) -> String {
        let (i, n) = self
            .counts
            .iter()
            .enumerate()
            .max_by_key(|(_, n)| **n)
            .map(|(i, n)| (i, *n))
            .unwrap_or((0, 0));
        format!("flood: {n} {} frames", Glitch::name(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn f(kind: u8, flags: u8, len: usize, prefix: u32) -> Frame {
        Frame {
            kind,
            flags,
            stream: 1,
            len,
            prefix,
        }
    }

    fn inbound_(f: &Frame) -> Option<Glitch> {
        inbound(f, true)
    }

    #[test]
    fn small_window_updates_count_only_while_output_is_starved() {
        // A proxy's backend connection: whole 13-byte answers, an update for each.
        let answer = f(kind::DATA, flag::END_STREAM, 13, 0);
        assert_eq!(starves(&answer), Some(false));
        assert_eq!(inbound(&f(kind::WINDOW_UPDATE, 0, 4, 13), false), None);
        // The dribble: one byte at a time of a larger body.
        let dribble = f(kind::DATA, 0, 1, 0);
        assert_eq!(starves(&dribble), Some(true));
        assert_eq!(
            inbound(&f(kind::WINDOW_UPDATE, 0, 4, 1), true),
            Some(Glitch::SmallWindow)
        );
        assert_eq!(starves(&f(kind::DATA, 0, 16_384, 0)), Some(false));
        assert_eq!(starves(&f(kind::HEADERS, 0, 10, 0)), None);
    }

    #[test]
    fn only_frames_that_ask_for_nothing_are_glitches() {
        assert_eq!(inbound_(&f(kind::PING, 0, 8, 0)), Some(Glitch::Ping));
        assert_eq!(inbound_(&f(kind::PING, flag::ACK, 8, 0)), None);
        assert_eq!(
            inbound_(&f(kind::SETTINGS, 0, 0, 0)),
            Some(Glitch::Settings)
        );
        assert_eq!(inbound_(&f(kind::SETTINGS, flag::ACK, 0, 0)), None);
        assert_eq!(inbound_(&f(kind::DATA, 0, 0, 0)), Some(Glitch::Empty));
        assert_eq!(inbound_(&f(kind::DATA, flag::END_STREAM, 0, 0)), None);
        assert_eq!(inbound_(&f(kind::DATA, 0, 10, 0)), None);
        assert_eq!(
            inbound_(&f(kind::CONTINUATION, 0, 0, 0)),
            Some(Glitch::Empty)
        );
        assert_eq!(
            inbound_(&f(kind::CONTINUATION, flag::END_HEADERS, 0, 0)),
            None
        );
        assert_eq!(inbound_(&f(kind::HEADERS, flag::END_HEADERS, 20, 0)), None);
        assert_eq!(
            inbound_(&f(kind::WINDOW_UPDATE, 0, 4, 1)),
            Some(Glitch::SmallWindow)
        );
        assert_eq!(inbound_(&f(kind::WINDOW_UPDATE, 0, 4, 0)), None);
        assert_eq!(inbound_(&f(kind::WINDOW_UPDATE, 0, 4, 32_768)), None);
        assert_eq!(inbound_(&f(kind::RST_STREAM, 0, 4, 8)), Some(Glitch::Reset));
        assert_eq!(
            outbound(&f(kind::RST_STREAM, 0, 4, 1)),
            Some(Glitch::ServerReset)
        );
        assert_eq!(outbound(&f(kind::RST_STREAM, 0, 4, 0)), None);
        assert_eq!(outbound(&f(kind::DATA, 0, 4, 1)), None);
    }

    #[test]
    fn a_burst_is_allowed_then_the_sustained_rate() {
        let limits = FloodLimits {
            burst: 10,
            per_second: 100,
        };
        let mut b = Budget::new(limits);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(b.spend(Glitch::Ping, t0));
        }
        assert!(!b.spend(Glitch::Ping, t0), "the eleventh at once is over");
        let mut b = Budget::new(limits);
        // 100 a second for ten seconds, one every 10 ms: always within budget.
        for i in 0..1000 {
            assert!(b.spend(Glitch::Settings, t0 + Duration::from_millis(10 * i)));
        }
        assert_eq!(b.describe(), "flood: 1000 SETTINGS frames");
    }

    #[test]
    fn a_burst_of_zero_turns_the_limit_off() {
        let mut b = Budget::new(FloodLimits {
            burst: 0,
            per_second: 0,
        });
        let t0 = Instant::now();
        assert!((0..100_000).all(|_| b.spend(Glitch::Ping, t0)));
    }
}
