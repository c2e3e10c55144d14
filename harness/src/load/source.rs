//! Where a worker's connections take their next request from: a closed-loop budget (send
//! as soon as the previous one completes) or the open-loop queue filled from the schedule
//! on a coarse 1 ms tick (rule 3). Late work is never dropped (rule 2).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;

use super::schedule::{Schedule, Stripe};
use super::timer::PreciseTimer;
use super::Shared;

/// One request to send.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    /// Intended send time (open loop) or the time it was handed out (closed loop).
    pub intended: Instant,
    /// Whether it belongs to the warmup phase.
    pub warmup: bool,
    /// Its global index in the open-loop schedule of the whole load (all agents and
    /// workers); 0 in a closed loop.
    pub seq: u64,
}

/// The answer to "what next?".
pub enum Next {
    /// Send this.
    Go(Ticket),
    /// Nothing due yet: wait on [`Source::notified`].
    Wait,
    /// No more requests: finish in-flight ones and stop.
    Done,
}

/// Phase boundaries of the run, shared by all workers.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// Start of the warmup (and of the schedule).
    pub start: Instant,
    /// Start of the measured phase.
    pub measure: Instant,
    /// End of the measured phase, when bounded by time.
    pub end: Option<Instant>,
}

/// A worker's request source.
pub struct Source {
    phases: Phases,
    shared: Arc<Shared>,
    /// Measured-phase requests left for this worker (u64::MAX when bounded by time).
    remaining: Cell<u64>,
    open: Option<OpenQueue>,
}

/// What an open-loop source sends: its stripe of the whole schedule, up to a global
/// index when the load is bounded by a request count.
#[derive(Debug, Clone)]
pub struct OpenPart {
    /// The whole load's rate.
    pub rate: f64,
    /// This worker's share of the global indices.
    pub stripe: Stripe,
    /// Global indices from this one on are not sent (`-n` after the warmup).
    pub limit: Option<u64>,
}

struct OpenQueue {
    part: OpenPart,
    queue: RefCell<VecDeque<Ticket>>,
    notify: Notify,
    done: Cell<bool>,
}

impl Source {
    /// A closed-loop source.
    pub fn closed(phases: Phases, shared: Arc<Shared>, budget: Option<u64>) -> Rc<Source> {
        Rc::new(Source {
            phases,
            shared,
            remaining: Cell::new(budget.unwrap_or(u64::MAX)),
            open: None,
        })
    }

    /// An open-loop source; run [`Source::generate`] beside the connections.
    pub fn open(phases: Phases, shared: Arc<Shared>, part: OpenPart) -> Rc<Source> {
        Rc::new(Source {
            phases,
            shared,
            remaining: Cell::new(u64::MAX),
            open: Some(OpenQueue {
                part,
                queue: RefCell::new(VecDeque::new()),
                notify: Notify::new(),
                done: Cell::new(false),
            }),
        })
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed) || self.shared.abort.load(Ordering::Relaxed)
    }

    /// The next request, if any.
    pub fn next(&self) -> Next {
        match &self.open {
            None => {
                let now = Instant::now();
                if self.stopped() || self.phases.end.is_some_and(|e| now >= e) {
                    return Next::Done;
                }
                let warmup = now < self.phases.measure;
                if !warmup {
                    let left = self.remaining.get();
                    if left == 0 {
                        return Next::Done;
                    }
                    self.remaining.set(left - 1);
                }
                Next::Go(Ticket {
                    intended: now,
                    warmup,
                    seq: 0,
                })
            }
            Some(q) => {
                if self.stopped() {
                    return Next::Done;
                }
                if let Some(t) = q.queue.borrow_mut().pop_front() {
                    return Next::Go(t);
                }
                if q.done.get() {
                    Next::Done
                } else {
                    Next::Wait
                }
            }
        }
    }

    /// Whether tickets follow a schedule (open loop) rather than completions.
    pub fn is_open_loop(&self) -> bool {
        self.open.is_some()
    }

    /// Whether no more requests will come (does not consume one).
    pub fn is_done(&self) -> bool {
        if self.stopped() {
            return true;
        }
        match &self.open {
            None => {
                self.remaining.get() == 0 || self.phases.end.is_some_and(|e| Instant::now() >= e)
            }
            Some(q) => q.done.get() && q.queue.borrow().is_empty(),
        }
    }

    /// Resolves when open-loop work may be available.
    pub async fn notified(&self) {
        match &self.open {
            Some(q) => q.notify.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Requests queued but not yet sent (open loop).
    pub fn backlog(&self) -> usize {
        self.open.as_ref().map_or(0, |q| q.queue.borrow().len())
    }

    /// Queues every open-loop request due by `now` from `schedule`, starting at its
    /// request `*next`, each with its own intended time. Returns how many were queued and
    /// when the next one is due, or `None` once the schedule is over (end, budget or
    /// stop), after which [`Source::next`] answers `Done` when the queue is empty.
    pub fn fill(
        &self,
        schedule: &Schedule,
        next: &mut u64,
        now: Instant,
    ) -> (usize, Option<Instant>) {
        let Some(q) = &self.open else {
            return (0, None);
        };
        let mut pushed = 0;
        let over = 'fill: {
            if self.stopped() {
                break 'fill true;
            }
            loop {
                let seq = schedule.global(*next);
                let intended = schedule.at_global(seq);
                if intended > now {
                    break 'fill false;
                }
                if self.phases.end.is_some_and(|e| intended >= e)
                    || q.part.limit.is_some_and(|l| seq >= l)
                {
                    break 'fill true;
                }
                let warmup = intended < self.phases.measure;
                if !warmup {
                    let left = self.remaining.get();
                    if left == 0 {
                        break 'fill true;
                    }
                    self.remaining.set(left - 1);
                }
                q.queue.borrow_mut().push_back(Ticket {
                    intended,
                    warmup,
                    seq,
                });
                *next += 1;
                pushed += 1;
            }
        };
        if over {
            q.done.set(true);
            return (pushed, None);
        }
        (pushed, Some(schedule.at(*next)))
    }

    /// The open-loop schedule of this worker (None in a closed loop).
    pub fn schedule(&self) -> Option<Schedule> {
        let q = self.open.as_ref()?;
        Some(Schedule::striped(
            self.phases.start,
            q.part.rate,
            q.part.stripe.clone(),
        ))
    }

    /// Fills the open-loop queue from the schedule until the end, the budget or a stop.
    /// Wakes at the next intended time (precise timer, 50 us floor) and enqueues
    /// everything due, each with its own intended time.
    pub async fn generate(self: Rc<Self>) {
        let (Some(q), Some(schedule)) = (&self.open, self.schedule()) else {
            return;
        };
        let mut timer = PreciseTimer::new();
        let mut next = 0u64;
        loop {
            let (pushed, due) = self.fill(&schedule, &mut next, Instant::now());
            for _ in 0..pushed {
                q.notify.notify_one();
            }
            match due {
                Some(at) => timer.sleep_until(at).await,
                None => break,
            }
        }
        q.notify.notify_waiters();
    }
}
