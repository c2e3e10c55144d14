//! What runs beside or after a cell's load, each value checked where it is written:
//! `[attack]` (how the cells of the `attack` axis are attacked and judged: phase lengths,
//! attacking connections and rate, the bounds that still count as held) and
//! `[conformance]` (which suite runs against each cell).

use std::ops::Range;

use toml::Spanned;

use super::file::{AttackSection, ConformanceSection};
use super::validate::duration;
use super::Ctx;
use crate::model::plan::{AttackSpec, ConformSpec};

/// Most attacking connections, as `h2lab attack` allows.
const MAX_CONNECTIONS: i64 = 100_000;

fn bound(ctx: &mut Ctx, v: &Option<Spanned<f64>>, name: &str, default: f64) -> f64 {
    let Some(v) = v else { return default };
    let x = *v.get_ref();
    if !(x.is_finite() && x >= 1.0) {
        ctx.err(
            v.span(),
            format!("{name} = {x}: a ratio of attacked over calm, 1 or more"),
            Some("2 means the attacked value may be up to twice the calm one"),
        );
    }
    x
}

fn count(ctx: &mut Ctx, v: &Option<Spanned<i64>>, name: &str, max: i64) -> Option<u64> {
    let v = v.as_ref()?;
    let n = *v.get_ref();
    if !(1..=max).contains(&n) {
        ctx.err(v.span(), format!("{name} = {n}: between 1 and {max}"), None);
        return None;
    }
    Some(n as u64)
}

/// The checked section; `attacked` says whether any cell has an attack, because the
/// section means nothing otherwise.
pub(super) fn section(
    ctx: &mut Ctx,
    a: &AttackSection,
    span: Range<usize>,
    attacked: bool,
) -> AttackSpec {
    if !attacked {
        ctx.err(
            span,
            "[attack] applies to attacked cells, and the matrix has none",
            Some("add attack = [\"none\", \"rapid-reset\", ...] to [axes], or remove [attack]"),
        );
    }
    let d = AttackSpec::default();
    let phase = a
        .phase
        .as_ref()
        .and_then(|p| duration(ctx, p, "attack phase"));
    if let (Some(p), Some(d)) = (&a.phase, phase) {
        if d.is_zero() {
            ctx.err(p.span(), "attack phase of 0", Some("e.g. phase = \"10s\""));
        }
    }
    let rate = a.rate.as_ref().map(|r| {
        let x = *r.get_ref();
        if !(x.is_finite() && x >= 0.0) {
            ctx.err(
                r.span(),
                format!("attack rate {x}: units per second, 0 or more"),
                Some("leave it out to attack as fast as the sockets take it"),
            );
        }
        x
    });
    let path = a.path.as_ref().map(|p| {
        if !p.get_ref().starts_with('/') {
            ctx.err(
                p.span(),
                format!("attack path `{}` does not start with /", p.get_ref()),
                None,
            );
        }
        p.get_ref().clone()
    });
    AttackSpec {
        phase,
        after: a
            .after
            .as_ref()
            .and_then(|p| duration(ctx, p, "attack after"))
            .unwrap_or(d.after),
        connections: count(ctx, &a.connections, "connections", MAX_CONNECTIONS).map(|n| n as usize),
        rate,
        max_units: count(ctx, &a.max_units, "max_units", i64::MAX).unwrap_or(d.max_units),
        path,
        p99_bound: bound(ctx, &a.p99_bound, "p99_bound", d.p99_bound),
        rss_bound: bound(ctx, &a.rss_bound, "rss_bound", d.rss_bound),
    }
}

/// `[conformance]`, checked.
pub(super) fn conformance(ctx: &mut Ctx, c: &ConformanceSection) -> ConformSpec {
    if let Some(s) = &c.suite {
        if s.get_ref() != "httpwg" {
            ctx.err(
                s.span(),
                format!("unknown conformance suite `{}`", s.get_ref()),
                Some("suite = \"httpwg\" (the RFC 9113 cases of httpwg-cli)"),
            );
        }
    }
    let timeout = c
        .timeout
        .as_ref()
        .and_then(|t| duration(ctx, t, "conformance timeout"))
        .unwrap_or(std::time::Duration::from_secs(120));
    ConformSpec {
        filter: c.filter.as_ref().map(|f| f.get_ref().clone()),
        timeout,
    }
}
