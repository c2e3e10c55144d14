//! The collector's seconds: each worker's intervals merged per second of the measured
//! phase and into the total. A second is encoded for the interval log as soon as every
//! worker has reported it, so that memory grows by kilobytes per second of the run, not
//! by the 1.3 MB of a live interval.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::record::hlog::TimedInterval;
use crate::record::{Interval, IntervalPool};

/// Per-second merging for `workers` workers.
pub struct Seconds<'a> {
    pool: &'a IntervalPool,
    /// Seconds some worker has not reported yet.
    open: BTreeMap<u64, Interval>,
    /// Per worker, the next second it will report; `None` once it is done.
    next: Vec<Option<u64>>,
    /// Seconds every worker has reported, encoded.
    closed: Vec<(u64, TimedInterval)>,
    requests: BTreeMap<u64, u64>,
    total: Interval,
}

impl<'a> Seconds<'a> {
    /// Nothing reported yet; emptied intervals go back to `pool`.
    pub fn new(workers: usize, pool: &'a IntervalPool) -> Seconds<'a> {
        Seconds {
            pool,
            open: BTreeMap::new(),
            next: vec![Some(0); workers],
            closed: Vec::new(),
            requests: BTreeMap::new(),
            total: Interval::default(),
        }
    }

    /// Adds `worker`'s second `index`; `last` when the worker has finished with it.
    pub fn add(&mut self, worker: usize, index: u64, data: Interval, last: bool) {
        *self.requests.entry(index).or_default() += data.requests();
        self.total.merge(&data);
        self.open
            .entry(index)
            .or_insert_with(|| self.pool.take())
            .merge(&data);
        self.pool.give(data);
        if let Some(next) = self.next.get_mut(worker) {
            *next = if last { None } else { Some(index + 1) };
        }
        let reported = self
            .next
            .iter()
            .flatten()
            .min()
            .copied()
            .unwrap_or(u64::MAX);
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() >= reported {
                break;
            }
            let (k, data) = entry.remove_entry();
            self.close(k, data);
        }
    }

    /// Requests recorded in second `index` so far.
    pub fn requests(&self, index: u64) -> u64 {
        self.requests.get(&index).copied().unwrap_or(0)
    }

    fn close(&mut self, k: u64, data: Interval) {
        let start = Duration::from_secs(k);
        let interval = TimedInterval::new(start, Duration::from_secs(1), &data);
        self.closed.push((k, interval));
        self.pool.give(data);
    }

    /// The seconds, in order (the last one cut at `duration`), and the total. Seconds a
    /// worker never reported (it was abandoned after a stop) are included as they are.
    pub fn finish(mut self, duration: Duration) -> (Vec<TimedInterval>, Interval) {
        while let Some((k, data)) = self.open.pop_first() {
            self.close(k, data);
        }
        self.closed.sort_by_key(|(k, _)| *k);
        let intervals = self
            .closed
            .into_iter()
            .map(|(_, mut interval)| {
                interval.length = duration
                    .saturating_sub(interval.start)
                    .min(Duration::from_secs(1))
                    .max(Duration::from_millis(1));
                interval
            })
            .collect();
        (intervals, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Kind, Recorder};
    use std::time::Instant;

    fn second(requests: u64, latency_us: u64) -> Interval {
        let t = Instant::now();
        let mut r = Recorder::default();
        for _ in 0..requests {
            r.answered(t, Duration::from_micros(latency_us), 200, false);
        }
        r.take_interval()
    }

    #[test]
    fn a_second_closes_when_every_worker_reported_it_and_totals_are_exact() {
        let pool = IntervalPool::default();
        let mut s = Seconds::new(2, &pool);
        s.add(0, 0, second(3, 100), false);
        s.add(0, 1, second(4, 200), false);
        // Worker 1 has not reported second 0: nothing is closed yet.
        assert!(s.closed.is_empty());
        s.add(1, 0, second(5, 300), false);
        assert_eq!(s.closed.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [0]);
        assert_eq!(s.requests(1), 4);
        // Worker 1 finishes in second 2, before worker 0 does: second 1 is complete.
        s.add(1, 2, second(1, 400), true);
        assert_eq!(s.closed.len(), 2);
        s.add(0, 2, second(2, 500), true);
        assert_eq!(s.closed.len(), 3);
        let (intervals, total) = s.finish(Duration::from_millis(2500));
        let lengths: Vec<_> = intervals.iter().map(|i| i.length.as_millis()).collect();
        assert_eq!(lengths, [1000, 1000, 500]);
        let counts: Vec<_> = intervals
            .iter()
            .map(|i| i.histogram(Kind::Latency).map_or(0, |h| h.len()))
            .collect();
        assert_eq!(counts, [8, 4, 3]);
        assert_eq!(total.ok, 15);
        let h = total.get(Kind::Latency);
        assert_eq!((h.min(), h.max(), h.len()), (100, 500, 15));
    }

    #[test]
    fn seconds_of_an_abandoned_worker_still_count() {
        let pool = IntervalPool::default();
        let mut s = Seconds::new(2, &pool);
        s.add(0, 0, second(2, 100), false);
        s.add(0, 1, second(2, 100), true);
        // Worker 1 never reports (abandoned after a stop).
        let (intervals, total) = s.finish(Duration::from_secs(2));
        assert_eq!(intervals.len(), 2);
        assert_eq!(total.ok, 4);
    }
}
