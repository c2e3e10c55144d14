//! The open-loop schedule as a value: the i-th request's intended time is
//! `start + i / rate` (rule 1: an absolute schedule, so error never accumulates).

use std::time::{Duration, Instant};

/// A constant-rate schedule.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    nanos_per_request: f64,
}

impl Schedule {
    /// `rate` requests per second from `start`.
    pub fn new(start: Instant, rate: f64) -> Schedule {
        Schedule {
            start,
            nanos_per_request: 1e9 / rate,
        }
    }

    /// Intended send time of request `i` (0-based).
    pub fn at(&self, i: u64) -> Instant {
        self.start + Duration::from_nanos((i as f64 * self.nanos_per_request) as u64)
    }

    /// How many requests are due by `now` (the index of the first not yet due).
    pub fn due_by(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos() as f64;
        (elapsed / self.nanos_per_request).floor() as u64 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
