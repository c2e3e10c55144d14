//! Variants measured side by side (`h2lab run --variant`): the same plan against two or
//! more builds or settings of the servers, interleaved cell by cell so that the drift of a
//! shared machine (minutes apart, p50 moved by half here) hits every variant alike. Each
//! variant gets a results directory of its own, ready for `h2lab gate`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One variant: its name (the directory under `--out`), the `sut` binary it runs (the
/// lab's own otherwise) and the environment set on its servers and on the user's app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Name, also the directory of its results.
    pub name: String,
    /// The `sut` binary of this variant, when not the lab's own.
    pub sut: Option<PathBuf>,
    /// `KEY=VALUE` pairs set on every process the variant starts.
    pub env: Vec<(String, String)>,
}

/// What `manifest.json` says of a run measured interleaved with others.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Interleaved {
    /// Id of the measurement the variants shared (the same in each variant's manifest).
    pub group: String,
    /// This run's variant.
    pub variant: String,
    /// Every variant of the measurement, in the order of the first repetition (the order
    /// reverses every repetition, so neither variant always goes first).
    pub variants: Vec<String>,
    /// The `sut` binary this variant ran.
    pub sut: String,
    /// The environment this variant set, `KEY=VALUE`.
    pub env: Vec<String>,
}

/// The order of the variants for repetition `rep` (1-based): forward on odd repetitions,
/// backward on even ones (A B, B A, A B...), so a trend of the machine during a run
/// favours neither.
pub fn order(count: usize, rep: u32) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..count).collect();
    if rep.is_multiple_of(2) {
        idx.reverse();
    }
    idx
}

/// Parses the `--variant`, `--variant-env NAME:KEY=VALUE` and `--variant-sut NAME:PATH`
/// flags into variants, or says which flag is wrong.
pub fn parse(names: &[String], envs: &[String], suts: &[String]) -> Result<Vec<Variant>, String> {
    if names.is_empty() {
        if let Some(first) = envs.first().or(suts.first()) {
            return Err(format!(
                "`{first}`: --variant-env and --variant-sut need the variants named with --variant"
            ));
        }
        return Ok(Vec::new());
    }
    if names.len() < 2 {
        return Err(format!(
            "--variant {}: name two or more variants to measure side by side",
            names[0]
        ));
    }
    let mut variants: Vec<Variant> = Vec::new();
    for name in names {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        if !ok {
            return Err(format!(
                "--variant `{name}`: a name is letters, digits, `-`, `_` and `.` (it becomes a directory)"
            ));
        }
        if variants.iter().any(|v| v.name == *name) {
            return Err(format!("--variant `{name}`: named twice"));
        }
        variants.push(Variant {
            name: name.clone(),
            sut: None,
            env: Vec::new(),
        });
    }
    let find = |variants: &[Variant], flag: &str, spec: &str| -> Result<(usize, String), String> {
        let (name, rest) = spec
            .split_once(':')
            .ok_or_else(|| format!("{flag} `{spec}`: expected NAME:..."))?;
        let at = variants
            .iter()
            .position(|v| v.name == name)
            .ok_or_else(|| format!("{flag} `{spec}`: no --variant named `{name}`"))?;
        Ok((at, rest.to_string()))
    };
    for spec in envs {
        let (at, kv) = find(&variants[..], "--variant-env", spec)?;
        let (k, v) = kv
            .split_once('=')
            .filter(|(k, _)| !k.is_empty() && !k.contains(['\0', ' ']))
            .ok_or_else(|| format!("--variant-env `{spec}`: expected NAME:KEY=VALUE"))?;
        variants[at].env.push((k.to_string(), v.to_string()));
    }
    for spec in suts {
        let (at, path) = find(&variants[..], "--variant-sut", spec)?;
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(format!(
                "--variant-sut `{spec}`: {} is not a file",
                path.display()
            ));
        }
        if variants[at].sut.replace(path).is_some() {
            return Err(format!(
                "--variant-sut `{spec}`: a second binary for one variant"
            ));
        }
    }
    Ok(variants)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn variants_parse_or_name_the_flag() {
        let v = parse(
            &s(&["base", "slow"]),
            &s(&["slow:SUT_EXTRA_LATENCY=30us", "slow:X=a=b"]),
            &[],
        )
        .unwrap();
        assert_eq!(v[0].env, vec![]);
        assert_eq!(
            v[1].env,
            vec![
                ("SUT_EXTRA_LATENCY".into(), "30us".into()),
                ("X".into(), "a=b".into())
            ]
        );
        assert!(parse(&s(&["a"]), &[], &[])
            .unwrap_err()
            .contains("two or more"));
        assert!(parse(&s(&["a", "a"]), &[], &[])
            .unwrap_err()
            .contains("twice"));
        assert!(parse(&s(&["a", "b/c"]), &[], &[])
            .unwrap_err()
            .contains("directory"));
        assert!(parse(&s(&["a", "b"]), &s(&["c:K=V"]), &[])
            .unwrap_err()
            .contains("no --variant named `c`"));
        assert!(parse(&s(&["a", "b"]), &s(&["b:KV"]), &[])
            .unwrap_err()
            .contains("NAME:KEY=VALUE"));
        assert!(parse(&[], &s(&["b:K=V"]), &[])
            .unwrap_err()
            .contains("--variant"));
        assert!(parse(&s(&["a", "b"]), &[], &s(&["b:/no/such/sut"]))
            .unwrap_err()
            .contains("not a file"));
    }

    #[test]
    fn order_alternates_every_repetition() {
        assert_eq!(order(3, 1), vec![0, 1, 2]);
        assert_eq!(order(3, 2), vec![2, 1, 0]);
        assert_eq!(order(2, 3), vec![0, 1]);
    }
}
