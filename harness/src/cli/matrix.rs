//! `h2lab matrix`: flags.

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::Context;

use super::{print_out, UsageError};
use std::path::PathBuf;

use clap::Args;

/// Flags of `h2lab matrix`.
#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// Scenario file with a `[negotiation]` section (e.g. scenarios/h2-matrix.toml).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Results directory (default: reports/<name>-<time>-<pid>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also probe each cell with an independent client (curl, openssl s_client).
    #[arg(long)]
    pub cross_check: bool,
    /// Servers started and probed at once (default: the file's, else 2 per core).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Exit 1 on any cell that disagrees with its expectation (default: only on a
    /// documented row not reproduced or a server that did not start).
    #[arg(long)]
    pub strict: bool,
    /// List the cells and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress lines.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Runs `h2lab matrix`: the exit code, or an error for `main` to report.
pub fn run(args: &MatrixArgs) -> anyhow::Result<ExitCode> {
    use crate::matrix;
    let mut spec = match crate::scenario::negotiation::load(&args.file) {
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
                crate::scenario::server_tls_name(s.stack),
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
    let id = crate::run::run_id(&spec.name);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("reports").join(&id));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let sut = h2lab_common::launch::locate_sut()
        .context("the sut binary is needed to start the matrix's servers")?;
    // Cleartext-only matrices still get a PKI: the launcher expects one.
    let pki = crate::run::generate_pki(&out, |key| {
        spec.certs.contains(&key)
            || (spec.certs.is_empty() && key == h2lab_common::pki::KeyType::Ecdsa)
    })?;
    let launcher = crate::run::topology::Launcher {
        sut,
        pki: &pki,
        owner: id.clone(),
        pin_core: None,
        env: Vec::new(),
    };
    let signals = crate::run::Signals::install()?;
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
