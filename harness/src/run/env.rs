//! The environment a run happened in, for the manifest: OS, kernel, CPU, library and
//! proxy versions, h2lab's own version and commit.

use h2lab_common::launch::ProxyKind;
use serde::Serialize;

/// Facts about the machine and the software.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// PRETTY_NAME from /etc/os-release.
    pub os: String,
    /// Kernel release.
    pub kernel: String,
    /// CPU model name.
    pub cpu_model: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// OpenSSL version linked into h2lab and sut.
    pub openssl: String,
    /// rustls crate version.
    pub rustls: String,
    /// h2 crate version.
    pub h2: String,
    /// Versions of the real proxies (null when not installed).
    pub proxies: std::collections::BTreeMap<String, Option<String>>,
    /// h2lab version.
    pub h2lab_version: String,
    /// Git commit h2lab was built from.
    pub h2lab_commit: String,
}

fn first_match(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(['=', ':']))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// Reads the environment.
pub fn collect() -> Environment {
    Environment {
        os: first_match("/etc/os-release", "PRETTY_NAME").unwrap_or_else(|| "unknown".into()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        cpu_model: first_match("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        openssl: openssl::version::version().to_string(),
        rustls: env!("H2LAB_DEP_RUSTLS").to_string(),
        h2: env!("H2LAB_DEP_H2").to_string(),
        proxies: ProxyKind::ALL
            .iter()
            .map(|k| (k.name().to_string(), k.version()))
            .collect(),
        h2lab_version: env!("CARGO_PKG_VERSION").to_string(),
        h2lab_commit: env!("H2LAB_GIT_COMMIT").to_string(),
    }
}
