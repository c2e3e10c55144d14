//! The run loop: for every repetition, for every cell, for every variant (one unless
//! `--variant` names several), run the cell and record it in that variant's results
//! directory, whose manifest is rewritten after every cell.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::Context;

use super::variant::{self, Interleaved, Variant};
use super::{cell, env, generate_pki, now, run_id, Manifest, Pinning, Signals, MANIFEST_SCHEMA};
use crate::cli::run::RunArgs;
use crate::model::plan::Plan;
use crate::output::atomic_write;
use crate::run::topology::Launcher;

/// One results directory being written: a variant's, or the run's own.
struct Lane<'a> {
    out: PathBuf,
    launcher: Launcher<'a>,
    manifest: Manifest<'a>,
}

impl Lane<'_> {
    /// The variant's name, when variants are interleaved.
    fn name(&self) -> Option<&str> {
        self.manifest
            .interleaved
            .as_ref()
            .map(|i| i.variant.as_str())
    }

    fn write_manifest(&self) -> anyhow::Result<()> {
        atomic_write(&self.out.join("manifest.json"), |w| {
            serde_json::to_writer_pretty(&mut *w, &self.manifest).map_err(std::io::Error::other)?;
            std::io::Write::write_all(w, b"\n")
        })
        .with_context(|| format!("cannot write {}/manifest.json", self.out.display()))
    }
}

/// Runs every cell of `plan` (for each of `variants`, interleaved, when there are any),
/// writes the results directory (one per variant under `--out`), returns the exit code:
/// 0 all cells ran, 1 some cell failed, 130/143 interrupted.
pub fn execute(
    plan: &Plan,
    file: &Path,
    args: &RunArgs,
    variants: &[Variant],
) -> anyhow::Result<ExitCode> {
    let signals = Signals::install()?;
    let id = run_id(&plan.name);
    let out: PathBuf = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&id));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let lab_sut = h2lab_common::launch::locate_sut()
        .context("the sut binary is needed to start topologies")?;
    if plan.conformance.is_some() {
        crate::conform::locate().context("the scenario's [conformance] needs its suite")?;
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pin_core = (args.pin && cpus > 1).then_some(cpus - 1);
    let threads = if pin_core.is_some() { cpus - 1 } else { cpus };

    // A `[negotiation]` section runs as the matrix into the same directory, after the
    // load cells (the report then shows its heatmap); variants measure load only.
    let matrix = crate::scenario::negotiation::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    if matrix.is_some() && !variants.is_empty() {
        eprintln!(
            "note: the [negotiation] matrix is not run with --variant (h2lab matrix runs it)"
        );
    }
    let matrix = matrix.filter(|_| variants.is_empty());
    // A fresh PKI per run, for every key type the plan (and the matrix) uses; variants
    // share it, so they serve the same certificates.
    let pki = generate_pki(&out, |key| {
        plan.cells.iter().any(|c| c.cert == key)
            || matrix.as_ref().is_some_and(|m| m.certs.contains(&key))
    })?;
    let names: Vec<String> = variants.iter().map(|v| v.name.clone()).collect();
    let plain = [Variant {
        name: String::new(),
        sut: None,
        env: Vec::new(),
    }];
    let mut lanes = Vec::new();
    for v in if variants.is_empty() {
        &plain[..]
    } else {
        variants
    } {
        let sut = v.sut.clone().unwrap_or_else(|| lab_sut.clone());
        let lane_out = if variants.is_empty() {
            out.clone()
        } else {
            out.join(&v.name)
        };
        std::fs::create_dir_all(&lane_out)
            .with_context(|| format!("cannot create {}", lane_out.display()))?;
        let interleaved = (!variants.is_empty()).then(|| Interleaved {
            group: id.clone(),
            variant: v.name.clone(),
            variants: names.clone(),
            sut: sut.display().to_string(),
            env: v.env.iter().map(|(k, val)| format!("{k}={val}")).collect(),
        });
        let lane = Lane {
            out: lane_out,
            launcher: Launcher {
                sut,
                pki: &pki,
                owner: id.clone(),
                pin_core,
                env: v.env.clone(),
            },
            manifest: Manifest {
                schema: MANIFEST_SCHEMA,
                run_id: if variants.is_empty() {
                    id.clone()
                } else {
                    format!("{id}-{}", v.name)
                },
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
                interleaved,
                cells: Vec::new(),
            },
        };
        lane.write_manifest()?;
        lanes.push(lane);
    }

    let total = plan.cells.len() * plan.repetitions as usize * lanes.len();
    let progress = crate::output::progress::RunProgress::new(total, args.quiet);
    let mut done = 0;
    'reps: for rep in 1..=plan.repetitions {
        for cell in &plan.cells {
            for at in variant::order(lanes.len(), rep) {
                if signals.any.load(Ordering::Relaxed) {
                    break 'reps;
                }
                let lane = &mut lanes[at];
                done += 1;
                let rel = format!("cells/{}/rep-{rep}", cell.id);
                let dir = lane.out.join(&rel);
                std::fs::create_dir_all(&dir)?;
                let who = match lane.name() {
                    Some(n) => format!("{} ({n})", cell.id),
                    None => cell.id.clone(),
                };
                let label = format!("[{done}/{total}] rep {rep} {who}");
                progress.cell_started(&label);
                let ctx = cell::RunCtx {
                    plan,
                    launcher: &lane.launcher,
                    threads,
                    signals: &signals,
                };
                let record = cell::run_cell(&ctx, cell, rep, &dir, &rel, &|p| {
                    progress.cell_load(&label, p)
                });
                progress.cell_done(&format!(
                    "[{done}/{total}] rep {rep} {who}: {} (start {:.2}s, stop {:.2}s)",
                    outcome(&record),
                    record.start_s,
                    record.stop_s
                ));
                lane.manifest.cells.push(record);
                lane.write_manifest()?;
            }
        }
    }
    progress.finish();
    let mut matrix_failed = false;
    if let Some(spec) = matrix.filter(|_| !signals.any.load(Ordering::Relaxed)) {
        let launcher = &lanes[0].launcher;
        let result = crate::matrix::run(&spec, launcher, &out, &signals.any, |_, _| {});
        crate::matrix::write(&result, &out)
            .with_context(|| format!("cannot write the matrix into {}", out.display()))?;
        let s = &result.summary;
        println!(
            "negotiation matrix: {} cells, {} as expected, {} not; documented rows reproduced {}/{}",
            s.cells, s.agree, s.disagree, s.documented_reproduced, s.documented_total
        );
        matrix_failed = s.documented_reproduced < s.documented_total || s.servers_failed > 0;
    }
    let interrupted = signals.any.load(Ordering::Relaxed);
    let mut failed = 0;
    for lane in &mut lanes {
        lane.manifest.interrupted = interrupted;
        lane.manifest.complete = !interrupted;
        lane.manifest.finished_at = Some(now());
        lane.write_manifest()?;
        failed += lane
            .manifest
            .cells
            .iter()
            .filter(|c| c.status == "failed")
            .count();
        finish_lane(lane, variants.is_empty());
    }
    if let [first, rest @ ..] = &lanes[..] {
        for other in rest {
            println!(
                "gate: h2lab gate --baseline {} --candidate {}",
                first.out.display(),
                other.out.display()
            );
        }
    }
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

/// The verdict of a lane's results (printed in full for a plain run), and where they are.
fn finish_lane(lane: &Lane, print_verdict: bool) {
    // The verdict reads what was written; a run it cannot judge still keeps its results.
    match crate::verdict::write(&lane.out) {
        Ok(v)
            if print_verdict
                && v.workloads
                    .iter()
                    .any(|w| w.entries.iter().any(|e| e.repetitions > 0)) =>
        {
            print!("{}", crate::verdict::render::text(&v));
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: no verdict.json in {}: {e}", lane.out.display()),
    }
    match lane.name() {
        Some(n) => println!("results ({n}): {}", lane.out.display()),
        None => println!("results: {}", lane.out.display()),
    }
}

/// One line on how a cell went.
fn outcome(record: &super::CellRecord) -> String {
    match (&record.status[..], record.rps) {
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
    }
}
