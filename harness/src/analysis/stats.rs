//! The statistics of the gate: Mann-Whitney U (exact for small samples, normal
//! approximation with tie correction beyond) and a bootstrap confidence interval of the
//! ratio of medians. Deterministic: the bootstrap's generator has a fixed seed, so the
//! same inputs always give the same verdict.

/// Median of a sample (NaN when empty).
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// U statistic of `a` against `b` (ties count one half).
fn u_statistic(a: &[f64], b: &[f64]) -> f64 {
    let mut u = 0.0;
    for x in a {
        for y in b {
            u += if x > y {
                1.0
            } else if x == y {
                0.5
            } else {
                0.0
            };
        }
    }
    u
}

/// Two-sided p-value of the Mann-Whitney U test. Exact (all splits of the pooled
/// sample) when there are at most 20 values, else the normal approximation with tie
/// correction and continuity correction.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let u = u_statistic(a, b);
    let mean = (n1 * n2) as f64 / 2.0;
    let observed = (u - mean).abs();
    if n1 + n2 <= 20 {
        let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
        let n = pooled.len();
        let (mut extreme, mut total) = (0u64, 0u64);
        // Every way to pick which n1 of the pooled values form the first sample.
        let mut idx: Vec<usize> = (0..n1).collect();
        loop {
            let mut in_a = vec![false; n];
            for &i in &idx {
                in_a[i] = true;
            }
            let (xa, xb): (Vec<f64>, Vec<f64>) = {
                let mut xa = Vec::with_capacity(n1);
                let mut xb = Vec::with_capacity(n2);
                for (i, v) in pooled.iter().enumerate() {
                    if in_a[i] {
                        xa.push(*v)
                    } else {
                        xb.push(*v)
                    }
                }
                (xa, xb)
            };
            total += 1;
            if (u_statistic(&xa, &xb) - mean).abs() >= observed - 1e-9 {
                extreme += 1;
            }
            // Next combination.
            let mut i = n1;
            loop {
                if i == 0 {
                    return extreme as f64 / total as f64;
                }
                i -= 1;
                if idx[i] != i + n - n1 {
                    break;
                }
            }
            idx[i] += 1;
            for j in i + 1..n1 {
                idx[j] = idx[j - 1] + 1;
            }
        }
    }
    let mut pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    pooled.sort_by(|x, y| x.total_cmp(y));
    let n = (n1 + n2) as f64;
    let mut ties = 0.0;
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i;
        while j < pooled.len() && pooled[j] == pooled[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        ties += t * t * t - t;
        i = j;
    }
    let var = (n1 * n2) as f64 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = (observed - 0.5).max(0.0) / var.sqrt();
    2.0 * (1.0 - normal_cdf(z))
}

/// Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, error < 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    let erf = if x >= 0.0 { erf } else { -erf };
    0.5 * (1.0 + erf)
}

/// 95% bootstrap confidence interval of median(new) / median(base), from 2000 resamples
/// with a fixed seed. None when a sample is empty or a base median is zero.
pub fn bootstrap_ratio_ci(base: &[f64], new: &[f64]) -> Option<(f64, f64)> {
    if base.is_empty() || new.is_empty() {
        return None;
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut ratios = Vec::with_capacity(2000);
    let mut sb = vec![0.0; base.len()];
    let mut sn = vec![0.0; new.len()];
    for _ in 0..2000 {
        for v in sb.iter_mut() {
            *v = base[next(base.len())];
        }
        for v in sn.iter_mut() {
            *v = new[next(new.len())];
        }
        let mb = median(&sb);
        if mb == 0.0 {
            continue;
        }
        ratios.push(median(&sn) / mb);
    }
    if ratios.len() < 100 {
        return None;
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

/// 95% bootstrap confidence interval of the median of `xs` (None when empty).
pub fn bootstrap_median_ci(xs: &[f64]) -> Option<(f64, f64)> {
    // The ratio to a base that is always 1 is the median itself.
    bootstrap_ratio_ci(&vec![1.0; xs.len()], xs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_p_values_match_the_tables() {
        // Complete separation of 5 vs 5: p = 2 / C(10,5) = 2/252.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [6.0, 7.0, 8.0, 9.0, 10.0];
        assert!((mann_whitney_p(&a, &b) - 2.0 / 252.0).abs() < 1e-12);
        // 3 vs 3 can never reach p < 0.05: the smallest two-sided p is 0.1.
        assert!((mann_whitney_p(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]) - 0.1).abs() < 1e-12);
        // Identical samples: p = 1.
        assert!((mann_whitney_p(&[1.0, 1.0, 1.0], &[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn normal_approximation_for_large_samples() {
        let a: Vec<f64> = (0..15).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..15).map(|i| i as f64 + 10.0).collect();
        let p = mann_whitney_p(&a, &b);
        assert!(p < 0.01, "{p}");
        let c: Vec<f64> = (0..15).map(|i| i as f64 + 0.5).collect();
        assert!(mann_whitney_p(&a, &c) > 0.5);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
    }

    #[test]
    fn bootstrap_interval_brackets_the_ratio() {
        let base = [100.0, 101.0, 99.0, 100.5, 99.5];
        let new = [120.0, 121.0, 119.0, 120.5, 119.5];
        let (lo, hi) = bootstrap_ratio_ci(&base, &new).unwrap();
        assert!(
            lo > 1.15 && hi < 1.25 && lo <= 1.2 && hi >= 1.2,
            "{lo} {hi}"
        );
        assert_eq!(median(&[3.0, 1.0, 2.0, 4.0]), 2.5);
    }
}
