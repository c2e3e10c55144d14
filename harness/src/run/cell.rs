//! One cell and repetition: start its topology (with the user's app when there is one),
//! see which protocol reaches the app, drive it with the load engine, a peer generator or
//! a capacity search, stop everything, and write its results.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::topology::Launcher;
use super::{info, load_config, peer, CellRecord, Signals};
use crate::load::{self, Shared};
use crate::model::plan::{Cell, Plan, Topology};
use crate::output::atomic_write;

pub(super) fn write_result(dir: &Path, result: &crate::model::ResultV1) -> std::io::Result<()> {
    atomic_write(&dir.join("result.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, result).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, b"\n")
    })
}

/// What every cell of a run shares.
pub(super) struct RunCtx<'a> {
    pub plan: &'a Plan,
    pub launcher: &'a Launcher<'a>,
    pub threads: usize,
    pub signals: &'a Signals,
}

/// Runs one cell; processes left after its teardown make it fail, whatever else happened.
pub(super) fn run_cell(
    ctx: &RunCtx,
    cell: &Cell,
    rep: u32,
    dir: &Path,
    rel: &str,
    on_load: &dyn Fn(&crate::load::Progress),
) -> CellRecord {
    let mut record = run_cell_once(ctx, cell, rep, dir, rel, on_load);
    if !record.leftover_processes.is_empty() {
        record.status = "failed".into();
        record.reason = Some(format!(
            "processes left after teardown: {}",
            record.leftover_processes.join(", ")
        ));
    }
    record
}

fn run_cell_once(
    ctx: &RunCtx,
    cell: &Cell,
    rep: u32,
    dir: &Path,
    rel: &str,
    on_load: &dyn Fn(&crate::load::Progress),
) -> CellRecord {
    let RunCtx {
        plan,
        launcher,
        threads,
        signals,
    } = *ctx;
    let mut record = CellRecord {
        cell: cell.id.clone(),
        rep,
        status: "ok".into(),
        reason: None,
        dir: rel.to_string(),
        rps: None,
        capacity: None,
        app_protocol: None,
        app_protocol_source: None,
        notes: Vec::new(),
        start_s: 0.0,
        stop_s: 0.0,
        leftover_processes: Vec::new(),
        attack: None,
        conform: None,
    };
    if let Topology::RealProxy(kind) = &cell.topology {
        if kind.find().is_none() {
            record.status = "skipped".into();
            record.reason = Some(format!(
                "{} is not installed ({})",
                kind.name(),
                kind.install_hint()
            ));
            return record;
        }
    }
    let app = plan.app.as_ref().filter(|_| cell.app);
    let launched = match launcher.start(cell, app, dir) {
        Ok(l) => l,
        Err(e) => {
            record.status = "failed".into();
            record.reason = Some(e);
            return record;
        }
    };
    record.start_s = launched.start_time.as_secs_f64();
    let mut cfg = match load_config(plan, cell, &launched, threads) {
        Ok(cfg) => cfg,
        Err(e) => {
            let stopped = launched.stop(dir);
            record.stop_s = stopped.took.as_secs_f64();
            record.leftover_processes = stopped.leftovers;
            record.status = "failed".into();
            record.reason = Some(e);
            return record;
        }
    };
    // With --pin the servers own the last core; the generator gets the others.
    cfg.cpu_affinity = launcher.pin_core.map(|server| (0..server).collect());
    if let Some(hop) = &launched.app_hop {
        // A user's app reports nothing: say what the front was configured to speak.
        record.app_protocol = Some(hop.protocol.to_string());
        record.app_protocol_source = Some("configured".into());
        if let Some(note) = &hop.note {
            record
                .notes
                .push(format!("{note}: the hop to the app is {}", hop.protocol));
        }
    } else if app.is_none() {
        match info::fetch(&cfg) {
            Ok(info) => {
                record.app_protocol = info["http_version"].as_str().map(str::to_string);
                record.app_protocol_source =
                    record.app_protocol.as_ref().map(|_| "observed".into());
                let _ = std::fs::write(
                    dir.join("info.json"),
                    serde_json::to_vec_pretty(&info).unwrap_or_default(),
                );
            }
            Err(e) => {
                let _ = std::fs::write(dir.join("info.error.txt"), &e);
            }
        }
    }
    if cell.engine != "h2lab" {
        let outcome = match (&cell.load.search, cell.attack) {
            (Some(_), _) => Err(peer::PeerError::Skip(format!(
                "{} cannot run a capacity search; cell skipped",
                cell.engine
            ))),
            (_, Some(_)) => Err(peer::PeerError::Skip(format!(
                "{} cannot run beside an attack; cell skipped",
                cell.engine
            ))),
            _ => peer::run(&cell.engine, &cfg),
        };
        let stopped = launched.stop(dir);
        record.stop_s = stopped.took.as_secs_f64();
        record.leftover_processes = stopped.leftovers;
        match outcome {
            Ok(result) => {
                record.rps = Some(result.summary.rps);
                if let Err(e) = write_result(dir, &result) {
                    record.status = "failed".into();
                    record.reason = Some(format!("cannot write results: {e}"));
                }
            }
            Err(peer::PeerError::Skip(why)) => {
                record.status = "skipped".into();
                record.reason = Some(why);
            }
            Err(peer::PeerError::Failed(why)) => {
                record.status = "failed".into();
                record.reason = Some(why);
            }
        }
        return record;
    }
    if let Some(kind) = cell.attack {
        super::attack::run(
            kind,
            &plan.attack,
            &cfg,
            &launched,
            dir,
            signals,
            &mut record,
        );
        let stopped = launched.stop(dir);
        record.stop_s = stopped.took.as_secs_f64();
        record.leftover_processes = stopped.leftovers;
        return record;
    }
    if let Some(spec) = &cell.load.search {
        super::search::run(spec, &cfg, cell, dir, signals, &mut record);
        let stopped = launched.stop(dir);
        record.stop_s = stopped.took.as_secs_f64();
        record.leftover_processes = stopped.leftovers;
        return record;
    }
    let shared = Arc::new(Shared {
        connections: cfg.connections,
        ..Shared::default()
    });
    let stop = shared.clone();
    let run = load::run(&cfg, shared, |p| {
        on_load(p);
        if signals.any.load(Ordering::Relaxed) {
            stop.stop.store(true, Ordering::Relaxed);
        }
    });
    if let (Some(spec), false) = (&plan.conformance, signals.any.load(Ordering::Relaxed)) {
        let lab = matches!(
            cell.topology,
            Topology::DirectEdge
                | Topology::SutProxy
                | Topology::InProcess
                | Topology::OutOfProcess
        ) && !(app.is_some() && launched_edge_is_app(cell));
        super::conform::run(spec, &cfg, lab, dir, &mut record);
    }
    let stopped = launched.stop(dir);
    record.stop_s = stopped.took.as_secs_f64();
    record.leftover_processes = stopped.leftovers;
    match run {
        Ok(run) => {
            let result = crate::output::result::build(&cfg, &run);
            record.rps = Some(result.summary.rps);
            if app.is_some() && launched_edge_is_app(cell) {
                // The user's app is the edge: what the client negotiated reached it.
                record.app_protocol = http_version(&result.negotiated.protocol);
                record.app_protocol_source =
                    record.app_protocol.as_ref().map(|_| "observed".into());
            }
            let wrote = write_result(dir, &result).and_then(|()| {
                crate::record::hlog::write(&dir.join("latency.hlog"), run.started, &run.intervals)
            });
            if let Err(e) = wrote {
                record.status = "failed".into();
                record.reason = Some(format!("cannot write results: {e}"));
            } else if let Some(why) = only_server_errors(&result.status) {
                record.status = "failed".into();
                record.reason = Some(why);
            } else if result.summary.ok == 0 {
                record.status = "failed".into();
                let errors: Vec<String> = result
                    .errors
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                record.reason = Some(format!(
                    "every request failed ({}){}",
                    errors.join(", "),
                    certificate_hint(cell, &result.errors)
                ));
            }
        }
        Err(e) => {
            record.status = "failed".into();
            record.reason = Some(e.to_string());
        }
    }
    record
}

/// Whether the cell's edge is the user's app itself.
fn launched_edge_is_app(cell: &Cell) -> bool {
    cell.topology == Topology::DirectEdge
}

/// `HTTP/1.1` or `HTTP/2` for a negotiated protocol (`h1`, `h2`, `h2c`).
fn http_version(negotiated: &str) -> Option<String> {
    match negotiated {
        "h1" | "http/1.1" => Some("HTTP/1.1".into()),
        p if p.starts_with("h2") => Some("HTTP/2".into()),
        _ => None,
    }
}

/// What to do when an external target's certificate was refused.
fn certificate_hint(cell: &Cell, errors: &std::collections::BTreeMap<String, u64>) -> String {
    let refused = errors.keys().any(|k| {
        crate::tls::CERTIFICATE_CLASSES
            .iter()
            .any(|c| k == &format!("tls_handshake:{c}"))
    });
    match (&cell.topology, refused) {
        (Topology::External(_), true) => {
            "; the target's certificate is not trusted: pass cacert = \"ca.pem\" (the CA that signed it) or insecure = true in [target]".into()
        }
        _ => String::new(),
    }
}

/// "every response was a server error (...)" when no response had a status under 500: such
/// a cell measures a front's error page, not the app.
fn only_server_errors(status: &std::collections::BTreeMap<String, u64>) -> Option<String> {
    let code = |k: &str| k.parse::<u16>().unwrap_or(0);
    let any_good = status.iter().any(|(k, n)| *n > 0 && code(k) < 500);
    if any_good || status.is_empty() {
        return None;
    }
    let counts: Vec<String> = status.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    Some(format!(
        "every response was a server error ({}); the servers' logs in the cell's directory say why",
        counts.join(", ")
    ))
}
