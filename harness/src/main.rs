//! `h2lab`: thin over the library. Parses flags, runs, writes results, maps the outcome
//! to an exit code: 0 ok; 1 the run completed but every request failed; 2 bad usage or
//! input; 130 / 143 interrupted by SIGINT / SIGTERM (results recorded so far are written).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use h2lab::cli::{Cli, Command, UsageError};
use h2lab::load::{self, Shared};
use h2lab::output::{self, progress::Live};

// The engine allocates per request inside h2 and hyper-free paths alike; mimalloc's
// thread-local free lists beat glibc's here (measured with scripts/bench-peers.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("H2LAB_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Load(args) => run_load(&args),
        Command::Probe(args) => run_probe(&args),
        Command::Matrix(args) => run_matrix(&args),
        Command::Report(args) => run_report(&args),
        Command::Compare(args) => run_compare(&args),
        Command::Gate(args) => run_gate(&args),
        Command::Doctor(args) => doctor(&args),
        Command::Validate(args) => validate(&args),
        Command::Run(args) => run_scenario(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("h2lab: error: {e:#}");
            let usage = e.downcast_ref::<UsageError>().is_some()
                || matches!(
                    e.downcast_ref::<load::LoadError>(),
                    Some(
                        load::LoadError::Tls(_)
                            | load::LoadError::Request(_)
                            | load::LoadError::Engine(_)
                    )
                );
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn run_load(args: &h2lab::cli::load::LoadArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.to_config()?;
    let sigint = Arc::new(AtomicBool::new(false));
    let sigterm = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        connections: cfg.connections,
        ..Shared::default()
    });
    // Both signals stop the run; which one decides the exit code.
    let stop = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGINT, &sigint),
        (signal_hook::consts::SIGTERM, &sigterm),
    ] {
        signal_hook::flag::register(sig, flag.clone()).context("cannot install signal handler")?;
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handler")?;
    }
    let live = Live::new(args.quiet);
    let watch_shared = shared.clone();
    let run = load::run(&cfg, shared, |p| {
        if stop.load(Ordering::Relaxed) {
            watch_shared.stop.store(true, Ordering::Relaxed);
        }
        live.update(p);
    })?;
    live.finish();
    let result = output::result::build(&cfg, &run);
    if let Some(path) = &args.json {
        output::atomic_write(path, |w| {
            serde_json::to_writer_pretty(&mut *w, &result).map_err(std::io::Error::other)?;
            std::io::Write::write_all(w, b"\n")
        })
        .with_context(|| format!("cannot write --json {}", path.display()))?;
    }
    if let Some(path) = &args.hlog {
        h2lab::record::hlog::write(path, run.started, &run.intervals)
            .with_context(|| format!("cannot write --hlog {}", path.display()))?;
    }
    print_out(&output::summary::render(&result));
    Ok(if sigint.load(Ordering::Relaxed) {
        ExitCode::from(130)
    } else if sigterm.load(Ordering::Relaxed) {
        ExitCode::from(143)
    } else if result.summary.ok == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_probe(args: &h2lab::cli::probe::ProbeArgs) -> anyhow::Result<ExitCode> {
    let spec = args.to_spec()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let report = rt
        .block_on(h2lab::probe::probe(&spec))
        .map_err(|e| UsageError(e.0))?;
    let json = serde_json::to_string_pretty(&report).context("cannot encode the report")? + "\n";
    if let Some(path) = &args.out {
        output::atomic_write(path, |w| std::io::Write::write_all(w, json.as_bytes()))
            .with_context(|| format!("cannot write --out {}", path.display()))?;
    }
    if args.json {
        print_out(&json);
    } else {
        print_out(&h2lab::probe::render::human(&report));
    }
    Ok(if report.class.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_matrix(args: &h2lab::cli::matrix::MatrixArgs) -> anyhow::Result<ExitCode> {
    use h2lab::matrix;
    let mut spec = match h2lab::scenario::negotiation::load(&args.file) {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!(
                "{}:1:1: error: no [negotiation] section\n  hint: see scenarios/h2-matrix.toml",
                args.file.display()
            );
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    spec.cross_check |= args.cross_check;
    if let Some(n) = args.parallel {
        if n == 0 {
            return Err(UsageError("--parallel must be at least 1".into()).into());
        }
        spec.parallel = n;
    }
    let (servers, cells, skipped) = spec.expand();
    if args.dry_run {
        let mut out = format!(
            "{} cells on {} servers ({}):\n",
            cells.len(),
            servers.len(),
            spec.name
        );
        for c in &cells {
            let s = &servers[c.server];
            out.push_str(&format!(
                "  {} {} {} {} {} {}\n",
                matrix::spec::topology_name(&s.topology),
                h2lab::scenario::server_tls_name(s.stack),
                s.profile.map_or("-", |p| p.name),
                s.cert.map_or("-", |k| k.as_str()),
                c.client.map_or("-", |p| p.name),
                c.offer.name()
            ));
        }
        for s in &skipped {
            out.push_str(&format!("  left out: {}: {}\n", s.what, s.why));
        }
        print_out(&out);
        return Ok(ExitCode::SUCCESS);
    }
    let id = h2lab::run::run_id(&spec.name);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("reports").join(&id));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let sut = h2lab_common::launch::locate_sut()
        .context("the sut binary is needed to start the matrix's servers")?;
    // Cleartext-only matrices still get a PKI: the launcher expects one.
    let pki = h2lab::run::generate_pki(&out, |key| {
        spec.certs.contains(&key)
            || (spec.certs.is_empty() && key == h2lab_common::pki::KeyType::Ecdsa)
    })?;
    let launcher = h2lab::run::topology::Launcher {
        sut,
        pki: &pki,
        owner: id.clone(),
        pin_core: None,
    };
    let signals = h2lab::run::Signals::install()?;
    let quiet = args.quiet;
    let result = matrix::run(&spec, &launcher, &out, &signals.any, |done, total| {
        if !quiet {
            eprintln!("matrix: {done}/{total} servers probed");
        }
    });
    let written = matrix::write(&result, &out)
        .with_context(|| format!("cannot write the matrix into {}", out.display()))?;
    let s = &result.summary;
    let mut text = format!(
        "{} cells on {} servers in {:.1} s: {} as expected, {} not; documented rows reproduced {}/{}",
        s.cells, s.servers, s.elapsed_s, s.agree, s.disagree, s.documented_reproduced, s.documented_total
    );
    if result.cells.iter().any(|c| c.cross_check.is_some()) {
        text.push_str(&format!(
            "; cross-check disagreements {}",
            s.cross_check_disagree
        ));
    }
    text.push('\n');
    for d in result.documented.iter().filter(|d| !d.reproduced) {
        text.push_str(&format!(
            "  NOT reproduced: {} ({})\n",
            d.row,
            d.mismatches.join("; ")
        ));
    }
    for p in written {
        text.push_str(&format!("  wrote {}\n", p.display()));
    }
    print_out(&text);
    let bad = s.documented_reproduced < s.documented_total
        || s.servers_failed > 0
        || (args.strict && s.disagree > 0);
    Ok(if signals.int.load(Ordering::Relaxed) {
        ExitCode::from(130)
    } else if signals.term.load(Ordering::Relaxed) {
        ExitCode::from(143)
    } else if bad {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn bad_input(e: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("h2lab: error: {e}");
    Ok(ExitCode::from(2))
}

fn run_report(args: &h2lab::cli::analysis::ReportArgs) -> anyhow::Result<ExitCode> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run_dir.join("report"));
    let t = std::time::Instant::now();
    let written = match h2lab::report::build(&args.run_dir, &out, args.png) {
        Ok(w) => w,
        Err(e) => return bad_input(e),
    };
    let mut text = format!(
        "report of {} in {:.2} s ({} suspicious cells)\n",
        args.run_dir.display(),
        t.elapsed().as_secs_f64(),
        written.flagged
    );
    for f in &written.files {
        text.push_str(&format!("  wrote {}\n", f.display()));
    }
    print_out(&text);
    Ok(ExitCode::SUCCESS)
}

fn run_compare(args: &h2lab::cli::analysis::CompareArgs) -> anyhow::Result<ExitCode> {
    use h2lab::analysis::{compare, gate, rundir::RunDir};
    let thresholds = match &args.max_regression {
        Some(s) => match gate::parse_thresholds(s, compare::Thresholds::default()) {
            Ok(t) => t,
            Err(e) => return bad_input(format!("--max-regression {e}")),
        },
        None => compare::Thresholds::default(),
    };
    let (base, new) = match (RunDir::load(&args.base), RunDir::load(&args.new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => return bad_input(e),
    };
    let c = match compare::compare(&base, &new, &thresholds) {
        Ok(c) => c,
        Err(e) => return bad_input(e),
    };
    let json = serde_json::to_string_pretty(&c)? + "\n";
    if let Some(p) = &args.json {
        output::atomic_write(p, |w| std::io::Write::write_all(w, json.as_bytes()))
            .with_context(|| format!("cannot write --json {}", p.display()))?;
    }
    if args.print_json {
        print_out(&json);
    } else {
        print_out(&compare::markdown(&c));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_gate(args: &h2lab::cli::analysis::GateArgs) -> anyhow::Result<ExitCode> {
    use h2lab::analysis::{compare, gate, rundir::RunDir};
    let (base, cand) = match (RunDir::load(&args.baseline), RunDir::load(&args.candidate)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => return bad_input(e),
    };
    let (scenario_max, scenario_slo) = match gate::from_scenario(&cand.scenario) {
        Ok(x) => x,
        Err(e) => return bad_input(format!("{}: {e}", args.candidate.display())),
    };
    let spec = args
        .max_regression
        .clone()
        .or(scenario_max)
        .unwrap_or_default();
    let thresholds = match gate::parse_thresholds(&spec, compare::Thresholds::default()) {
        Ok(t) => t,
        Err(e) => return bad_input(format!("--max-regression {e}")),
    };
    let mut slos = Vec::new();
    for s in scenario_slo.iter().chain(&args.slo) {
        match gate::parse_slo(s) {
            Ok(s) => slos.push(s),
            Err(e) => return bad_input(format!("--slo {e}")),
        }
    }
    let c = match compare::compare(&base, &cand, &thresholds) {
        Ok(c) => c,
        Err(e) => return bad_input(e),
    };
    let verdict = gate::decide(c, &cand, &slos, args.fail_on_inconclusive);
    let md = gate::markdown(&verdict);
    if let Some(p) = &args.junit {
        let xml = gate::junit(&verdict);
        output::atomic_write(p, |w| std::io::Write::write_all(w, xml.as_bytes()))
            .with_context(|| format!("cannot write --junit {}", p.display()))?;
    }
    if let Some(p) = &args.json {
        let json = serde_json::to_string_pretty(&verdict)? + "\n";
        output::atomic_write(p, |w| std::io::Write::write_all(w, json.as_bytes()))
            .with_context(|| format!("cannot write --json {}", p.display()))?;
    }
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&summary)
            .with_context(|| {
                format!(
                    "cannot append to $GITHUB_STEP_SUMMARY {}",
                    summary.to_string_lossy()
                )
            })?;
        f.write_all(md.as_bytes())?;
        f.write_all(b"\n")?;
    }
    print_out(&md);
    eprintln!(
        "h2lab gate: {} (thresholds {})",
        if verdict.pass { "pass" } else { "FAIL" },
        gate::describe(&verdict.comparison.thresholds)
    );
    Ok(if verdict.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn validate(args: &h2lab::cli::scenario::ValidateArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file).unwrap_or_default();
    let matrix = h2lab::scenario::negotiation::load(&args.file);
    let has_axes = text
        .parse::<toml::Table>()
        .map(|t| t.contains_key("axes"))
        .unwrap_or(true);
    if let (false, Ok(Some(spec))) = (has_axes, &matrix) {
        let (servers, cells, _) = spec.expand();
        println!(
            "{}: ok, negotiation matrix of {} cells on {} servers",
            args.file.display(),
            cells.len(),
            servers.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Err(e) = &matrix {
        eprintln!("{e}");
        return Ok(ExitCode::from(2));
    }
    let mut diags = match h2lab::scenario::load(&args.file) {
        Ok(plan) => {
            println!(
                "{}: ok, {} cells x {} repetitions",
                args.file.display(),
                plan.cells.len(),
                plan.repetitions
            );
            Vec::new()
        }
        Err(e) => e.0,
    };
    diags.extend(h2lab::scenario::missing_proxy_diagnostics(
        &args.file, &text,
    ));
    for d in &diags {
        eprintln!("{d}");
    }
    Ok(if diags.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn run_scenario(args: &h2lab::cli::scenario::RunArgs) -> anyhow::Result<ExitCode> {
    let plan = match h2lab::scenario::load(&args.file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.dry_run {
        use std::fmt::Write as _;
        let mut out = format!(
            "{} cells x {} repetitions ({}):\n",
            plan.cells.len(),
            plan.repetitions,
            plan.name
        );
        for cell in &plan.cells {
            let axes: Vec<String> = cell.axes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "  {}  [{}]", cell.id, axes.join(" "));
        }
        out.push_str(&h2lab::output::app::describe(&plan));
        for (proxy, hint) in &plan.missing_proxies {
            let _ = writeln!(
                out,
                "  note: {proxy} is not installed; its cells will be skipped ({hint})"
            );
        }
        print_out(&out);
        return Ok(ExitCode::SUCCESS);
    }
    h2lab::run::execute(&plan, &args.file, args)
}

/// Writes to stdout; a reader that went away (`| head`) is not an error worth a panic.
fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn doctor(args: &h2lab::cli::scenario::DoctorArgs) -> anyhow::Result<ExitCode> {
    match h2lab_common::launch::locate_sut() {
        Ok(p) => println!("sut: {}", p.display()),
        Err(e) => println!("sut: {e}"),
    }
    for kind in h2lab_common::launch::ProxyKind::ALL {
        match kind.version() {
            Some(v) => println!("{}: {v}", kind.name()),
            None => println!("{}: not installed ({})", kind.name(), kind.install_hint()),
        }
    }
    if let Some(file) = &args.file {
        match h2lab::scenario::load(file) {
            Ok(plan) if plan.app.is_some() => print_out(&h2lab::output::app::describe(&plan)),
            Ok(_) => println!(
                "app: the built-in test app ({} has no [app])",
                file.display()
            ),
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
