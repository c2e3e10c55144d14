//! Connection timeouts decided from activity counters, like Kestrel's heartbeat: each tick
//! looks at what moved since the last one. Pure logic, tested without sockets.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Counters one connection's I/O and service update, read by its watchdog.
#[derive(Debug, Default)]
pub struct Activity {
    read: AtomicU64,
    written: AtomicU64,
    requests: AtomicU64,
    in_flight: AtomicU32,
    read_at_finish: AtomicU64,
    write_blocked: AtomicBool,
    /// Set by the watchdog: answer 408 on the next read and close.
    pub(crate) abort_408: AtomicBool,
    /// Set by the service: close the connection gracefully once idle.
    pub(crate) close_requested: AtomicBool,
}

/// A copy of the counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Bytes read so far.
    pub read: u64,
    /// Bytes written so far.
    pub written: u64,
    /// Requests started so far.
    pub requests: u64,
    /// Requests whose handler has not finished.
    pub in_flight: u32,
    /// `read` when the last request finished: bytes beyond it belong to the next head.
    pub read_at_finish: u64,
    /// The last write could not proceed: the peer is not reading.
    pub write_blocked: bool,
}

impl Activity {
    // Single writer per counter (the connection's task), so load + store is enough and
    // avoids a locked instruction on every read and write.
    pub(crate) fn add_read(&self, n: usize) {
        self.read.store(self.read.load(Relaxed) + n as u64, Relaxed);
    }
    pub(crate) fn add_written(&self, n: usize) {
        self.written
            .store(self.written.load(Relaxed) + n as u64, Relaxed);
    }
    pub(crate) fn set_write_blocked(&self, blocked: bool) {
        if self.write_blocked.load(Relaxed) != blocked {
            self.write_blocked.store(blocked, Relaxed);
        }
    }
    pub(crate) fn request_started(&self) {
        self.requests.fetch_add(1, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
    }
    /// Requests answered inline, each started and finished at once, with every byte
    /// read so far consumed: the head timer restarts.
    pub(crate) fn answered(&self, n: u64) {
        self.requests.fetch_add(n, Relaxed);
        self.read_at_finish.store(self.read.load(Relaxed), Relaxed);
    }
    pub(crate) fn request_finished(&self) {
        self.read_at_finish.store(self.read.load(Relaxed), Relaxed);
        self.in_flight.fetch_sub(1, Relaxed);
    }
    /// Current counters.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            read: self.read.load(Relaxed),
            written: self.written.load(Relaxed),
            requests: self.requests.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            read_at_finish: self.read_at_finish.load(Relaxed),
            write_blocked: self.write_blocked.load(Relaxed),
        }
    }
}

/// What the watchdog decided at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Keep,
    /// A request head has been arriving for longer than the header timeout: answer 408.
    HeaderTimeout,
    /// No request in flight and nothing moved for the idle timeout: close gracefully.
    Idle,
    /// Output has been blocked for the send timeout (the peer does not read): drop it.
    SendTimeout,
}

/// The per-connection timeout state machine.
///
/// It sees byte counts, not hyper's buffer: a partial head that arrives in the same read
/// as a complete pipelined request is covered by the idle timeout, not the header timeout.
/// Clients that do not pipeline (all browsers) always get the header timeout.
#[derive(Debug)]
pub struct Watchdog {
    header_timeout: Duration,
    idle_timeout: Duration,
    http1: bool,
    last: Snapshot,
    quiet_since: Instant,
    head_since: Option<Instant>,
    send_timeout: Option<Duration>,
    blocked_since: Option<Instant>,
}

impl Watchdog {
    /// A watchdog for a connection opened at `now`. On HTTP/1.1 the first request head is
    /// expected from the start (a connection that sends nothing gets 408, as in Kestrel).
    pub fn new(
        now: Instant,
        header_timeout: Duration,
        idle_timeout: Duration,
        http1: bool,
    ) -> Self {
        Watchdog {
            header_timeout,
            idle_timeout,
            http1,
            last: Snapshot::default(),
            quiet_since: now,
            head_since: http1.then_some(now),
            send_timeout: None,
            blocked_since: None,
        }
    }

    /// Also drops the connection once its output has been blocked for `timeout` (nginx's
    /// `send_timeout`); zero leaves it off.
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// How often to tick: a quarter of the shortest timeout, within 10 ms..1 s.
    pub fn period(&self) -> Duration {
        let shortest = self.header_timeout.min(self.idle_timeout);
        (self.send_timeout.map_or(shortest, |s| s.min(shortest)) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Decides at `now` given the counters `snap`.
    pub fn check(&mut self, now: Instant, snap: Snapshot) -> Verdict {
        let prev = std::mem::replace(&mut self.last, snap);
        if snap != prev {
            self.quiet_since = now;
        }
        if snap.write_blocked && snap.written == prev.written {
            let since = *self.blocked_since.get_or_insert(now);
            if self
                .send_timeout
                .is_some_and(|t| now.duration_since(since) >= t)
            {
                return Verdict::SendTimeout;
            }
        } else {
            self.blocked_since = None;
        }
        if self.http1 {
            // A head is awaited before the first request, and whenever bytes arrived
            // after the last request finished; a new request restarts the clock.
            let head_pending =
                snap.in_flight == 0 && (snap.requests == 0 || snap.read > snap.read_at_finish);
            if !head_pending {
                self.head_since = None;
            } else if self.head_since.is_none() || snap.requests != prev.requests {
                self.head_since = Some(now);
            }
        }
        if let Some(since) = self.head_since {
            if now.duration_since(since) >= self.header_timeout {
                return Verdict::HeaderTimeout;
            }
            return Verdict::Keep;
        }
        if snap.in_flight == 0 && now.duration_since(self.quiet_since) >= self.idle_timeout {
            return Verdict::Idle;
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn snap(read: u64, written: u64, requests: u64, in_flight: u32) -> Snapshot {
        Snapshot {
            read,
            written,
            requests,
            in_flight,
            read_at_finish: 0,
            write_blocked: false,
        }
    }

    fn done(read: u64, written: u64, requests: u64, read_at_finish: u64) -> Snapshot {
        Snapshot {
            read,
            written,
            requests,
            in_flight: 0,
            read_at_finish,
            write_blocked: false,
        }
    }

    #[test]
    fn output_blocked_for_the_send_timeout_drops_the_connection() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, 10 * S, 100 * S, false).with_send_timeout(2 * S);
        let blocked = |written| Snapshot {
            write_blocked: true,
            ..snap(100, written, 5, 3)
        };
        assert_eq!(w.check(t0 + S, blocked(1000)), Verdict::Keep);
        // Still blocked, but bytes went out since: the clock starts again.
        assert_eq!(w.check(t0 + 2 * S, blocked(2000)), Verdict::Keep);
        assert_eq!(w.check(t0 + 3 * S, blocked(2000)), Verdict::Keep);
        assert_eq!(w.check(t0 + 4 * S, blocked(2000)), Verdict::Keep);
        assert_eq!(w.check(t0 + 5 * S, blocked(2000)), Verdict::SendTimeout);
        // Without a send timeout, a blocked peer is only subject to the others.
        let mut w = Watchdog::new(t0, 10 * S, 100 * S, false);
        assert_eq!(w.check(t0 + 50 * S, blocked(0)), Verdict::Keep);
    }

    #[test]
    fn silent_http1_connection_times_out_on_headers() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, 2 * S, 10 * S, true);
        assert_eq!(w.check(t0 + S, snap(0, 0, 0, 0)), Verdict::Keep);
        assert_eq!(
            w.check(t0 + 2 * S, snap(0, 0, 0, 0)),
            Verdict::HeaderTimeout
        );
    }

    #[test]
    fn slow_head_after_a_request_times_out_but_idle_keepalive_closes_quietly() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, 2 * S, 5 * S, true);
        // A request completes: head timer off.
        assert_eq!(w.check(t0 + S, done(100, 200, 1, 100)), Verdict::Keep);
        // Idle keep-alive: no bytes for the idle timeout.
        assert_eq!(w.check(t0 + 5 * S, done(100, 200, 1, 100)), Verdict::Keep);
        assert_eq!(w.check(t0 + 6 * S, done(100, 200, 1, 100)), Verdict::Idle);
        // Another connection: bytes of a new head trickle in without completing it, the
        // first of them seen in the same tick as the previous response's write.
        let mut w = Watchdog::new(t0, 2 * S, 5 * S, true);
        assert_eq!(w.check(t0 + S, done(110, 200, 1, 100)), Verdict::Keep);
        assert_eq!(w.check(t0 + 2 * S, done(120, 200, 1, 100)), Verdict::Keep);
        let v = w.check(t0 + 3 * S, done(130, 200, 1, 100));
        assert_eq!(v, Verdict::HeaderTimeout);
    }

    #[test]
    fn requests_in_flight_keep_a_connection_open() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, S, S, false);
        for i in 1..10 {
            assert_eq!(w.check(t0 + i * S, snap(50, 0, 1, 1)), Verdict::Keep);
        }
        assert_eq!(w.check(t0 + 10 * S, done(50, 0, 1, 50)), Verdict::Keep);
        assert_eq!(w.check(t0 + 11 * S, done(50, 0, 1, 50)), Verdict::Idle);
    }

    #[test]
    fn http2_bytes_without_requests_are_not_a_slow_head() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, S, 10 * S, false);
        for i in 1..5 {
            assert_eq!(
                w.check(t0 + i * S, snap(i as u64 * 9, 0, 0, 0)),
                Verdict::Keep
            );
        }
    }
}
