//! The open-loop schedule as a value: the n-th request of the whole load is due at
//! `start + n / rate` (rule 1: an absolute schedule, so error never accumulates). A sender
//! (an agent, a worker thread of an agent) owns a [`Stripe`] of those global indices and
//! sends each at its global time, so any number of senders together send exactly the
//! schedule one sender would.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which global indices of the schedule one sender takes: `period * k + o` for every `k`
/// and every offset `o` (sorted, each below `period`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripe {
    period: u64,
    offsets: Arc<[u64]>,
}

/// Largest stripe pattern kept (offsets per period), so that weights and thread counts
/// cannot make the pattern grow without bound.
pub const MAX_PATTERN: usize = 1 << 20;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Stripe {
    /// Every index: the whole schedule.
    pub fn whole() -> Stripe {
        Stripe {
            period: 1,
            offsets: Arc::from([0u64]),
        }
    }

    /// Part `i` of `weights.len()` parts, taking indices in proportion to its weight,
    /// spread as evenly as the smooth weighted round-robin spreads them (weights 2,1,1
    /// give the pattern `0 1 2 0`). Equal weights are plain round-robin: part `i` of `N`
    /// takes `i, i+N, i+2N...`.
    pub fn weighted(weights: &[u32], i: usize) -> Stripe {
        let order = super::request::weighted_order(weights);
        let offsets: Vec<u64> = order
            .iter()
            .enumerate()
            .filter(|(_, &o)| o == i)
            .map(|(slot, _)| slot as u64)
            .collect();
        Stripe {
            period: order.len() as u64,
            offsets: Arc::from(offsets),
        }
    }

    /// The global index of this stripe's `k`-th request (0-based).
    pub fn nth(&self, k: u64) -> u64 {
        let len = self.offsets.len() as u64;
        (k / len) * self.period + self.offsets[(k % len) as usize]
    }

    /// How many of this stripe's indices are below the global index `g`.
    pub fn count_below(&self, g: u64) -> u64 {
        let len = self.offsets.len() as u64;
        let partial = self.offsets.partition_point(|&o| o < g % self.period) as u64;
        (g / self.period) * len + partial
    }

    /// Part `i` of `parts`, round-robin over this stripe's own sequence (its `i`-th,
    /// `i+parts`-th... request): how an agent shares its stripe among worker threads.
    pub fn split(&self, parts: usize, i: usize) -> Stripe {
        let len = self.offsets.len() as u64;
        let parts = parts.max(1) as u64;
        // The split repeats after lcm(len, parts) of this stripe's requests.
        let span = len / gcd(len, parts) * parts;
        let offsets: Vec<u64> = (i as u64..span)
            .step_by(parts as usize)
            .map(|k| self.nth(k))
            .collect();
        Stripe {
            period: span / len * self.period,
            offsets: Arc::from(offsets),
        }
    }

    /// Offsets per period.
    pub fn pattern_len(&self) -> usize {
        self.offsets.len()
    }
}

/// A constant-rate schedule of one sender's stripe.
#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    rate: f64,
    stripe: Stripe,
}

impl Schedule {
    /// The whole schedule at `rate` requests per second from `start`.
    pub fn new(start: Instant, rate: f64) -> Schedule {
        Schedule::striped(start, rate, Stripe::whole())
    }

    /// The part `stripe` of the schedule at `rate` (the whole load's) from `start`.
    pub fn striped(start: Instant, rate: f64, stripe: Stripe) -> Schedule {
        Schedule {
            start,
            rate,
            stripe,
        }
    }

    /// Intended send time of the global request `n`.
    pub fn at_global(&self, n: u64) -> Instant {
        // n/R rounded to the nanosecond: n * (1/R) truncated would put request R*d a
        // nanosecond before the end of a d-second run, and send one request too many.
        self.start + Duration::from_nanos((n as f64 * 1e9 / self.rate).round() as u64)
    }

    /// The global index of this sender's request `i` (0-based).
    pub fn global(&self, i: u64) -> u64 {
        self.stripe.nth(i)
    }

    /// Intended send time of this sender's request `i` (0-based).
    pub fn at(&self, i: u64) -> Instant {
        self.at_global(self.global(i))
    }

    /// The first global index due at or after `t` (how many requests of the whole load
    /// are due before it).
    pub fn first_global_at(&self, t: Instant) -> u64 {
        let elapsed = t.saturating_duration_since(self.start).as_nanos() as f64;
        let mut n = (elapsed * self.rate / 1e9).floor() as u64;
        // The float estimate may be one off either way; the times themselves decide.
        while n > 0 && self.at_global(n - 1) >= t {
            n -= 1;
        }
        while self.at_global(n) < t {
            n += 1;
        }
        n
    }

    /// How many of this sender's requests are due by `now` (the index of the first not
    /// yet due).
    pub fn due_by(&self, now: Instant) -> u64 {
        // Due: intended at or before `now`, by the same rounding as `at_global`.
        let global = self.first_global_at(now + Duration::from_nanos(1));
        self.stripe.count_below(global)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_d_seconds_at_r_holds_exactly_r_times_d_requests() {
        let t0 = Instant::now();
        for (rate, secs) in [(900.0, 3u64), (3000.0, 7), (333.0, 30), (1e6, 2), (7.0, 1)] {
            let s = Schedule::new(t0, rate);
            let end = t0 + Duration::from_secs(secs);
            let expected = (rate * secs as f64) as u64;
            assert_eq!(s.first_global_at(end), expected, "{rate}/s for {secs} s");
            assert!(s.at_global(expected - 1) < end && s.at_global(expected) >= end);
        }
    }

    #[test]
    fn schedule_is_absolute_and_does_not_drift() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 3000.0);
        assert_eq!(s.at(0), t0);
        assert_eq!(s.at(3000), t0 + Duration::from_secs(1));
        // After a million requests the error is below a microsecond.
        let drift = s.at(1_000_000).duration_since(t0).as_secs_f64() - 1_000_000.0 / 3000.0;
        assert!(drift.abs() < 1e-6, "{drift}");
        assert_eq!(s.due_by(t0), 1);
        assert_eq!(s.due_by(t0 + Duration::from_millis(1)), 4);
        assert_eq!(s.first_global_at(t0), 0);
        assert_eq!(s.first_global_at(t0 + Duration::from_secs(1)), 3000);
        assert_eq!(s.first_global_at(t0 + Duration::from_nanos(1)), 1);
    }

    #[test]
    fn a_stripe_keeps_global_times() {
        let t0 = Instant::now();
        let s = Schedule::striped(t0, 1000.0, Stripe::weighted(&[1, 1, 1], 2));
        assert_eq!(s.global(0), 2);
        assert_eq!(s.global(1), 5);
        assert_eq!(s.at(1), t0 + Duration::from_millis(5));
        assert_eq!(s.due_by(t0 + Duration::from_millis(5)), 2);
        assert_eq!(s.due_by(t0 + Duration::from_millis(4)), 1);
        assert_eq!(Stripe::weighted(&[2, 1, 1], 0).offsets[..], [0, 3]);
    }

    /// Every index below `limit` taken by the stripes, in order per stripe.
    fn taken(stripes: &[Stripe], limit: u64) -> Vec<u64> {
        let mut all = Vec::new();
        for s in stripes {
            let mine: Vec<u64> = (0..).map(|k| s.nth(k)).take_while(|&g| g < limit).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "{s:?} not increasing");
            assert_eq!(s.count_below(limit), mine.len() as u64, "{s:?}");
            all.extend(mine);
        }
        all.sort_unstable();
        all
    }

    #[test]
    fn agents_and_their_threads_together_send_every_index_once() {
        let weight_sets: Vec<Vec<u32>> = (1..=8u32)
            .map(|n| vec![1; n as usize])
            .chain([
                vec![2, 1, 1],
                vec![3, 1],
                vec![5, 3, 2],
                vec![1, 7],
                vec![4, 4, 2],
                vec![1, 2, 3, 4, 5],
            ])
            .collect();
        let limit = 2_000;
        let whole: Vec<u64> = (0..limit).collect();
        for weights in &weight_sets {
            let total: u32 = weights.iter().sum();
            let agents: Vec<Stripe> = (0..weights.len())
                .map(|i| Stripe::weighted(weights, i))
                .collect();
            assert_eq!(taken(&agents, limit), whole, "weights {weights:?}");
            for (i, a) in agents.iter().enumerate() {
                // Each agent's share of any stretch is its weight's, within one period.
                let share = a.count_below(limit) as f64 / limit as f64;
                let expect = f64::from(weights[i]) / f64::from(total);
                assert!(
                    (share - expect).abs() <= f64::from(total) / limit as f64,
                    "{weights:?} {i}"
                );
                for threads in 1..=5 {
                    let parts: Vec<Stripe> = (0..threads).map(|t| a.split(threads, t)).collect();
                    assert_eq!(
                        taken(&parts, limit),
                        taken(std::slice::from_ref(a), limit),
                        "{weights:?} agent {i} x{threads}"
                    );
                }
            }
        }
    }
}
