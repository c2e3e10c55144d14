//! `h2lab attack KIND URL -r RATE`: a legitimate open-loop load measured calm, then under
//! the attack, then after it; the target's memory and CPU (`--pid`); how every attacking
//! connection was cut off; and whether the target held (exit 0) or not (exit 1).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::load::LoadArgs;
use super::{print_out, UsageError};
use crate::attack::judge::Bounds;
use crate::attack::procstat;
use crate::attack::session::{self, AttackReport, Options, SessionError};
use crate::attack::Kind;
use crate::model::LoadModel;

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
    let opts = Options {
        connections: args.attack_conns,
        rate: args.attack_rate,
        max_units: args.attack_max,
        path: args.attack_path.clone(),
        phase: cfg.duration.unwrap_or(Options::default().phase),
        after: args.after,
        bounds: Bounds {
            p99_ratio: args.p99_bound,
            rss_ratio: args.rss_bound,
            ..Bounds::default()
        },
    };
    // Flag mistakes are usage errors (exit 2), named by their flag.
    match session::spec(kind, &cfg, &opts) {
        Err(e @ SessionError::NotLoopback(_)) => return Err(UsageError(format!("URL: {e}")).into()),
        Err(e @ SessionError::Connections(_)) => {
            return Err(UsageError(format!("--attack-conns: {e}")).into())
        }
        Err(e @ SessionError::Rate(_)) => {
            return Err(UsageError(format!("--attack-rate: {e}")).into())
        }
        Err(e @ SessionError::Tls(_)) => return Err(UsageError(e.to_string()).into()),
        _ => {}
    }
    let groups = match args.pid {
        Some(pid) => vec![procstat::group_of(pid)
            .ok_or_else(|| UsageError(format!("--pid {pid}: no such process")))?],
        None => Vec::new(),
    };
    let signals = crate::run::Signals::install()?;
    let report = session::run(kind, &cfg, &opts, &groups, &signals.any)?;
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
            t.groups
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
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
