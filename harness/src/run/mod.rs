//! Running a plan: for every repetition, for every cell (interleaved: A B C A B C, so
//! machine drift spreads evenly), start the topology, fetch `/info` through it, warm up
//! and measure with the load engine, stop everything, and record the cell. The manifest
//! is rewritten after every cell, so an interrupted run leaves a valid one.

pub mod env;
pub mod info;
pub mod peer;
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
use crate::load::{self, Shared};
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
    /// Achieved requests/s.
    pub rps: Option<f64>,
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
    let ctx = RunCtx {
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
            let record = run_cell(&ctx, cell, rep, &dir, &rel, &|p| {
                progress.cell_load(&label, p)
            });
            {
                let what = match (&record.status[..], record.rps) {
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

fn write_result(dir: &Path, result: &crate::model::ResultV1) -> std::io::Result<()> {
    atomic_write(&dir.join("result.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, result).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, b"\n")
    })
}

/// What every cell of a run shares.
struct RunCtx<'a> {
    plan: &'a Plan,
    launcher: &'a Launcher<'a>,
    threads: usize,
    signals: &'a Signals,
}

/// Runs one cell; processes left after its teardown make it fail, whatever else happened.
fn run_cell(
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
        app_protocol: None,
        app_protocol_source: None,
        notes: Vec::new(),
        start_s: 0.0,
        stop_s: 0.0,
        leftover_processes: Vec::new(),
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
        let outcome = peer::run(&cell.engine, &cfg);
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
