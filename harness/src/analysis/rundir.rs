//! A results directory as the analysis sees it: the manifest, and per cell the values of
//! each repetition (throughput, latency percentiles, error rate) read from result.json.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why a results directory cannot be analysed (exit 2: bad input).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file is missing or unreadable.
    #[error("{path}: {why}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// A file is not what it should be.
    #[error("{path}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The two runs cannot be compared.
    #[error("{0}")]
    Mismatch(String),
}

/// Schemas this version reads.
pub const MANIFEST_SCHEMA: &str = "h2lab.manifest/v1";
/// Result schema this version reads.
pub const RESULT_SCHEMA: &str = "h2lab.result/v1";

/// Percentiles of one `Server-Timing` entry over a repetition, microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HopPercentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

/// One second of a repetition (from its interval log): a second source of variance for
/// runs with few repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IntervalMetrics {
    /// Requests completed per second of the interval.
    pub rps: f64,
    /// Latency p50, microseconds.
    pub p50: f64,
    /// Latency p99, microseconds.
    pub p99: f64,
    /// Latency p99.9, microseconds.
    pub p999: f64,
}

/// The metrics of one repetition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RepMetrics {
    /// Requests per second.
    pub rps: f64,
    /// Latency p50, microseconds.
    pub p50: f64,
    /// Latency p99, microseconds.
    pub p99: f64,
    /// Latency p99.9, microseconds.
    pub p999: f64,
    /// Errors / requests, as a fraction.
    pub error_rate: f64,
    /// The generator could not keep up.
    pub generator_bound: bool,
    /// Why, as the engine said.
    pub generator_bound_reason: Option<String>,
    /// Target rate (open loop).
    pub target_rps: Option<f64>,
    /// The capacity a search found in this repetition (from its search.json).
    pub capacity: Option<f64>,
    /// Per `Server-Timing` entry name (`app`, `proxy`, `nginx`...).
    pub hops: BTreeMap<String, HopPercentiles>,
    /// The measured seconds, from latency.hlog (empty without one).
    pub intervals: Vec<IntervalMetrics>,
    /// How the topology fared against the cell's attack (attacked cells, from the
    /// manifest).
    pub attack: Option<crate::run::attack::AttackOutcome>,
    /// The conformance suite's outcome (from the manifest, when the scenario ran it).
    pub conform: Option<crate::run::conform::ConformOutcome>,
}

/// The metrics the gate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Throughput (higher is better).
    Rps,
    /// p50 latency.
    P50,
    /// p99 latency.
    P99,
    /// p99.9 latency.
    P999,
    /// Error rate.
    ErrorRate,
}

impl Metric {
    /// All, in report order.
    pub const ALL: [Metric; 5] = [
        Metric::Rps,
        Metric::P50,
        Metric::P99,
        Metric::P999,
        Metric::ErrorRate,
    ];

    /// Name in flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Rps => "rps",
            Metric::P50 => "p50",
            Metric::P99 => "p99",
            Metric::P999 => "p99.9",
            Metric::ErrorRate => "error_rate",
        }
    }

    /// Parses a name (`rps`, `throughput`, `p50`, `p99`, `p99.9`, `p999`, `error_rate`).
    pub fn parse(s: &str) -> Option<Metric> {
        Some(match s.trim() {
            "rps" | "throughput" => Metric::Rps,
            "p50" => Metric::P50,
            "p99" => Metric::P99,
            "p99.9" | "p999" => Metric::P999,
            "error_rate" | "errors" => Metric::ErrorRate,
            _ => return None,
        })
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        self == Metric::Rps
    }

    /// The value of this metric in one second of a repetition.
    pub fn of_interval(self, i: &IntervalMetrics) -> Option<f64> {
        Some(match self {
            Metric::Rps => i.rps,
            Metric::P50 => i.p50,
            Metric::P99 => i.p99,
            Metric::P999 => i.p999,
            Metric::ErrorRate => return None,
        })
    }

    /// The value of this metric in one repetition.
    pub fn of(self, m: &RepMetrics) -> f64 {
        match self {
            Metric::Rps => m.rps,
            Metric::P50 => m.p50,
            Metric::P99 => m.p99,
            Metric::P999 => m.p999,
            Metric::ErrorRate => m.error_rate,
        }
    }
}

/// One cell of a run with its repetitions.
#[derive(Debug, Clone)]
pub struct CellSamples {
    /// Cell id.
    pub id: String,
    /// Axis -> value.
    pub axes: BTreeMap<String, String>,
    /// One entry per repetition that produced a result.
    pub reps: Vec<RepMetrics>,
}

/// A loaded results directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// Where it is.
    pub path: PathBuf,
    /// Run id.
    pub run_id: String,
    /// The scenario text, verbatim.
    pub scenario: String,
    /// Cells in plan order.
    pub cells: Vec<CellSamples>,
    /// Wall-clock start (RFC 3339), when the manifest says.
    pub started_at: Option<String>,
    /// Set when the run was measured interleaved with other variants.
    pub interleaved: Option<crate::run::variant::Interleaved>,
}

/// Reads a JSON file; a missing or malformed file is an error naming it.
pub fn read_json(path: &Path) -> Result<Value, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError::Read {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| InputError::Invalid {
        path: path.to_path_buf(),
        why: format!("not JSON: {e}"),
    })
}

fn num(v: &Value, path: &Path, pointer: &str) -> Result<f64, InputError> {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .ok_or_else(|| InputError::Invalid {
            path: path.to_path_buf(),
            why: format!("missing number at {pointer}"),
        })
}

/// Reads one repetition's result.json (schema checked), with its directory's interval log
/// and search.json when they are there.
pub fn rep_metrics(path: &Path) -> Result<RepMetrics, InputError> {
    let v = read_json(path)?;
    let dir = path.parent();
    let schema = v["schema"].as_str().unwrap_or("(none)");
    if schema != RESULT_SCHEMA {
        return Err(InputError::Invalid {
            path: path.to_path_buf(),
            why: format!("schema `{schema}`, this h2lab reads `{RESULT_SCHEMA}`"),
        });
    }
    let requests = num(&v, path, "/summary/requests")?;
    let errors = num(&v, path, "/summary/errors")?;
    Ok(RepMetrics {
        rps: num(&v, path, "/summary/rps")?,
        p50: num(&v, path, "/latency_us/p50")?,
        p99: num(&v, path, "/latency_us/p99")?,
        p999: num(&v, path, "/latency_us/p999")?,
        error_rate: if requests > 0.0 {
            errors / requests
        } else {
            1.0
        },
        generator_bound: v
            .pointer("/summary/generator_bound")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        generator_bound_reason: v
            .pointer("/summary/generator_bound_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        target_rps: v.pointer("/summary/target_rps").and_then(Value::as_f64),
        capacity: dir.and_then(search_capacity),
        hops: hops(&v),
        // The seconds are a second source of variance, not the result: a damaged log
        // costs them, not the run.
        intervals: match dir.map(|d| intervals(&d.join("latency.hlog"))) {
            Some(Ok(i)) => i,
            Some(Err(e)) => {
                tracing::warn!("{e}: per-second samples left out");
                Vec::new()
            }
            None => Vec::new(),
        },
        attack: None,
        conform: None,
    })
}

fn hops(v: &Value) -> BTreeMap<String, HopPercentiles> {
    let Some(map) = v.get("hops_us").and_then(Value::as_object) else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(name, p)| {
            let f = |k: &str| p.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            (
                name.clone(),
                HopPercentiles {
                    p50: f("p50"),
                    p99: f("p99"),
                    p999: f("p999"),
                },
            )
        })
        .collect()
}

/// The capacity in the repetition's search.json, if it was a search.
fn search_capacity(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("search.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.pointer("/searches/0/capacity").and_then(Value::as_f64)
}

/// Per-second metrics of an interval log; none when there is no log.
fn intervals(path: &Path) -> Result<Vec<IntervalMetrics>, InputError> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(Vec::new());
    };
    let logged =
        crate::record::hlog::read_intervals(&bytes).map_err(|why| InputError::Invalid {
            path: path.to_path_buf(),
            why,
        })?;
    Ok(logged
        .iter()
        // A short last interval holds too few requests to stand for a second.
        .filter(|i| i.tag == "latency" && !i.histogram.is_empty() && i.length_s >= 0.5)
        .map(|i| IntervalMetrics {
            rps: i.histogram.len() as f64 / i.length_s,
            p50: i.histogram.value_at_quantile(0.5) as f64,
            p99: i.histogram.value_at_quantile(0.99) as f64,
            p999: i.histogram.value_at_quantile(0.999) as f64,
        })
        .collect())
}

/// Reads `dir/manifest.json` and checks its schema.
pub fn read_manifest(dir: &Path) -> Result<Value, InputError> {
    let mpath = dir.join("manifest.json");
    let m = read_json(&mpath)?;
    let schema = m["schema"].as_str().unwrap_or("(none)");
    if schema != MANIFEST_SCHEMA {
        return Err(InputError::Invalid {
            path: mpath,
            why: format!("schema `{schema}`, this h2lab reads `{MANIFEST_SCHEMA}`"),
        });
    }
    Ok(m)
}

/// Id and axes of a cell of the manifest's plan.
pub fn plan_cell(c: &Value) -> (String, BTreeMap<String, String>) {
    let id = c["id"].as_str().unwrap_or_default().to_string();
    let axes = c["axes"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    (id, axes)
}

/// The manifest records of a cell's completed repetitions.
pub fn ok_records<'a>(manifest: &'a Value, id: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    manifest["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |r| r["status"] == "ok" && r["cell"] == id)
}

/// The result directories (relative to the run) of a cell's completed repetitions.
pub fn ok_reps<'a>(manifest: &'a Value, id: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    ok_records(manifest, id).map(|r| r["dir"].as_str().unwrap_or_default())
}

/// The repetition of a manifest record: its result.json, its attack and conformance
/// outcomes.
fn record_metrics(dir: &Path, record: &Value) -> Result<RepMetrics, InputError> {
    let rel = record["dir"].as_str().unwrap_or_default();
    let mut m = rep_metrics(&dir.join(rel).join("result.json"))?;
    let invalid = |what: &str, e: serde_json::Error| InputError::Invalid {
        path: dir.join("manifest.json"),
        why: format!("{what} record of {rel}: {e}"),
    };
    if !record["attack"].is_null() {
        m.attack = Some(
            serde_json::from_value(record["attack"].clone()).map_err(|e| invalid("attack", e))?,
        );
    }
    if !record["conform"].is_null() {
        m.conform = Some(
            serde_json::from_value(record["conform"].clone()).map_err(|e| invalid("conform", e))?,
        );
    }
    Ok(m)
}

impl RunDir {
    /// Reads `dir/manifest.json` and every repetition's result.json.
    pub fn load(dir: &Path) -> Result<RunDir, InputError> {
        let m = read_manifest(dir)?;
        let plan_cells = m
            .pointer("/plan/cells")
            .and_then(Value::as_array)
            .ok_or_else(|| InputError::Invalid {
                path: dir.join("manifest.json"),
                why: "no plan.cells".into(),
            })?;
        let mut cells = Vec::new();
        for c in plan_cells {
            let (id, axes) = plan_cell(c);
            let reps = ok_records(&m, &id)
                .map(|r| record_metrics(dir, r))
                .collect::<Result<Vec<_>, _>>()?;
            cells.push(CellSamples { id, axes, reps });
        }
        Ok(RunDir {
            path: dir.to_path_buf(),
            run_id: m["run_id"].as_str().unwrap_or_default().to_string(),
            scenario: m["scenario"].as_str().unwrap_or_default().to_string(),
            cells,
            started_at: m["started_at"].as_str().map(str::to_string),
            interleaved: serde_json::from_value(m["interleaved"].clone()).ok(),
        })
    }
}
