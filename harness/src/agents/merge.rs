//! `h2lab merge`: the agents' results made into one, exactly. Interval histograms are
//! summed bucket by bucket per interval index (each agent's intervals count whole seconds
//! from the shared T0, so index k is the same second everywhere, whatever the clocks
//! say), totals and percentiles come from the summed histograms, counts are added. The
//! result is what one generator would have recorded had it sent every request.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use crate::model::result::{AgentRow, Negotiated};
use crate::model::{Percentiles, ResultV1, RESULT_SCHEMA};
use crate::record::hlog::{read_intervals, TimedInterval};
use crate::record::{Interval, Kind, HIGHEST_US, LOWEST_US, SIGFIG};

/// One agent's files, wherever they were read from.
#[derive(Debug, Clone)]
pub struct AgentFiles {
    /// Where they came from (a directory, a pod's log), for messages.
    pub source: String,
    /// result.json.
    pub result: Vec<u8>,
    /// latency.hlog.
    pub hlog: Vec<u8>,
}

/// Why results cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A file is not what it should be.
    #[error("{source_name}: {why}")]
    Invalid {
        /// Where it came from.
        source_name: String,
        /// What is wrong.
        why: String,
    },
    /// The results do not belong to one run.
    #[error("{0}")]
    Mismatch(String),
}

/// Start differences, in seconds, beyond which the merge warns.
pub const STRAY_S: f64 = 0.05;

/// The merged run.
#[derive(Debug)]
pub struct Merged {
    /// The merged result, with `agents` filled.
    pub result: ResultV1,
    /// Wall-clock start of the measured phase (agent 0's).
    pub started: SystemTime,
    /// The merged per-second intervals.
    pub intervals: Vec<TimedInterval>,
}

struct Parsed {
    source: String,
    result: ResultV1,
    /// (interval index, length s, kind, histogram)
    intervals: Vec<(u64, f64, Kind, Histogram<u64>)>,
}

fn parse(files: &AgentFiles) -> Result<Parsed, MergeError> {
    let invalid = |why: String| MergeError::Invalid {
        source_name: files.source.clone(),
        why,
    };
    let value: serde_json::Value = serde_json::from_slice(&files.result)
        .map_err(|e| invalid(format!("result.json is not JSON: {e}")))?;
    let schema = value["schema"].as_str().unwrap_or("(none)");
    if schema != RESULT_SCHEMA {
        return Err(invalid(format!(
            "result.json has schema `{schema}`; this h2lab merges `{RESULT_SCHEMA}`"
        )));
    }
    let result: ResultV1 =
        serde_json::from_value(value).map_err(|e| invalid(format!("result.json: {e}")))?;
    if result.agent.is_none() {
        return Err(invalid(
            "result.json is not an agent's (no `agent` section): run each part with h2lab load --agent I/N".into(),
        ));
    }
    let mut intervals = Vec::new();
    for iv in read_intervals(&files.hlog).map_err(|why| invalid(format!("latency.hlog: {why}")))? {
        let h = &iv.histogram;
        if (h.low(), h.high(), h.sigfig()) != (LOWEST_US, HIGHEST_US, SIGFIG) {
            return Err(invalid(format!(
                "latency.hlog: a histogram tracks {}..{} us at {} significant digits; this h2lab records {LOWEST_US}..{HIGHEST_US} us at {SIGFIG}, and histograms of other bounds cannot be summed exactly",
                h.low(),
                h.high(),
                h.sigfig()
            )));
        }
        let Some(kind) = Kind::from_tag(&iv.tag) else {
            return Err(invalid(format!("latency.hlog: unknown tag `{}`", iv.tag)));
        };
        intervals.push((iv.start_s.round() as u64, iv.length_s, kind, iv.histogram));
    }
    Ok(Parsed {
        source: files.source.clone(),
        result,
        intervals,
    })
}

/// The configuration every agent must share for their parts to make one load.
const SHARED_CONFIG: [&str; 13] = [
    "url",
    "method",
    "targets",
    "headers",
    "body_bytes",
    "proto",
    "connections",
    "streams",
    "model",
    "duration",
    "warmup",
    "requests",
    "seq_header",
];

/// Checks the agents belong to one run and are all there; returns them by index.
fn check(mut parsed: Vec<Parsed>) -> Result<Vec<Parsed>, MergeError> {
    let first = parsed
        .first()
        .ok_or_else(|| MergeError::Mismatch("nothing to merge".into()))?;
    let of = first.result.agent.as_ref().map_or(0, |a| a.of);
    let weights = first
        .result
        .agent
        .as_ref()
        .map(|a| a.weights.clone())
        .unwrap_or_default();
    let mut seen: BTreeMap<usize, String> = BTreeMap::new();
    for p in &parsed {
        let a = p.result.agent.as_ref().expect("checked in parse");
        if a.of != of || a.weights != weights {
            return Err(MergeError::Mismatch(format!(
                "{} is agent {} of {} (weights {:?}), {} is of {of} (weights {weights:?}): not one run",
                p.source, a.index, a.of, a.weights, first.source
            )));
        }
        if let Some(other) = seen.insert(a.index, p.source.clone()) {
            return Err(MergeError::Mismatch(format!(
                "agent {} appears twice: {other} and {}",
                a.index, p.source
            )));
        }
        for key in SHARED_CONFIG {
            if p.result.config[key] != first.result.config[key] {
                return Err(MergeError::Mismatch(format!(
                    "{} ran with {key} = {}, {} with {}: not one load",
                    p.source, p.result.config[key], first.source, first.result.config[key]
                )));
            }
        }
    }
    let missing: Vec<String> = (0..of)
        .filter(|i| !seen.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Mismatch(format!(
            "agents {} of {of} are missing: a merge of some agents would not be the load that was asked for (did an agent fail to start?)",
            missing.join(", ")
        )));
    }
    parsed.sort_by_key(|p| p.result.agent.as_ref().map_or(0, |a| a.index));
    Ok(parsed)
}

fn add(into: &mut Histogram<u64>, h: &Histogram<u64>) {
    // Bounds were checked equal: the sum is exact and cannot fail.
    into.add(h).expect("histograms of equal bounds add");
}

/// Merges every agent of one run.
pub fn merge(files: &[AgentFiles]) -> Result<Merged, MergeError> {
    let parsed = check(files.iter().map(parse).collect::<Result<_, _>>()?)?;
    let mut seconds: BTreeMap<u64, (f64, Interval)> = BTreeMap::new();
    let mut total = Interval::default();
    for p in &parsed {
        for (k, length, kind, h) in &p.intervals {
            let (len, iv) = seconds
                .entry(*k)
                .or_insert_with(|| (0.0, Interval::default()));
            *len = len.max(*length);
            add(iv.get_mut(*kind), h);
            add(total.get_mut(*kind), h);
        }
    }
    let intervals = seconds
        .iter()
        .map(|(k, (len, iv))| {
            TimedInterval::new(Duration::from_secs(*k), Duration::from_secs_f64(*len), iv)
        })
        .collect();
    let results: Vec<&ResultV1> = parsed.iter().map(|p| &p.result).collect();
    let mut result = combine(&results, &total);
    result.agents = parsed.iter().map(row).collect();
    result.warnings.extend(start_warnings(&results));
    let recorded: u64 = results
        .iter()
        .map(|r| r.latency_us.count + r.error_latency_us.count)
        .sum();
    let summed = total.get(Kind::Latency).len() + total.get(Kind::ErrorLatency).len();
    if recorded != summed {
        result.warnings.push(format!(
            "the agents' results count {recorded} latencies, their interval logs {summed}: percentiles come from the logs"
        ));
    }
    let started =
        humantime::parse_rfc3339_weak(&results[0].started_at).unwrap_or_else(|_| SystemTime::now());
    Ok(Merged {
        result,
        started,
        intervals,
    })
}

fn row(p: &Parsed) -> AgentRow {
    let r = &p.result;
    AgentRow {
        agent: r.agent.clone().unwrap_or_default(),
        source: p.source.clone(),
        requests: r.summary.requests,
        ok: r.summary.ok,
        errors: r.summary.errors,
        rps: r.summary.rps,
        target_rps: r.summary.target_rps,
        latency_us: r.latency_us.clone(),
        generator_cpu: r.summary.generator_cpu,
        generator_bound: r.summary.generator_bound,
    }
}

fn start_warnings(results: &[&ResultV1]) -> Vec<String> {
    let mut out = Vec::new();
    let t0 = |r: &ResultV1| r.agent.as_ref().map_or(0.0, |a| a.t0_unix_s);
    let zero = t0(results[0]);
    for r in results {
        let a = r.agent.as_ref().expect("agent results");
        if a.late_s > STRAY_S {
            out.push(format!(
                "agent {} reached T0 {:.3} s late: its first requests went out late (measured from their intended times)",
                a.index, a.late_s
            ));
        }
        let apart = if a.start == "release" {
            a.offset_s
        } else {
            t0(r) - zero
        };
        if apart.abs() > STRAY_S {
            out.push(format!(
                "agent {}'s start strayed {:+.3} s from agent 0's T0 (clock offset or a different --start-at): its intervals are merged by index from its own T0",
                a.index, apart
            ));
        }
    }
    out
}

/// The merged result document: sums, and percentiles from the summed histograms.
fn combine(results: &[&ResultV1], total: &Interval) -> ResultV1 {
    let first = results[0];
    let sum = |f: fn(&ResultV1) -> u64| results.iter().map(|r| f(r)).sum::<u64>();
    let mut merged = first.clone();
    merged.agent = None;
    let s = &mut merged.summary;
    s.requests = sum(|r| r.summary.requests);
    s.ok = sum(|r| r.summary.ok);
    s.errors = sum(|r| r.summary.errors);
    s.duration_s = results
        .iter()
        .map(|r| r.summary.duration_s)
        .fold(0.0, f64::max);
    s.rps = if s.duration_s > 0.0 {
        s.requests as f64 / s.duration_s
    } else {
        0.0
    };
    s.target_rps = first.config["model"]["rate"].as_f64();
    s.achieved_ratio = s.target_rps.map(|t| s.rps / t);
    s.late_sends = sum(|r| r.summary.late_sends);
    s.generator_cpu = results
        .iter()
        .map(|r| r.summary.generator_cpu)
        .fold(0.0, f64::max);
    s.generator_peak_rss_bytes = results
        .iter()
        .map(|r| r.summary.generator_peak_rss_bytes)
        .max()
        .unwrap_or(0);
    let bound: Vec<String> = results
        .iter()
        .filter(|r| r.summary.generator_bound)
        .map(|r| {
            let i = r.agent.as_ref().map_or(0, |a| a.index);
            format!(
                "agent {i}: {}",
                r.summary.generator_bound_reason.clone().unwrap_or_default()
            )
        })
        .collect();
    s.generator_bound = !bound.is_empty();
    s.generator_bound_reason = (!bound.is_empty()).then(|| bound.join("; "));
    let mut engines: Vec<&str> = results
        .iter()
        .map(|r| r.summary.io_engine.as_str())
        .collect();
    engines.dedup();
    s.io_engine = engines.join("+");
    merged.interrupted = results.iter().any(|r| r.interrupted);
    merged.latency_us = Percentiles::of(total.get(Kind::Latency));
    merged.service_time_us = Percentiles::of(total.get(Kind::Service));
    merged.ttfb_us = Percentiles::of(total.get(Kind::Ttfb));
    merged.connect_us = Percentiles::of(total.get(Kind::Connect));
    merged.tls_handshake_us = Percentiles::of(total.get(Kind::Tls));
    merged.error_latency_us = Percentiles::of(total.get(Kind::ErrorLatency));
    merged.scheduler_lag_us = Percentiles::of(total.get(Kind::SchedulerLag));
    merged.status = add_maps(results.iter().map(|r| &r.status));
    merged.errors = add_maps(results.iter().map(|r| &r.errors));
    let mut outcomes: BTreeMap<Negotiated, u64> = BTreeMap::new();
    for o in results.iter().flat_map(|r| &r.negotiated_outcomes) {
        let key = Negotiated {
            connections: 0,
            ..o.clone()
        };
        *outcomes.entry(key).or_default() += o.connections;
    }
    let mut outcomes: Vec<Negotiated> = outcomes
        .into_iter()
        .map(|(n, connections)| Negotiated { connections, ..n })
        .collect();
    outcomes.sort_by_key(|o| std::cmp::Reverse(o.connections));
    merged.negotiated = outcomes.first().cloned().unwrap_or_default();
    merged.negotiated_outcomes = outcomes;
    merged.server_settings.max_concurrent_streams = results
        .iter()
        .filter_map(|r| r.server_settings.max_concurrent_streams)
        .min();
    merged.warmup.requests = sum(|r| r.warmup.requests);
    merged.warmup.ok = sum(|r| r.warmup.ok);
    merged.warmup.errors = sum(|r| r.warmup.errors);
    merged.warnings = results
        .iter()
        .flat_map(|r| {
            let i = r.agent.as_ref().map_or(0, |a| a.index);
            r.warnings.iter().map(move |w| format!("agent {i}: {w}"))
        })
        .collect();
    merged.hops_us.clear();
    if results.iter().any(|r| !r.hops_us.is_empty()) {
        merged.warnings.push(
            "per-hop Server-Timing percentiles are not in the interval logs, so they are not merged: see each agent's result".into(),
        );
    }
    if let Some(c) = merged.config.as_object_mut() {
        c.remove("agent");
        c.insert("agents".into(), results.len().into());
        let threads: u64 = results
            .iter()
            .filter_map(|r| r.config["threads"].as_u64())
            .sum();
        c.insert("threads".into(), threads.into());
    }
    merged
}

fn add_maps<'a>(maps: impl Iterator<Item = &'a BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            *out.entry(k.clone()).or_default() += v;
        }
    }
    out
}

/// The per-agent table, for the terminal and agents.md.
pub fn agents_table(rows: &[AgentRow]) -> String {
    use std::fmt::Write;
    let mut out = String::from("| agent | host | weight | start | late s | requests | errors | req/s | target | p50 us | p99 us | CPU |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let a = &r.agent;
        let _ = writeln!(
            out,
            "| {}/{} | {} | {} | {} | {:+.3} | {} | {} | {:.1} | {} | {} | {} | {:.0}%{} |",
            a.index,
            a.of,
            if a.host.is_empty() { "-" } else { &a.host },
            a.weights.get(a.index).copied().unwrap_or(1),
            a.start,
            a.late_s,
            r.requests,
            r.errors,
            r.rps,
            r.target_rps.map_or("-".to_string(), |t| format!("{t:.1}")),
            r.latency_us.p50,
            r.latency_us.p99,
            r.generator_cpu * 100.0,
            if r.generator_bound { " (bound)" } else { "" },
        );
    }
    out
}

/// Writes the merged run as a results directory that `h2lab report`, `compare` and
/// `gate` read like any other: manifest.json with one cell, `merged`, whose repetition
/// holds result.json and latency.hlog; and agents.md, the per-agent table.
pub fn write_run_dir(out: &std::path::Path, m: &Merged) -> std::io::Result<()> {
    use crate::output::atomic_write;
    use std::io::Write;
    let rel = "cells/merged/rep-1";
    let cell_dir = out.join(rel);
    std::fs::create_dir_all(&cell_dir)?;
    let result = pretty(&m.result)?;
    atomic_write(&cell_dir.join("result.json"), |w| w.write_all(&result))?;
    let hlog = crate::record::hlog::render(m.started, &m.intervals)?;
    atomic_write(&cell_dir.join("latency.hlog"), |w| w.write_all(&hlog))?;
    let agents = m.result.agents.len();
    let run_id = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "merged".into());
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let manifest = serde_json::json!({
        "schema": crate::run::MANIFEST_SCHEMA,
        "run_id": run_id,
        "scenario_file": "",
        "scenario": format!("# merged from {agents} agents by h2lab merge\n"),
        "plan": {
            "name": run_id,
            "repetitions": 1,
            "cells": [{"id": "merged", "axes": {"agents": agents.to_string()}}],
        },
        "started_at": m.result.started_at,
        "finished_at": now,
        "complete": true,
        "interrupted": m.result.interrupted,
        "environment": crate::run::env::collect(),
        "pinning": {"enabled": false, "server_core": null, "generator_threads": m.result.config["threads"]},
        "cells": [{
            "cell": "merged",
            "rep": 1,
            "status": "ok",
            "reason": null,
            "dir": rel,
            "rps": m.result.summary.rps,
            "capacity": null,
            "app_protocol": null,
            "app_protocol_source": null,
            "notes": [format!("merged from {agents} agents")],
            "start_s": 0.0,
            "stop_s": 0.0,
            "leftover_processes": [],
        }],
    });
    let manifest = pretty(&manifest)?;
    atomic_write(&out.join("manifest.json"), |w| w.write_all(&manifest))?;
    let table = agents_table(&m.result.agents);
    atomic_write(&out.join("agents.md"), |w| w.write_all(table.as_bytes()))
}

fn pretty<T: serde::Serialize>(v: &T) -> std::io::Result<Vec<u8>> {
    let mut b = serde_json::to_vec_pretty(v).map_err(std::io::Error::other)?;
    b.push(b'\n');
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::result::AgentRecord;
    use crate::record::new_histogram;

    /// A reproducible spread of latencies, 50 us to ~2 s with a long tail.
    fn latencies(n: usize) -> Vec<u64> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                (50.0 / (1.0 - u).powf(0.9)).min(2_000_000.0) as u64
            })
            .collect()
    }

    fn agent_files(index: usize, weights: &[u32], seconds: &[Interval]) -> AgentFiles {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let intervals: Vec<TimedInterval> = seconds
            .iter()
            .enumerate()
            .map(|(k, iv)| {
                TimedInterval::new(Duration::from_secs(k as u64), Duration::from_secs(1), iv)
            })
            .collect();
        let mut total = Interval::default();
        for iv in seconds {
            total.merge(iv);
        }
        let result = ResultV1 {
            schema: RESULT_SCHEMA.into(),
            started_at: humantime::format_rfc3339_nanos(t0).to_string(),
            config: serde_json::json!({"url": "http://127.0.0.1:1/", "model": {"rate": 1000.0}}),
            latency_us: Percentiles::of(total.get(Kind::Latency)),
            agent: Some(AgentRecord {
                index,
                of: weights.len(),
                weights: weights.to_vec(),
                t0_unix_s: 1_800_000_000.0,
                start: "at".into(),
                ..AgentRecord::default()
            }),
            ..ResultV1::default()
        };
        AgentFiles {
            source: format!("agent-{index}"),
            result: serde_json::to_vec(&result).unwrap(),
            hlog: crate::record::hlog::render(t0, &intervals).unwrap(),
        }
    }

    /// Splits `values` among agents by the schedule's own striping, one second per
    /// `per_second` requests, and records each agent's share in its own intervals.
    fn split(values: &[u64], weights: &[u32], per_second: usize) -> Vec<AgentFiles> {
        let seconds = values.len().div_ceil(per_second);
        let stripes: Vec<crate::load::schedule::Stripe> = (0..weights.len())
            .map(|i| crate::load::schedule::Stripe::weighted(weights, i))
            .collect();
        (0..weights.len())
            .map(|a| {
                let mut ivs: Vec<Interval> = (0..seconds).map(|_| Interval::default()).collect();
                let stripe = &stripes[a];
                let mut j = 0u64;
                loop {
                    let n = stripe.nth(j) as usize;
                    if n >= values.len() {
                        break;
                    }
                    ivs[n / per_second]
                        .get_mut(Kind::Latency)
                        .record(values[n])
                        .unwrap();
                    j += 1;
                }
                agent_files(a, weights, &ivs)
            })
            .collect()
    }

    #[test]
    fn merged_percentiles_equal_one_histogram_fed_every_request() {
        let values = latencies(20_000);
        let mut one = new_histogram();
        for &v in &values {
            one.record(v).unwrap();
        }
        for weights in [
            vec![1],
            vec![1, 1],
            vec![2, 1, 1],
            vec![1, 1, 1, 1, 1],
            vec![3, 1, 4, 1, 5],
        ] {
            let m = merge(&split(&values, &weights, 1000)).unwrap();
            let merged = &m.result.latency_us;
            let single = Percentiles::of(&one);
            assert_eq!(
                serde_json::to_value(merged).unwrap(),
                serde_json::to_value(&single).unwrap(),
                "weights {weights:?}"
            );
            // And the merged log, read back, holds the same histogram bucket by bucket.
            let hlog = crate::record::hlog::render(m.started, &m.intervals).unwrap();
            let back = crate::record::hlog::read_totals(&hlog).unwrap();
            assert_eq!(back["latency"], one, "weights {weights:?}");
            assert_eq!(m.intervals.len(), 20);
            assert_eq!(m.result.agents.len(), weights.len());
            assert!(m.result.warnings.is_empty(), "{:?}", m.result.warnings);
        }
    }

    #[test]
    fn other_bounds_another_schema_or_a_missing_agent_are_refused() {
        let values = latencies(3000);
        let files = split(&values, &[1, 1, 1], 1000);
        let err = merge(&files[..2]).unwrap_err().to_string();
        assert!(err.contains("agents 2 of 3 are missing"), "{err}");

        let mut other = Interval::default();
        *other.get_mut(Kind::Latency) = Histogram::new_with_bounds(1, 60_000_000, 2).unwrap();
        other.get_mut(Kind::Latency).record(100).unwrap();
        let mut bad = files.clone();
        bad[1] = agent_files(1, &[1, 1, 1], &[other]);
        let err = merge(&bad).unwrap_err().to_string();
        assert!(
            err.contains("agent-1: latency.hlog") && err.contains("cannot be summed exactly"),
            "{err}"
        );

        let mut bad = files.clone();
        let text = String::from_utf8(bad[2].result.clone()).unwrap();
        bad[2].result = text.replace(RESULT_SCHEMA, "h2lab.result/v0").into_bytes();
        let err = merge(&bad).unwrap_err().to_string();
        assert!(
            err.contains("agent-2: result.json has schema `h2lab.result/v0`"),
            "{err}"
        );

        let mut bad = files.clone();
        bad[0] = files[1].clone();
        let err = merge(&bad).unwrap_err().to_string();
        assert!(err.contains("agent 1 appears twice"), "{err}");
    }

    #[test]
    fn a_start_that_strayed_is_warned_about() {
        let values = latencies(2000);
        let mut files = split(&values, &[1, 1], 1000);
        let mut r: ResultV1 = serde_json::from_slice(&files[1].result).unwrap();
        r.agent.as_mut().unwrap().t0_unix_s += 0.4;
        files[1].result = serde_json::to_vec(&r).unwrap();
        let m = merge(&files).unwrap();
        assert!(
            m.result
                .warnings
                .iter()
                .any(|w| w.contains("agent 1's start strayed +0.400 s")),
            "{:?}",
            m.result.warnings
        );
    }
}
