//! The deployment verdict of a run: per workload (cells that differ only in the compared
//! axis, `topology` unless `[verdict] compare` names another), the values of that axis
//! ranked, each against the baseline: capacity (when searched) or throughput, p50 and p99,
//! every change with its interval and significance, the cost of each hop from the
//! `Server-Timing` entries, and a plain sentence. Written as `verdict.json`
//! (`h2lab.verdict/v1`) by `h2lab run`; the report opens with it.

pub mod conformance;
pub mod render;
mod samples;
pub mod survival;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::analysis::names;
use crate::analysis::rundir::{CellSamples, InputError, Metric, RepMetrics, RunDir};
use crate::analysis::stats::median;
use samples::change;
pub use samples::{Change, Source};

/// Schema of `verdict.json`.
pub const VERDICT_SCHEMA: &str = "h2lab.verdict/v1";

/// The whole verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// [`VERDICT_SCHEMA`].
    pub schema: &'static str,
    /// The run.
    pub run_id: String,
    /// The axis whose values are ranked.
    pub compare: String,
    /// One per workload.
    pub workloads: Vec<Workload>,
    /// Topology x attack, when the run has an `attack` axis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub survival: Option<survival::Survival>,
    /// HTTP/2 conformance per cell, when the scenario ran the suite.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conformance: Vec<conformance::Row>,
}

/// Cells that differ only in the compared axis.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// The other axes that tell this workload from the others (empty for one workload).
    pub name: String,
    /// The compared axis' value every entry is measured against.
    pub baseline: String,
    /// `capacity`, `throughput` or `p99`: what the ranking orders by.
    pub ranked_by: &'static str,
    /// Best first; entries without a result last.
    pub entries: Vec<Entry>,
}

/// One value of the compared axis in one workload.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// 1 = best.
    pub rank: usize,
    /// The compared axis' value, e.g. `out-of-process`.
    pub value: String,
    /// The cell's readable name (the axes that vary in the run).
    pub name: String,
    /// The cell's full id.
    pub cell: String,
    /// Whether this is the baseline.
    pub baseline: bool,
    /// Repetitions with a result.
    pub repetitions: usize,
    /// What the latency statistics were computed over (each change says its own).
    pub samples: Source,
    /// Latency was measured at each cell's own capacity (a searched workload).
    pub at_capacity: bool,
    /// Capacity under the search's SLOs, req/s (searched cells).
    pub capacity: Option<Change>,
    /// Requests per second.
    pub throughput: Option<Change>,
    /// Latency p50, microseconds.
    pub p50: Option<Change>,
    /// Latency p99, microseconds.
    pub p99: Option<Change>,
    /// Server-Timing entries, innermost (the app) first.
    pub hops: Vec<Hop>,
    /// What the hops in front of the app add at p50, microseconds.
    pub hop_cost_us: Option<f64>,
    /// The verdict in words.
    pub sentence: String,
}

/// One Server-Timing entry of a cell: its time and what it adds over the entry inside it.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    /// Entry name (`app`, `proxy`, `host`, `nginx`, `apache`, `haproxy`).
    pub name: String,
    /// Median over repetitions of the entry's p50, microseconds.
    pub p50_us: f64,
    /// Median over repetitions of the entry's p99, microseconds.
    pub p99_us: f64,
    /// p50 minus the p50 of the entry inside it (the app's own time for the app).
    pub overhead_p50_us: f64,
    /// p99 minus the p99 of the entry inside it.
    pub overhead_p99_us: f64,
}

/// `[verdict]` of the scenario text: (compare axis, baseline value).
pub fn settings(scenario: &str) -> (String, Option<String>) {
    let table: Option<toml::Table> = scenario.parse().ok();
    let v = table.as_ref().and_then(|t| t.get("verdict"));
    let get = |k: &str| {
        v.and_then(|v| v.get(k))
            .and_then(|s| s.as_str())
            .map(str::to_string)
    };
    (
        get("compare").unwrap_or_else(|| "topology".into()),
        get("baseline"),
    )
}

/// The hops of a cell: medians over its repetitions, the app innermost, then by p50.
pub fn hops(reps: &[RepMetrics]) -> Vec<Hop> {
    let mut by_name: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for r in reps {
        for (name, h) in &r.hops {
            let e = by_name.entry(name.as_str()).or_default();
            e.0.push(h.p50);
            e.1.push(h.p99);
        }
    }
    let mut hops: Vec<Hop> = by_name
        .into_iter()
        .map(|(name, (p50, p99))| Hop {
            name: name.to_string(),
            p50_us: median(&p50),
            p99_us: median(&p99),
            overhead_p50_us: 0.0,
            overhead_p99_us: 0.0,
        })
        .collect();
    hops.sort_by(|a, b| {
        (a.name != "app", a.p50_us)
            .partial_cmp(&(b.name != "app", b.p50_us))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let (mut in50, mut in99) = (0.0, 0.0);
    for h in &mut hops {
        h.overhead_p50_us = (h.p50_us - in50).max(0.0);
        h.overhead_p99_us = (h.p99_us - in99).max(0.0);
        (in50, in99) = (h.p50_us, h.p99_us);
    }
    hops
}

fn hop_cost(hops: &[Hop]) -> Option<f64> {
    let app = hops.iter().find(|h| h.name == "app")?;
    let outer = hops.last()?;
    (outer.name != "app").then(|| (outer.p50_us - app.p50_us).max(0.0))
}

/// Builds the verdict of a loaded run.
pub fn build(run: &RunDir) -> Verdict {
    let (compare, wanted) = settings(&run.scenario);
    let all: Vec<&BTreeMap<String, String>> = run.cells.iter().map(|c| &c.axes).collect();
    let readable = names::readable(&all);
    // Workloads: cells grouped by every axis but the compared one.
    let mut groups: Vec<(BTreeMap<String, String>, Vec<usize>)> = Vec::new();
    for (i, c) in run.cells.iter().enumerate() {
        let mut key = c.axes.clone();
        key.remove(&compare);
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let keys: Vec<&BTreeMap<String, String>> = groups.iter().map(|g| &g.0).collect();
    let telling = names::varying_axes(&keys);
    let workloads = groups
        .iter()
        .map(|(key, members)| {
            let cells: Vec<(&CellSamples, &str)> = members
                .iter()
                .map(|&i| (&run.cells[i], readable[i].as_str()))
                .collect();
            workload(
                names::label(key, &telling),
                &compare,
                wanted.as_deref(),
                &cells,
            )
        })
        .collect();
    Verdict {
        schema: VERDICT_SCHEMA,
        run_id: run.run_id.clone(),
        compare,
        workloads,
        survival: survival::build(run),
        conformance: conformance::build(run),
    }
}

fn value_of<'a>(c: &'a CellSamples, axis: &str) -> &'a str {
    c.axes.get(axis).map(String::as_str).unwrap_or("")
}

fn workload(
    name: String,
    axis: &str,
    wanted: Option<&str>,
    cells: &[(&CellSamples, &str)],
) -> Workload {
    let with: Vec<&(&CellSamples, &str)> = cells.iter().filter(|c| !c.0.reps.is_empty()).collect();
    let base = wanted
        .and_then(|w| with.iter().find(|c| value_of(c.0, axis) == w))
        .or_else(|| with.iter().find(|c| value_of(c.0, axis) == "direct-edge"))
        .or(with.first())
        .map(|c| c.0);
    let searched = !with.is_empty()
        && with
            .iter()
            .all(|c| c.0.reps.iter().all(|r| r.capacity.is_some()));
    let open_loop = !with.is_empty()
        && with
            .iter()
            .all(|c| c.0.reps.iter().all(|r| r.target_rps.is_some()));
    let ranked_by = if searched {
        "capacity"
    } else if open_loop {
        "p99"
    } else {
        "throughput"
    };
    let mut entries: Vec<Entry> = cells
        .iter()
        .map(|(c, readable)| entry(c, readable, axis, base, searched))
        .collect();
    let key = |e: &Entry| -> f64 {
        let v = match ranked_by {
            "capacity" => e.capacity.as_ref().map(|c| -c.value),
            "p99" => e.p99.as_ref().map(|c| c.value),
            _ => e.throughput.as_ref().map(|c| -c.value),
        };
        v.unwrap_or(f64::INFINITY)
    };
    entries.sort_by(|a, b| key(a).total_cmp(&key(b)));
    for (i, e) in entries.iter_mut().enumerate() {
        e.rank = i + 1;
    }
    Workload {
        name,
        baseline: base
            .map(|b| value_of(b, axis).to_string())
            .unwrap_or_default(),
        ranked_by,
        entries,
    }
}

fn entry(
    c: &CellSamples,
    readable: &str,
    axis: &str,
    base: Option<&CellSamples>,
    searched: bool,
) -> Entry {
    let is_base = base.is_some_and(|b| b.id == c.id);
    let hops = hops(&c.reps);
    let hop_cost_us = hop_cost(&hops);
    let source = base.map_or(Source::Repetitions(c.reps.len()), |b| {
        samples::values(b, c, Metric::P50).0
    });
    let mut e = Entry {
        rank: 0,
        value: value_of(c, axis).to_string(),
        name: readable.to_string(),
        cell: c.id.clone(),
        baseline: is_base,
        repetitions: c.reps.len(),
        samples: source,
        at_capacity: searched,
        capacity: None,
        throughput: None,
        p50: None,
        p99: None,
        hops,
        hop_cost_us,
        sentence: String::new(),
    };
    if let (Some(base), false) = (base, c.reps.is_empty()) {
        if searched {
            e.capacity = Some(samples::capacity_change(base, c));
        }
        e.throughput = Some(change(base, c, Metric::Rps));
        e.p50 = Some(change(base, c, Metric::P50));
        e.p99 = Some(change(base, c, Metric::P99));
    }
    e.sentence = render::sentence(&e);
    e
}

/// Loads `dir`, builds its verdict and writes `dir/verdict.json`.
pub fn write(dir: &Path) -> Result<Verdict, InputError> {
    let run = RunDir::load(dir)?;
    let v = build(&run);
    let path = dir.join("verdict.json");
    crate::output::atomic_write(&path, |w| {
        serde_json::to_writer_pretty(&mut *w, &v).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, b"\n")
    })
    .map_err(|e| InputError::Read {
        path,
        why: e.to_string(),
    })?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::rundir::{HopPercentiles, IntervalMetrics, RepMetrics};

    fn rep(rps: f64, p50: f64, hops: &[(&str, f64)]) -> RepMetrics {
        RepMetrics {
            rps,
            p50,
            p99: p50 * 3.0,
            p999: p50 * 5.0,
            hops: hops
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        HopPercentiles {
                            p50: *v,
                            p99: v * 2.0,
                            p999: v * 3.0,
                        },
                    )
                })
                .collect(),
            intervals: (0..5)
                .map(|i| {
                    let j = 1.0 + (i as f64 - 2.0) * 0.01;
                    IntervalMetrics {
                        rps: rps * j,
                        p50: p50 / j,
                        p99: 3.0 * p50 / j,
                        p999: 5.0 * p50 / j,
                    }
                })
                .collect(),
            ..Default::default()
        }
    }

    fn cell(topology: &str, request: &str, reps: Vec<RepMetrics>) -> CellSamples {
        CellSamples {
            id: format!("{topology}.{request}"),
            axes: [
                ("topology", topology),
                ("request", request),
                ("cert", "ecdsa"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            reps,
        }
    }

    fn run(scenario: &str) -> RunDir {
        let mut cells = Vec::new();
        for req in ["GET /a", "GET /b"] {
            cells.push(cell(
                "in-process",
                req,
                vec![rep(9_000.0, 600.0, &[("app", 50.0)])],
            ));
            cells.push(cell(
                "direct-edge",
                req,
                vec![rep(10_000.0, 500.0, &[("app", 50.0)])],
            ));
            cells.push(cell(
                "out-of-process",
                req,
                vec![rep(3_000.0, 1_500.0, &[("app", 50.0), ("host", 950.0)])],
            ));
        }
        cells.push(cell("reverse-proxy:nginx", "GET /a", vec![]));
        RunDir {
            path: "/tmp/x".into(),
            run_id: "x".into(),
            scenario: scenario.into(),
            cells,
            started_at: None,
            interleaved: None,
        }
    }

    #[test]
    fn a_slowed_topology_ranks_last_with_its_significance_and_hop_cost() {
        let v = build(&run("[scenario]\nname='x'\n"));
        assert_eq!((v.schema, v.compare.as_str()), (VERDICT_SCHEMA, "topology"));
        assert_eq!(v.workloads.len(), 2, "one per request");
        assert_eq!(v.workloads[0].name, "request=GET /a");
        let w = &v.workloads[0];
        assert_eq!(
            (w.baseline.as_str(), w.ranked_by),
            ("direct-edge", "throughput")
        );
        let order: Vec<&str> = w.entries.iter().map(|e| e.value.as_str()).collect();
        assert_eq!(
            order,
            [
                "direct-edge",
                "in-process",
                "out-of-process",
                "reverse-proxy:nginx"
            ],
            "best first, no result last"
        );
        let slow = &w.entries[2];
        let t = slow.throughput.as_ref().unwrap();
        assert!((t.change + 70.0).abs() < 1e-9, "{t:?}");
        assert!(t.significant && t.p_value.unwrap() < 0.05, "{t:?}");
        let (lo, hi) = t.interval.unwrap();
        assert!(lo <= -70.0 && (-70.0..0.0).contains(&hi), "{lo} {hi}");
        assert_eq!(slow.samples, Source::Seconds(5));
        assert_eq!(slow.hop_cost_us, Some(900.0));
        assert_eq!(slow.hops[1].overhead_p50_us, 900.0);
        assert!(
            slow.sentence
                .starts_with("out-of-process · GET /a: throughput -70.0% [")
                && slow.sentence.contains("p50 +1.00 ms")
                && slow.sentence.contains("where the hop costs 0.90 ms"),
            "{}",
            slow.sentence
        );
        assert!(w.entries[0].sentence.contains("the baseline"));
        assert!(w.entries[3].sentence.contains("no result"));
    }

    #[test]
    fn the_scenario_names_the_axis_and_the_baseline() {
        let v = build(&run("[verdict]\nbaseline = \"out-of-process\"\n"));
        let w = &v.workloads[1];
        assert_eq!(w.baseline, "out-of-process");
        let edge = w.entries.iter().find(|e| e.value == "direct-edge").unwrap();
        assert!(edge.throughput.as_ref().unwrap().change > 200.0);
        let v = build(&run("[verdict]\ncompare = \"request\"\n"));
        assert_eq!(v.compare, "request");
        assert!(v.workloads.iter().all(|w| w.entries.len() <= 2));
        assert!(render::text(&v).contains("request ranked by throughput"));
    }
}
