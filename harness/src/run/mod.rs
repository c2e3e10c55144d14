//! Running a plan: for every repetition, for every cell (interleaved: A B C A B C, so
//! machine drift spreads evenly), start the topology, fetch `/info` through it, warm up
//! and measure with the load engine, stop everything, and record the cell. The manifest
//! is rewritten after every cell, so an interrupted run leaves a valid one.

mod cell;
pub mod env;
pub mod info;
pub mod peer;
mod search;
pub mod topology;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use h2lab_common::pki::{KeyType, Pki};
use serde::Serialize;

use crate::cli::run::RunArgs;
use crate::model::plan::{Cell, Offer, Plan, RequestBody, Topology};
use crate::model::{LoadConfig, LoadModel, Proto, Target, TlsClientConfig};
use crate::output::atomic_write;
use topology::Launcher;

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

/// Runs every cell of `plan`, writes the results directory, returns the exit code:
/// 0 all cells ran, 1 some cell failed, 130/143 interrupted.
pub fn execute(plan: &Plan, file: &Path, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let signals = Signals::install()?;
    let id = run_id(&plan.name);
    let out: PathBuf = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&id));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let sut = h2lab_common::launch::locate_sut()
        .context("the sut binary is needed to start topologies")?;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pin_core = (args.pin && cpus > 1).then_some(cpus - 1);
    let threads = if pin_core.is_some() { cpus - 1 } else { cpus };

    // A `[negotiation]` section runs as the matrix into the same directory, after the
    // load cells (the report then shows its heatmap).
    let matrix = crate::scenario::negotiation::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    // A fresh PKI per run, for every key type the plan (and the matrix) uses.
    let pki = generate_pki(&out, |key| {
        plan.cells.iter().any(|c| c.cert == key)
            || matrix.as_ref().is_some_and(|m| m.certs.contains(&key))
    })?;
    let launcher = Launcher {
        sut,
        pki: &pki,
        owner: id.clone(),
        pin_core,
    };
    let mut manifest = Manifest {
        schema: MANIFEST_SCHEMA,
        run_id: id.clone(),
        scenario_file: file.display().to_string(),
        scenario: std::fs::read_to_string(file).unwrap_or_default(),
        plan,
        started_at: now(),
        finished_at: None,
        complete: false,
        interrupted: false,
        environment: env::collect(),
        pinning: Pinning {
            enabled: pin_core.is_some(),
            server_core: pin_core,
            generator_threads: threads,
        },
        cells: Vec::new(),
    };
    let write_manifest = |m: &Manifest| {
        atomic_write(&out.join("manifest.json"), |w| {
            serde_json::to_writer_pretty(&mut *w, m).map_err(std::io::Error::other)?;
            std::io::Write::write_all(w, b"\n")
        })
    };
    write_manifest(&manifest)?;
    let total = plan.cells.len() * plan.repetitions as usize;
    let progress = crate::output::progress::RunProgress::new(total, args.quiet);
    let ctx = cell::RunCtx {
        plan,
        launcher: &launcher,
        threads,
        signals: &signals,
    };
    let mut done = 0;
    'reps: for rep in 1..=plan.repetitions {
        for cell in &plan.cells {
            if signals.any.load(Ordering::Relaxed) {
                break 'reps;
            }
            done += 1;
            let rel = format!("cells/{}/rep-{rep}", cell.id);
            let dir = out.join(&rel);
            std::fs::create_dir_all(&dir)?;
            let label = format!("[{}/{total}] rep {rep} {}", done, cell.id);
            progress.cell_started(&label);
            let record = cell::run_cell(&ctx, cell, rep, &dir, &rel, &|p| {
                progress.cell_load(&label, p)
            });
            {
                let what = match (&record.status[..], record.rps) {
                    ("ok", _) if record.capacity.is_some() => format!(
                        "ok, capacity {:.0} req/s",
                        record.capacity.unwrap_or_default()
                    ),
                    ("ok", Some(rps)) => format!(
                        "ok {rps:.0} req/s, app {} {}",
                        match record.app_protocol_source.as_deref() {
                            Some("configured") => "configured for",
                            _ => "saw",
                        },
                        record.app_protocol.as_deref().unwrap_or("?")
                    ),
                    (s, _) => format!("{s}: {}", record.reason.as_deref().unwrap_or("")),
                };
                progress.cell_done(&format!(
                    "[{done}/{total}] rep {rep} {}: {what} (start {:.2}s, stop {:.2}s)",
                    cell.id, record.start_s, record.stop_s
                ));
            }
            manifest.cells.push(record);
            write_manifest(&manifest)?;
        }
    }
    progress.finish();
    let mut matrix_failed = false;
    if let Some(spec) = matrix.filter(|_| !signals.any.load(Ordering::Relaxed)) {
        let result = crate::matrix::run(&spec, &launcher, &out, &signals.any, |_, _| {});
        crate::matrix::write(&result, &out)
            .with_context(|| format!("cannot write the matrix into {}", out.display()))?;
        let s = &result.summary;
        println!(
            "negotiation matrix: {} cells, {} as expected, {} not; documented rows reproduced {}/{}",
            s.cells, s.agree, s.disagree, s.documented_reproduced, s.documented_total
        );
        matrix_failed = s.documented_reproduced < s.documented_total || s.servers_failed > 0;
    }
    manifest.interrupted = signals.any.load(Ordering::Relaxed);
    manifest.complete = !manifest.interrupted;
    manifest.finished_at = Some(now());
    write_manifest(&manifest)?;
    // The verdict reads what was written; a run it cannot judge still keeps its results.
    match crate::verdict::write(&out) {
        Ok(v)
            if v.workloads
                .iter()
                .any(|w| w.entries.iter().any(|e| e.repetitions > 0)) =>
        {
            print!("{}", crate::verdict::render::text(&v));
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: no verdict.json: {e}"),
    }
    println!("results: {}", out.display());
    let failed = manifest
        .cells
        .iter()
        .filter(|c| c.status == "failed")
        .count();
    Ok(if signals.int.load(Ordering::Relaxed) {
        ExitCode::from(130)
    } else if signals.term.load(Ordering::Relaxed) {
        ExitCode::from(143)
    } else if failed > 0 {
        eprintln!("{failed} cell run(s) failed; see manifest.json");
        ExitCode::from(1)
    } else if matrix_failed {
        eprintln!("the negotiation matrix did not reproduce a documented row; see matrix.md");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
