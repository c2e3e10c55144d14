//! The load engine. One current-thread runtime per worker thread, each owning its
//! connections, its recorder and its share of the schedule; no locks on the request
//! path. Workers hand one interval of recordings per second to the collector, which
//! merges them exactly into per-second intervals and totals.

pub mod conn;
pub mod h1;
pub mod h2;
pub mod request;
pub mod room;
pub mod schedule;
mod seconds;
pub mod source;
pub mod timer;
pub mod upgrade;
mod uring;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::model::{LoadConfig, LoadModel};
use crate::record::hlog::TimedInterval;
use crate::record::{Interval, IntervalPool, Recorder};
use crate::tls::{ClientTls, TlsConfigError};
use conn::{ConnCtx, Negotiation};
use schedule::{Schedule, Stripe};
use seconds::Seconds;
use source::{OpenPart, Phases, Source};

/// Flags and counters shared by all workers.
#[derive(Debug, Default)]
pub struct Shared {
    /// Ctrl-C / SIGTERM: stop sending, drain briefly.
    pub stop: AtomicBool,
    /// Every connection is failing: give up.
    pub abort: AtomicBool,
    /// At least one connection was established.
    pub connected: AtomicBool,
    /// Connection attempts that failed.
    pub connect_failures: AtomicU64,
    /// Connections configured (all workers).
    pub connections: usize,
    /// A worker could not make its io_uring ring and ran on tokio.
    pub uring_fallback: AtomicBool,
    /// Emptied intervals: workers take their next second from it, the collector gives
    /// back what it merged.
    pub pool: IntervalPool,
}

impl Shared {
    /// Counts a failed connection attempt; gives the run up (and says so) when every
    /// attempt has failed from the start, since it cannot measure anything.
    pub fn connect_failed(&self) -> bool {
        let total = self.connect_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let hopeless =
            !self.connected.load(Ordering::Relaxed) && total >= 3 * self.connections as u64;
        if hopeless {
            self.abort.store(true, Ordering::Relaxed);
        }
        hopeless
    }
}

/// Messages from workers to the collector.
#[derive(Debug)]
pub enum Report {
    /// One second of the measured phase from one worker. A worker reports its seconds
    /// in order, each once.
    Interval {
        /// Which worker.
        worker: usize,
        /// Seconds from the start of the measured phase.
        index: u64,
        /// What it recorded.
        data: Interval,
    },
    /// A connection was established with this outcome.
    Connection(Negotiation),
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS as the client saw it.
    ServerMaxStreams(u64),
    /// A worker finished: its warmup totals and its last (partial) interval.
    Done {
        /// Which worker.
        worker: usize,
        /// Warmup totals.
        warmup: Interval,
        /// Index and data of the last interval.
        last: (u64, Interval),
        /// When its last request completed.
        finished: Instant,
    },
}

/// Live numbers for a progress display.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Seconds since the measured phase started (negative in warmup).
    pub elapsed: f64,
    /// Measured requests so far.
    pub requests: u64,
    /// Failed requests so far.
    pub errors: u64,
    /// Requests in the last complete second.
    pub last_second: u64,
}

/// Everything a run recorded.
#[derive(Debug)]
pub struct RunOutput {
    /// Wall-clock start of the measured phase (label for logs).
    pub started: SystemTime,
    /// Per-second intervals of the measured phase, merged across workers.
    pub intervals: Vec<TimedInterval>,
    /// All intervals together.
    pub total: Interval,
    /// Warmup totals.
    pub warmup: Interval,
    /// Negotiation outcomes and their connection counts.
    pub negotiated: BTreeMap<Negotiation, u64>,
    /// Smallest stream limit any connection saw.
    pub server_max_streams: Option<u64>,
    /// Length of the measured phase.
    pub duration: Duration,
    /// Generator CPU time over the run / (wall time x threads).
    pub cpu: f64,
    /// Stopped by a signal.
    pub interrupted: bool,
    /// Given up because every connection failed.
    pub aborted: bool,
    /// The I/O engine the connections ran on: `io_uring`, `tokio`, or `io_uring+tokio`
    /// when some workers could not make their ring.
    pub io_engine: &'static str,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// TLS configuration is invalid.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// A request could not be prepared.
    #[error("{0}")]
    Request(String),
    /// A worker thread could not start.
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
    /// The I/O engine asked for cannot run this load here.
    #[error("{0}")]
    Engine(String),
}

/// User + system CPU seconds of this process (from /proc/self/stat, in clock ticks of
/// 1/100 s as on every Linux configuration the lab runs on).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// When the schedule starts, on the monotonic clock and on the wall clock of the
/// measured phase's start: the shared `start_at` when agents share the load (in the past
/// when this agent starts late: its overdue requests go at once, measured from their
/// intended times), else in 20 ms.
fn start_times(cfg: &LoadConfig) -> (Instant, SystemTime) {
    let (now, wall) = (Instant::now(), SystemTime::now());
    match cfg.start_at {
        Some(t0) => {
            let start = match t0.duration_since(wall) {
                Ok(ahead) => now + ahead,
                Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
            };
            (start, t0 + cfg.warmup)
        }
        None => {
            let lead = Duration::from_millis(20);
            (now + lead, wall + lead + cfg.warmup)
        }
    }
}

fn split(total: usize, parts: usize, i: usize) -> usize {
    total / parts + usize::from(i < total % parts)
}

/// Runs the load described by `cfg` quietly until it ends or `stop` is raised (a flag
/// the caller shares, such as the signal handlers').
pub fn run_until(cfg: &LoadConfig, stop: &AtomicBool) -> Result<RunOutput, LoadError> {
    let shared = Arc::new(Shared {
        connections: cfg.own_connections(),
        ..Shared::default()
    });
    let watch = shared.clone();
    run(cfg, shared, |_| {
        if stop.load(Ordering::Relaxed) {
            watch.stop.store(true, Ordering::Relaxed);
        }
    })
}

/// Runs the load described by `cfg`; `shared.stop` interrupts it. `on_progress` is
/// called about five times a second from the calling thread.
pub fn run(
    cfg: &LoadConfig,
    shared: Arc<Shared>,
    mut on_progress: impl FnMut(&Progress),
) -> Result<RunOutput, LoadError> {
    let tls = cfg.tls.as_ref().map(ClientTls::build).transpose()?;
    let requests = request::prepare(cfg).map_err(LoadError::Request)?;
    let io_engine = uring::choose(cfg).map_err(LoadError::Engine)?;
    let connections = cfg.own_connections();
    let threads = cfg.threads.max(1).min(connections.max(1));
    let (start, started) = start_times(cfg);
    let phases = Phases {
        start,
        measure: start + cfg.warmup,
        end: cfg.duration.map(|d| start + cfg.warmup + d),
    };
    let cfg = Arc::new(cfg.clone());
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    let stripe = match &cfg.agent {
        Some(a) => Stripe::weighted(&a.weights, a.index),
        None => Stripe::whole(),
    };
    // Closed loop: this agent's part of -n. Open loop: -n bounds the global indices.
    let closed_budget = cfg.requests.map(|n| match &cfg.agent {
        Some(a) => a.part(n),
        None => n,
    });
    for i in 0..threads {
        let plan = WorkerPlan {
            index: i,
            cfg: cfg.clone(),
            tls: tls.clone(),
            requests: requests.clone(),
            connections: split(connections, threads, i),
            budget: closed_budget.map(|n| split(n as usize, threads, i) as u64),
            open: match cfg.model {
                LoadModel::Open { rate } => Some(OpenPart {
                    rate,
                    stripe: stripe.split(threads, i),
                    limit: cfg.requests.map(|n| {
                        Schedule::new(phases.start, rate).first_global_at(phases.measure) + n
                    }),
                }),
                LoadModel::Closed => None,
            },
            phases,
            shared: shared.clone(),
            io_uring: io_engine == "io_uring",
        };
        let tx = tx.clone();
        let h = std::thread::Builder::new()
            .name(format!("h2lab-worker-{i}"))
            .spawn(move || worker(plan, tx))
            .map_err(LoadError::Thread)?;
        handles.push(h);
    }
    drop(tx);

    let cpu_start = cpu_seconds();
    let wall_start = Instant::now();
    let mut seconds = Seconds::new(threads, &shared.pool);
    let mut warmup = Interval::default();
    let mut negotiated = BTreeMap::new();
    let mut server_max_streams: Option<u64> = None;
    let mut finished = phases.measure;
    let mut progress = Progress::default();
    let mut last_tick = Instant::now();
    let mut stopped_at: Option<Instant> = None;
    let mut announced = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Report::Interval {
                worker,
                index,
                data,
            }) => {
                progress.requests += data.requests();
                progress.errors += data.failed;
                seconds.add(worker, index, data, false);
            }
            Ok(Report::Connection(n)) => *negotiated.entry(n).or_insert(0) += 1,
            Ok(Report::ServerMaxStreams(n)) => {
                server_max_streams = Some(server_max_streams.map_or(n, |m| m.min(n)));
            }
            Ok(Report::Done {
                worker,
                warmup: w,
                last: (k, data),
                finished: f,
            }) => {
                warmup.merge(&w);
                progress.requests += data.requests();
                progress.errors += data.failed;
                seconds.add(worker, k, data, true);
                finished = finished.max(f);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if shared.stop.load(Ordering::Relaxed) && stopped_at.is_none() {
            stopped_at = Some(Instant::now());
        }
        if !announced && Instant::now() >= phases.measure {
            announced = true;
            tracing::info!("measured phase started");
        }
        if last_tick.elapsed() >= Duration::from_millis(200) {
            last_tick = Instant::now();
            let now = Instant::now();
            progress.elapsed = if now >= phases.measure {
                now.duration_since(phases.measure).as_secs_f64()
            } else {
                -(phases.measure.duration_since(now).as_secs_f64())
            };
            let k = progress.elapsed.max(0.0) as u64;
            progress.last_second = k.checked_sub(1).map_or(0, |p| seconds.requests(p));
            on_progress(&progress);
        }
        if stopped_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            break; // workers that have not drained by now are abandoned
        }
    }
    let interrupted = shared.stop.load(Ordering::Relaxed);
    if !interrupted {
        for h in handles {
            let _ = h.join();
        }
    }
    let wall = wall_start.elapsed().as_secs_f64().max(1e-9);
    let cpu = (cpu_seconds() - cpu_start) / (wall * threads as f64);
    // Up to the last completion: an open loop over capacity sends its backlog after the
    // schedule ends, and a rate over the scheduled time alone would claim the target.
    let duration = match phases.end {
        Some(end) if !interrupted => finished.max(end).duration_since(phases.measure),
        // Interrupted: workers still draining at the deadline were abandoned, so the
        // stop itself bounds the time too.
        _ => finished
            .max(stopped_at.unwrap_or(finished))
            .max(phases.measure)
            .duration_since(phases.measure),
    };
    let (intervals, total) = seconds.finish(duration);
    Ok(RunOutput {
        started,
        intervals,
        total,
        warmup,
        negotiated,
        server_max_streams,
        duration,
        cpu,
        interrupted,
        aborted: shared.abort.load(Ordering::Relaxed),
        io_engine: if shared.uring_fallback.load(Ordering::Relaxed) {
            "io_uring+tokio"
        } else {
            io_engine
        },
    })
}

struct WorkerPlan {
    /// Which worker (0..threads), for its reports.
    index: usize,
    cfg: Arc<LoadConfig>,
    tls: Option<ClientTls>,
    requests: Vec<request::Prepared>,
    connections: usize,
    budget: Option<u64>,
    /// Open loop: this worker's part of the schedule.
    open: Option<OpenPart>,
    phases: Phases,
    shared: Arc<Shared>,
    /// Run on the io_uring engine (HTTP/1.1 over cleartext TCP).
    io_uring: bool,
}

impl WorkerPlan {
    /// This worker's request source: open loop at its share of the rate, or closed.
    fn source(&self) -> Rc<Source> {
        match &self.open {
            Some(part) => Source::open(self.phases, self.shared.clone(), part.clone()),
            None => Source::closed(self.phases, self.shared.clone(), self.budget),
        }
    }
}

fn pin_current_thread(cores: &[usize]) {
    let mut set = nix::sched::CpuSet::new();
    for &c in cores {
        let _ = set.set(c);
    }
    if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
        tracing::warn!(error = %e, ?cores, "cannot pin the generator thread");
    }
}

fn worker(plan: WorkerPlan, tx: mpsc::Sender<Report>) {
    if let Some(cores) = &plan.cfg.cpu_affinity {
        pin_current_thread(cores);
    }
    if plan.io_uring {
        // The ring belongs to the thread that made it (single issuer).
        let payloads = plan.requests.iter().map(|r| r.h1.clone()).collect();
        match uring::Ring::new(plan.connections, plan.cfg.addr, plan.cfg.timeout, payloads) {
            Ok(ring) => return uring::run(plan, ring, tx),
            Err(e) => {
                tracing::warn!(error = %e, "io_uring ring failed; this worker uses tokio");
                plan.shared.uring_fallback.store(true, Ordering::Relaxed);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("worker runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let source = plan.source();
        let recorder = Rc::new(RefCell::new(Recorder::default()));
        let ctx = Rc::new(ConnCtx {
            cfg: plan.cfg.clone(),
            tls: plan.tls,
            requests: Rc::new(plan.requests),
            next_request: std::cell::Cell::new(0),
            source: source.clone(),
            recorder: recorder.clone(),
            timeout: plan.cfg.timeout,
            streams: plan.cfg.streams.max(1),
            shared: plan.shared.clone(),
            reports: tx.clone(),
            room: RefCell::new(room::Room::new(plan.phases.start)),
        });
        tokio::time::sleep_until(plan.phases.start.into()).await;
        if plan.open.is_some() {
            tokio::task::spawn_local(source.clone().generate());
        }
        // Hand over one interval per second of the measured phase.
        let flusher = {
            let (recorder, tx) = (recorder.clone(), tx.clone());
            let (measure, worker, shared) = (plan.phases.measure, plan.index, plan.shared.clone());
            tokio::task::spawn_local(async move {
                let mut k = 0u64;
                loop {
                    tokio::time::sleep_until((measure + Duration::from_secs(k + 1)).into()).await;
                    let data = recorder.borrow_mut().swap_interval(shared.pool.take());
                    let _ = tx.send(Report::Interval {
                        worker,
                        index: k,
                        data,
                    });
                    k += 1;
                }
            })
        };
        let conns: Vec<_> = (0..plan.connections)
            .map(|_| tokio::task::spawn_local(conn::run(ctx.clone())))
            .collect();
        for c in conns {
            let _ = c.await;
        }
        flusher.abort();
        let k = Instant::now()
            .saturating_duration_since(plan.phases.measure)
            .as_secs();
        let mut r = recorder.borrow_mut();
        let warmup = std::mem::take(&mut r.warmup);
        let last = r.take_interval();
        let _ = tx.send(Report::Done {
            worker: plan.index,
            warmup,
            last: (k, last),
            finished: r.last_done.unwrap_or(plan.phases.measure),
        });
    });
}
