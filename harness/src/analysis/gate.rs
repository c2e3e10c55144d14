//! `h2lab gate`: regression thresholds (with significance) and absolute SLOs, a verdict,
//! JUnit XML and a Markdown summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::compare::{markdown as compare_markdown, Comparison, Limit, Thresholds, Verdict};
use super::rundir::{Metric, RunDir};
use super::stats::median;

/// An absolute objective checked on the candidate alone, e.g. `p99 < 5ms`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slo {
    /// As written.
    pub text: String,
    /// The metric.
    pub metric: Metric,
    /// `<` (latency, errors) or `>` (throughput).
    pub less_than: bool,
    /// Bound in the metric's unit (us, req/s, fraction).
    pub bound: f64,
}

/// Parses `p99=10%,rps=5%,error_rate=0.1pp` over the defaults.
pub fn parse_thresholds(spec: &str, mut base: Thresholds) -> Result<Thresholds, String> {
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}`: expected METRIC=LIMIT, e.g. p99=10%"))?;
        let metric = Metric::parse(k)
            .ok_or_else(|| format!("`{k}`: unknown metric (rps, p50, p99, p99.9, error_rate)"))?;
        let v = v.trim();
        let limit = if let Some(n) = v.strip_suffix("pp") {
            Limit::Points(
                n.trim()
                    .parse()
                    .map_err(|_| format!("`{v}`: not a number of percentage points"))?,
            )
        } else if let Some(n) = v.strip_suffix('%') {
            let n: f64 = n
                .trim()
                .parse()
                .map_err(|_| format!("`{v}`: not a percentage"))?;
            if metric == Metric::ErrorRate {
                Limit::Points(n)
            } else {
                Limit::Percent(n)
            }
        } else {
            return Err(format!(
                "`{v}`: give a unit, e.g. 10% (or 0.1pp for error_rate)"
            ));
        };
        let value = match limit {
            Limit::Percent(n) | Limit::Points(n) => n,
        };
        if !(value.is_finite() && value >= 0.0) {
            return Err(format!("`{part}`: the limit must be zero or positive"));
        }
        base.0.insert(metric, limit);
    }
    Ok(base)
}

/// Parses `p99 < 5ms`, `error_rate < 0.1%`, `rps > 1000`.
pub fn parse_slo(text: &str) -> Result<Slo, String> {
    let (k, less, v) = if let Some((k, v)) = text.split_once('<') {
        (k, true, v)
    } else if let Some((k, v)) = text.split_once('>') {
        (k, false, v)
    } else {
        return Err(format!(
            "`{text}`: expected e.g. `p99 < 5ms` or `rps > 1000`"
        ));
    };
    let metric =
        Metric::parse(k).ok_or_else(|| format!("`{text}`: unknown metric `{}`", k.trim()))?;
    let v = v.trim();
    let bad = || format!("`{text}`: cannot read the bound `{v}`");
    let bound = match metric {
        Metric::Rps => v
            .trim_end_matches("rps")
            .trim()
            .parse()
            .map_err(|_| bad())?,
        Metric::ErrorRate => {
            let n: f64 = v.trim_end_matches('%').trim().parse().map_err(|_| bad())?;
            if v.ends_with('%') {
                n / 100.0
            } else {
                n
            }
        }
        _ => {
            let d = humantime::parse_duration(v).map_err(|_| bad())?;
            d.as_secs_f64() * 1e6
        }
    };
    Ok(Slo {
        text: text.trim().to_string(),
        metric,
        less_than: less,
        bound,
    })
}

/// The `[gate]` table of a scenario: `max_regression = { p99 = "10%" }`, `slo = [...]`.
pub fn from_scenario(text: &str) -> Result<(Option<String>, Vec<String>), String> {
    let table: toml::Table = text.parse().map_err(|e| format!("scenario: {e}"))?;
    let Some(gate) = table.get("gate").and_then(|g| g.as_table()) else {
        return Ok((None, Vec::new()));
    };
    let max = match gate.get("max_regression") {
        None => None,
        Some(toml::Value::Table(t)) => Some(
            t.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(","),
        ),
        Some(toml::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("[gate] max_regression: expected a table or a string".into()),
    };
    let slo = gate
        .get("slo")
        .and_then(|s| s.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((max, slo))
}

/// One SLO on one cell.
#[derive(Debug, Clone, Serialize)]
pub struct SloResult {
    /// Cell id.
    pub cell: String,
    /// The objective.
    pub slo: String,
    /// Candidate's median value.
    pub value: f64,
    /// Met.
    pub ok: bool,
}

/// The gate's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct GateVerdict {
    /// The comparison behind it.
    pub comparison: Comparison,
    /// SLO checks.
    pub slos: Vec<SloResult>,
    /// (cell, metric) that regressed.
    pub regressed: Vec<(String, String)>,
    /// (cell, metric) that are inconclusive.
    pub inconclusive: Vec<(String, String)>,
    /// How baseline and candidate were measured: interleaved in one window, or apart
    /// (and then how far apart), because drift between separate runs reads as change.
    pub measurement: String,
    /// Whether the gate passes.
    pub pass: bool,
}

/// Applies thresholds and SLOs; `fail_inconclusive` turns inconclusive into failure.
pub fn decide(
    comparison: Comparison,
    baseline: &RunDir,
    candidate: &RunDir,
    slos: &[Slo],
    fail_inconclusive: bool,
) -> GateVerdict {
    let mut regressed = Vec::new();
    let mut inconclusive = Vec::new();
    for c in &comparison.cells {
        for m in &c.metrics {
            let key = (c.id.clone(), m.metric.name().to_string());
            match m.verdict {
                Verdict::Regressed => regressed.push(key),
                Verdict::Inconclusive => inconclusive.push(key),
                _ => {}
            }
        }
    }
    let mut slo_results = Vec::new();
    for cell in &candidate.cells {
        for s in slos {
            let values: Vec<f64> = cell.reps.iter().map(|r| s.metric.of(r)).collect();
            let value = median(&values);
            let ok = if s.less_than {
                value < s.bound
            } else {
                value > s.bound
            };
            slo_results.push(SloResult {
                cell: cell.id.clone(),
                slo: s.text.clone(),
                value,
                ok,
            });
        }
    }
    let inconclusive_fails = fail_inconclusive && !inconclusive.is_empty();
    let pass = regressed.is_empty() && slo_results.iter().all(|s| s.ok) && !inconclusive_fails;
    GateVerdict {
        comparison,
        slos: slo_results,
        regressed,
        inconclusive,
        measurement: measurement(baseline, candidate),
        pass,
    }
}

/// One sentence on how the two runs were measured.
pub fn measurement(baseline: &RunDir, candidate: &RunDir) -> String {
    if let (Some(b), Some(c)) = (&baseline.interleaved, &candidate.interleaved) {
        if b.group == c.group && b.variant != c.variant {
            return format!(
                "interleaved: `{}` and `{}` were measured cell by cell in one window (h2lab run --variant), so drift of the machine hits both alike",
                b.variant, c.variant
            );
        }
    }
    let at = |r: &RunDir| {
        r.started_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
    };
    let apart = match (at(baseline), at(candidate)) {
        (Some(b), Some(c)) => {
            let secs = c
                .duration_since(b)
                .or_else(|_| b.duration_since(c))
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!(
                ", started {} apart",
                humantime::format_duration(std::time::Duration::from_secs(secs))
            )
        }
        _ => String::new(),
    };
    format!(
        "separate runs{apart}: drift of the machine between them reads as change; `h2lab run --variant` measures both in one window"
    )
}

use crate::output::html_escape as xml_escape;

/// JUnit XML: one test case per cell x metric, and per cell x SLO.
pub fn junit(v: &GateVerdict) -> String {
    let mut cases = String::new();
    let mut tests = 0;
    let mut failures = 0;
    for c in &v.comparison.cells {
        for m in &c.metrics {
            tests += 1;
            let name = xml_escape(&format!("{} {}", c.id, m.metric.name()));
            let _ = write!(
                cases,
                "    <testcase classname=\"h2lab.gate\" name=\"{name}\">"
            );
            let msg = format!(
                "{}: base {:.1} new {:.1} ({:+.1}{}), threshold {}, {}",
                m.metric.name(),
                m.base,
                m.new,
                m.change,
                m.change_unit,
                m.threshold,
                m.method
            );
            match m.verdict {
                Verdict::Regressed => {
                    failures += 1;
                    let _ = write!(
                        cases,
                        "<failure message=\"regressed\">{}</failure>",
                        xml_escape(&msg)
                    );
                }
                Verdict::Inconclusive => {
                    let _ = write!(
                        cases,
                        "<system-out>inconclusive: {}</system-out>",
                        xml_escape(&msg)
                    );
                }
                _ => {}
            }
            cases.push_str("</testcase>\n");
        }
    }
    for s in &v.slos {
        tests += 1;
        let name = xml_escape(&format!("{} slo {}", s.cell, s.slo));
        let _ = write!(
            cases,
            "    <testcase classname=\"h2lab.slo\" name=\"{name}\">"
        );
        if !s.ok {
            failures += 1;
            let _ = write!(
                cases,
                "<failure message=\"slo not met\">{}: {:.3}</failure>",
                xml_escape(&s.slo),
                s.value
            );
        }
        cases.push_str("</testcase>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"h2lab gate\" tests=\"{tests}\" failures=\"{failures}\">\n{cases}  </testsuite>\n</testsuites>\n"
    )
}

/// Markdown verdict (for $GITHUB_STEP_SUMMARY and pull-request comments).
pub fn markdown(v: &GateVerdict) -> String {
    let mut out = format!(
        "## h2lab gate: {}\n\nbaseline {}\ncandidate {}\n{}\n\n",
        if v.pass { "PASS" } else { "FAIL" },
        v.comparison.base,
        v.comparison.new,
        v.measurement
    );
    if !v.regressed.is_empty() {
        let list: Vec<String> = v
            .regressed
            .iter()
            .map(|(c, m)| format!("{c} {m}"))
            .collect();
        let _ = writeln!(out, "Regressed: {}\n", list.join(", "));
    }
    let undecided: Vec<String> = v
        .comparison
        .cells
        .iter()
        .flat_map(|c| {
            c.metrics
                .iter()
                .filter(|m| m.verdict == Verdict::Inconclusive)
                .map(move |m| match m.reps_needed {
                    Some(n) => format!(
                        "{} {} ({:+.1}{}; about {n} or more repetitions a side would decide)",
                        c.id,
                        m.metric.name(),
                        m.change,
                        m.change_unit
                    ),
                    None => format!(
                        "{} {} ({:+.1}{})",
                        c.id,
                        m.metric.name(),
                        m.change,
                        m.change_unit
                    ),
                })
        })
        .collect();
    if !undecided.is_empty() {
        let _ = writeln!(
            out,
            "Inconclusive (worse beyond the threshold, but the data cannot tell it from noise: not a failure): {}\n",
            undecided.join(", ")
        );
    }
    out.push_str(&compare_markdown(&v.comparison));
    let failed: Vec<&SloResult> = v.slos.iter().filter(|s| !s.ok).collect();
    if !v.slos.is_empty() {
        let _ = writeln!(
            out,
            "\nSLOs: {} checked, {} not met",
            v.slos.len(),
            failed.len()
        );
        for s in failed {
            let _ = writeln!(out, "- {} `{}`: {:.3}", s.cell, s.slo, s.value);
        }
    }
    out
}

/// Names of the thresholds in force, for messages.
pub fn describe(t: &Thresholds) -> String {
    let m: BTreeMap<&str, String> = t.0.iter().map(|(k, v)| (k.name(), v.to_string())).collect();
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_and_slos_parse_or_name_the_mistake() {
        let t = parse_thresholds("p99=20%,rps=3%,error_rate=0.5pp", Thresholds::default()).unwrap();
        assert_eq!(t.0[&Metric::P99], Limit::Percent(20.0));
        assert_eq!(t.0[&Metric::ErrorRate], Limit::Points(0.5));
        assert_eq!(t.0[&Metric::P999], Limit::Percent(15.0));
        assert!(parse_thresholds("p98=1%", Thresholds::default())
            .unwrap_err()
            .contains("p98"));
        assert!(parse_thresholds("p99=10", Thresholds::default())
            .unwrap_err()
            .contains("unit"));
        let s = parse_slo("p99 < 5ms").unwrap();
        assert_eq!(
            (s.metric, s.less_than, s.bound),
            (Metric::P99, true, 5000.0)
        );
        let s = parse_slo("error_rate < 0.1%").unwrap();
        assert!((s.bound - 0.001).abs() < 1e-12);
        assert!(parse_slo("rps > 1000").is_ok());
        assert!(parse_slo("p99 = 5ms").is_err());
    }

    #[test]
    fn gate_table_is_read_from_the_scenario() {
        let (max, slo) = from_scenario(
            "[scenario]\nname='x'\n[gate]\nmax_regression = { p99 = \"12%\" }\nslo = [\"p99 < 5ms\"]\n",
        )
        .unwrap();
        assert_eq!(max.as_deref(), Some("p99=12%"));
        assert_eq!(slo, ["p99 < 5ms"]);
    }
}
