//! The matrix of a scenario: include and exclude rules, the cross product of the axes,
//! combinations that cannot run (with the place in the file that makes them), where the
//! user's app can go, and the cells with their ids and axis labels.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use toml::Spanned;

use super::app::CheckedApp;
use super::file::{File, Rule};
use super::validate::{offer, pick, topology, versions, Sections, CERTS, CLIENT_TLS, SERVER_TLS};
use super::{server_tls_name, Ctx};
use crate::model::plan::{
    Cell, CellRequest, Offer, Plan, RequestBody, ServerTls, TargetSpec, Topology,
};
use crate::model::TlsClientStack;
use h2lab_common::pki::KeyType;

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

/// One combination of axis values: as written, where, and what they mean.
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

/// The plan: cells from the checked values `s` and the rules of `file`.
pub(super) fn plan(ctx: &mut Ctx, file: &File, s: Sections) -> Option<Plan> {
    // Rules name axis values; a value that is not on the axis is a mistake.
    let check_rule = |ctx: &mut Ctx, rule: &Spanned<Rule>, kind: &str| {
        let r = rule.get_ref();
        let fields: [RuleField; 6] = [
            (
                "topology",
                &r.topology,
                s.topologies.iter().map(|t| &t.0).collect(),
            ),
            (
                "server_tls",
                &r.server_tls,
                s.server_tls.iter().map(|t| &t.0).collect(),
            ),
            ("cert", &r.cert, s.certs.iter().map(|t| &t.0).collect()),
            (
                "tls_versions",
                &r.tls_versions,
                s.tls_versions.iter().map(|t| &t.0).collect(),
            ),
            (
                "client_offer",
                &r.client_offer,
                s.offers.iter().map(|t| &t.0).collect(),
            ),
            (
                "client_tls",
                &r.client_tls,
                s.client_tls.iter().map(|t| &t.0).collect(),
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
    for a in 0..s.topologies.len() {
        for b in 0..s.server_tls.len() {
            for c in 0..s.certs.len() {
                for d in 0..s.tls_versions.len() {
                    for e in 0..s.offers.len() {
                        for f in 0..s.client_tls.len() {
                            combos.push((a, b, c, d, e, f));
                        }
                    }
                }
            }
        }
    }
    let values = |c: &Combo| {
        [
            s.topologies[c.0].0.clone(),
            s.server_tls[c.1].0.clone(),
            s.certs[c.2].0.clone(),
            s.tls_versions[c.3].0.clone(),
            s.offers[c.4].0.clone(),
            s.client_tls[c.5].0.clone(),
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

    let mut raws: Vec<Raw> = combos
        .iter()
        .map(|c| Raw {
            values: values(c),
            spans: [
                s.topologies[c.0].1.clone(),
                s.server_tls[c.1].1.clone(),
                s.certs[c.2].1.clone(),
                s.tls_versions[c.3].1.clone(),
                s.offers[c.4].1.clone(),
                s.client_tls[c.5].1.clone(),
            ],
            topology: s.topologies[c.0].2.clone(),
            server_tls: s.server_tls[c.1].2,
            cert: s.certs[c.2].2,
            versions: s.tls_versions[c.3].2.clone(),
            offer: s.offers[c.4].2.clone(),
            client_tls: s.client_tls[c.5].2,
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
        let t = topology(ctx, &sv(0, &s.topologies[0].0));
        let st = pick(ctx, &sv(1, &s.server_tls[0].0), "server_tls", SERVER_TLS);
        let ce = pick(ctx, &sv(2, &s.certs[0].0), "cert", CERTS);
        let ve = versions(ctx, &sv(3, &s.tls_versions[0].0));
        let of = offer(ctx, &sv(4, &s.offers[0].0));
        let ct = pick(ctx, &sv(5, &s.client_tls[0].0), "client_tls", CLIENT_TLS);
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
                    val(0, &s.topologies[0].0),
                    val(1, server_tls_name(server_tls_v)),
                    val(2, &s.certs[0].0),
                    val(3, &s.tls_versions[0].0),
                    val(4, &s.offers[0].0),
                    val(5, &s.client_tls[0].0),
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
    if let Some((app, span)) = &s.app {
        app_fits(ctx, app, span, &raws);
    }
    target_used(ctx, &s.target, &raws);
    if !ctx.diags.is_empty() {
        return None;
    }

    let attacked = s.attacks.iter().any(|a| a.2.is_some());
    // Cells: axes x loads x requests x engines x attacks.
    let mut cells = Vec::new();
    let mut ids = HashSet::new();
    for raw in &raws {
        for l in &s.loads {
            for req in &s.requests {
                for ((engine, _, _), (attack_name, _, attack)) in s
                    .engines
                    .iter()
                    .flat_map(|e| s.attacks.iter().map(move |a| (e, a)))
                {
                    let mut axes_map = BTreeMap::new();
                    // The first six axis names are the ones a raw combination holds.
                    for (k, v) in super::validate::AXIS_NAMES.iter().zip(raw.values.iter()) {
                        axes_map.insert(k.to_string(), v.clone());
                    }
                    axes_map.insert("load".into(), l.label.clone());
                    axes_map.insert("request".into(), request_label(req));
                    axes_map.insert("engine".into(), engine.clone());
                    // Only a file that names attacks has the axis: cells of every other
                    // file keep the axes they had, so stored baselines still match them.
                    if attacked {
                        axes_map.insert("attack".into(), attack_name.clone());
                    }
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
                        request_id_part(req).0,
                        request_id_part(req).1
                    ));
                    if engine != "h2lab" {
                        id.push('.');
                        id.push_str(engine);
                    }
                    if attack.is_some() {
                        id.push('.');
                        id.push_str(&slug(attack_name));
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
                        attack: *attack,
                        app: uses_app(&raw.topology),
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
        name: s.name,
        description: s.description,
        duration: s.duration,
        warmup: s.warmup,
        timeout: s.timeout,
        repetitions: s.repetitions,
        cells,
        missing_proxies,
        app: s.app.map(|(a, _)| a.spec),
        target: s.target.0,
        attack: s.attack,
        conformance: s.conformance,
    })
}

/// Whether the user's app (when there is one) serves a cell of this topology.
fn uses_app(t: &Topology) -> bool {
    !matches!(t, Topology::External(_))
}

/// The cell's `request` axis value: its name, or method, path and what it carries.
fn request_label(req: &CellRequest) -> String {
    if let Some(name) = &req.name {
        return name.clone();
    }
    let r = &req.requests[0];
    let mut label = format!("{} {}", r.method, r.path);
    match &r.body {
        RequestBody::Filler { bytes } if *bytes > 0 => label.push_str(&format!(" +{bytes}B")),
        RequestBody::File { path, .. } => label.push_str(&format!(
            " +{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        )),
        _ => {}
    }
    if !r.headers.is_empty() {
        let names: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
        label.push_str(&format!(" {{{}}}", names.join(", ")));
    }
    label
}

/// The request's part of a cell id: (method, name or path).
fn request_id_part(req: &CellRequest) -> (&str, &str) {
    match (&req.name, req.requests.as_slice()) {
        (Some(name), [one]) => (one.method.as_str(), name.as_str()),
        (Some(name), _) => ("mix ", name.as_str()),
        (None, [first, ..]) => (first.method.as_str(), first.path.as_str()),
        (None, []) => ("", ""),
    }
}

/// The app's cells must be ones it can serve: not in-process, TLS only where it is the
/// edge, and at the edge with the TLS its `tls` says.
fn app_fits(ctx: &mut Ctx, checked: &CheckedApp, app_span: &Range<usize>, raws: &[Raw]) {
    let app = &checked.spec;
    let mut reported = HashSet::new();
    let needs_port = raws.iter().any(|r| {
        matches!(
            r.topology,
            Topology::DirectEdge | Topology::SutProxy | Topology::RealProxy(_)
        )
    });
    if needs_port && !checked.told_port {
        ctx.err(
            checked.command_span.clone(),
            "the app is never told which port to listen on",
            Some("put {port} in `command` or in an `env` value, or set port_env = \"PORT\" (only out-of-process cells get it from the module's contract)"),
        );
    }
    let mut edge_stacks: BTreeMap<&str, Range<usize>> = BTreeMap::new();
    for raw in raws {
        let problem: Option<(usize, String, String)> = match &raw.topology {
            Topology::InProcess => Some((
                0,
                "in-process cannot hold your app: in-process runs the built-in app's handlers inside the host's own process".into(),
                "use out-of-process (sut host starts your app as the ASP.NET Core Module does), or add [[exclude]] topology = \"in-process\"".into(),
            )),
            Topology::SutProxy | Topology::RealProxy(_) | Topology::OutOfProcess if app.tls => Some((
                0,
                format!("`{}` forwards cleartext to the app, but [app] has tls = true", raw.values[0]),
                "the front terminates TLS: set tls = false in [app], or keep only direct-edge".into(),
            )),
            Topology::DirectEdge if !app.tls && raw.server_tls != ServerTls::None => Some((
                1,
                format!("direct-edge with your app: the app serves cleartext (tls = false), so server_tls `{}` cannot apply", raw.values[1]),
                "use server_tls = \"none\" with h1, h2c or h2c-upgrade offers, or set tls = true in [app] so the app terminates TLS with {cert} and {key}".into(),
            )),
            Topology::DirectEdge if app.tls && raw.server_tls == ServerTls::None => Some((
                1,
                "direct-edge with your app: the app terminates TLS itself (tls = true), so server_tls `none` cannot apply".into(),
                "use a TLS server_tls value (it stands for the app's own TLS), or set tls = false in [app]".into(),
            )),
            Topology::DirectEdge if app.tls => {
                edge_stacks.insert(server_tls_name(raw.server_tls), raw.spans[1].clone());
                None
            }
            _ => None,
        };
        if let Some((axis, msg, hint)) = problem {
            if reported.insert(msg.clone()) {
                ctx.err(raw.spans[axis].clone(), msg, Some(&hint));
            }
        }
    }
    if edge_stacks.len() > 1 {
        let (last, span) = edge_stacks.iter().last().expect("two stacks");
        let names: Vec<&str> = edge_stacks.keys().copied().collect();
        let span = if span.is_empty() {
            app_span.clone()
        } else {
            span.clone()
        };
        ctx.err(
            span,
            format!(
                "direct-edge with your app: the app's own TLS serves every server_tls value ({}), so these cells would be the same",
                names.join(", ")
            ),
            Some(&format!("keep one, e.g. [[exclude]] topology = \"direct-edge\", server_tls = \"{last}\"")),
        );
    }
}

/// `[target]` only means something to external cells, and `cacert` only over https.
fn target_used(ctx: &mut Ctx, target: &(TargetSpec, Option<Range<usize>>), raws: &[Raw]) {
    let (spec, Some(span)) = target else {
        return;
    };
    let externals: Vec<&str> = raws
        .iter()
        .filter_map(|r| match &r.topology {
            Topology::External(u) => Some(u.as_str()),
            _ => None,
        })
        .collect();
    if externals.is_empty() {
        ctx.err(
            span.clone(),
            "[target] applies to external cells, and the matrix has none",
            Some("add a topology = \"external:https://host:port\", or remove [target]"),
        );
    } else if (spec.cacert.is_some() || spec.insecure || spec.sni.is_some())
        && !externals.iter().any(|u| u.starts_with("https://"))
    {
        ctx.err(
            span.clone(),
            "[target] sets TLS options, but every external cell is http://",
            Some("cacert, insecure and sni apply to https:// targets"),
        );
    }
}
