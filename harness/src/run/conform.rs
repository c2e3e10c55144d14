//! A cell's HTTP/2 conformance: after its load, the suite runs against the started
//! topology at the cell's URL (h2c, or h2 over TLS with the cell's client trust), writes
//! `conform.json` and `junit.xml` in the cell's directory, and the manifest keeps the
//! counts and every failure for the report.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CellRecord;
use crate::conform::{self, ConformReport, Options};
use crate::model::plan::ConformSpec;
use crate::model::{LoadConfig, Proto};
use crate::output::atomic_write;
use crate::tls::ClientTls;

/// One failed case as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// `RFC 9113 §6.5`.
    pub section: String,
    /// The case.
    pub name: String,
    /// What the suite said.
    pub message: String,
    /// Why the lab accepts it, when it does.
    pub accepted: Option<String>,
}

/// What the report shows of one cell's conformance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConformOutcome {
    /// The suite and its version.
    pub suite: String,
    /// `h2c (prior knowledge)` or `h2 over TLS (relayed)`.
    pub transport: String,
    /// Cases.
    pub total: usize,
    /// Passed.
    pub passed: usize,
    /// Failed as accepted.
    pub accepted: usize,
    /// Failed otherwise.
    pub unexpected: usize,
    /// Every failure.
    pub failures: Vec<Failure>,
}

impl ConformOutcome {
    fn of(r: &ConformReport) -> ConformOutcome {
        ConformOutcome {
            suite: r.suite.to_string(),
            transport: r.transport.clone(),
            total: r.total,
            passed: r.passed,
            accepted: r.accepted,
            unexpected: r.unexpected,
            failures: r
                .cases
                .iter()
                .filter(|c| !c.case.passed)
                .map(|c| Failure {
                    section: conform::section(c),
                    name: c.case.name.clone(),
                    message: c.case.message.clone().unwrap_or_default(),
                    accepted: c.why.map(str::to_string),
                })
                .collect(),
        }
    }
}

/// The client TLS the relay uses: the cell's, offering h2 only.
fn relay_tls(cfg: &LoadConfig) -> Result<Option<ClientTls>, String> {
    cfg.tls
        .as_ref()
        .map(|t| {
            let mut t = t.clone();
            t.alpn = vec!["h2".into()];
            ClientTls::build(&t).map_err(|e| e.to_string())
        })
        .transpose()
}

/// Runs the suite against the cell's started topology, and records it.
/// `lab` says whether the lab's own server faces the client (its accepted deviations
/// apply).
pub(super) fn run(
    spec: &ConformSpec,
    cfg: &LoadConfig,
    lab: bool,
    dir: &Path,
    record: &mut CellRecord,
) {
    let speaks_h2 = match &cfg.tls {
        Some(t) => t.alpn.iter().any(|p| p == "h2"),
        None => cfg.proto == Proto::H2c,
    };
    if !speaks_h2 {
        record
            .notes
            .push("conformance: the cell's client offers no HTTP/2; not run".into());
        return;
    }
    let tls = match relay_tls(cfg) {
        Ok(t) => t,
        Err(e) => {
            record.notes.push(format!("conformance: client TLS: {e}"));
            return;
        }
    };
    let opts = Options {
        filter: spec.filter.clone(),
        timeout: spec.timeout,
        lab,
        ..Options::default()
    };
    let report = match conform::run(&cfg.url, cfg.addr, tls, &opts) {
        Ok(r) => r,
        Err(e) => {
            record.notes.push(format!("conformance: {e}"));
            return;
        }
    };
    let json = atomic_write(&dir.join("conform.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, &report).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, b"\n")
    });
    let junit = conform::junit(&report);
    let xml = atomic_write(&dir.join("junit.xml"), |w| {
        std::io::Write::write_all(w, junit.as_bytes())
    });
    if let Err(e) = json.and(xml) {
        record
            .notes
            .push(format!("conformance: cannot write its files: {e}"));
    }
    record.conform = Some(ConformOutcome::of(&report));
}
