//! Builds the `h2lab.result/v1` document from a run.

use crate::load::RunOutput;
use crate::model::result::{Negotiated, ServerSettings, Summary, Tool, Warmup};
use crate::model::{LoadConfig, LoadModel, Percentiles, ResultV1, RESULT_SCHEMA};
use crate::record::Kind;

/// Scheduler lag at p99 above which the generator is judged the bottleneck (rule 12).
const LAG_LIMIT_US: u64 = 1_000;
/// Generator CPU share above which it is judged the bottleneck.
pub const CPU_LIMIT: f64 = 0.8;

/// The result document for `run` under `cfg`.
pub fn build(cfg: &LoadConfig, run: &RunOutput) -> ResultV1 {
    let t = &run.total;
    let requests = t.requests();
    let duration_s = run.duration.as_secs_f64();
    let rps = if duration_s > 0.0 {
        requests as f64 / duration_s
    } else {
        0.0
    };
    // An agent's target is its part of the rate.
    let share = cfg.agent.as_ref().map_or(1.0, |a| {
        f64::from(a.weights[a.index]) / f64::from(a.weights.iter().sum::<u32>())
    });
    let target = match cfg.model {
        LoadModel::Open { rate } => Some(rate * share),
        LoadModel::Closed => None,
    };
    let lag = Percentiles::of(t.get(Kind::SchedulerLag));
    let mut bound = Vec::new();
    if run.cpu > CPU_LIMIT {
        bound.push(format!(
            "generator CPU at {:.0}% of its threads",
            run.cpu * 100.0
        ));
    }
    if target.is_some() && lag.p99 > LAG_LIMIT_US {
        bound.push(format!("scheduler lag p99 {} us", lag.p99));
    }
    let mut outcomes: Vec<Negotiated> = run
        .negotiated
        .iter()
        .map(|(n, count)| Negotiated {
            protocol: n.protocol.to_string(),
            tls_version: n.tls.as_ref().map(|t| t.0.clone()),
            cipher: n.tls.as_ref().map(|t| t.1.clone()),
            alpn: n.tls.as_ref().and_then(|t| t.2.clone()),
            connections: *count,
        })
        .collect();
    outcomes.sort_by_key(|o| std::cmp::Reverse(o.connections));
    let mut warnings = Vec::new();
    if let Some(limit) = run.server_max_streams {
        if (cfg.streams as u64) > limit {
            warnings.push(format!("-m {} exceeds the server's SETTINGS_MAX_CONCURRENT_STREAMS {limit}: at most {limit} streams per connection were in flight", cfg.streams));
        }
    }
    if outcomes.len() > 1 {
        warnings.push(format!(
            "connections negotiated {} different outcomes (see negotiated_outcomes)",
            outcomes.len()
        ));
    }
    if run.aborted {
        warnings.push("every connection failed: the run was given up".into());
    }
    ResultV1 {
        schema: RESULT_SCHEMA.into(),
        tool: Tool {
            name: "h2lab".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        started_at: humantime::format_rfc3339_millis(run.started).to_string(),
        interrupted: run.interrupted,
        summary: Summary {
            requests,
            ok: t.ok,
            errors: t.failed,
            duration_s,
            rps,
            target_rps: target,
            achieved_ratio: target.map(|r| rps / r),
            generator_bound: !bound.is_empty(),
            generator_bound_reason: (!bound.is_empty()).then(|| bound.join("; ")),
            generator_cpu: run.cpu,
            late_sends: t.late,
            generator_peak_rss_bytes: peak_rss_bytes(),
            io_engine: run.io_engine.into(),
        },
        latency_us: Percentiles::of(t.get(Kind::Latency)),
        service_time_us: Percentiles::of(t.get(Kind::Service)),
        ttfb_us: Percentiles::of(t.get(Kind::Ttfb)),
        connect_us: Percentiles::of(t.get(Kind::Connect)),
        tls_handshake_us: Percentiles::of(t.get(Kind::Tls)),
        error_latency_us: Percentiles::of(t.get(Kind::ErrorLatency)),
        scheduler_lag_us: lag,
        hops_us: t
            .hops
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(name, h)| (name.clone(), Percentiles::of(h)))
            .collect(),
        status: t.status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        errors: t.errors.clone(),
        negotiated: outcomes.first().cloned().unwrap_or_default(),
        negotiated_outcomes: outcomes,
        server_settings: ServerSettings {
            max_concurrent_streams: run.server_max_streams,
        },
        warnings,
        warmup: Warmup {
            requests: run.warmup.requests(),
            ok: run.warmup.ok,
            errors: run.warmup.failed,
        },
        config: serde_json::to_value(cfg).expect("config serialises"),
        agent: None,
        agents: Vec::new(),
    }
}

/// Peak resident set size of this process (VmHWM in /proc/self/status).
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
