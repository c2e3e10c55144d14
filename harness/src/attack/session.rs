//! One attack session, as `h2lab attack` and the scenario `attack` axis run it: the
//! legitimate open-loop load calm, then beside the attack, then after it; the target's
//! process groups sampled throughout; every attacking connection's ending; the judgement.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::driver::{self, ConnReport, Spec};
use super::judge::{self, Bounds, Judgement, Phase};
use super::procstat::{self, Sample};
use super::recipe::Request;
use super::{Kind, Wire};
use crate::load::{self, LoadError};
use crate::model::LoadConfig;

/// How an attack is sent and judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Attacking connections (default: 100 for slowloris, slow-post and connection
    /// flood, else 1).
    pub connections: Option<usize>,
    /// Units per second over all attacking connections (default: one per connection
    /// every 2 s for slowloris and slow-post, else as fast as the sockets take them).
    pub rate: Option<f64>,
    /// Most units per attacking connection.
    pub max_units: u64,
    /// Path of the attack's requests (default: the legitimate load's first).
    pub path: Option<String>,
    /// Length of the calm and the attacked phase.
    pub phase: Duration,
    /// Length of the phase after the attack.
    pub after: Duration,
    /// What counts as held.
    pub bounds: Bounds,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            connections: None,
            rate: None,
            max_units: 10_000_000,
            path: None,
            phase: Duration::from_secs(5),
            after: Duration::from_secs(1),
            bounds: Bounds::default(),
        }
    }
}

/// Why a session could not run.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The target is not on loopback.
    #[error("attacks go to loopback (127.0.0.0/8, ::1) only, not {0}")]
    NotLoopback(IpAddr),
    /// Too few or too many attacking connections.
    #[error("between 1 and 100000 attacking connections, not {0}")]
    Connections(usize),
    /// A negative or infinite rate.
    #[error("an attack rate of 0 or more, not {0}")]
    Rate(f64),
    /// The client TLS for the attack could not be built.
    #[error("attack TLS: {0}")]
    Tls(String),
    /// The legitimate load failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The attack could not start or run.
    #[error("cannot run the attack: {0}")]
    Io(#[from] std::io::Error),
    /// The attack thread panicked.
    #[error("the attack thread panicked")]
    Panicked,
}

/// What `h2lab attack` writes (`"schema": "h2lab.attack/v1"`).
#[derive(Debug, Serialize)]
pub struct AttackReport {
    /// Always `h2lab.attack/v1`.
    pub schema: &'static str,
    /// The attack.
    pub kind: String,
    /// The target URL.
    pub url: String,
    /// Attacking connections, rate, bound and unit.
    pub attack: AttackSettings,
    /// The legitimate load before, during and after the attack.
    pub calm: Phase,
    /// Under attack.
    pub attacked: Phase,
    /// After the attack.
    pub after: Phase,
    /// Peak RSS and CPU (cores) of the target's group, calm and attacked.
    pub target: Option<TargetUse>,
    /// Every attacking connection.
    pub connections: Vec<ConnReport>,
    /// Held or not, and why.
    pub judgement: Judgement,
    /// The legitimate load's full result under attack (for a scenario cell's result.json).
    #[serde(skip)]
    pub attacked_result: Option<crate::model::ResultV1>,
}

/// The attack's settings, for the record.
#[derive(Debug, Serialize)]
pub struct AttackSettings {
    /// Connections.
    pub connections: usize,
    /// Units per second (0: unpaced).
    pub rate: f64,
    /// Most units per connection.
    pub max_units: u64,
    /// What a unit is.
    pub unit: &'static str,
    /// Units written, all connections.
    pub units_sent: u64,
    /// Bytes written, all connections.
    pub bytes_sent: u64,
}

/// The target's resource use.
#[derive(Debug, Serialize)]
pub struct TargetUse {
    /// The process groups sampled (every process of the topology), summed.
    pub groups: Vec<i32>,
    /// Peak RSS while calm, bytes.
    pub calm_peak_rss: u64,
    /// Peak RSS under attack, bytes.
    pub attacked_peak_rss: u64,
    /// CPU while calm, cores.
    pub calm_cpu: f64,
    /// CPU under attack, cores.
    pub attacked_cpu: f64,
    /// Every sample (10 a second).
    pub samples: Vec<Sample>,
}

/// The attack `kind` against the legitimate load's target, as `opts` say.
pub fn spec(kind: Kind, cfg: &LoadConfig, opts: &Options) -> Result<Spec, SessionError> {
    if !cfg.addr.ip().is_loopback() {
        return Err(SessionError::NotLoopback(cfg.addr.ip()));
    }
    let many = matches!(
        kind,
        Kind::Slowloris | Kind::SlowPost | Kind::ConnectionFlood
    );
    let connections = opts.connections.unwrap_or(if many { 100 } else { 1 });
    if connections == 0 || connections > 100_000 {
        return Err(SessionError::Connections(connections));
    }
    let rate = opts.rate.unwrap_or(match kind {
        Kind::Slowloris | Kind::SlowPost => connections as f64 / 2.0,
        _ => 0.0,
    });
    if !(rate.is_finite() && rate >= 0.0) {
        return Err(SessionError::Rate(rate));
    }
    let tls = match &cfg.tls {
        None => None,
        Some(t) => {
            let mut t = t.clone();
            t.alpn = match kind.wire() {
                Wire::H2 => vec!["h2".into()],
                Wire::H1 => vec!["http/1.1".into()],
                Wire::Connections => t.alpn,
            };
            Some(crate::tls::ClientTls::build(&t).map_err(|e| SessionError::Tls(e.to_string()))?)
        }
    };
    Ok(Spec {
        kind,
        addr: cfg.addr,
        request: Request {
            scheme: cfg.scheme.clone(),
            authority: cfg.authority.clone(),
            path: opts
                .path
                .clone()
                .unwrap_or_else(|| cfg.targets[0].path.clone()),
        },
        tls,
        connections,
        rate,
        max_units: opts.max_units,
        duration: opts.phase,
    })
}

/// One phase of the legitimate load.
fn phase(
    cfg: &LoadConfig,
    length: Duration,
    stop: &AtomicBool,
) -> Result<(Phase, crate::model::ResultV1), LoadError> {
    let mut cfg = cfg.clone();
    cfg.duration = Some(length);
    let run = load::run_until(&cfg, stop)?;
    let r = crate::output::result::build(&cfg, &run);
    let p = Phase {
        p50_us: r.latency_us.p50 as f64,
        p99_us: r.latency_us.p99 as f64,
        p999_us: r.latency_us.p999 as f64,
        requests: r.summary.requests,
        errors: r.summary.errors,
        achieved_rps: r.summary.rps,
        target_rps: r.summary.target_rps.unwrap_or(0.0),
    };
    Ok((p, r))
}

/// Samples process groups ten times a second until finished.
struct Sampler {
    groups: Vec<i32>,
    samples: Arc<Mutex<Vec<Sample>>>,
    done: Arc<AtomicBool>,
    t0: Instant,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(groups: Vec<i32>) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let (s, d, g) = (samples.clone(), done.clone(), groups.clone());
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                let t = t0.elapsed().as_secs_f64();
                let sample = g
                    .iter()
                    .map(|p| procstat::sample_group(*p, t))
                    .reduce(|a, b| Sample {
                        t,
                        rss_bytes: a.rss_bytes + b.rss_bytes,
                        cpu_seconds: a.cpu_seconds + b.cpu_seconds,
                        processes: a.processes + b.processes,
                    });
                if let Some(sample) = sample {
                    s.lock().map(|mut v| v.push(sample)).ok();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Sampler {
            groups,
            samples,
            done,
            t0,
            thread: Some(thread),
        }
    }

    fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    fn finish(mut self) -> Vec<Sample> {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Runs one session: `cfg` is the legitimate open-loop load (its duration is replaced by
/// the phases'), `groups` the target's process groups to sample (none: not sampled).
pub fn run(
    kind: Kind,
    cfg: &LoadConfig,
    opts: &Options,
    groups: &[i32],
    stop: &AtomicBool,
) -> Result<AttackReport, SessionError> {
    let spec = spec(kind, cfg, opts)?;
    let sampler = (!groups.is_empty()).then(|| Sampler::start(groups.to_vec()));
    let calm_from = sampler.as_ref().map_or(0.0, Sampler::now);
    let calm = phase(cfg, opts.phase, stop)?.0;
    let attack_from = sampler.as_ref().map_or(0.0, Sampler::now);
    let attack_stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let (spec, stop) = (spec.clone(), attack_stop.clone());
        std::thread::Builder::new()
            .name("h2lab-attack".into())
            .spawn(move || driver::run(&spec, &stop))?
    };
    let attacked = phase(cfg, opts.phase, stop);
    attack_stop.store(true, Ordering::Relaxed);
    let attack_to = sampler.as_ref().map_or(0.0, Sampler::now);
    let connections = attacker.join().map_err(|_| SessionError::Panicked)??;
    let (attacked, attacked_result) = attacked?;
    let after = phase(cfg, opts.after, stop)?.0;
    let target = sampler.map(|s| {
        let groups = s.groups.clone();
        let samples = s.finish();
        let calm_use = procstat::summarise(&samples, calm_from, attack_from).unwrap_or_default();
        let attacked_use =
            procstat::summarise(&samples, attack_from, attack_to).unwrap_or_default();
        TargetUse {
            groups,
            calm_peak_rss: calm_use.0,
            attacked_peak_rss: attacked_use.0,
            calm_cpu: calm_use.1,
            attacked_cpu: attacked_use.1,
            samples,
        }
    });
    let endings: Vec<_> = connections.iter().map(|c| c.ending.clone()).collect();
    let judgement = judge::judge(
        &opts.bounds,
        &calm,
        &attacked,
        Some(&after),
        target
            .as_ref()
            .map(|t| (t.calm_peak_rss, t.attacked_peak_rss)),
        &endings,
    );
    Ok(AttackReport {
        schema: "h2lab.attack/v1",
        kind: kind.to_string(),
        url: cfg.url.clone(),
        attack: AttackSettings {
            connections: spec.connections,
            rate: spec.rate,
            max_units: spec.max_units,
            unit: kind.unit(),
            units_sent: connections.iter().map(|c| c.units).sum(),
            bytes_sent: connections.iter().map(|c| c.bytes).sum(),
        },
        calm,
        attacked,
        after,
        target,
        connections,
        judgement,
        attacked_result: Some(attacked_result),
    })
}
