//! Running a plan: for every repetition, for every cell (interleaved: A B C A B C, so
//! machine drift spreads evenly), start the topology, fetch `/info` through it, warm up
//! and measure with the load engine, stop everything, and record the cell. The manifest
//! is rewritten after every cell, so an interrupted run leaves a valid one.

pub mod attack;
mod cell;
pub mod conform;
pub mod env;
mod execute;
pub mod info;
pub mod peer;
mod search;
pub mod topology;
pub mod variant;

pub use execute::execute;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use h2lab_common::pki::{KeyType, Pki};
use serde::Serialize;

use crate::model::plan::{Cell, Offer, Plan, RequestBody, Topology};
use crate::model::{LoadConfig, LoadModel, Proto, Target, TlsClientConfig};

/// Schema of `manifest.json`.
pub const MANIFEST_SCHEMA: &str = "h2lab.manifest/v1";

/// Outcome of one cell and repetition.
#[derive(Debug, Clone, Serialize)]
pub struct CellRecord {
    /// Cell id.
    pub cell: String,
    /// Repetition (1-based).
    pub rep: u32,
    /// `ok`, `failed` or `skipped`.
    pub status: String,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// Directory of its files, relative to the run directory.
    pub dir: String,
    /// Achieved requests/s (of the step at capacity, for a search).
    pub rps: Option<f64>,
    /// The capacity a search found (the highest rate meeting every SLO).
    pub capacity: Option<f64>,
    /// Protocol that reached the app.
    pub app_protocol: Option<String>,
    /// Where [`CellRecord::app_protocol`] comes from: `observed` (the built-in app's
    /// `/info`, or the client's own connection when the user's app is the edge) or
    /// `configured` (how the lab configured the front's hop to the user's app).
    pub app_protocol_source: Option<String>,
    /// What the reader of this cell should know (e.g. why a hop differs from the app's
    /// protocol).
    pub notes: Vec<String>,
    /// Seconds to start the topology (spawn to readiness).
    pub start_s: f64,
    /// Seconds to stop it.
    pub stop_s: f64,
    /// Processes found alive after the teardown (should always be empty).
    pub leftover_processes: Vec<String>,
    /// How the topology fared against the cell's attack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack: Option<attack::AttackOutcome>,
    /// The conformance suite's outcome, when the scenario runs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conform: Option<conform::ConformOutcome>,
}

/// `manifest.json`.
#[derive(Debug, Serialize)]
pub struct Manifest<'a> {
    /// Always [`MANIFEST_SCHEMA`].
    pub schema: &'static str,
    /// Run id (directory name).
    pub run_id: String,
    /// The scenario file as given.
    pub scenario_file: String,
    /// Its text, verbatim.
    pub scenario: String,
    /// The expanded plan.
    pub plan: &'a Plan,
    /// Wall-clock start.
    pub started_at: String,
    /// Wall-clock end, once finished.
    pub finished_at: Option<String>,
    /// Every cell ran (or was skipped).
    pub complete: bool,
    /// Stopped by a signal.
    pub interrupted: bool,
    /// Machine and software.
    pub environment: env::Environment,
    /// CPU pinning used.
    pub pinning: Pinning,
    /// Set when this run was measured interleaved with others (`h2lab run --variant`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interleaved: Option<variant::Interleaved>,
    /// Cells done so far.
    pub cells: Vec<CellRecord>,
}

/// CPU pinning of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Pinning {
    /// Whether pinning was on.
    pub enabled: bool,
    /// Core the servers ran on.
    pub server_core: Option<usize>,
    /// Worker threads of the generator.
    pub generator_threads: usize,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A run id: name, UTC time and pid (two runs started in the same second stay apart).
pub fn run_id(name: &str) -> String {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string();
    // The pid keeps two runs started in the same second apart.
    format!("{name}-{stamp}-{}", std::process::id())
}

/// The load engine's configuration for `cell` against `target`: the cell's request (or
/// mix), and for external cells the `[target]` settings. Reads body files, so it fails
/// when one cannot be read.
pub fn load_config(
    plan: &Plan,
    cell: &Cell,
    target: &topology::Launched,
    threads: usize,
) -> Result<LoadConfig, String> {
    let https = target.scheme == "https";
    let port = target.addr.port();
    let authority = if https {
        format!("localhost:{port}")
    } else {
        target.addr.to_string()
    };
    let ext = &plan.target;
    let (authority, host, cacert, insecure) = match &cell.topology {
        Topology::External(url) => {
            let uri: http::Uri = url.parse().expect("validated URL");
            let a = uri.authority().map(|a| a.to_string()).unwrap_or(authority);
            let h = uri.host().unwrap_or("localhost").to_string();
            (
                ext.host.clone().unwrap_or(a),
                ext.sni.clone().unwrap_or(h),
                ext.cacert.clone(),
                ext.insecure,
            )
        }
        _ => (authority, "localhost".to_string(), target.ca.clone(), false),
    };
    let (proto, alpn) = match &cell.offer {
        Offer::Tls(list) => (Proto::Auto, list.clone()),
        Offer::H1 => (Proto::H1, Vec::new()),
        Offer::H2c => (Proto::H2c, Vec::new()),
        Offer::H2cUpgrade => (Proto::H2cUpgrade, Vec::new()),
    };
    let body_of = |b: &RequestBody| -> Result<Vec<u8>, String> {
        match b {
            RequestBody::Empty => Ok(Vec::new()),
            RequestBody::Filler { bytes } => Ok(vec![b'x'; *bytes]),
            RequestBody::File { path, .. } => std::fs::read(path)
                .map_err(|e| format!("cannot read body_file {}: {e}", path.display())),
        }
    };
    let reqs = &cell.request.requests;
    let first = &reqs[0];
    // One request: its method, headers and body are the configuration's (peers get
    // them as flags); a mix gives each target its own.
    let (method, headers, body, targets) = if let [one] = reqs.as_slice() {
        (
            one.method.clone(),
            one.headers.clone(),
            body_of(&one.body)?,
            vec![Target::path(one.path.clone())],
        )
    } else {
        let targets = reqs
            .iter()
            .map(|r| {
                Ok(Target {
                    path: r.path.clone(),
                    method: Some(r.method.clone()),
                    headers: r.headers.clone(),
                    body: Some(body_of(&r.body)?),
                    weight: r.weight,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        (first.method.clone(), Vec::new(), Vec::new(), targets)
    };
    Ok(LoadConfig {
        url: format!("{}://{authority}{}", target.scheme, first.path),
        scheme: target.scheme.clone(),
        authority,
        addr: target.addr,
        targets,
        method,
        headers,
        body_bytes: body.len(),
        body,
        proto,
        tls: https.then_some(TlsClientConfig {
            stack: cell.client_tls,
            min: None,
            max: None,
            ciphers: None,
            tls13_suites: None,
            alpn,
            cacert,
            insecure,
            sni: host,
        }),
        connections: cell.load.connections,
        streams: cell.load.streams,
        batch: crate::model::config::default_batch(cell.load.streams),
        threads,
        io: crate::model::IoEngine::Auto,
        duration: Some(plan.duration),
        warmup: plan.warmup,
        requests: None,
        model: match cell.load.rate {
            Some(rate) => LoadModel::Open { rate },
            None => LoadModel::Closed,
        },
        timeout: plan.timeout,
        cpu_affinity: None,
        keep_alive: true,
        pipelining: false,
        tls_resumption: false,
        agent: None,
        seq_header: None,
        start_at: None,
    })
}

/// SIGINT / SIGTERM flags: which one came, and whether any did.
pub struct Signals {
    /// SIGINT seen.
    pub int: Arc<AtomicBool>,
    /// SIGTERM seen.
    pub term: Arc<AtomicBool>,
    /// Either seen.
    pub any: Arc<AtomicBool>,
}

impl Signals {
    /// Registers the handlers.
    pub fn install() -> anyhow::Result<Signals> {
        let s = Signals {
            int: Arc::default(),
            term: Arc::default(),
            any: Arc::default(),
        };
        for (sig, flag) in [
            (signal_hook::consts::SIGINT, &s.int),
            (signal_hook::consts::SIGTERM, &s.term),
        ] {
            signal_hook::flag::register(sig, flag.clone())
                .context("cannot install signal handler")?;
            signal_hook::flag::register(sig, s.any.clone())
                .context("cannot install signal handler")?;
        }
        Ok(s)
    }
}

/// Generates a CA and leaf into `out/pki` for each key type `wanted` selects.
pub fn generate_pki(
    out: &Path,
    wanted: impl Fn(KeyType) -> bool,
) -> anyhow::Result<Vec<(KeyType, h2lab_common::pki::PkiFiles)>> {
    let pki_dir = out.join("pki");
    std::fs::create_dir_all(&pki_dir)?;
    let mut pki = Vec::new();
    for key in [KeyType::Ecdsa, KeyType::Rsa] {
        if wanted(key) {
            pki.push((key, Pki::generate(key)?.write_to(&pki_dir, key.as_str())?));
        }
    }
    Ok(pki)
}
