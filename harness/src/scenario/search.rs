//! A load profile's `search = { ... }`: the capacity search's objectives and settings,
//! each checked where it is written.

use std::time::Duration;

use toml::Spanned;

use super::file::SearchSection;
use super::Ctx;
use crate::search::SearchSpec;

fn rate(ctx: &mut Ctx, v: &Option<Spanned<f64>>, what: &str, default: f64) -> f64 {
    match v {
        None => default,
        Some(r) if r.get_ref().is_finite() && *r.get_ref() > 0.0 => *r.get_ref(),
        Some(r) => {
            ctx.err(
                r.span(),
                format!("{what} must be a positive number, got {}", r.get_ref()),
                None,
            );
            default
        }
    }
}

fn time(ctx: &mut Ctx, v: &Option<Spanned<String>>, what: &str, default: Duration) -> Duration {
    v.as_ref()
        .and_then(|d| super::validate::duration(ctx, d, what))
        .unwrap_or(default)
}

/// The search of a load profile, or diagnostics.
pub(super) fn search(ctx: &mut Ctx, s: &Spanned<SearchSection>) -> Option<SearchSpec> {
    let errors = ctx.diags.len();
    let section = s.get_ref();
    let mut slos = Vec::new();
    for text in section.slo.get_ref() {
        match crate::analysis::gate::parse_slo(text.get_ref()) {
            Ok(slo) => slos.push(slo),
            Err(e) => ctx.err(
                text.span(),
                format!("SLO {e}"),
                Some("e.g. \"p99 < 10ms\", \"p99.9 < 50ms\", \"error_rate < 0.1%\""),
            ),
        }
    }
    let mut spec = SearchSpec::new(slos);
    spec.start = rate(ctx, &section.start, "start", spec.start);
    spec.max = rate(ctx, &section.max, "max", spec.max);
    spec.factor = rate(ctx, &section.factor, "factor", spec.factor);
    if let Some(p) = &section.precision {
        let v = match p.get_ref() {
            toml::Value::String(t) => crate::cli::search::fraction(t).ok(),
            toml::Value::Float(f) => Some(*f),
            _ => None,
        };
        match v {
            Some(v) => spec.precision = v,
            None => ctx.err(p.span(), "precision is a fraction: \"2%\" or 0.02", None),
        }
    }
    spec.step = time(ctx, &section.step, "step", spec.step);
    spec.step_warmup = time(ctx, &section.step_warmup, "step_warmup", spec.step_warmup);
    spec.cooldown = time(ctx, &section.cooldown, "cooldown", spec.cooldown);
    if ctx.diags.len() == errors {
        if let Err(why) = spec.validate() {
            ctx.err(
                s.span(),
                format!("search: {why}"),
                Some("search = { slo = [\"p99 < 10ms\"], start = 1000, max = 100000, factor = 2, precision = \"2%\" }"),
            );
        }
    }
    (ctx.diags.len() == errors).then_some(spec)
}
