//! Scenario files (`scenarios/*.toml`) -> a validated [`Plan`]. Every problem is a
//! [`Diagnostic`] naming file, line and column, with a hint; nothing downstream re-reads
//! the file.

pub mod file;
pub mod negotiation;

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use h2lab_common::launch::ProxyKind;
use h2lab_common::pki::KeyType;
use toml::Spanned;

use crate::model::plan::{Cell, CellLoad, CellRequest, Offer, Plan, ServerTls, Topology};
use crate::model::TlsClientStack;
use file::{Axis, File, Rule};

/// One problem in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found in a file (at least one).
#[derive(Debug, thiserror::Error)]
pub struct ScenarioError(pub Vec<Diagnostic>);

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn at(&self, span: Range<usize>) -> (usize, usize) {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rfind('\n')
            .map_or(before.chars().count(), |i| before[i + 1..].chars().count())
            + 1;
        (line, column)
    }

    fn err(&mut self, span: Range<usize>, message: impl Into<String>, hint: Option<&str>) {
        let (line, column) = self.at(span);
        self.diags.push(Diagnostic {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
            hint: hint.map(str::to_string),
        });
    }
}

/// Reads a scenario file; failure is a diagnostic at 1:1.
fn read_text(path: &Path) -> Result<String, ScenarioError> {
    std::fs::read_to_string(path).map_err(|e| {
        ScenarioError(vec![Diagnostic {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {e}"),
            hint: None,
        }])
    })
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Plan, ScenarioError> {
    parse(path, &read_text(path)?)
}

/// Validates scenario `text` (as read from `path`).
pub fn parse(path: &Path, text: &str) -> Result<Plan, ScenarioError> {
    let mut ctx = Ctx {
        path,
        text,
        diags: Vec::new(),
    };
    let file: File = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().to_string();
            let hint = if msg.contains("unknown field") {
                Some("check the spelling; README.md and scenarios/quick.toml list every key")
            } else if msg.contains("missing field") {
                Some("add the key; see scenarios/quick.toml for a complete example")
            } else {
                None
            };
            ctx.err(span, msg, hint);
            return Err(ScenarioError(ctx.diags));
        }
    };
    let plan = validate(&mut ctx, file);
    if ctx.diags.is_empty() {
        Ok(plan.expect("a plan when there is no diagnostic"))
    } else {
        Err(ScenarioError(ctx.diags))
    }
}

fn duration(ctx: &mut Ctx, v: &Spanned<String>, what: &str) -> Option<Duration> {
    match humantime::parse_duration(v.get_ref()) {
        Ok(d) => Some(d),
        Err(e) => {
            ctx.err(
                v.span(),
                format!("{what} `{}` is not a duration: {e}", v.get_ref()),
                Some("write it like 500ms, 10s or 1m"),
            );
            None
        }
    }
}

const TOPOLOGIES: &str = "direct-edge, reverse-proxy:sut, reverse-proxy:nginx, reverse-proxy:apache, reverse-proxy:haproxy, in-process, out-of-process, external:URL";

fn topology(ctx: &mut Ctx, v: &Spanned<String>) -> Option<Topology> {
    let s = v.get_ref().as_str();
    let t = match s {
        "direct-edge" => Topology::DirectEdge,
        "reverse-proxy:sut" => Topology::SutProxy,
        "in-process" => Topology::InProcess,
        "out-of-process" => Topology::OutOfProcess,
        _ => {
            if let Some(p) = s.strip_prefix("reverse-proxy:") {
                match p.parse::<ProxyKind>() {
                    Ok(k) => Topology::RealProxy(k),
                    Err(_) => {
                        ctx.err(
                            v.span(),
                            format!("unknown reverse proxy `{p}`"),
                            Some("use sut, nginx, apache or haproxy"),
                        );
                        return None;
                    }
                }
            } else if let Some(url) = s.strip_prefix("external:") {
                if !(url.starts_with("http://") || url.starts_with("https://"))
                    || url.parse::<http::Uri>().is_err()
                {
                    ctx.err(
                        v.span(),
                        format!("`{url}` is not an http:// or https:// URL"),
                        Some("external:https://host:port"),
                    );
                    return None;
                }
                Topology::External(url.trim_end_matches('/').to_string())
            } else {
                ctx.err(
                    v.span(),
                    format!("unknown topology `{s}`"),
                    Some(&format!("one of {TOPOLOGIES}")),
                );
                return None;
            }
        }
    };
    Some(t)
}

/// Values of the server_tls axis.
const SERVER_TLS: &[(&str, ServerTls)] = &[
    ("rustls", ServerTls::Rustls),
    ("openssl", ServerTls::Openssl),
    ("none", ServerTls::None),
];
/// Values of the cert axis.
const CERTS: &[(&str, KeyType)] = &[("ecdsa", KeyType::Ecdsa), ("rsa", KeyType::Rsa)];
/// Values of the client_tls axis.
const CLIENT_TLS: &[(&str, TlsClientStack)] = &[
    ("rustls", TlsClientStack::Rustls),
    ("openssl", TlsClientStack::Openssl),
];

fn pick<T>(ctx: &mut Ctx, v: &Spanned<String>, what: &str, options: &[(&str, T)]) -> Option<T>
where
    T: Clone,
{
    match options.iter().find(|(name, _)| *name == v.get_ref()) {
        Some((_, t)) => Some(t.clone()),
        None => {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            ctx.err(
                v.span(),
                format!("unknown {what} `{}`", v.get_ref()),
                Some(&format!("one of {}", names.join(", "))),
            );
            None
        }
    }
}

fn offer(ctx: &mut Ctx, v: &Spanned<String>) -> Option<Offer> {
    let s = v.get_ref().trim();
    match s {
        "h1" => Some(Offer::H1),
        "h2c" => Some(Offer::H2c),
        "h2c-upgrade" => Some(Offer::H2cUpgrade),
        "none" | "" => Some(Offer::Tls(Vec::new())),
        list => {
            let protos: Vec<String> = list.split(',').map(|p| p.trim().to_string()).collect();
            if protos
                .iter()
                .any(|p| p.is_empty() || p.len() > 255 || p.contains(char::is_whitespace))
            {
                ctx.err(v.span(), format!("client_offer `{list}` is not a comma-separated ALPN list"), Some("e.g. \"h2,http/1.1\", \"http/1.1\", \"none\", or h1 / h2c / h2c-upgrade on cleartext"));
                return None;
            }
            Some(Offer::Tls(protos))
        }
    }
}

fn versions(ctx: &mut Ctx, v: &Spanned<String>) -> Option<(String, String)> {
    match v.get_ref().as_str() {
        "1.2" => Some(("1.2".into(), "1.2".into())),
        "1.3" => Some(("1.3".into(), "1.3".into())),
        "1.2-1.3" => Some(("1.2".into(), "1.3".into())),
        other => {
            ctx.err(
                v.span(),
                format!("unknown tls_versions `{other}`"),
                Some("one of 1.2, 1.3, 1.2-1.3"),
            );
            None
        }
    }
}

fn axis_values<T>(
    ctx: &mut Ctx,
    axis: &Option<Axis>,
    default: &str,
    name: &str,
    f: impl Fn(&mut Ctx, &Spanned<String>) -> Option<T>,
) -> Vec<(String, Range<usize>, T)> {
    let Some(axis) = axis else {
        let v = Spanned::new(0..0, default.to_string());
        return f(ctx, &v)
            .map(|t| vec![(default.to_string(), 0..0, t)])
            .unwrap_or_default();
    };
    if axis.get_ref().is_empty() {
        ctx.err(
            axis.span(),
            format!("axis `{name}` is empty"),
            Some("give at least one value, or remove the key to use the default"),
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for v in axis.get_ref() {
        if !seen.insert(v.get_ref().clone()) {
            ctx.err(
                v.span(),
                format!("`{}` appears twice in `{name}`", v.get_ref()),
                None,
            );
            continue;
        }
        if let Some(t) = f(ctx, v) {
            out.push((v.get_ref().clone(), v.span(), t));
        }
    }
    out
}

fn positive(ctx: &mut Ctx, v: &Option<Spanned<i64>>, what: &str, default: i64) -> usize {
    match v {
        None => default as usize,
        Some(v) if *v.get_ref() >= 1 && *v.get_ref() <= 1_000_000 => *v.get_ref() as usize,
        Some(v) => {
            ctx.err(
                v.span(),
                format!("{what} must be between 1 and 1000000, got {}", v.get_ref()),
                None,
            );
            1
        }
    }
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// A rule's six optional axis values, in axis order.
type RuleValues = [Option<Spanned<String>>; 6];
/// One axis of a rule: name, the rule's value, the axis's values.
type RuleField<'a> = (&'a str, &'a Option<Spanned<String>>, Vec<&'a String>);

struct Loads {
    label: String,
    load: CellLoad,
}

fn validate(ctx: &mut Ctx, file: File) -> Option<Plan> {
    let meta = file.scenario.get_ref();
    let name = meta.name.get_ref().trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        ctx.err(
            meta.name.span(),
            format!("scenario name `{name}` must be letters, digits, `-` or `_`"),
            Some("it becomes part of the run directory name"),
        );
    }
    let dur = duration(ctx, &meta.duration, "duration");
    if dur.is_some_and(|d| d.is_zero()) {
        ctx.err(
            meta.duration.span(),
            "duration must be longer than zero",
            None,
        );
    }
    let warmup = meta
        .warmup
        .as_ref()
        .and_then(|w| duration(ctx, w, "warmup"))
        .unwrap_or(Duration::ZERO);
    let timeout = meta
        .timeout
        .as_ref()
        .and_then(|w| duration(ctx, w, "timeout"))
        .unwrap_or(Duration::from_secs(10));
    let repetitions = match &meta.repetitions {
        None => 1,
        Some(r) if (1..=1000).contains(r.get_ref()) => *r.get_ref() as u32,
        Some(r) => {
            ctx.err(
                r.span(),
                format!(
                    "repetitions must be between 1 and 1000, got {}",
                    r.get_ref()
                ),
                None,
            );
            1
        }
    };
    let engines = axis_values(ctx, &meta.engines, "h2lab", "engines", |ctx, v| {
        pick(
            ctx,
            v,
            "engine",
            &[
                ("h2lab", "h2lab".to_string()),
                ("wrk", "wrk".to_string()),
                ("h2load", "h2load".to_string()),
            ],
        )
    });

    let axes = file.axes.get_ref();
    let topologies = axis_values(
        ctx,
        &Some(Spanned::new(
            axes.topology.span(),
            axes.topology.get_ref().clone(),
        )),
        "",
        "topology",
        topology,
    );
    let server_tls = axis_values(ctx, &axes.server_tls, "rustls", "server_tls", |ctx, v| {
        pick(ctx, v, "server_tls", SERVER_TLS)
    });
    let certs = axis_values(ctx, &axes.cert, "ecdsa", "cert", |ctx, v| {
        pick(ctx, v, "cert", CERTS)
    });
    let tls_versions = axis_values(ctx, &axes.tls_versions, "1.2-1.3", "tls_versions", versions);
    let offers = axis_values(
        ctx,
        &axes.client_offer,
        "h2,http/1.1",
        "client_offer",
        offer,
    );
    let client_tls = axis_values(ctx, &axes.client_tls, "rustls", "client_tls", |ctx, v| {
        pick(ctx, v, "client_tls", CLIENT_TLS)
    });

    let mut loads: Vec<Loads> = Vec::new();
    if axes.load.get_ref().is_empty() {
        ctx.err(
            axes.load.span(),
            "axis `load` is empty",
            Some("e.g. load = [{ connections = 16, streams = 8 }]"),
        );
    }
    for (i, l) in axes.load.get_ref().iter().enumerate() {
        let spec = l.get_ref();
        let connections = positive(ctx, &spec.connections, "connections", 16);
        let streams = positive(ctx, &spec.streams, "streams", 1);
        if spec.rate.is_some() && spec.rates.is_some() {
            ctx.err(
                l.span(),
                "a load profile has either `rate` or `rates`, not both",
                Some("`rate` is one open-loop cell; `rates` is a sweep (one cell per rate)"),
            );
            continue;
        }
        let check_rate = |ctx: &mut Ctx, r: &Spanned<f64>| {
            let ok = r.get_ref().is_finite() && *r.get_ref() > 0.0;
            if !ok {
                ctx.err(
                    r.span(),
                    format!(
                        "rate must be a positive number of requests/s, got {}",
                        r.get_ref()
                    ),
                    None,
                );
            }
            ok
        };
        let base = format!("c{connections}m{streams}");
        match (&spec.rate, &spec.rates) {
            (Some(r), None) => {
                if check_rate(ctx, r) {
                    loads.push(Loads {
                        label: format!("{base}-r{}", r.get_ref()),
                        load: CellLoad {
                            connections,
                            streams,
                            rate: Some(*r.get_ref()),
                            sweep: None,
                        },
                    });
                }
            }
            (None, Some(rates)) => {
                if rates.get_ref().is_empty() {
                    ctx.err(
                        rates.span(),
                        "`rates` is empty",
                        Some("list the rates of the sweep, e.g. rates = [1000, 2000, 4000]"),
                    );
                }
                let sweep = format!("sweep{i}-{base}");
                for r in rates.get_ref() {
                    if check_rate(ctx, r) {
                        loads.push(Loads {
                            label: format!("{base}-r{}", r.get_ref()),
                            load: CellLoad {
                                connections,
                                streams,
                                rate: Some(*r.get_ref()),
                                sweep: Some(sweep.clone()),
                            },
                        });
                    }
                }
            }
            _ => loads.push(Loads {
                label: base,
                load: CellLoad {
                    connections,
                    streams,
                    rate: None,
                    sweep: None,
                },
            }),
        }
    }

    let mut requests = Vec::new();
    match &axes.request {
        None => requests.push(CellRequest {
            name: None,
            path: "/plaintext".into(),
            method: "GET".into(),
            body_bytes: 0,
        }),
        Some(list) => {
            if list.get_ref().is_empty() {
                ctx.err(
                    list.span(),
                    "axis `request` is empty",
                    Some("e.g. request = [{ path = \"/plaintext\" }]"),
                );
            }
            for r in list.get_ref() {
                let spec = r.get_ref();
                if !spec.path.get_ref().starts_with('/')
                    || spec
                        .path
                        .get_ref()
                        .parse::<http::uri::PathAndQuery>()
                        .is_err()
                {
                    ctx.err(
                        spec.path.span(),
                        format!("path `{}` must start with `/`", spec.path.get_ref()),
                        None,
                    );
                }
                let method = spec
                    .method
                    .as_ref()
                    .map(|m| m.get_ref().to_ascii_uppercase())
                    .unwrap_or_else(|| "GET".into());
                if let Some(m) = &spec.method {
                    if http::Method::from_bytes(m.get_ref().as_bytes()).is_err() {
                        ctx.err(
                            m.span(),
                            format!("`{}` is not an HTTP method", m.get_ref()),
                            None,
                        );
                    }
                }
                let body_bytes = match &spec.body_bytes {
                    None => 0,
                    Some(b) if (0..=64 << 20).contains(b.get_ref()) => *b.get_ref() as usize,
                    Some(b) => {
                        ctx.err(
                            b.span(),
                            format!(
                                "body_bytes must be between 0 and 67108864, got {}",
                                b.get_ref()
                            ),
                            None,
                        );
                        0
                    }
                };
                requests.push(CellRequest {
                    name: spec.name.as_ref().map(|n| n.get_ref().trim().to_string()),
                    path: spec.path.get_ref().clone(),
                    method,
                    body_bytes,
                });
            }
        }
    }

    // Rules name axis values; a value that is not on the axis is a mistake.
    let check_rule = |ctx: &mut Ctx, rule: &Spanned<Rule>, kind: &str| {
        let r = rule.get_ref();
        let fields: [RuleField; 6] = [
            (
                "topology",
                &r.topology,
                topologies.iter().map(|t| &t.0).collect(),
            ),
            (
                "server_tls",
                &r.server_tls,
                server_tls.iter().map(|t| &t.0).collect(),
            ),
            ("cert", &r.cert, certs.iter().map(|t| &t.0).collect()),
            (
                "tls_versions",
                &r.tls_versions,
                tls_versions.iter().map(|t| &t.0).collect(),
            ),
            (
                "client_offer",
                &r.client_offer,
                offers.iter().map(|t| &t.0).collect(),
            ),
            (
                "client_tls",
                &r.client_tls,
                client_tls.iter().map(|t| &t.0).collect(),
            ),
        ];
        if fields.iter().all(|(_, v, _)| v.is_none()) {
            ctx.err(
                rule.span(),
                format!("empty [[{kind}]] rule"),
                Some("name at least one axis value, e.g. topology = \"in-process\""),
            );
        }
        for (axis, value, allowed) in fields {
            if let Some(v) = value {
                if kind == "exclude" && !allowed.contains(&v.get_ref()) {
                    ctx.err(
                        v.span(),
                        format!(
                            "[[exclude]] {axis} `{}` is not a value of the `{axis}` axis",
                            v.get_ref()
                        ),
                        Some("an exclude rule can only remove cells the axes produce"),
                    );
                }
            }
        }
    };
    for rule in &file.exclude {
        check_rule(ctx, rule, "exclude");
    }
    for rule in &file.include {
        check_rule(ctx, rule, "include");
    }
    if !ctx.diags.is_empty() {
        return None;
    }

    // Cross product.
    type Combo = (usize, usize, usize, usize, usize, usize);
    let mut combos: Vec<Combo> = Vec::new();
    for a in 0..topologies.len() {
        for b in 0..server_tls.len() {
            for c in 0..certs.len() {
                for d in 0..tls_versions.len() {
                    for e in 0..offers.len() {
                        for f in 0..client_tls.len() {
                            combos.push((a, b, c, d, e, f));
                        }
                    }
                }
            }
        }
    }
    let values = |c: &Combo| {
        [
            topologies[c.0].0.clone(),
            server_tls[c.1].0.clone(),
            certs[c.2].0.clone(),
            tls_versions[c.3].0.clone(),
            offers[c.4].0.clone(),
            client_tls[c.5].0.clone(),
        ]
    };
    let matches = |rule: &Rule, v: &[String; 6]| {
        let fields = [
            &rule.topology,
            &rule.server_tls,
            &rule.cert,
            &rule.tls_versions,
            &rule.client_offer,
            &rule.client_tls,
        ];
        fields
            .iter()
            .zip(v.iter())
            .all(|(f, val)| f.as_ref().is_none_or(|f| f.get_ref() == val))
    };
    combos.retain(|c| {
        !file
            .exclude
            .iter()
            .any(|r| matches(r.get_ref(), &values(c)))
    });
    // Includes: axes not given take their first value; values may be new.
    let mut extra: Vec<(Range<usize>, RuleValues)> = Vec::new();
    for rule in &file.include {
        let r = rule.get_ref();
        extra.push((
            rule.span(),
            [
                r.topology.clone(),
                r.server_tls.clone(),
                r.cert.clone(),
                r.tls_versions.clone(),
                r.client_offer.clone(),
                r.client_tls.clone(),
            ],
        ));
    }

    struct Raw {
        values: [String; 6],
        spans: [Range<usize>; 6],
        topology: Topology,
        server_tls: ServerTls,
        cert: KeyType,
        versions: (String, String),
        offer: Offer,
        client_tls: TlsClientStack,
    }
    let mut raws: Vec<Raw> = combos
        .iter()
        .map(|c| Raw {
            values: values(c),
            spans: [
                topologies[c.0].1.clone(),
                server_tls[c.1].1.clone(),
                certs[c.2].1.clone(),
                tls_versions[c.3].1.clone(),
                offers[c.4].1.clone(),
                client_tls[c.5].1.clone(),
            ],
            topology: topologies[c.0].2.clone(),
            server_tls: server_tls[c.1].2,
            cert: certs[c.2].2,
            versions: tls_versions[c.3].2.clone(),
            offer: offers[c.4].2.clone(),
            client_tls: client_tls[c.5].2,
        })
        .collect();
    for (span, fields) in extra {
        let val = |i: usize, first: &str| {
            fields[i]
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_else(|| first.to_string())
        };
        let sp = |i: usize| fields[i].as_ref().map(|s| s.span()).unwrap_or(span.clone());
        let sv = |i: usize, first: &str| Spanned::new(sp(i), val(i, first));
        let t = topology(ctx, &sv(0, &topologies[0].0));
        let st = pick(ctx, &sv(1, &server_tls[0].0), "server_tls", SERVER_TLS);
        let ce = pick(ctx, &sv(2, &certs[0].0), "cert", CERTS);
        let ve = versions(ctx, &sv(3, &tls_versions[0].0));
        let of = offer(ctx, &sv(4, &offers[0].0));
        let ct = pick(ctx, &sv(5, &client_tls[0].0), "client_tls", CLIENT_TLS);
        if let (
            Some(topology_v),
            Some(server_tls_v),
            Some(cert_v),
            Some(versions_v),
            Some(offer_v),
            Some(client_tls_v),
        ) = (t, st, ce, ve, of, ct)
        {
            raws.push(Raw {
                values: [
                    val(0, &topologies[0].0),
                    val(1, server_tls_name(server_tls_v)),
                    val(2, &certs[0].0),
                    val(3, &tls_versions[0].0),
                    val(4, &offers[0].0),
                    val(5, &client_tls[0].0),
                ],
                spans: [sp(0), sp(1), sp(2), sp(3), sp(4), sp(5)],
                topology: topology_v,
                server_tls: server_tls_v,
                cert: cert_v,
                versions: versions_v,
                offer: offer_v,
                client_tls: client_tls_v,
            });
        }
    }
    if raws.is_empty() && ctx.diags.is_empty() {
        ctx.err(
            file.axes.span(),
            "the matrix is empty: every cell was excluded",
            Some("loosen the [[exclude]] rules"),
        );
    }

    // Impossible combinations left in the matrix.
    let mut reported = HashSet::new();
    let mut missing = BTreeMap::new();
    for raw in &raws {
        let cleartext_offer = matches!(raw.offer, Offer::H1 | Offer::H2c | Offer::H2cUpgrade);
        let external_tls =
            matches!(&raw.topology, Topology::External(u) if u.starts_with("https://"));
        let external_clear =
            matches!(&raw.topology, Topology::External(u) if u.starts_with("http://"));
        let problem: Option<(usize, String, &str)> = if cleartext_offer
            && (raw.server_tls != ServerTls::None && !external_clear || external_tls)
        {
            Some((4, format!("client_offer `{}` is cleartext but server_tls is `{}`", raw.values[4], raw.values[1]), "h1, h2c and h2c-upgrade need server_tls = \"none\"; add an [[exclude]] rule for this pair"))
        } else if !cleartext_offer
            && (raw.server_tls == ServerTls::None && !external_tls || external_clear)
        {
            Some((
                4,
                format!(
                    "client_offer `{}` needs TLS but server_tls is `{}`",
                    raw.values[4], raw.values[1]
                ),
                "use h1, h2c or h2c-upgrade on cleartext, or add an [[exclude]] rule for this pair",
            ))
        } else if matches!(raw.topology, Topology::RealProxy(_))
            && raw.server_tls == ServerTls::None
        {
            Some((
                1,
                format!(
                    "`{}` is configured with TLS at its edge; server_tls `none` is not available",
                    raw.values[0]
                ),
                "add an [[exclude]] rule: { topology = \"...\", server_tls = \"none\" }",
            ))
        } else {
            None
        };
        if let Some((axis, msg, hint)) = problem {
            if reported.insert(msg.clone()) {
                ctx.err(raw.spans[axis].clone(), msg, Some(hint));
            }
        }
        if let Topology::RealProxy(kind) = &raw.topology {
            if kind.find().is_none() {
                missing.insert(
                    kind.name().to_string(),
                    (kind.install_hint().to_string(), raw.spans[0].clone()),
                );
            }
        }
    }
    if !ctx.diags.is_empty() {
        return None;
    }

    // Cells: axes x loads x requests x engines.
    let mut cells = Vec::new();
    let mut ids = HashSet::new();
    for raw in &raws {
        for l in &loads {
            for req in &requests {
                for (engine, _, _) in &engines {
                    let mut axes_map = BTreeMap::new();
                    for (k, v) in [
                        "topology",
                        "server_tls",
                        "cert",
                        "tls_versions",
                        "client_offer",
                        "client_tls",
                    ]
                    .iter()
                    .zip(raw.values.iter())
                    {
                        axes_map.insert(k.to_string(), v.clone());
                    }
                    axes_map.insert("load".into(), l.label.clone());
                    axes_map.insert(
                        "request".into(),
                        match &req.name {
                            Some(name) => name.clone(),
                            None => format!(
                                "{} {}{}",
                                req.method,
                                req.path,
                                if req.body_bytes > 0 {
                                    format!(" +{}B", req.body_bytes)
                                } else {
                                    String::new()
                                }
                            ),
                        },
                    );
                    axes_map.insert("engine".into(), engine.clone());
                    let mut id = slug(&format!(
                        "{}.{}.{}.tls{}.{}.{}.{}.{}{}",
                        raw.values[0],
                        raw.values[1],
                        raw.values[2],
                        raw.values[3],
                        if raw.values[4].is_empty() {
                            "none"
                        } else {
                            &raw.values[4]
                        },
                        raw.values[5],
                        l.label,
                        req.method,
                        req.name.as_deref().unwrap_or(&req.path)
                    ));
                    if engine != "h2lab" {
                        id.push('.');
                        id.push_str(engine);
                    }
                    let base = id.clone();
                    let mut n = 2;
                    while !ids.insert(id.clone()) {
                        id = format!("{base}-{n}");
                        n += 1;
                    }
                    cells.push(Cell {
                        id,
                        axes: axes_map,
                        topology: raw.topology.clone(),
                        server_tls: raw.server_tls,
                        cert: raw.cert,
                        tls_min: raw.versions.0.clone(),
                        tls_max: raw.versions.1.clone(),
                        offer: raw.offer.clone(),
                        client_tls: raw.client_tls,
                        load: l.load.clone(),
                        request: req.clone(),
                        engine: engine.clone(),
                    });
                }
            }
        }
    }
    let missing_proxies = missing
        .into_iter()
        .map(|(k, (hint, _))| (k, hint))
        .collect();
    Some(Plan {
        name,
        description: meta.description.clone(),
        duration: dur.unwrap_or(Duration::from_secs(1)),
        warmup,
        timeout,
        repetitions,
        cells,
        missing_proxies,
    })
}

/// The scenario-file name of a server TLS stack (`rustls`, `openssl`, `none`).
pub fn server_tls_name(t: ServerTls) -> &'static str {
    SERVER_TLS
        .iter()
        .find(|(_, v)| *v == t)
        .map(|(n, _)| *n)
        .expect("every stack is in the table")
}

/// Where a real proxy named in the file is missing, as diagnostics (for `validate`).
pub fn missing_proxy_diagnostics(path: &Path, text: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for kind in ProxyKind::ALL {
        let needle = format!("reverse-proxy:{}", kind.name());
        if kind.find().is_some() {
            continue;
        }
        if let Some(pos) = text.find(&needle) {
            let ctx = Ctx {
                path,
                text,
                diags: Vec::new(),
            };
            let (line, column) = ctx.at(pos..pos);
            out.push(Diagnostic {
                path: path.to_path_buf(),
                line,
                column,
                message: format!("{} is not installed on this machine", kind.name()),
                hint: Some(format!(
                    "{}; `h2lab run` skips these cells",
                    kind.install_hint()
                )),
            });
        }
    }
    out
}
