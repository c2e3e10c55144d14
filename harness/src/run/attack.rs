//! A cell with an attack: the cell's open-loop load calm, beside the attack and after it
//! (`attack.json` in the cell's directory, as `h2lab attack` writes it), every process of
//! the topology sampled, and the outcome kept in the manifest for the survival matrix.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::cell::write_result;
use super::topology::Launched;
use super::{CellRecord, Signals};
use crate::attack::judge::Bounds;
use crate::attack::session::{self, AttackReport, Options};
use crate::attack::Kind;
use crate::model::plan::AttackSpec;
use crate::model::LoadConfig;
use crate::output::atomic_write;

/// What the survival matrix shows of one attacked cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackOutcome {
    /// The attack.
    pub kind: String,
    /// Whether the topology held (the `h2lab attack` rule).
    pub held: bool,
    /// Legitimate p99 under attack over calm.
    pub p99_ratio: f64,
    /// Legitimate p99 calm and under attack, ms.
    pub p99_ms: (f64, f64),
    /// Share of legitimate requests that failed under attack.
    pub error_rate: f64,
    /// Peak RSS of the topology's processes under attack over calm.
    pub rss_ratio: Option<f64>,
    /// Attacking connections cut off, of all.
    pub cut_off: (usize, usize),
    /// How the attacking connections ended: label -> count.
    pub endings: BTreeMap<String, usize>,
    /// Why it did not hold.
    pub reasons: Vec<String>,
}

impl AttackOutcome {
    fn of(r: &AttackReport) -> AttackOutcome {
        let mut endings = BTreeMap::new();
        for c in &r.connections {
            *endings.entry(c.ending.label()).or_insert(0) += 1;
        }
        AttackOutcome {
            kind: r.kind.clone(),
            held: r.judgement.held,
            p99_ratio: r.judgement.p99_ratio,
            p99_ms: (r.calm.p99_us / 1000.0, r.attacked.p99_us / 1000.0),
            error_rate: r.judgement.error_rate,
            rss_ratio: r.judgement.rss_ratio,
            cut_off: r.judgement.cut_off,
            endings,
            reasons: r.judgement.reasons.clone(),
        }
    }
}

/// Runs the attack `kind` of a cell against the started topology, and records it.
pub(super) fn run(
    kind: Kind,
    spec: &AttackSpec,
    cfg: &LoadConfig,
    launched: &Launched,
    dir: &Path,
    signals: &Signals,
    record: &mut CellRecord,
) {
    let opts = Options {
        connections: spec.connections,
        rate: spec.rate,
        max_units: spec.max_units,
        path: spec.path.clone(),
        phase: spec
            .phase
            .or(cfg.duration)
            .unwrap_or(Options::default().phase),
        after: spec.after,
        bounds: Bounds {
            p99_ratio: spec.p99_bound,
            rss_ratio: spec.rss_bound,
            ..Bounds::default()
        },
    };
    // Every server of the topology runs in its own process group.
    let groups: Vec<i32> = launched
        .servers
        .iter()
        .map(|s| s.child.pid() as i32)
        .collect();
    let report = match session::run(kind, cfg, &opts, &groups, &signals.any) {
        Ok(r) => r,
        Err(e) => {
            record.status = "failed".into();
            record.reason = Some(format!("attack {kind}: {e}"));
            return;
        }
    };
    let wrote = atomic_write(&dir.join("attack.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, &report).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, b"\n")
    });
    if let Err(e) = wrote {
        record.status = "failed".into();
        record.reason = Some(format!("cannot write attack.json: {e}"));
        return;
    }
    let outcome = AttackOutcome::of(&report);
    record.notes.push(if outcome.held {
        format!("held against {kind}")
    } else {
        format!(
            "did not hold against {kind}: {}",
            outcome.reasons.join("; ")
        )
    });
    record.rps = Some(report.attacked.achieved_rps);
    record.attack = Some(outcome);
    // The attacked phase as the cell's result: reports read an attacked cell like any other.
    if let Some(result) = &report.attacked_result {
        if let Err(e) = write_result(dir, result) {
            record.status = "failed".into();
            record.reason = Some(format!("cannot write results: {e}"));
        }
    }
}
