//! A cell whose load is a capacity search: one search per repetition, its steps in
//! `search.json`, and the step at capacity as the cell's `result.json` and interval log,
//! so reports, comparisons and the gate read it like any other cell.

use std::path::Path;

use super::cell::write_result;
use super::{CellRecord, Signals};
use crate::model::plan::Cell;
use crate::model::{LoadConfig, ResultV1};
use crate::output::atomic_write;
use crate::record::hlog::TimedInterval;
use crate::search::{self, steps, SearchReport, SearchSpec};

/// Runs the search of `cell` against the started topology, and records it.
pub(super) fn run(
    spec: &SearchSpec,
    cfg: &LoadConfig,
    cell: &Cell,
    dir: &Path,
    signals: &Signals,
    record: &mut CellRecord,
) {
    let t0 = std::time::Instant::now();
    let mut error = None;
    // Every step's result, to keep the one at capacity.
    let mut measured: Vec<(f64, ResultV1, std::time::SystemTime, Vec<TimedInterval>)> = Vec::new();
    let found = search::search(spec, |rate| {
        steps::run_step(spec, cfg, rate, &signals.any, &mut error, &mut |r, run| {
            measured.push((rate, r.clone(), run.started, run.intervals.clone()));
        })
    });
    let report = SearchReport::new(&cell.id, spec, vec![found], t0.elapsed().as_secs_f64());
    let wrote = atomic_write(&dir.join("search.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, &report).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, b"\n")
    });
    record.notes.push(report.sentence());
    if let Some(e) = error {
        record.status = "failed".into();
        record.reason = Some(e);
        return;
    }
    if let Err(e) = wrote {
        record.status = "failed".into();
        record.reason = Some(format!("cannot write search.json: {e}"));
        return;
    }
    let run = &report.searches[0];
    let Some(capacity) = run.capacity else {
        record.status = "failed".into();
        record.reason = Some(report.sentence());
        return;
    };
    record.capacity = Some(capacity);
    if let Some((_, result, started, intervals)) = measured.iter().find(|m| m.0 == capacity) {
        record.rps = Some(result.summary.rps);
        let wrote = write_result(dir, result).and_then(|()| {
            crate::record::hlog::write(&dir.join("latency.hlog"), *started, intervals)
        });
        if let Err(e) = wrote {
            record.status = "failed".into();
            record.reason = Some(format!("cannot write results: {e}"));
        }
    }
}
