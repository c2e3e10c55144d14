//! Readable cell names: the values of the axes that vary across a run's cells (topology
//! first), e.g. `out-of-process` or `out-of-process · http/1.1`, instead of the full id.

use std::collections::BTreeMap;

/// One name per cell, in order. A run of one cell is named by its topology.
pub fn readable(cells: &[&BTreeMap<String, String>]) -> Vec<String> {
    let varying = varying_axes(cells);
    cells
        .iter()
        .map(|axes| {
            let parts: Vec<&str> = varying
                .iter()
                .filter_map(|k| axes.get(*k).map(String::as_str))
                .filter(|v| !v.is_empty())
                .collect();
            if parts.is_empty() {
                axes.get("topology").cloned().unwrap_or_default()
            } else {
                parts.join(" · ")
            }
        })
        .collect()
}

/// The axes whose values differ between cells, topology first, then in name order.
pub fn varying_axes<'a>(cells: &[&'a BTreeMap<String, String>]) -> Vec<&'a str> {
    let Some(first) = cells.first() else {
        return Vec::new();
    };
    let mut keys: Vec<&str> = first
        .keys()
        .map(String::as_str)
        .filter(|k| cells.iter().any(|c| c.get(*k) != first.get(*k)))
        .collect();
    keys.sort_by_key(|k| (*k != "topology", *k));
    keys
}

/// `k=v k=v` of the given axes, for a group's heading.
pub fn label(axes: &BTreeMap<String, String>, keys: &[&str]) -> String {
    keys.iter()
        .filter_map(|k| axes.get(*k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_are_the_varying_axes_topology_first() {
        let a = axes(&[
            ("topology", "direct-edge"),
            ("client_offer", "h2"),
            ("cert", "ecdsa"),
        ]);
        let b = axes(&[
            ("topology", "out-of-process"),
            ("client_offer", "h2"),
            ("cert", "ecdsa"),
        ]);
        let c = axes(&[
            ("topology", "out-of-process"),
            ("client_offer", "http/1.1"),
            ("cert", "ecdsa"),
        ]);
        assert_eq!(
            readable(&[&a, &b, &c]),
            [
                "direct-edge · h2",
                "out-of-process · h2",
                "out-of-process · http/1.1"
            ]
        );
        assert_eq!(readable(&[&a]), ["direct-edge"]);
        assert_eq!(varying_axes(&[&a, &b]), ["topology"]);
    }
}
