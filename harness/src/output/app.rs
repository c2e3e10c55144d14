//! The user's app as `h2lab doctor` and `h2lab run --dry-run` show it: the command that
//! would run, where, with what, which program it finds, and which cells it serves through
//! which front.

use std::fmt::Write as _;

use crate::model::plan::{AppProtocol, Plan, Topology};
use crate::scenario::app::find_program;

/// Lines describing `plan`'s app, or none when the built-in app serves.
pub fn describe(plan: &Plan) -> String {
    let Some(app) = &plan.app else {
        return String::new();
    };
    let mut out = String::new();
    let quoted: Vec<String> = app.command.iter().map(|a| shell_quote(a)).collect();
    let _ = writeln!(out, "app: {}", quoted.join(" "));
    let _ = writeln!(out, "  in {}", app.cwd.display());
    let program = &app.command[0];
    let _ = match find_program(program, &app.cwd) {
        Some(p) => writeln!(out, "  program: {}", p.display()),
        None => writeln!(out, "  program: {program} NOT FOUND on PATH"),
    };
    for (k, v) in &app.env {
        let _ = writeln!(out, "  env {k}={v}");
    }
    if let Some(name) = &app.port_env {
        let _ = writeln!(out, "  env {name}=<port>");
    }
    let _ = writeln!(
        out,
        "  {{port}} = a free loopback port per cell; {{cert}} {{key}} {{ca}} = the run's PKI (reports/<run>/pki/)"
    );
    let _ = writeln!(
        out,
        "  speaks {} on its port{}; ready when {} (within {})",
        match app.protocol {
            AppProtocol::H1 => "HTTP/1.1",
            AppProtocol::H2c => "h2c",
        },
        if app.tls { " over its own TLS" } else { "" },
        match &app.ready {
            h2lab_common::app::Readiness::Tcp => "its port accepts".to_string(),
            h2lab_common::app::Readiness::Http { path, .. } =>
                format!("GET {path} answers under 500"),
        },
        humantime::format_duration(app.ready_timeout)
    );
    let mut fronts: Vec<String> = Vec::new();
    for cell in plan.cells.iter().filter(|c| c.app) {
        let how = match &cell.topology {
            Topology::DirectEdge => "direct-edge: the app faces the client".to_string(),
            Topology::OutOfProcess => format!(
                "out-of-process: started by sut host --module-contract {} --app-command ...",
                app.module_contract
            ),
            Topology::SutProxy => "reverse-proxy:sut in front".to_string(),
            Topology::RealProxy(k) => format!("reverse-proxy:{} in front", k.name()),
            Topology::InProcess | Topology::External(_) => continue,
        };
        if !fronts.contains(&how) {
            fronts.push(how);
        }
    }
    for f in fronts {
        let _ = writeln!(out, "  serves {f}");
    }
    out
}

/// `arg` as a shell would need it written (for showing, never for running).
fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,{}@%+".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}
