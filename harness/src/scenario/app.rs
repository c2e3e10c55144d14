//! The `[app]` and `[target]` sections: the user's own app (its command, placeholders,
//! environment, protocol, readiness, TLS, module contract) and how external targets are
//! reached (CA, verification, SNI, Host). Each value is checked where it is written;
//! which topologies can hold the app is `expand`'s concern.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use h2lab_common::app::{placeholders, Readiness, PLACEHOLDERS};
use toml::Spanned;

use super::file::{AppSection, TargetSection};
use super::Ctx;
use crate::model::plan::{AppProtocol, AppSpec, TargetSpec};

/// How long an app gets to become ready when `ready` names no timeout.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn known_placeholders() -> String {
    PLACEHOLDERS
        .iter()
        .map(|(n, what)| format!("{{{n}}} ({what})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks the placeholders of one string; returns whether it holds `{port}`.
fn check_placeholders(ctx: &mut Ctx, v: &Spanned<String>) -> bool {
    let mut port = false;
    for (range, name) in placeholders(v.get_ref()) {
        if !PLACEHOLDERS.iter().any(|(n, _)| *n == name) {
            // +1: the span includes the opening quote of the TOML string.
            let at = v.span().start + 1 + range.start;
            ctx.err(
                at..at,
                format!("unknown placeholder `{{{name}}}`"),
                Some(&format!("known: {}", known_placeholders())),
            );
        }
        port |= name == "port";
    }
    port
}

fn env_name_ok(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `[app]` as checked, with what `expand` needs to place it.
pub(super) struct CheckedApp {
    /// The app.
    pub spec: AppSpec,
    /// Where its `command` is written.
    pub command_span: std::ops::Range<usize>,
    /// Whether the lab tells it its port (`{port}` or `port_env`); the module always
    /// does, through its contract's variable.
    pub told_port: bool,
}

/// `[app]` -> the app, or diagnostics.
pub(super) fn app(ctx: &mut Ctx, a: &AppSection, base: &Path) -> Option<CheckedApp> {
    let errors = ctx.diags.len();
    let command: Vec<String> = a
        .command
        .get_ref()
        .iter()
        .map(|s| s.get_ref().clone())
        .collect();
    let mut tells_port = false;
    match a.command.get_ref().first() {
        None => ctx.err(
            a.command.span(),
            "`command` is empty",
            Some("the program and its arguments, e.g. [\"python3\", \"-m\", \"http.server\", \"{port}\"]"),
        ),
        Some(program) if program.get_ref().trim().is_empty() => {
            ctx.err(program.span(), "the program name is empty", None)
        }
        Some(_) => {}
    }
    for part in a.command.get_ref() {
        tells_port |= check_placeholders(ctx, part);
    }
    let cwd = match &a.cwd {
        None => absolute(base),
        Some(c) => {
            let dir = absolute(&base.join(c.get_ref()));
            if !dir.is_dir() {
                ctx.err(
                    c.span(),
                    format!("cwd `{}` is not a directory", dir.display()),
                    Some("the path is relative to the scenario file"),
                );
            }
            dir
        }
    };
    if let Some(program) = a.command.get_ref().first() {
        if !program.get_ref().trim().is_empty() && find_program(program.get_ref(), &cwd).is_none() {
            ctx.err(
                program.span(),
                format!("program `{}` is not found on PATH", program.get_ref()),
                Some("install it, or give its path (relative paths start from `cwd`)"),
            );
        }
    }
    let mut env = BTreeMap::new();
    if let Some(table) = &a.env {
        let mut entries: Vec<_> = table.get_ref().iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (k, v) in entries {
            if !env_name_ok(k.get_ref()) {
                ctx.err(
                    k.span(),
                    format!("`{}` is not an environment variable name", k.get_ref()),
                    Some("letters, digits and `_`, not starting with a digit"),
                );
            }
            tells_port |= check_placeholders(ctx, v);
            env.insert(k.get_ref().clone(), v.get_ref().clone());
        }
    }
    let port_env = a.port_env.as_ref().map(|p| {
        if !env_name_ok(p.get_ref()) {
            ctx.err(
                p.span(),
                format!(
                    "port_env `{}` is not an environment variable name",
                    p.get_ref()
                ),
                None,
            );
        }
        p.get_ref().clone()
    });
    let protocol = match a.protocol.as_ref().map(|p| (p, p.get_ref().as_str())) {
        None | Some((_, "h1")) => AppProtocol::H1,
        Some((_, "h2c")) => AppProtocol::H2c,
        Some((p, other)) => {
            ctx.err(
                p.span(),
                format!("unknown app protocol `{other}`"),
                Some("h1 (HTTP/1.1) or h2c (HTTP/2 by prior knowledge)"),
            );
            AppProtocol::H1
        }
    };
    let tls = a.tls.as_ref().is_some_and(|t| *t.get_ref());
    let (ready, ready_timeout) = match &a.ready {
        None => (
            Readiness::Http {
                path: "/".into(),
                tls,
            },
            READY_TIMEOUT,
        ),
        Some(r) => ready(ctx, r, tls),
    };
    let module_contract = match a.module_contract.as_ref() {
        None => "h2lab".to_string(),
        Some(c) if c.get_ref() == "h2lab" || c.get_ref() == "ancm" => c.get_ref().clone(),
        Some(c) => {
            ctx.err(
                c.span(),
                format!("unknown module_contract `{}`", c.get_ref()),
                Some("h2lab (H2LAB_APP_PORT, ...) or ancm (the ASP.NET Core Module's ASPNETCORE_PORT, ASPNETCORE_TOKEN, ...)"),
            );
            "h2lab".to_string()
        }
    };
    let told_port = tells_port || port_env.is_some();
    let spec = AppSpec {
        command,
        cwd,
        env,
        port_env,
        protocol,
        ready,
        ready_timeout,
        tls,
        module_contract,
    };
    (ctx.diags.len() == errors).then_some(CheckedApp {
        spec,
        command_span: a.command.span(),
        told_port,
    })
}

const READY_HINT: &str =
    "ready = { path = \"/\", timeout = \"30s\" }, ready = \"tcp\", or ready = { tcp = true, timeout = \"60s\" }";

fn ready(ctx: &mut Ctx, r: &Spanned<toml::Value>, tls: bool) -> (Readiness, Duration) {
    let bad = |ctx: &mut Ctx, what: String| {
        ctx.err(r.span(), what, Some(READY_HINT));
        (Readiness::Tcp, READY_TIMEOUT)
    };
    match r.get_ref() {
        toml::Value::String(s) if s == "tcp" => (Readiness::Tcp, READY_TIMEOUT),
        toml::Value::String(s) => bad(ctx, format!("ready `{s}` is not \"tcp\" or a table")),
        toml::Value::Table(t) => {
            if let Some(k) = t
                .keys()
                .find(|k| !["path", "tcp", "timeout"].contains(&k.as_str()))
            {
                return bad(ctx, format!("unknown key `{k}` in `ready`"));
            }
            let timeout = match t.get("timeout") {
                None => READY_TIMEOUT,
                Some(toml::Value::String(s)) => match humantime::parse_duration(s) {
                    Ok(d) if !d.is_zero() => d,
                    _ => {
                        return bad(
                            ctx,
                            format!("ready timeout `{s}` is not a duration above zero"),
                        )
                    }
                },
                Some(other) => {
                    return bad(
                        ctx,
                        format!("ready timeout `{other}` is not a string like \"30s\""),
                    )
                }
            };
            match (t.get("path"), t.get("tcp")) {
                (Some(_), Some(_)) => bad(
                    ctx,
                    "`ready` has either `path` (HTTP) or `tcp`, not both".into(),
                ),
                (None, Some(toml::Value::Boolean(true))) => (Readiness::Tcp, timeout),
                (None, Some(other)) => bad(
                    ctx,
                    format!("ready tcp = {other}: only `tcp = true` means something"),
                ),
                (Some(toml::Value::String(p)), None) if p.starts_with('/') => (
                    Readiness::Http {
                        path: p.clone(),
                        tls,
                    },
                    timeout,
                ),
                (Some(p), None) => bad(
                    ctx,
                    format!("ready path {p} must be a string starting with `/`"),
                ),
                (None, None) => (
                    Readiness::Http {
                        path: "/".into(),
                        tls,
                    },
                    timeout,
                ),
            }
        }
        other => bad(
            ctx,
            format!("ready = {other} is neither \"tcp\" nor a table"),
        ),
    }
}

/// `path` made absolute against the current directory (the app, sut host and the load
/// engine may each run elsewhere), unchanged if that fails.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Where `program` runs from: a path (relative to `cwd`), or the first match on PATH.
pub fn find_program(program: &str, cwd: &Path) -> Option<PathBuf> {
    if program.contains('/') {
        let p = cwd.join(program);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `[target]` -> how external cells are reached.
pub(super) fn target(ctx: &mut Ctx, t: &TargetSection, base: &Path) -> TargetSpec {
    let cacert = t.cacert.as_ref().map(|c| {
        let path = absolute(&base.join(c.get_ref()));
        if let Err(why) = check_ca(&path) {
            ctx.err(
                c.span(),
                format!("cacert `{}`: {why}", path.display()),
                Some("a PEM file of the CA that signed the target's certificate; the path is relative to the scenario file"),
            );
        }
        path
    });
    let insecure = t.insecure.as_ref().is_some_and(|i| *i.get_ref());
    if let (Some(c), Some(i)) = (&t.cacert, &t.insecure) {
        if *i.get_ref() {
            ctx.err(
                c.span(),
                "cacert and insecure = true contradict each other",
                Some("verify with the CA, or do not verify at all"),
            );
        }
    }
    let sni = t.sni.as_ref().map(|s| {
        if rustls::pki_types::ServerName::try_from(s.get_ref().as_str()).is_err() {
            ctx.err(
                s.span(),
                format!("sni `{}` is not a server name", s.get_ref()),
                None,
            );
        }
        s.get_ref().clone()
    });
    let host = t.host.as_ref().map(|h| {
        if h.get_ref().parse::<http::uri::Authority>().is_err() {
            ctx.err(
                h.span(),
                format!("host `{}` is not a host[:port]", h.get_ref()),
                None,
            );
        }
        h.get_ref().clone()
    });
    TargetSpec {
        cacert,
        insecure,
        sni,
        host,
    }
}

/// Reads a CA file: it must exist and hold at least one PEM certificate X.509 accepts.
fn check_ca(path: &Path) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = openssl::x509::X509::stack_from_pem(&pem)
        .map_err(|e| format!("not a PEM certificate file ({e})"))?;
    if certs.is_empty() {
        return Err("holds no certificate".into());
    }
    Ok(())
}
