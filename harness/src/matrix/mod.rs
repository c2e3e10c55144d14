//! `h2lab matrix`: the negotiation matrix. Starts each server configuration once, probes
//! every cell that shares it in parallel, compares each outcome with the expectation
//! (and, with `--cross-check`, with an independent client), and writes matrix.json, .csv,
//! .md and an SVG heatmap.

pub mod crosscheck;
pub mod expect;
pub mod heatmap;
pub mod report;
pub mod spec;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::model::plan::ServerTls;
use crate::model::{Proto, TlsClientConfig, TlsClientStack};
use crate::probe::{self, ProbeReport, ProbeSpec};
use crate::run::topology::{Launched, Launcher, ServerSpec, TlsSpec};
use crate::scenario::server_tls_name;
use expect::Expected;
use spec::{topology_name, MatrixOffer, MatrixSpec, ProbeCell, ServerCell, Skipped};

/// Schema of matrix.json.
pub const SCHEMA: &str = "h2lab.matrix/v1";

/// What a cell showed.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Observed {
    /// Protocol at the edge, or failure class.
    pub edge: String,
    /// Protocol at the app (`/info`).
    pub app: Option<String>,
    /// TLS version.
    pub version: Option<String>,
    /// Cipher suite (stack's name).
    pub cipher: Option<String>,
    /// ALPN selected.
    pub alpn: Option<String>,
    /// Key exchange group.
    pub group: Option<String>,
    /// Server certificate key.
    pub cert_key: Option<String>,
    /// What failed, in words.
    pub detail: Option<String>,
}

/// One cell of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    /// Topology axis value.
    pub topology: String,
    /// Server TLS stack (`none` = cleartext).
    pub server_tls: String,
    /// Platform profile (`-` on cleartext).
    pub profile: String,
    /// Certificate key type (`-` on cleartext).
    pub cert: String,
    /// Client profile (`-` on cleartext).
    pub client_profile: String,
    /// Client offer.
    pub offer: String,
    /// What the rules say.
    pub expected: Expected,
    /// What happened.
    pub observed: Observed,
    /// Observed edge (and app, when expected) equal the expectation.
    pub agrees: bool,
    /// The independent client's verdict.
    pub cross_check: Option<crosscheck::CrossCheck>,
    /// Why a disagreement is known to happen, when it is.
    pub explanation: Option<&'static str>,
}

impl CellResult {
    /// Value of an axis by its scenario name.
    pub fn axis(&self, name: &str) -> Option<&str> {
        Some(match name {
            "topology" => &self.topology,
            "server_tls" => &self.server_tls,
            "platform_profile" | "profile" => &self.profile,
            "cert" => &self.cert,
            "client_profile" => &self.client_profile,
            "client_offer" | "offer" => &self.offer,
            _ => return None,
        })
    }
}

/// A documented row and whether the cells reproduce it.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentedResult {
    /// The row's words.
    pub row: String,
    /// Expected edge protocol.
    pub edge: Option<String>,
    /// Expected app protocol.
    pub app: Option<String>,
    /// Cells matched.
    pub cells: usize,
    /// Cells that show something else (as `axes: observed`).
    pub mismatches: Vec<String>,
    /// At least one cell, and all of them agree.
    pub reproduced: bool,
}

/// Counts.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    /// Cells probed.
    pub cells: usize,
    /// Cells as expected.
    pub agree: usize,
    /// Cells not as expected.
    pub disagree: usize,
    /// Cells whose cross-check disagrees with our probe.
    pub cross_check_disagree: usize,
    /// Documented rows reproduced / total.
    pub documented_reproduced: usize,
    /// Documented rows.
    pub documented_total: usize,
    /// Servers that did not start.
    pub servers_failed: usize,
    /// Servers started.
    pub servers: usize,
    /// Wall time, seconds.
    pub elapsed_s: f64,
}

/// The whole matrix (matrix.json).
#[derive(Debug, Clone, Serialize)]
pub struct MatrixResult {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// Name.
    pub name: String,
    /// When it ran (RFC 3339).
    pub started_at: String,
    /// Whether every server was probed (false when interrupted).
    pub complete: bool,
    /// Machine and software.
    pub environment: crate::run::env::Environment,
    /// Counts.
    pub summary: Summary,
    /// Documented rows.
    pub documented: Vec<DocumentedResult>,
    /// Every cell, in matrix order.
    pub cells: Vec<CellResult>,
    /// Combinations left out.
    pub skipped: Vec<Skipped>,
}

fn observed(r: &ProbeReport) -> Observed {
    Observed {
        edge: r.verdict(),
        app: r.app_protocol.clone(),
        version: r.tls.as_ref().map(|t| t.version.clone()),
        cipher: r.tls.as_ref().map(|t| t.cipher.clone()),
        alpn: r.alpn_selected.clone(),
        group: r.tls.as_ref().and_then(|t| t.group.clone()),
        cert_key: r.tls.as_ref().and_then(|t| t.cert_key.clone()),
        detail: r.detail.clone(),
    }
}

fn agrees(e: &Expected, o: &Observed) -> bool {
    e.edge == o.edge && (e.app.is_none() || e.app == o.app)
}

/// The probe of one cell against a started server.
pub fn probe_spec(cell: &ProbeCell, target: &Launched, spec: &MatrixSpec) -> ProbeSpec {
    let port = target.addr.port();
    let (proto, tls) = match &cell.offer {
        MatrixOffer::H2c => (Proto::H2c, None),
        MatrixOffer::H2cUpgrade => (Proto::H2cUpgrade, None),
        MatrixOffer::Alpn(alpn) => {
            let cp = cell.client.expect("TLS cells have a client profile");
            let stack = match cp.stack {
                h2lab_common::profiles::Stack::Rustls => TlsClientStack::Rustls,
                h2lab_common::profiles::Stack::Openssl => TlsClientStack::Openssl,
            };
            (
                Proto::Auto,
                Some(TlsClientConfig {
                    stack,
                    min: Some(cp.min.into()),
                    max: Some(cp.max.into()),
                    ciphers: cp.tls12_suites.map(|l| l.join(":")),
                    tls13_suites: None,
                    alpn: alpn.clone(),
                    cacert: target.ca.clone(),
                    insecure: false,
                    sni: "localhost".into(),
                }),
            )
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    ProbeSpec {
        url: format!("{scheme}://localhost:{port}/info"),
        addr: target.addr,
        authority: format!("localhost:{port}"),
        path: "/info".into(),
        proto,
        tls,
        strict_h2: spec.strict_h2,
        timeout: spec.timeout,
    }
}

fn cell_result(
    server: &ServerCell,
    cell: &ProbeCell,
    spec: &MatrixSpec,
    observed: Observed,
    cross_check: Option<crosscheck::CrossCheck>,
) -> CellResult {
    let expected = expect::expect(server, cell.client, &cell.offer, spec.strict_h2);
    let ok = agrees(&expected, &observed);
    let explanation = if ok {
        None
    } else {
        expect::explain(server, &cell.offer, &observed.edge)
    };
    CellResult {
        topology: topology_name(&server.topology),
        server_tls: server_tls_name(server.stack).into(),
        profile: server.profile.map_or("-".into(), |p| p.name.into()),
        cert: server.cert.map_or("-".into(), |c| c.as_str().into()),
        client_profile: cell.client.map_or("-".into(), |c| c.name.into()),
        offer: cell.offer.name(),
        expected,
        observed,
        agrees: ok,
        cross_check,
        explanation,
    }
}

/// Probes every cell of one started server; cells run concurrently.
fn probe_server(
    rt: &tokio::runtime::Runtime,
    server: &ServerCell,
    cells: &[(usize, &ProbeCell)],
    target: &Launched,
    spec: &MatrixSpec,
) -> Vec<(usize, CellResult)> {
    let specs: Vec<ProbeSpec> = cells
        .iter()
        .map(|(_, c)| probe_spec(c, target, spec))
        .collect();
    let reports = rt.block_on(async {
        let tasks = specs.iter().map(|s| async move {
            match probe::probe(s).await {
                Ok(r) => observed(&r),
                Err(e) => Observed {
                    edge: "config_error".into(),
                    detail: Some(e.0),
                    ..Observed::default()
                },
            }
        });
        futures_util::future::join_all(tasks).await
    });
    cells
        .iter()
        .zip(reports)
        .zip(&specs)
        .map(|(((i, cell), obs), ps)| {
            let cc = spec
                .cross_check
                .then(|| crosscheck::run(ps, &cell.offer, cell.client, &obs));
            (*i, cell_result(server, cell, spec, obs, cc.flatten()))
        })
        .collect()
}

/// Runs the matrix; results go to `out`. `stop` ends it early (Ctrl-C): what was probed
/// is still returned.
pub fn run(
    spec: &MatrixSpec,
    launcher: &Launcher,
    out: &Path,
    stop: &AtomicBool,
    mut progress: impl FnMut(usize, usize) + Send,
) -> MatrixResult {
    let t0 = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let (servers, cells, mut skipped) = spec.expand();
    let missing: Vec<bool> = servers
        .iter()
        .map(|s| match &s.topology {
            crate::model::plan::Topology::RealProxy(k) => k.find().is_none(),
            _ => false,
        })
        .collect();
    for (s, m) in servers.iter().zip(&missing) {
        if *m {
            skipped.push(Skipped {
                what: format!("{} (not installed)", topology_name(&s.topology)),
                why: "install it with scripts/setup.sh".into(),
            });
        }
    }
    skipped.dedup_by(|a, b| a.what == b.what);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, CellResult)>> = Mutex::new(Vec::new());
    let failed = AtomicUsize::new(0);
    let started = AtomicUsize::new(0);
    let done_servers = AtomicUsize::new(0);
    let progress = Mutex::new(&mut progress);
    let work = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= servers.len() || stop.load(Ordering::Relaxed) {
                break;
            }
            let server = &servers[i];
            let mine: Vec<(usize, &ProbeCell)> = cells
                .iter()
                .enumerate()
                .filter(|(_, c)| c.server == i)
                .collect();
            if !missing[i] {
                let dir = out.join("servers").join(format!("{i:03}"));
                let _ = std::fs::create_dir_all(&dir);
                let launch = ServerSpec {
                    topology: &server.topology,
                    tls: (server.stack != ServerTls::None).then(|| TlsSpec {
                        stack: server.stack,
                        cert: server.cert.expect("TLS servers have a certificate"),
                        min: None,
                        max: None,
                        profile: server.profile.map(|p| p.name.to_string()),
                    }),
                    app: None,
                };
                let got = match launcher.start_spec(&launch, &dir) {
                    Ok(target) => {
                        started.fetch_add(1, Ordering::Relaxed);
                        let r = probe_server(&rt, server, &mine, &target, spec);
                        target.stop(&dir);
                        r
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        mine.iter()
                            .map(|(j, c)| {
                                let obs = Observed {
                                    edge: "server_failed".into(),
                                    detail: Some(e.clone()),
                                    ..Observed::default()
                                };
                                (*j, cell_result(server, c, spec, obs, None))
                            })
                            .collect()
                    }
                };
                results.lock().expect("no poisoned lock").extend(got);
            }
            let d = done_servers.fetch_add(1, Ordering::Relaxed) + 1;
            (progress.lock().expect("no poisoned lock"))(d, servers.len());
        }
    };
    std::thread::scope(|s| {
        for _ in 0..spec.parallel.max(1) {
            s.spawn(work);
        }
    });
    let mut results = results.into_inner().expect("no poisoned lock");
    results.sort_by_key(|(i, _)| *i);
    let cells: Vec<CellResult> = results.into_iter().map(|(_, c)| c).collect();
    let documented = report::documented(spec, &cells);
    let summary = Summary {
        cells: cells.len(),
        agree: cells.iter().filter(|c| c.agrees).count(),
        disagree: cells.iter().filter(|c| !c.agrees).count(),
        cross_check_disagree: cells
            .iter()
            .filter(|c| c.cross_check.as_ref().is_some_and(|x| !x.agrees))
            .count(),
        documented_reproduced: documented.iter().filter(|d| d.reproduced).count(),
        documented_total: documented.len(),
        servers_failed: failed.into_inner(),
        servers: started.into_inner(),
        elapsed_s: (t0.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    };
    MatrixResult {
        schema: SCHEMA,
        name: spec.name.clone(),
        started_at,
        complete: !stop.load(Ordering::Relaxed),
        environment: crate::run::env::collect(),
        summary,
        documented,
        cells,
        skipped,
    }
}

/// Writes matrix.json, matrix.csv, matrix.md and matrix.svg into `out`.
pub fn write(result: &MatrixResult, out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let json = out.join("matrix.json");
    crate::output::atomic_write(&json, |w| {
        serde_json::to_writer_pretty(&mut *w, result).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, b"\n")
    })?;
    written.push(json);
    for (name, text) in [
        ("matrix.csv", report::csv(result)),
        ("matrix.md", report::markdown(result)),
        ("matrix.svg", heatmap::svg(result)),
    ] {
        let path = out.join(name);
        crate::output::atomic_write(&path, |w| std::io::Write::write_all(w, text.as_bytes()))?;
        written.push(path);
    }
    Ok(written)
}
