//! The values of a scenario file, each checked where it is written: `[scenario]`, the
//! axes, load profiles and requests become typed values (with the span they came from), or
//! diagnostics. Combining them into cells is `expand`'s job.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use h2lab_common::launch::ProxyKind;
use h2lab_common::pki::KeyType;
use toml::Spanned;

use super::file::{Axis, File, RequestSpec, StringTable};
use super::Ctx;
use crate::attack::Kind;
use crate::model::plan::{
    AttackSpec, CellLoad, CellRequest, ConformSpec, HttpRequest, Offer, RequestBody, ServerTls,
    TargetSpec, Topology,
};
use crate::model::TlsClientStack;

/// An axis's values: as written, where, and what they mean.
pub(super) type Values<T> = Vec<(String, Range<usize>, T)>;

/// One load profile with its axis label.
pub(super) struct Loads {
    /// Label in the axes and the cell id, e.g. `c16m8` or `c16m1-r2000`.
    pub label: String,
    /// The load.
    pub load: CellLoad,
}

/// Everything in the file, checked value by value.
pub(super) struct Sections {
    pub name: String,
    pub description: Option<String>,
    pub duration: Duration,
    pub warmup: Duration,
    pub timeout: Duration,
    pub repetitions: u32,
    pub engines: Values<String>,
    pub topologies: Values<Topology>,
    pub server_tls: Values<ServerTls>,
    pub certs: Values<KeyType>,
    pub tls_versions: Values<(String, String)>,
    pub offers: Values<Offer>,
    pub client_tls: Values<TlsClientStack>,
    pub loads: Vec<Loads>,
    pub requests: Vec<CellRequest>,
    pub attacks: Values<Option<Kind>>,
    /// `[app]` and the span of its table.
    pub app: Option<(super::app::CheckedApp, Range<usize>)>,
    /// `[target]`, and the span of its table when written.
    pub target: (TargetSpec, Option<Range<usize>>),
    /// `[attack]`.
    pub attack: AttackSpec,
    /// `[conformance]`.
    pub conformance: Option<ConformSpec>,
}

pub(super) fn duration(ctx: &mut Ctx, v: &Spanned<String>, what: &str) -> Option<Duration> {
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

pub(super) const TOPOLOGIES: &str = "direct-edge, reverse-proxy:sut, reverse-proxy:nginx, reverse-proxy:apache, reverse-proxy:haproxy, in-process, out-of-process, external:URL";

pub(super) fn topology(ctx: &mut Ctx, v: &Spanned<String>) -> Option<Topology> {
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
pub(super) const SERVER_TLS: &[(&str, ServerTls)] = &[
    ("rustls", ServerTls::Rustls),
    ("openssl", ServerTls::Openssl),
    ("none", ServerTls::None),
];
/// Values of the cert axis.
pub(super) const CERTS: &[(&str, KeyType)] = &[("ecdsa", KeyType::Ecdsa), ("rsa", KeyType::Rsa)];
/// Values of the client_tls axis.
pub(super) const CLIENT_TLS: &[(&str, TlsClientStack)] = &[
    ("rustls", TlsClientStack::Rustls),
    ("openssl", TlsClientStack::Openssl),
];

pub(super) fn pick<T>(
    ctx: &mut Ctx,
    v: &Spanned<String>,
    what: &str,
    options: &[(&str, T)],
) -> Option<T>
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

pub(super) fn offer(ctx: &mut Ctx, v: &Spanned<String>) -> Option<Offer> {
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

pub(super) fn versions(ctx: &mut Ctx, v: &Spanned<String>) -> Option<(String, String)> {
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

pub(super) fn axis_values<T>(
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

pub(super) fn positive(ctx: &mut Ctx, v: &Option<Spanned<i64>>, what: &str, default: i64) -> usize {
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

/// Checks every value of `file` (read from `path`).
pub(super) fn sections(ctx: &mut Ctx, file: &File, path: &Path) -> Sections {
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
        if let Some(search) = &spec.search {
            if spec.rate.is_some() || spec.rates.is_some() {
                ctx.err(
                    search.span(),
                    "a search chooses its rates: no `rate` or `rates` beside it",
                    Some("search = { slo = [\"p99 < 10ms\"], start = 1000, max = 100000 }"),
                );
                continue;
            }
            if let Some(spec) = super::search::search(ctx, search) {
                loads.push(Loads {
                    label: format!("c{connections}m{streams}-search"),
                    load: CellLoad {
                        connections,
                        streams,
                        rate: None,
                        sweep: None,
                        search: Some(spec),
                    },
                });
            }
            continue;
        }
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
                            search: None,
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
                                search: None,
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
                    search: None,
                },
            }),
        }
    }

    let attacks = axis_values(ctx, &axes.attack, "none", "attack", attack_value);
    if let Some((name, span, _)) = attacks.iter().find(|a| a.2.is_some()) {
        if let Some(l) = loads
            .iter()
            .find(|l| l.load.rate.is_none() || l.load.search.is_some())
        {
            ctx.err(
                span.clone(),
                format!(
                    "attack `{name}` runs beside an open-loop load, and load `{}` has no `rate`",
                    l.label
                ),
                Some("give every load a rate, e.g. load = [{ connections = 4, rate = 1000 }]"),
            );
        }
    }
    let attacked = attacks.iter().any(|a| a.2.is_some());
    let attack = match &file.attack {
        Some(a) => super::beside_load::section(ctx, a.get_ref(), a.span(), attacked),
        None => AttackSpec::default(),
    };
    let conformance = file
        .conformance
        .as_ref()
        .map(|c| super::beside_load::conformance(ctx, c.get_ref()));
    if let Some(v) = &file.verdict {
        verdict_section(ctx, v.get_ref(), axes);
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let requests = requests(ctx, axes.request.as_ref(), base);
    let app = file
        .app
        .as_ref()
        .and_then(|a| super::app::app(ctx, a.get_ref(), base).map(|spec| (spec, a.span())));
    let target = match &file.target {
        Some(t) => (super::app::target(ctx, t.get_ref(), base), Some(t.span())),
        None => (TargetSpec::default(), None),
    };
    Sections {
        name,
        description: meta.description.clone(),
        duration: dur.unwrap_or(Duration::from_secs(1)),
        warmup,
        timeout,
        repetitions,
        engines,
        topologies,
        server_tls,
        certs,
        tls_versions,
        offers,
        client_tls,
        loads,
        requests,
        attacks,
        app,
        target,
        attack,
        conformance,
    }
}

/// An `attack` value: `none`, or a kind of `h2lab attack`.
fn attack_value(ctx: &mut Ctx, v: &Spanned<String>) -> Option<Option<Kind>> {
    if v.get_ref() == "none" {
        return Some(None);
    }
    match v.get_ref().parse::<Kind>() {
        Ok(k) => Some(Some(k)),
        Err(e) => {
            ctx.err(
                v.span(),
                e.to_string(),
                Some("or `none` for the load alone"),
            );
            None
        }
    }
}

/// The axes a cell has, in the names the verdict and the reports use.
pub const AXIS_NAMES: [&str; 10] = [
    "topology",
    "server_tls",
    "cert",
    "tls_versions",
    "client_offer",
    "client_tls",
    "load",
    "request",
    "engine",
    "attack",
];

/// `[verdict]`: the compared axis exists, and the baseline is one of its written values.
fn verdict_section(ctx: &mut Ctx, v: &super::file::VerdictSection, axes: &super::file::Axes) {
    let compare = v
        .compare
        .as_ref()
        .map_or("topology", |c| c.get_ref().as_str());
    if let Some(c) = &v.compare {
        if !AXIS_NAMES.contains(&compare) {
            ctx.err(
                c.span(),
                format!("[verdict] compare = `{compare}` is not an axis"),
                Some("one of topology, server_tls, cert, tls_versions, client_offer, client_tls, load, request, engine, attack"),
            );
            return;
        }
    }
    let written = match compare {
        "topology" => Some(&axes.topology),
        "server_tls" => axes.server_tls.as_ref(),
        "cert" => axes.cert.as_ref(),
        "tls_versions" => axes.tls_versions.as_ref(),
        "client_offer" => axes.client_offer.as_ref(),
        "client_tls" => axes.client_tls.as_ref(),
        "attack" => axes.attack.as_ref(),
        // Load, request and engine values are labels the lab derives.
        _ => None,
    };
    if let (Some(b), Some(values)) = (&v.baseline, written) {
        let values: Vec<&str> = values
            .get_ref()
            .iter()
            .map(|x| x.get_ref().as_str())
            .collect();
        if !values.contains(&b.get_ref().as_str()) {
            ctx.err(
                b.span(),
                format!(
                    "[verdict] baseline `{}` is not a value of the `{compare}` axis ({})",
                    b.get_ref(),
                    values.join(", ")
                ),
                None,
            );
        }
    }
}

/// Largest request body, from `body_bytes` or `body_file`.
const MAX_BODY: u64 = 64 << 20;

/// The `request` axis: single requests and mixes.
fn requests(
    ctx: &mut Ctx,
    axis: Option<&Spanned<Vec<Spanned<RequestSpec>>>>,
    base: &Path,
) -> Vec<CellRequest> {
    let Some(list) = axis else {
        return vec![CellRequest {
            name: None,
            requests: vec![HttpRequest {
                path: "/plaintext".into(),
                method: "GET".into(),
                headers: Vec::new(),
                body: RequestBody::Empty,
                weight: 1,
            }],
        }];
    };
    if list.get_ref().is_empty() {
        ctx.err(
            list.span(),
            "axis `request` is empty",
            Some("e.g. request = [{ path = \"/plaintext\" }]"),
        );
    }
    let mut out = Vec::new();
    for r in list.get_ref() {
        let spec = r.get_ref();
        let name = spec.name.as_ref().map(|n| n.get_ref().trim().to_string());
        let Some(mix) = &spec.mix else {
            if let Some(w) = &spec.weight {
                ctx.err(
                    w.span(),
                    "`weight` is a request's share within a mix",
                    Some("each value of `request` is a cell of its own; to send several requests in one cell, write { name = \"...\", mix = [{ path = \"/\", weight = 3 }, { path = \"/api\" }] }"),
                );
            }
            if let Some(req) = request(ctx, r, base) {
                out.push(CellRequest {
                    name,
                    requests: vec![req],
                });
            }
            continue;
        };
        let stray = [
            (spec.path.as_ref().map(|p| p.span()), "path"),
            (spec.method.as_ref().map(|p| p.span()), "method"),
            (spec.body_bytes.as_ref().map(|p| p.span()), "body_bytes"),
            (spec.body_file.as_ref().map(|p| p.span()), "body_file"),
            (spec.headers.as_ref().map(|p| p.span()), "headers"),
            (spec.weight.as_ref().map(|p| p.span()), "weight"),
        ];
        for (span, key) in stray {
            if let Some(span) = span {
                ctx.err(
                    span,
                    format!("`{key}` belongs to each request of the mix, not to the mix"),
                    Some("mix = [{ path = \"/\", weight = 3 }, ...]"),
                );
            }
        }
        if name.as_deref().is_none_or(str::is_empty) {
            ctx.err(
                r.span(),
                "a mix needs a `name`",
                Some("it names the cell's request axis, e.g. name = \"browse\""),
            );
        }
        if mix.get_ref().is_empty() {
            ctx.err(
                mix.span(),
                "`mix` is empty",
                Some("list the requests of the mix"),
            );
        }
        let mut reqs = Vec::new();
        for m in mix.get_ref() {
            let inner = m.get_ref();
            for (span, key) in [
                (inner.name.as_ref().map(|p| p.span()), "name"),
                (inner.mix.as_ref().map(|p| p.span()), "mix"),
            ] {
                if let Some(span) = span {
                    ctx.err(
                        span,
                        format!("a request inside a mix has no `{key}`"),
                        Some("the mix is one value of the axis; name it on the mix"),
                    );
                }
            }
            if let Some(req) = request(ctx, m, base) {
                reqs.push(req);
            }
        }
        out.push(CellRequest {
            name,
            requests: reqs,
        });
    }
    out
}

/// One request: path, method, headers, body, weight.
fn request(ctx: &mut Ctx, r: &Spanned<RequestSpec>, base: &Path) -> Option<HttpRequest> {
    let spec = r.get_ref();
    let Some(path) = &spec.path else {
        ctx.err(
            r.span(),
            "a request needs a `path`",
            Some("e.g. { path = \"/plaintext\" }, or a mix: { name = \"...\", mix = [...] }"),
        );
        return None;
    };
    if !path.get_ref().starts_with('/')
        || path.get_ref().parse::<http::uri::PathAndQuery>().is_err()
    {
        ctx.err(
            path.span(),
            format!("path `{}` must start with `/`", path.get_ref()),
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
    let body = match (&spec.body_bytes, &spec.body_file) {
        (Some(b), Some(_)) => {
            ctx.err(
                b.span(),
                "a request has either `body_bytes` or `body_file`, not both",
                None,
            );
            RequestBody::Empty
        }
        (None, None) => RequestBody::Empty,
        (Some(b), None) if (0..=MAX_BODY as i64).contains(b.get_ref()) => RequestBody::Filler {
            bytes: *b.get_ref() as usize,
        },
        (Some(b), None) => {
            ctx.err(
                b.span(),
                format!(
                    "body_bytes must be between 0 and {MAX_BODY}, got {}",
                    b.get_ref()
                ),
                None,
            );
            RequestBody::Empty
        }
        (None, Some(f)) => body_file(ctx, f, base),
    };
    let headers = headers(ctx, spec.headers.as_ref());
    let weight = match &spec.weight {
        None => 1,
        Some(w) if (1..=1000).contains(w.get_ref()) => *w.get_ref() as u32,
        Some(w) => {
            ctx.err(
                w.span(),
                format!("weight must be between 1 and 1000, got {}", w.get_ref()),
                None,
            );
            1
        }
    };
    Some(HttpRequest {
        path: path.get_ref().clone(),
        method,
        headers,
        body,
        weight,
    })
}

fn body_file(ctx: &mut Ctx, f: &Spanned<String>, base: &Path) -> RequestBody {
    let path = super::app::absolute(&base.join(f.get_ref()));
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() && m.len() <= MAX_BODY => RequestBody::File {
            path,
            bytes: m.len(),
        },
        Ok(m) if m.is_file() => {
            ctx.err(
                f.span(),
                format!(
                    "body_file `{}` has {} bytes, more than the {MAX_BODY} allowed",
                    path.display(),
                    m.len()
                ),
                None,
            );
            RequestBody::Empty
        }
        Ok(_) => {
            ctx.err(
                f.span(),
                format!("body_file `{}` is not a file", path.display()),
                None,
            );
            RequestBody::Empty
        }
        Err(e) => {
            ctx.err(
                f.span(),
                format!("body_file `{}`: {e}", path.display()),
                Some("the path is relative to the scenario file"),
            );
            RequestBody::Empty
        }
    }
}

/// Headers the lab sets itself, which a request may not carry.
const OWN_HEADERS: [(&str, &str); 5] = [
    (
        "host",
        "the Host comes from the topology, or from [target] host = \"...\" for external cells",
    ),
    ("content-length", "the lab sets it from the body"),
    ("transfer-encoding", "the lab sends bodies with a length"),
    (
        "connection",
        "connections are kept alive; HTTP/2 forbids the header",
    ),
    ("upgrade", "the h2c-upgrade offer does the Upgrade"),
];

fn headers(ctx: &mut Ctx, table: Option<&StringTable>) -> Vec<(String, String)> {
    let Some(table) = table else {
        return Vec::new();
    };
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut out = Vec::new();
    for (k, v) in entries {
        let name = k.get_ref().trim().to_ascii_lowercase();
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() || name.starts_with(':') {
            ctx.err(
                k.span(),
                format!("`{}` is not a header name", k.get_ref()),
                None,
            );
            continue;
        }
        if let Some((_, why)) = OWN_HEADERS.iter().find(|(h, _)| *h == name) {
            ctx.err(
                k.span(),
                format!("header `{}` is set by the lab", k.get_ref()),
                Some(why),
            );
            continue;
        }
        if http::HeaderValue::from_str(v.get_ref()).is_err() {
            ctx.err(
                v.span(),
                format!("`{}` is not a valid value for header `{name}`", v.get_ref()),
                Some("visible ASCII and spaces, no line breaks"),
            );
            continue;
        }
        out.push((name, v.get_ref().clone()));
    }
    out
}
