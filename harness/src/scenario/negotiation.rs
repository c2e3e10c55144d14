//! The `[negotiation]` section (any scenario, or a file of its own such as
//! scenarios/h2-matrix.toml) -> a validated [`MatrixSpec`], every problem with
//! file:line:column.

use std::path::Path;
use std::time::Duration;

use h2lab_common::profiles::{self, ClientProfile, ServerProfile};
use serde::Deserialize;
use toml::Spanned;

use super::file::Axis;
use super::validate::{axis_values, duration, pick, topology, CERTS};
use super::{Ctx, ScenarioError};
use crate::matrix::spec::{DocumentedRow, MatrixOffer, MatrixSpec};
use crate::model::plan::{ServerTls, Topology};

/// The file: only `[negotiation]` (and the scenario's name) matter here; other sections
/// are checked by `h2lab validate` / `h2lab run`.
#[derive(Debug, Deserialize)]
struct Outer {
    #[serde(default)]
    scenario: Option<toml::Table>,
    #[serde(default)]
    negotiation: Option<Spanned<Section>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    topology: Axis,
    #[serde(default)]
    server_tls: Option<Axis>,
    #[serde(default)]
    platform_profile: Option<Axis>,
    #[serde(default)]
    cert: Option<Axis>,
    #[serde(default)]
    client_profile: Option<Axis>,
    #[serde(default)]
    client_offer: Option<Axis>,
    #[serde(default)]
    cross_check: Option<bool>,
    #[serde(default)]
    allow_weak_h2: Option<bool>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    parallel: Option<Spanned<i64>>,
    #[serde(default)]
    documented: Vec<Spanned<Row>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    row: String,
    #[serde(rename = "match")]
    matches: Spanned<toml::Table>,
    #[serde(default)]
    edge: Option<String>,
    #[serde(default)]
    app: Option<String>,
}

const AXES: &[&str] = &[
    "topology",
    "server_tls",
    "platform_profile",
    "cert",
    "client_profile",
    "client_offer",
];

fn matrix_offer(ctx: &mut Ctx, v: &Spanned<String>) -> Option<MatrixOffer> {
    match v.get_ref().trim() {
        "h2c" => Some(MatrixOffer::H2c),
        "h2c-upgrade" => Some(MatrixOffer::H2cUpgrade),
        "none" => Some(MatrixOffer::Alpn(Vec::new())),
        list => {
            let protos: Vec<String> = list.split(',').map(|p| p.trim().to_string()).collect();
            if protos.iter().any(|p| p.is_empty() || p.len() > 255) {
                ctx.err(
                    v.span(),
                    format!("client_offer `{list}` is not an ALPN list"),
                    Some("e.g. \"h2,http/1.1\", \"http/1.1\", \"h2\", \"none\", \"h2c\", \"h2c-upgrade\""),
                );
                return None;
            }
            Some(MatrixOffer::Alpn(protos))
        }
    }
}

fn server_profile(ctx: &mut Ctx, v: &Spanned<String>) -> Option<&'static ServerProfile> {
    let p = profiles::server_profile(v.get_ref());
    if p.is_none() {
        ctx.err(
            v.span(),
            format!("unknown platform_profile `{}`", v.get_ref()),
            Some(&format!("one of {}", profiles::server_profile_names())),
        );
    }
    p
}

fn client_profile(ctx: &mut Ctx, v: &Spanned<String>) -> Option<&'static ClientProfile> {
    let p = profiles::client_profile(v.get_ref());
    if p.is_none() {
        ctx.err(
            v.span(),
            format!("unknown client_profile `{}`", v.get_ref()),
            Some(&format!("one of {}", profiles::client_profile_names())),
        );
    }
    p
}

/// Reads the `[negotiation]` section of `path`; `Ok(None)` when the file has none.
pub fn load(path: &Path) -> Result<Option<MatrixSpec>, ScenarioError> {
    parse(path, &super::read_text(path)?)
}

/// Validates the `[negotiation]` section of `text`.
pub fn parse(path: &Path, text: &str) -> Result<Option<MatrixSpec>, ScenarioError> {
    let mut ctx = Ctx {
        path,
        text,
        diags: Vec::new(),
    };
    let outer: Outer = match toml::from_str(text) {
        Ok(o) => o,
        Err(e) => {
            let msg = e.message().trim().to_string();
            let hint = msg
                .contains("unknown field")
                .then_some("see scenarios/h2-matrix.toml for every key of [negotiation]");
            ctx.err(e.span().unwrap_or(0..0), msg, hint);
            return Err(ScenarioError(ctx.diags));
        }
    };
    let Some(section) = outer.negotiation else {
        return Ok(None);
    };
    let name = outer
        .scenario
        .as_ref()
        .and_then(|s| s.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "matrix".into())
        });
    let s = section.get_ref();
    let topologies: Vec<Topology> = axis_values(
        &mut ctx,
        &Some(s.topology.clone()),
        "",
        "topology",
        topology,
    )
    .into_iter()
    .map(|(_, span, t)| (span, t))
    .filter_map(|(span, t)| {
        if matches!(t, Topology::External(_)) {
            ctx.err(
                span,
                "the matrix starts its own servers; external targets are probed with `h2lab probe`",
                None,
            );
            None
        } else {
            Some(t)
        }
    })
    .collect();
    let server_tls: Vec<ServerTls> =
        axis_values(&mut ctx, &s.server_tls, "rustls", "server_tls", |ctx, v| {
            pick(
                ctx,
                v,
                "server_tls",
                &[
                    ("rustls", ServerTls::Rustls),
                    ("openssl", ServerTls::Openssl),
                ],
            )
        })
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    let profiles = axis_values(
        &mut ctx,
        &s.platform_profile,
        "modern",
        "platform_profile",
        server_profile,
    )
    .into_iter()
    .map(|(_, _, p)| p)
    .collect();
    let certs = axis_values(&mut ctx, &s.cert, "ecdsa", "cert", |ctx, v| {
        pick(ctx, v, "cert", CERTS)
    })
    .into_iter()
    .map(|(_, _, c)| c)
    .collect();
    let client_profiles = axis_values(
        &mut ctx,
        &s.client_profile,
        "browser",
        "client_profile",
        client_profile,
    )
    .into_iter()
    .map(|(_, _, p)| p)
    .collect();
    let offers = axis_values(
        &mut ctx,
        &s.client_offer,
        "h2,http/1.1",
        "client_offer",
        matrix_offer,
    )
    .into_iter()
    .map(|(_, _, o)| o)
    .collect();
    let timeout = s
        .timeout
        .as_ref()
        .and_then(|t| duration(&mut ctx, t, "timeout"))
        .unwrap_or(Duration::from_secs(5));
    let parallel = match &s.parallel {
        None => std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
        Some(p) if (1..=64).contains(p.get_ref()) => *p.get_ref() as usize,
        Some(p) => {
            ctx.err(
                p.span(),
                format!("parallel must be between 1 and 64, got {}", p.get_ref()),
                None,
            );
            1
        }
    };
    let mut documented = Vec::new();
    for row in &s.documented {
        let r = row.get_ref();
        let mut filter = Vec::new();
        for (k, v) in r.matches.get_ref() {
            if !AXES.contains(&k.as_str()) {
                ctx.err(
                    r.matches.span(),
                    format!("documented row `{}`: unknown axis `{k}` in match", r.row),
                    Some(&format!("one of {}", AXES.join(", "))),
                );
                continue;
            }
            match v.as_str() {
                Some(v) => filter.push((k.clone(), v.to_string())),
                None => ctx.err(
                    r.matches.span(),
                    format!("documented row `{}`: `{k}` must be a string", r.row),
                    None,
                ),
            }
        }
        if r.edge.is_none() && r.app.is_none() {
            ctx.err(
                row.span(),
                format!("documented row `{}` expects nothing", r.row),
                Some("give edge = \"HTTP/2\" and/or app = \"HTTP/1.1\""),
            );
        }
        documented.push(DocumentedRow {
            row: r.row.clone(),
            filter,
            edge: r.edge.clone(),
            app: r.app.clone(),
        });
    }
    if !ctx.diags.is_empty() {
        return Err(ScenarioError(ctx.diags));
    }
    Ok(Some(MatrixSpec {
        name,
        topologies,
        server_tls,
        profiles,
        certs,
        client_profiles,
        offers,
        cross_check: s.cross_check.unwrap_or(false),
        strict_h2: !s.allow_weak_h2.unwrap_or(false),
        timeout,
        parallel,
        documented,
    }))
}
