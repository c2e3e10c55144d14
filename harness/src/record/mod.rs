//! Recording: per-worker HdrHistograms and counters for one interval at a time, merged
//! exactly (never by averaging percentiles) into per-second intervals and totals.

pub mod hlog;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Lowest recordable value: 1 us.
pub const LOWEST_US: u64 = 1;
/// Highest recordable value: 1 hour.
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant digits.
pub const SIGFIG: u8 = 3;

/// A histogram with the lab's bounds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).expect("valid histogram bounds")
}

/// Which histogram a value belongs to; also the tag in the interval log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// From intended (open) or actual (closed) send to response end.
    Latency,
    /// From actual send to response end.
    Service,
    /// From actual send to first response byte.
    Ttfb,
    /// TCP connect, per connection.
    Connect,
    /// TLS handshake, per connection.
    Tls,
    /// Latency of failed requests.
    ErrorLatency,
    /// Actual send minus intended send (open loop).
    SchedulerLag,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 7] = [
        Kind::Latency,
        Kind::Service,
        Kind::Ttfb,
        Kind::Connect,
        Kind::Tls,
        Kind::ErrorLatency,
        Kind::SchedulerLag,
    ];

    /// Tag used in `.hlog` files.
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Service => "service",
            Kind::Ttfb => "ttfb",
            Kind::Connect => "connect",
            Kind::Tls => "tls",
            Kind::ErrorLatency => "error-latency",
            Kind::SchedulerLag => "scheduler-lag",
        }
    }

    /// The kind logged under `tag`.
    pub fn from_tag(tag: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.tag() == tag)
    }

    fn index(self) -> usize {
        self as usize
    }
}

fn us(d: Duration) -> u64 {
    // Not `as_micros`: its u128 arithmetic is measurable at four records per request.
    (d.as_secs() * 1_000_000 + u64::from(d.subsec_micros())).max(LOWEST_US)
}

/// One interval's worth of recordings (one worker, or merged).
#[derive(Debug, Clone)]
pub struct Interval {
    /// Histograms indexed by [`Kind`].
    pub hist: Vec<Histogram<u64>>,
    /// Responses by status code.
    pub status: BTreeMap<u16, u64>,
    /// Failures by class.
    pub errors: BTreeMap<String, u64>,
    /// Answered requests.
    pub ok: u64,
    /// Failed requests.
    pub failed: u64,
    /// Sends later than intended by over 1 ms.
    pub late: u64,
    /// Durations the servers reported per `Server-Timing` entry name (microseconds).
    /// Empty when no server sends the header, so it costs nothing then.
    pub hops: Vec<(String, Histogram<u64>)>,
}

/// Distinct `Server-Timing` names recorded at most; further names are ignored, so a
/// server that puts ids in its names cannot grow the recorder without bound.
pub const MAX_HOP_NAMES: usize = 16;

impl Default for Interval {
    fn default() -> Self {
        Interval {
            hist: Kind::ALL.iter().map(|_| new_histogram()).collect(),
            status: BTreeMap::new(),
            errors: BTreeMap::new(),
            ok: 0,
            failed: 0,
            late: 0,
            hops: Vec::new(),
        }
    }
}

impl Interval {
    /// The histogram of `kind`.
    pub fn get(&self, kind: Kind) -> &Histogram<u64> {
        &self.hist[kind.index()]
    }

    /// The histogram of `kind`, to add into.
    pub fn get_mut(&mut self, kind: Kind) -> &mut Histogram<u64> {
        &mut self.hist[kind.index()]
    }

    fn record(&mut self, kind: Kind, d: Duration) {
        self.hist[kind.index()].saturating_record(us(d));
    }

    /// Adds `other` into `self` (exact).
    pub fn merge(&mut self, other: &Interval) {
        for (mine, theirs) in self.hist.iter_mut().zip(&other.hist) {
            mine.add(theirs).expect("same bounds");
        }
        for (k, v) in &other.status {
            *self.status.entry(*k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.ok += other.ok;
        self.failed += other.failed;
        self.late += other.late;
        for (name, theirs) in other.hops.iter().filter(|(_, h)| !h.is_empty()) {
            if let Some(mine) = self.hop(name.as_bytes()) {
                mine.add(theirs).expect("same bounds");
            }
        }
    }

    /// The histogram of hop `name`, made on first use (None beyond [`MAX_HOP_NAMES`]).
    fn hop(&mut self, name: &[u8]) -> Option<&mut Histogram<u64>> {
        match self.hops.iter().position(|(n, _)| n.as_bytes() == name) {
            Some(i) => Some(&mut self.hops[i].1),
            None if self.hops.len() < MAX_HOP_NAMES => {
                let name = String::from_utf8_lossy(name).into_owned();
                self.hops.push((name, new_histogram()));
                self.hops.last_mut().map(|(_, h)| h)
            }
            None => None,
        }
    }

    /// The histogram of hop `name`, if any response reported it.
    pub fn get_hop(&self, name: &str) -> Option<&Histogram<u64>> {
        self.hops
            .iter()
            .find(|(n, h)| n == name && !h.is_empty())
            .map(|(_, h)| h)
    }

    /// Requests recorded (answered or failed).
    pub fn requests(&self) -> u64 {
        self.ok + self.failed
    }

    /// Empties it, keeping its histograms' memory.
    pub fn clear(&mut self) {
        self.hist.iter_mut().for_each(Histogram::reset);
        self.status.clear();
        self.errors.clear();
        self.ok = 0;
        self.failed = 0;
        self.late = 0;
        // Names stay: the same servers report them again in the next interval.
        self.hops.iter_mut().for_each(|(_, h)| h.reset());
    }
}

/// Emptied intervals for reuse. An interval holds 1.3 MB of histograms: a worker taking
/// a new one every second, and the collector dropping it, had the allocator return
/// the memory and fault in fresh zeroed pages, about 2% of an h1 generator's CPU.
#[derive(Debug, Default)]
pub struct IntervalPool(Mutex<Vec<Interval>>);

/// Intervals [`IntervalPool`] keeps at most; the rest are freed.
const POOL_MAX: usize = 64;

impl IntervalPool {
    /// An empty interval: a reused one if any.
    pub fn take(&self) -> Interval {
        self.lock().pop().unwrap_or_default()
    }

    /// Empties `interval` and keeps it for reuse.
    pub fn give(&self, mut interval: Interval) {
        interval.clear();
        let mut pool = self.lock();
        if pool.len() < POOL_MAX {
            pool.push(interval);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Interval>> {
        // A panic elsewhere cannot leave a vector of empty intervals inconsistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Timing of one answered request.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it should have been sent (open loop) or was sent (closed loop).
    pub intended: Instant,
    /// When it could first have been sent: due, with a connection (HTTP/2: a stream) free
    /// to carry it. Later than `intended` only when the server held every connection.
    pub ready: Instant,
    /// When it was sent.
    pub sent: Instant,
    /// When the first response byte arrived.
    pub first_byte: Instant,
    /// When the response ended.
    pub done: Instant,
    /// Status code.
    pub status: u16,
}

/// A worker's recorder: the measured phase's current interval and the warmup totals.
#[derive(Debug, Default)]
pub struct Recorder {
    /// The interval being filled.
    pub current: Interval,
    /// Warmup phase (kept apart from the results).
    pub warmup: Interval,
    /// When the last measured-phase request ended (answered or failed): an open loop
    /// over capacity drains its backlog after the schedule ends, and the achieved rate
    /// must count that time.
    pub last_done: Option<Instant>,
}

impl Recorder {
    fn target(&mut self, warmup: bool, done: Instant) -> &mut Interval {
        if warmup {
            &mut self.warmup
        } else {
            self.last_done = Some(self.last_done.map_or(done, |d| d.max(done)));
            &mut self.current
        }
    }

    /// Records an answered request.
    pub fn ok(&mut self, s: Sample, warmup: bool) {
        let i = self.target(warmup, s.done);
        // Closed loop sends at the intended time, and a response whole in one read has
        // its first byte when it is done: then one subtraction serves several kinds.
        let service = s.done.saturating_duration_since(s.sent);
        let (latency, lag) = if s.sent == s.intended {
            (service, Duration::ZERO)
        } else {
            // Scheduler lag is the generator's own delay. Waiting for a connection the
            // server still holds is the server's: it shows in the latency, and must not
            // mark the run generator-bound.
            let lag = s.sent.saturating_duration_since(s.ready.max(s.intended));
            (s.done.saturating_duration_since(s.intended), lag)
        };
        let ttfb = if s.first_byte == s.done {
            service
        } else {
            s.first_byte.saturating_duration_since(s.sent)
        };
        i.record(Kind::Latency, latency);
        i.record(Kind::Service, service);
        i.record(Kind::Ttfb, ttfb);
        i.record(Kind::SchedulerLag, lag);
        if lag > Duration::from_millis(1) {
            i.late += 1;
        }
        *i.status.entry(s.status).or_default() += 1;
        i.ok += 1;
    }

    /// Records the `Server-Timing` entries of an answered request.
    pub fn hops(&mut self, timing: &crate::server_timing::ServerTiming, warmup: bool) {
        let i = if warmup {
            &mut self.warmup
        } else {
            &mut self.current
        };
        for (name, us) in timing.iter() {
            if let Some(h) = i.hop(name) {
                h.saturating_record(us.max(LOWEST_US));
            }
        }
    }

    /// Records a failed request.
    pub fn error(&mut self, class: &str, intended: Instant, now: Instant, warmup: bool) {
        let i = self.target(warmup, now);
        i.record(Kind::ErrorLatency, now.saturating_duration_since(intended));
        *i.errors.entry(class.to_string()).or_default() += 1;
        i.failed += 1;
    }

    /// Records a connection's set-up times.
    pub fn connection(&mut self, connect: Duration, tls: Option<Duration>) {
        self.current.record(Kind::Connect, connect);
        if let Some(t) = tls {
            self.current.record(Kind::Tls, t);
        }
    }

    /// Records a connection-level failure (no request involved).
    pub fn connection_error(&mut self, class: &str) {
        *self.current.errors.entry(class.to_string()).or_default() += 1;
    }

    /// Records a closed-loop request sent at `at` and answered `after` it in one read.
    #[cfg(test)]
    pub(crate) fn answered(&mut self, at: Instant, after: Duration, status: u16, warmup: bool) {
        let sample = Sample {
            intended: at,
            ready: at,
            sent: at,
            first_byte: at,
            done: at + after,
            status,
        };
        self.ok(sample, warmup);
    }

    /// Takes the current interval, leaving an empty one.
    pub fn take_interval(&mut self) -> Interval {
        std::mem::take(&mut self.current)
    }

    /// Takes the current interval, leaving `empty` (from an [`IntervalPool`]) instead.
    pub fn swap_interval(&mut self, empty: Interval) -> Interval {
        std::mem::replace(&mut self.current, empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_intervals_is_exact() {
        let t = Instant::now();
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for i in 0..1000u64 {
            let r = if i % 2 == 0 { &mut a } else { &mut b };
            r.answered(t, Duration::from_micros(100 + i), 200, false);
        }
        let mut merged = a.take_interval();
        merged.merge(&b.take_interval());
        let h = merged.get(Kind::Latency);
        assert_eq!(h.len(), 1000);
        assert_eq!(merged.status[&200], 1000);
        let p50 = h.value_at_quantile(0.5);
        assert!((599..=601).contains(&p50), "{p50}");
    }

    #[test]
    fn a_pooled_interval_comes_back_empty_with_its_memory() {
        let t = Instant::now();
        let pool = IntervalPool::default();
        let mut r = Recorder::default();
        r.answered(t, Duration::from_millis(5), 503, false);
        r.error("timeout", t, t + Duration::from_secs(1), false);
        let used = r.swap_interval(pool.take());
        assert_eq!((used.ok, used.failed), (1, 1));
        let counts = used.get(Kind::Latency).distinct_values();
        pool.give(used);
        let again = pool.take();
        assert_eq!(again.get(Kind::Latency).distinct_values(), counts);
        assert!(again.hist.iter().all(Histogram::is_empty));
        assert!(again.status.is_empty() && again.errors.is_empty());
        assert_eq!((again.ok, again.failed, again.late), (0, 0, 0));
        assert_eq!(again.get(Kind::Latency).max(), 0);
    }

    #[test]
    fn waiting_for_a_busy_connection_is_latency_not_scheduler_lag() {
        let t = Instant::now();
        let mut r = Recorder::default();
        let at = |us| t + Duration::from_micros(us);
        // Due at 0, every connection busy until 300 ms, sent 100 us after one was free.
        r.ok(
            Sample {
                intended: t,
                ready: at(300_000),
                sent: at(300_100),
                first_byte: at(301_000),
                done: at(301_000),
                status: 200,
            },
            false,
        );
        // Due at 0 with a connection free, sent 5 ms late: the generator's own lag.
        r.ok(
            Sample {
                intended: t,
                ready: t,
                sent: at(5_000),
                first_byte: at(6_000),
                done: at(6_000),
                status: 200,
            },
            false,
        );
        let i = r.take_interval();
        let lag = i.get(Kind::SchedulerLag);
        assert_eq!((lag.min(), lag.max()), (100, 5_003), "{lag:?}");
        assert_eq!(i.get(Kind::Latency).max(), 301_055);
        assert_eq!(i.late, 1);
    }

    #[test]
    fn warmup_is_kept_apart_and_errors_have_their_own_histogram() {
        let t = Instant::now();
        let mut r = Recorder::default();
        r.answered(t, Duration::from_millis(1), 200, true);
        r.error("timeout", t, t + Duration::from_secs(1), false);
        let i = r.take_interval();
        assert_eq!((i.ok, i.failed), (0, 1));
        assert_eq!(i.get(Kind::Latency).len(), 0);
        assert_eq!(i.get(Kind::ErrorLatency).len(), 1);
        assert_eq!(r.warmup.ok, 1);
    }
}
