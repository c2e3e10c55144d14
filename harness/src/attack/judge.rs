//! Whether a target held under an attack: the survival rule, as a plain function
//! of the legitimate load's calm, attacked and after phases, the target's memory and how
//! the attacking connections ended.

use serde::Serialize;

use super::ending::Ending;

/// The legitimate load's figures in one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Phase {
    /// Median latency, µs (from the intended send time).
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Requests completed or failed.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Achieved requests/s.
    pub achieved_rps: f64,
    /// Offered requests/s.
    pub target_rps: f64,
}

/// The bounds a target must stay within to have held.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bounds {
    /// Attacked p99 over calm p99.
    pub p99_ratio: f64,
    /// Attacked peak RSS over calm peak RSS.
    pub rss_ratio: f64,
    /// Legitimate error rate allowed.
    pub error_rate: f64,
}

impl Default for Bounds {
    /// The rule: p99 within 2x, RSS within 2x, no legitimate errors.
    fn default() -> Bounds {
        Bounds {
            p99_ratio: 2.0,
            rss_ratio: 2.0,
            error_rate: 0.0,
        }
    }
}

/// The verdict on one target and attack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    /// Every bound met, the attacker cut off and the target serving afterwards.
    pub held: bool,
    /// Attacked p99 over calm p99.
    pub p99_ratio: f64,
    /// Legitimate errors over requests while attacked.
    pub error_rate: f64,
    /// Attacked peak RSS over calm (None when the target's process was not sampled).
    pub rss_ratio: Option<f64>,
    /// Attacking connections the server cut off, of all of them.
    pub cut_off: (usize, usize),
    /// What failed, in words; empty when it held.
    pub reasons: Vec<String>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else if a > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

/// Judges a target: `rss` is the calm and attacked peak when the process was sampled.
pub fn judge(
    bounds: &Bounds,
    calm: &Phase,
    attacked: &Phase,
    after: Option<&Phase>,
    rss: Option<(u64, u64)>,
    endings: &[Ending],
) -> Judgement {
    let mut reasons = Vec::new();
    let p99_ratio = ratio(attacked.p99_us, calm.p99_us);
    if p99_ratio > bounds.p99_ratio {
        reasons.push(format!(
            "legitimate p99 {:.2} ms under attack, {p99_ratio:.1}x calm {:.2} ms (bound {}x)",
            attacked.p99_us / 1000.0,
            calm.p99_us / 1000.0,
            bounds.p99_ratio
        ));
    }
    let error_rate = if attacked.requests > 0 {
        attacked.errors as f64 / attacked.requests as f64
    } else {
        1.0
    };
    if attacked.requests == 0 {
        reasons.push("no legitimate request was answered under attack".into());
    } else if error_rate > bounds.error_rate {
        reasons.push(format!(
            "{} of {} legitimate requests failed under attack",
            attacked.errors, attacked.requests
        ));
    }
    if attacked.target_rps > 0.0 && attacked.achieved_rps < 0.99 * attacked.target_rps {
        reasons.push(format!(
            "legitimate load achieved {:.0} of {:.0} req/s",
            attacked.achieved_rps, attacked.target_rps
        ));
    }
    let rss_ratio = rss.map(|(c, a)| ratio(a as f64, c as f64));
    if let Some(r) = rss_ratio.filter(|r| *r > bounds.rss_ratio) {
        reasons.push(format!(
            "peak memory {r:.1}x calm (bound {}x)",
            bounds.rss_ratio
        ));
    }
    let cut = endings.iter().filter(|e| e.cut_off()).count();
    if cut < endings.len() {
        reasons.push(format!(
            "{} of {} attacking connections were never cut off",
            endings.len() - cut,
            endings.len()
        ));
    }
    match after {
        Some(a) if a.requests == 0 || a.errors > 0 => reasons.push(format!(
            "after the attack {} of {} requests failed",
            a.errors, a.requests
        )),
        _ => {}
    }
    Judgement {
        held: reasons.is_empty(),
        p99_ratio,
        error_rate,
        rss_ratio,
        cut_off: (cut, endings.len()),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(p99_ms: f64, requests: u64, errors: u64) -> Phase {
        Phase {
            p50_us: 100.0,
            p99_us: p99_ms * 1000.0,
            p999_us: p99_ms * 2000.0,
            requests,
            errors,
            achieved_rps: 1000.0,
            target_rps: 1000.0,
        }
    }

    #[test]
    fn a_target_holds_when_every_bound_is_met_and_the_attacker_is_cut_off() {
        let goaway = Ending::Goaway {
            code: "ENHANCE_YOUR_CALM".into(),
            debug: String::new(),
        };
        let j = judge(
            &Bounds::default(),
            &phase(1.0, 5000, 0),
            &phase(1.8, 5000, 0),
            Some(&phase(1.0, 1000, 0)),
            Some((100, 150)),
            &[goaway.clone(), goaway],
        );
        assert!(j.held, "{:?}", j.reasons);
        assert_eq!(j.cut_off, (2, 2));
    }

    #[test]
    fn each_broken_bound_is_named() {
        let j = judge(
            &Bounds::default(),
            &phase(1.0, 5000, 0),
            &phase(13.0, 5000, 7),
            Some(&phase(1.0, 1000, 3)),
            Some((100, 500)),
            &[Ending::Open, Ending::Closed],
        );
        assert!(!j.held);
        let text = j.reasons.join("\n");
        for part in [
            "13.0x calm",
            "7 of 5000",
            "5.0x calm",
            "1 of 2 attacking",
            "after the attack 3",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert_eq!(j.rss_ratio, Some(5.0));
    }
}
