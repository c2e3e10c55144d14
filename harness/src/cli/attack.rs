//! `h2lab attack KIND URL -r RATE`: a legitimate open-loop load measured calm, then under
//! the attack, then after it; the target's memory and CPU (`--pid`); how every attacking
//! connection was cut off; and whether the target held (exit 0) or not (exit 1).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::load::LoadArgs;
use super::{print_out, UsageError};
use crate::attack::driver::{self, ConnReport, Spec};
use crate::attack::judge::{self, Bounds, Judgement, Phase};
use crate::attack::procstat::{self, Sample};
use crate::attack::recipe::Request;
use crate::attack::{Kind, Wire};
use crate::load;
use crate::model::{LoadConfig, LoadModel};

/// Flags of `h2lab attack`: the attack's own, then the legitimate load's (`-r` is
/// required: the legitimate load is open loop; `-d` is each phase's length, 5 s by
/// default).
#[derive(Debug, Args)]
pub struct AttackArgs {
    /// The attack: rapid-reset, made-you-reset[:window-update-0|:window-overflow|
    /// :half-closed], continuation-flood[:empty], hpack-bomb, ping-flood, settings-flood,
    /// empty-frames, reset-flood, data-dribble, zero-window, stream-exhaustion, slowloris,
    /// slow-post, connection-flood.
    #[arg(value_name = "KIND")]
    pub kind: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub load: LoadArgs,
    /// Attacking connections (default: 1, 100 for slowloris, slow-post and
    /// connection-flood).
    #[arg(long, value_name = "N")]
    pub attack_conns: Option<usize>,
    /// Units per second over all attacking connections (frames, requests, header lines,
    /// body bytes or connections, by kind); 0 sends as fast as the sockets take them.
    /// Default: 0, and one unit per connection every 2 s for slowloris and slow-post.
    #[arg(long, value_name = "N")]
    pub attack_rate: Option<f64>,
    /// Most units per attacking connection (then it is held open).
    #[arg(long, default_value_t = 10_000_000, value_name = "N")]
    pub attack_max: u64,
    /// Path the attack's requests go to (default: the URL's), e.g. `/bytes/1048576` for
    /// zero-window while the legitimate load asks for `/plaintext`.
    #[arg(long, value_name = "PATH")]
    pub attack_path: Option<String>,
    /// Sample memory and CPU of this process's whole process group.
    #[arg(long, value_name = "PID")]
    pub pid: Option<i32>,
    /// Length of the phase after the attack that checks the target still serves.
    #[arg(long, value_parser = super::load::duration, default_value = "1s", value_name = "DUR")]
    pub after: Duration,
    /// Largest attacked-over-calm legitimate p99 that still counts as held.
    #[arg(long, default_value_t = 2.0, value_name = "X")]
    pub p99_bound: f64,
    /// Largest attacked-over-calm peak RSS that still counts as held (with --pid).
    #[arg(long, default_value_t = 2.0, value_name = "X")]
    pub rss_bound: f64,
    /// Write attack.json here.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
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
    /// The process group sampled.
    pub pgrp: i32,
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

impl AttackArgs {
    fn spec(&self, cfg: &LoadConfig, kind: Kind) -> Result<Spec, UsageError> {
        if !cfg.addr.ip().is_loopback() {
            return Err(UsageError(format!(
                "URL: attacks go to loopback (127.0.0.0/8, ::1) only, not {}",
                cfg.addr.ip()
            )));
        }
        let many = matches!(
            kind,
            Kind::Slowloris | Kind::SlowPost | Kind::ConnectionFlood
        );
        let connections = self.attack_conns.unwrap_or(if many { 100 } else { 1 });
        if connections == 0 || connections > 100_000 {
            return Err(UsageError("--attack-conns: between 1 and 100000".into()));
        }
        let rate = self.attack_rate.unwrap_or(match kind {
            Kind::Slowloris | Kind::SlowPost => connections as f64 / 2.0,
            _ => 0.0,
        });
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(UsageError("--attack-rate: a rate of 0 or more".into()));
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
                Some(crate::tls::ClientTls::build(&t).map_err(|e| UsageError(e.to_string()))?)
            }
        };
        Ok(Spec {
            kind,
            addr: cfg.addr,
            request: Request {
                scheme: cfg.scheme.clone(),
                authority: cfg.authority.clone(),
                path: self
                    .attack_path
                    .clone()
                    .unwrap_or_else(|| cfg.targets[0].path.clone()),
            },
            tls,
            connections,
            rate,
            max_units: self.attack_max,
            duration: cfg.duration.unwrap_or(DEFAULT_PHASE),
        })
    }
}

const DEFAULT_PHASE: Duration = Duration::from_secs(5);

/// One phase of the legitimate load.
fn phase(cfg: &LoadConfig, length: Duration, stop: &AtomicBool) -> anyhow::Result<Phase> {
    let mut cfg = cfg.clone();
    cfg.duration = Some(length);
    let run = load::run_until(&cfg, stop)?;
    let r = crate::output::result::build(&cfg, &run);
    Ok(Phase {
        p50_us: r.latency_us.p50 as f64,
        p99_us: r.latency_us.p99 as f64,
        p999_us: r.latency_us.p999 as f64,
        requests: r.summary.requests,
        errors: r.summary.errors,
        achieved_rps: r.summary.rps,
        target_rps: r.summary.target_rps.unwrap_or(0.0),
    })
}

/// Samples a process group ten times a second until dropped.
struct Sampler {
    pgrp: i32,
    samples: Arc<Mutex<Vec<Sample>>>,
    done: Arc<AtomicBool>,
    t0: Instant,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pgrp: i32) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let (s, d) = (samples.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                let sample = procstat::sample_group(pgrp, t0.elapsed().as_secs_f64());
                s.lock().map(|mut v| v.push(sample)).ok();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Sampler {
            pgrp,
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

/// Runs `h2lab attack`: 0 the target held, 1 it did not, 2 bad usage.
pub fn run(args: &AttackArgs) -> anyhow::Result<ExitCode> {
    let kind: Kind = args
        .kind
        .parse()
        .map_err(|e| UsageError(format!("KIND: {e}")))?;
    let cfg = args.load.to_config()?;
    if !matches!(cfg.model, LoadModel::Open { .. }) {
        return Err(UsageError(
            "-r/--rate: the legitimate load beside an attack is open loop; give its rate".into(),
        )
        .into());
    }
    for (flag, x) in [
        ("--p99-bound", args.p99_bound),
        ("--rss-bound", args.rss_bound),
    ] {
        if !(x.is_finite() && x >= 1.0) {
            return Err(UsageError(format!("{flag}: a ratio of 1 or more, not {x}")).into());
        }
    }
    let spec = args.spec(&cfg, kind)?;
    let length = spec.duration;
    let pgrp = match args.pid {
        Some(pid) => Some(
            procstat::group_of(pid)
                .ok_or_else(|| UsageError(format!("--pid {pid}: no such process")))?,
        ),
        None => None,
    };
    let signals = crate::run::Signals::install()?;
    let sampler = pgrp.map(Sampler::start);
    let calm_from = sampler.as_ref().map_or(0.0, Sampler::now);
    let calm = phase(&cfg, length, &signals.any)?;
    let attack_from = sampler.as_ref().map_or(0.0, Sampler::now);
    let attack_stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let (spec, stop) = (spec.clone(), attack_stop.clone());
        std::thread::Builder::new()
            .name("h2lab-attack".into())
            .spawn(move || driver::run(&spec, &stop))
            .context("cannot start the attack thread")?
    };
    let attacked = phase(&cfg, length, &signals.any);
    attack_stop.store(true, Ordering::Relaxed);
    let attack_to = sampler.as_ref().map_or(0.0, Sampler::now);
    let connections = attacker
        .join()
        .map_err(|_| anyhow::anyhow!("the attack thread panicked"))?
        .context("cannot run the attack")?;
    let attacked = attacked?;
    let after = phase(&cfg, args.after, &signals.any)?;
    let target = sampler.map(|s| {
        let pgrp = s.pgrp;
        let samples = s.finish();
        let calm_use = procstat::summarise(&samples, calm_from, attack_from).unwrap_or_default();
        let attacked_use =
            procstat::summarise(&samples, attack_from, attack_to).unwrap_or_default();
        TargetUse {
            pgrp,
            calm_peak_rss: calm_use.0,
            attacked_peak_rss: attacked_use.0,
            calm_cpu: calm_use.1,
            attacked_cpu: attacked_use.1,
            samples,
        }
    });
    let endings: Vec<_> = connections.iter().map(|c| c.ending.clone()).collect();
    let bounds = Bounds {
        p99_ratio: args.p99_bound,
        rss_ratio: args.rss_bound,
        ..Bounds::default()
    };
    let judgement = judge::judge(
        &bounds,
        &calm,
        &attacked,
        Some(&after),
        target
            .as_ref()
            .map(|t| (t.calm_peak_rss, t.attacked_peak_rss)),
        &endings,
    );
    let report = AttackReport {
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
    };
    if let Some(path) = &args.out {
        crate::output::atomic_write(path, |w| {
            serde_json::to_writer_pretty(&mut *w, &report).map_err(std::io::Error::other)?;
            std::io::Write::write_all(w, b"\n")
        })
        .with_context(|| format!("cannot write --out {}", path.display()))?;
    }
    print_out(&summary(&report));
    Ok(if signals.int.load(Ordering::Relaxed) {
        ExitCode::from(130)
    } else if signals.term.load(Ordering::Relaxed) {
        ExitCode::from(143)
    } else if report.judgement.held {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The terminal summary: the phases side by side, how the attacker was cut off, the
/// verdict.
pub fn summary(r: &AttackReport) -> String {
    let ms = |us: f64| us / 1000.0;
    let mut s = format!(
        "{} against {}: {} connection(s), {} {} sent\n",
        r.kind, r.url, r.attack.connections, r.attack.units_sent, r.attack.unit
    );
    s.push_str("phase      p50 ms   p99 ms  p99.9 ms   req/s  errors\n");
    for (name, p) in [
        ("calm", &r.calm),
        ("attacked", &r.attacked),
        ("after", &r.after),
    ] {
        s.push_str(&format!(
            "{name:<9} {:>7.2} {:>8.2} {:>9.2} {:>7.0} {:>7}\n",
            ms(p.p50_us),
            ms(p.p99_us),
            ms(p.p999_us),
            p.achieved_rps,
            p.errors
        ));
    }
    if let Some(t) = &r.target {
        s.push_str(&format!(
            "target (pgrp {}): peak RSS {:.1} MiB calm, {:.1} MiB attacked; CPU {:.2} -> {:.2} cores\n",
            t.pgrp,
            t.calm_peak_rss as f64 / 1048576.0,
            t.attacked_peak_rss as f64 / 1048576.0,
            t.calm_cpu,
            t.attacked_cpu
        ));
    }
    let mut ends = std::collections::BTreeMap::<String, (usize, u64, f64)>::new();
    for c in &r.connections {
        let e = ends.entry(c.ending.label()).or_default();
        e.0 += 1;
        e.1 = e.1.max(c.units);
        e.2 = e.2.max(c.seconds);
    }
    for (label, (n, units, secs)) in ends {
        s.push_str(&format!(
            "attacker: {n} connection(s) ended: {label}, after at most {units} {} and {secs:.2} s\n",
            r.attack.unit
        ));
    }
    if r.judgement.held {
        s.push_str("held: the target served the legitimate load and cut the attacker off\n");
    } else {
        s.push_str("did not hold:\n");
        for reason in &r.judgement.reasons {
            s.push_str(&format!("  - {reason}\n"));
        }
    }
    s
}
