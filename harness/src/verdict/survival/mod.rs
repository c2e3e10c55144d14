//! The survival matrix of a run with an `attack` axis: one row per topology (every axis
//! but `attack`), one column per attack, each cell the worst of its repetitions (the
//! legitimate p99 ratio, error rate and peak RSS ratio, how the attacker was cut off),
//! and the rows that held against every attack named.

pub mod render;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analysis::names;
use crate::analysis::rundir::{CellSamples, RunDir};
use crate::analysis::stats::median;

/// The matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Survival {
    /// The attacks, in plan order (`none` left out): the columns.
    pub attacks: Vec<String>,
    /// One per topology (cells that differ only in the attack).
    pub rows: Vec<Row>,
    /// Rows that held against every attack.
    pub held_everywhere: Vec<String>,
    /// The matrix in words.
    pub sentence: String,
}

/// One topology of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The row's readable name (the axes other than `attack` that vary).
    pub name: String,
    /// Median legitimate p99 of the calm phases of the row's attacked cells, ms.
    pub calm_p99_ms: Option<f64>,
    /// One per attack of [`Survival::attacks`]; None where the run has no such cell.
    pub cells: Vec<Option<Cell>>,
}

/// One topology against one attack, over the cell's repetitions.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// The cell's id.
    pub cell: String,
    /// Repetitions with an attack outcome.
    pub repetitions: usize,
    /// Of them, the ones that held.
    pub held_repetitions: usize,
    /// Held in every repetition (and at least one ran).
    pub held: bool,
    /// The highest legitimate p99 under attack over calm.
    pub p99_ratio: f64,
    /// The highest share of legitimate requests that failed under attack.
    pub error_rate: f64,
    /// The highest peak-RSS ratio, when the topology's processes were sampled.
    pub rss_ratio: Option<f64>,
    /// Attacking connections cut off, of all, summed over repetitions.
    pub cut_off: (usize, usize),
    /// The most common way the attacking connections ended.
    pub ending: Option<String>,
    /// Why a repetition did not hold, each reason once.
    pub reasons: Vec<String>,
}

fn cell(c: &CellSamples) -> Cell {
    let outcomes: Vec<_> = c.reps.iter().filter_map(|r| r.attack.as_ref()).collect();
    let mut endings: BTreeMap<String, usize> = BTreeMap::new();
    let mut reasons: Vec<String> = Vec::new();
    let mut cut_off = (0, 0);
    for o in &outcomes {
        for (label, n) in &o.endings {
            *endings.entry(label.clone()).or_default() += n;
        }
        for r in &o.reasons {
            if !reasons.contains(r) {
                reasons.push(r.clone());
            }
        }
        cut_off = (cut_off.0 + o.cut_off.0, cut_off.1 + o.cut_off.1);
    }
    let held_repetitions = outcomes.iter().filter(|o| o.held).count();
    let worst = |f: &dyn Fn(&crate::run::attack::AttackOutcome) -> Option<f64>| {
        outcomes.iter().filter_map(|o| f(o)).reduce(f64::max)
    };
    Cell {
        cell: c.id.clone(),
        repetitions: outcomes.len(),
        held_repetitions,
        held: !outcomes.is_empty() && held_repetitions == outcomes.len(),
        p99_ratio: worst(&|o| Some(o.p99_ratio)).unwrap_or(f64::NAN),
        error_rate: worst(&|o| Some(o.error_rate)).unwrap_or(f64::NAN),
        rss_ratio: worst(&|o| o.rss_ratio),
        cut_off,
        ending: endings
            .iter()
            .max_by_key(|(label, n)| (**n, std::cmp::Reverse(label.as_str())))
            .map(|(label, _)| label.clone()),
        reasons,
    }
}

/// The matrix of a run, or None when no cell was attacked.
pub fn build(run: &RunDir) -> Option<Survival> {
    let attack_of = |c: &CellSamples| c.axes.get("attack").cloned();
    let mut attacks: Vec<String> = Vec::new();
    for a in run.cells.iter().filter_map(attack_of) {
        if a != "none" && !attacks.contains(&a) {
            attacks.push(a);
        }
    }
    if attacks.is_empty() {
        return None;
    }
    let mut groups: Vec<(BTreeMap<String, String>, Vec<&CellSamples>)> = Vec::new();
    for c in &run.cells {
        let mut key = c.axes.clone();
        key.remove("attack");
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(c),
            None => groups.push((key, vec![c])),
        }
    }
    let keys: Vec<&BTreeMap<String, String>> = groups.iter().map(|g| &g.0).collect();
    let labels = names::readable(&keys);
    let rows: Vec<Row> = groups
        .iter()
        .zip(labels)
        .map(|((_, members), name)| {
            let calm: Vec<f64> = members
                .iter()
                .flat_map(|c| c.reps.iter().filter_map(|r| r.attack.as_ref()))
                .map(|o| o.p99_ms.0)
                .collect();
            Row {
                name,
                calm_p99_ms: (!calm.is_empty()).then(|| median(&calm)),
                cells: attacks
                    .iter()
                    .map(|a| {
                        members
                            .iter()
                            .find(|c| attack_of(c).as_deref() == Some(a.as_str()))
                            .map(|c| cell(c))
                    })
                    .collect(),
            }
        })
        .collect();
    let held_everywhere: Vec<String> = rows
        .iter()
        .filter(|r| r.cells.iter().all(|c| c.as_ref().is_some_and(|c| c.held)))
        .map(|r| r.name.clone())
        .collect();
    let sentence = sentence(&attacks, &rows, &held_everywhere);
    Some(Survival {
        attacks,
        rows,
        held_everywhere,
        sentence,
    })
}

/// `14.9x p99`, `errors 3.0%`, `RSS 4.1x`: what broke in a cell that did not hold.
pub fn damage(c: &Cell) -> String {
    if c.repetitions == 0 {
        return "no result".into();
    }
    let mut parts = vec![format!("p99 {:.1}x", c.p99_ratio)];
    if c.error_rate > 0.0 {
        parts.push(format!("errors {:.1}%", c.error_rate * 100.0));
    }
    if let Some(r) = c.rss_ratio.filter(|r| *r >= 1.5) {
        parts.push(format!("RSS {r:.1}x"));
    }
    if c.cut_off.0 < c.cut_off.1 {
        parts.push(format!("{} of {} cut off", c.cut_off.0, c.cut_off.1));
    }
    parts.join(", ")
}

fn sentence(attacks: &[String], rows: &[Row], held: &[String]) -> String {
    let mut out = if held.is_empty() {
        format!("No topology held against all {} attacks.", attacks.len())
    } else {
        format!(
            "Held against all {} attacks: {}.",
            attacks.len(),
            held.join(", ")
        )
    };
    for r in rows.iter().filter(|r| !held.contains(&r.name)) {
        let failed: Vec<String> = attacks
            .iter()
            .zip(&r.cells)
            .filter_map(|(a, c)| match c {
                Some(c) if !c.held => Some(format!("{a} ({})", damage(c))),
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            out.push_str(&format!(" {} fell to {}.", r.name, failed.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::rundir::RepMetrics;
    use crate::run::attack::AttackOutcome;

    fn outcome(kind: &str, held: bool, ratio: f64, ending: &str) -> RepMetrics {
        RepMetrics {
            attack: Some(AttackOutcome {
                kind: kind.into(),
                held,
                p99_ratio: ratio,
                p99_ms: (1.0, ratio),
                error_rate: 0.0,
                rss_ratio: Some(1.1),
                cut_off: if held { (4, 4) } else { (0, 4) },
                endings: BTreeMap::from([(ending.to_string(), 4)]),
                reasons: if held {
                    vec![]
                } else {
                    vec![format!("p99 {ratio}x over the bound")]
                },
            }),
            ..RepMetrics::default()
        }
    }

    fn cell(topology: &str, attack: &str, reps: Vec<RepMetrics>) -> CellSamples {
        CellSamples {
            id: format!("{topology}.{attack}"),
            axes: [
                ("topology", topology),
                ("attack", attack),
                ("cert", "ecdsa"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            reps,
        }
    }

    #[test]
    fn rows_that_held_everywhere_are_named_and_the_worst_repetition_counts() {
        let run = RunDir {
            path: "/tmp/x".into(),
            run_id: "x".into(),
            scenario: String::new(),
            cells: vec![
                cell("direct-edge", "none", vec![RepMetrics::default()]),
                cell(
                    "direct-edge",
                    "rapid-reset",
                    vec![outcome(
                        "rapid-reset",
                        true,
                        1.2,
                        "GOAWAY ENHANCE_YOUR_CALM",
                    )],
                ),
                cell(
                    "direct-edge",
                    "ping-flood",
                    vec![outcome("ping-flood", true, 1.1, "GOAWAY ENHANCE_YOUR_CALM")],
                ),
                cell(
                    "reverse-proxy:apache",
                    "rapid-reset",
                    vec![outcome("rapid-reset", true, 1.3, "GOAWAY PROTOCOL_ERROR")],
                ),
                cell(
                    "reverse-proxy:apache",
                    "ping-flood",
                    vec![
                        outcome("ping-flood", true, 1.5, "never"),
                        outcome("ping-flood", false, 6.1, "never"),
                    ],
                ),
                cell("reverse-proxy:haproxy", "rapid-reset", vec![]),
            ],
            started_at: None,
            interleaved: None,
        };
        let s = build(&run).expect("attacked cells");
        assert_eq!(
            s.attacks,
            ["rapid-reset", "ping-flood"],
            "none is no column"
        );
        let names: Vec<&str> = s.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "direct-edge",
                "reverse-proxy:apache",
                "reverse-proxy:haproxy"
            ]
        );
        assert_eq!(s.held_everywhere, ["direct-edge"]);
        let apache = s.rows[1].cells[1].as_ref().unwrap();
        assert_eq!((apache.held, apache.repetitions), (false, 2));
        assert_eq!(apache.p99_ratio, 6.1);
        assert_eq!(apache.cut_off, (4, 8));
        assert_eq!(apache.ending.as_deref(), Some("never"));
        let haproxy = &s.rows[2];
        assert!(
            !haproxy.cells[0].as_ref().unwrap().held,
            "no result is no hold"
        );
        assert!(haproxy.cells[1].is_none());
        assert!(
            s.sentence
                .starts_with("Held against all 2 attacks: direct-edge.")
                && s.sentence
                    .contains("reverse-proxy:apache fell to ping-flood (p99 6.1x, 4 of 8 cut off)"),
            "{}",
            s.sentence
        );
        assert_eq!(s.rows[0].calm_p99_ms, Some(1.0));
    }

    #[test]
    fn a_run_without_attacks_has_no_matrix() {
        let run = RunDir {
            path: "/tmp/x".into(),
            run_id: "x".into(),
            scenario: String::new(),
            cells: vec![cell("direct-edge", "none", vec![RepMetrics::default()])],
            started_at: None,
            interleaved: None,
        };
        assert!(build(&run).is_none());
    }
}
