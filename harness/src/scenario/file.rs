//! The scenario file as written: serde structs with spans, so every later check can point
//! at the exact place in the file.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A list value of one axis, each element with its span.
pub type Axis = Spanned<Vec<Spanned<String>>>;

/// A table of strings, keys and values with their spans (`env`, `headers`).
pub type StringTable = Spanned<BTreeMap<Spanned<String>, Spanned<String>>>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// `[scenario]`: name, timing, repetitions, engines.
    pub scenario: Spanned<Meta>,
    /// `[axes]`: the matrix.
    pub axes: Spanned<Axes>,
    /// `[[exclude]]`: cells matching every given field are removed.
    #[serde(default)]
    pub exclude: Vec<Spanned<Rule>>,
    /// `[[include]]`: extra cells (axes not given take their first value).
    #[serde(default)]
    pub include: Vec<Spanned<Rule>>,
    /// `[gate]`: thresholds for `h2lab gate` (read by the gate).
    #[serde(default)]
    pub gate: Option<toml::Table>,
    /// `[verdict]`: which axis the verdict compares and against which value.
    #[serde(default)]
    pub verdict: Option<Spanned<VerdictSection>>,
    /// `[negotiation]`: the negotiation matrix (read by `h2lab matrix`).
    #[serde(default)]
    pub negotiation: Option<toml::Table>,
    /// `[app]`: the user's app, instead of the built-in test app.
    #[serde(default)]
    pub app: Option<Spanned<AppSection>>,
    /// `[target]`: how external cells are reached.
    #[serde(default)]
    pub target: Option<Spanned<TargetSection>>,
    /// `[attack]`: how the cells of the `attack` axis are attacked and judged.
    #[serde(default)]
    pub attack: Option<Spanned<AttackSection>>,
    /// `[conformance]`: the HTTP/2 conformance suite against each cell's topology.
    #[serde(default)]
    pub conformance: Option<Spanned<ConformanceSection>>,
}

/// `[conformance]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConformanceSection {
    /// The suite: `httpwg` (RFC 9113 cases of httpwg-cli), the only one.
    #[serde(default)]
    pub suite: Option<Spanned<String>>,
    /// Only cases whose name contains this.
    #[serde(default)]
    pub filter: Option<Spanned<String>>,
    /// Longest the suite may run per cell (default 120s).
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
}

/// `[attack]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackSection {
    /// Calm and attacked phase, each (default: the scenario's duration).
    #[serde(default)]
    pub phase: Option<Spanned<String>>,
    /// Phase after the attack.
    #[serde(default)]
    pub after: Option<Spanned<String>>,
    /// Attacking connections.
    #[serde(default)]
    pub connections: Option<Spanned<i64>>,
    /// Units (frames, requests, bytes) per second over all attacking connections.
    #[serde(default)]
    pub rate: Option<Spanned<f64>>,
    /// Most units per attacking connection.
    #[serde(default)]
    pub max_units: Option<Spanned<i64>>,
    /// Path of the attack's requests.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// Attacked p99 over calm that still holds.
    #[serde(default)]
    pub p99_bound: Option<Spanned<f64>>,
    /// Attacked peak RSS over calm that still holds.
    #[serde(default)]
    pub rss_bound: Option<Spanned<f64>>,
}

/// `[verdict]`: `compare = "topology"` (the axis whose values are ranked) and
/// `baseline = "direct-edge"` (the value the others are measured against).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictSection {
    /// The axis whose values are ranked (default `topology`).
    #[serde(default)]
    pub compare: Option<Spanned<String>>,
    /// The value every other is measured against (default: `direct-edge`, else the first).
    #[serde(default)]
    pub baseline: Option<Spanned<String>>,
}

/// `[app]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// Program and arguments, no shell.
    pub command: Spanned<Vec<Spanned<String>>>,
    /// Working directory, relative to the scenario file.
    #[serde(default)]
    pub cwd: Option<Spanned<String>>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: Option<StringTable>,
    /// A variable that also receives the port.
    #[serde(default)]
    pub port_env: Option<Spanned<String>>,
    /// `h1` or `h2c`.
    #[serde(default)]
    pub protocol: Option<Spanned<String>>,
    /// `{ path = "/", timeout = "30s" }`, `"tcp"`, or `{ tcp = true, timeout = "60s" }`.
    #[serde(default)]
    pub ready: Option<Spanned<toml::Value>>,
    /// The app terminates TLS itself.
    #[serde(default)]
    pub tls: Option<Spanned<bool>>,
    /// `h2lab` or `ancm`: the names the out-of-process module passes.
    #[serde(default)]
    pub module_contract: Option<Spanned<String>>,
}

/// `[target]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// CA file (PEM) to trust, relative to the scenario file.
    #[serde(default)]
    pub cacert: Option<Spanned<String>>,
    /// Skip certificate verification.
    #[serde(default)]
    pub insecure: Option<Spanned<bool>>,
    /// Server name to send (SNI) and verify.
    #[serde(default)]
    pub sni: Option<Spanned<String>>,
    /// Host header / :authority to send.
    #[serde(default)]
    pub host: Option<Spanned<String>>,
}

/// `[scenario]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Short name, used in run ids.
    pub name: Spanned<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Measured duration per cell and repetition, e.g. `10s`.
    pub duration: Spanned<String>,
    /// Warmup per cell and repetition.
    #[serde(default)]
    pub warmup: Option<Spanned<String>>,
    /// Repetitions of every cell (interleaved).
    #[serde(default)]
    pub repetitions: Option<Spanned<i64>>,
    /// Load engines: `h2lab`, `wrk`, `h2load`.
    #[serde(default)]
    pub engines: Option<Axis>,
    /// Per-request timeout.
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
}

/// `[axes]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axes {
    /// `direct-edge`, `reverse-proxy:{sut,nginx,apache,haproxy}`, `in-process`,
    /// `out-of-process`, `external:URL`.
    pub topology: Axis,
    /// Server TLS stack: `rustls`, `openssl`, `none`.
    #[serde(default)]
    pub server_tls: Option<Axis>,
    /// Certificate key type: `rsa`, `ecdsa`.
    #[serde(default)]
    pub cert: Option<Axis>,
    /// TLS version bounds: `1.2`, `1.3`, `1.2-1.3`.
    #[serde(default)]
    pub tls_versions: Option<Axis>,
    /// Client offer: ALPN lists over TLS (`h2,http/1.1`, `http/1.1`, `h2`, `none`), or
    /// `h1`, `h2c`, `h2c-upgrade` on cleartext.
    #[serde(default)]
    pub client_offer: Option<Axis>,
    /// Client TLS stack: `rustls`, `openssl`.
    #[serde(default)]
    pub client_tls: Option<Axis>,
    /// Load profiles.
    pub load: Spanned<Vec<Spanned<LoadSpec>>>,
    /// Request mix.
    #[serde(default)]
    pub request: Option<Spanned<Vec<Spanned<RequestSpec>>>>,
    /// Attacks sent beside the load: `none`, or a kind of `h2lab attack`.
    #[serde(default)]
    pub attack: Option<Axis>,
}

/// One load profile: closed loop (`connections`, `streams`), open loop (`rate`), or a
/// rate sweep (`rates`, one cell per rate).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Connections.
    #[serde(default)]
    pub connections: Option<Spanned<i64>>,
    /// Streams per HTTP/2 connection.
    #[serde(default)]
    pub streams: Option<Spanned<i64>>,
    /// Open-loop rate, requests/s.
    #[serde(default)]
    pub rate: Option<Spanned<f64>>,
    /// Rate sweep.
    #[serde(default)]
    pub rates: Option<Spanned<Vec<Spanned<f64>>>>,
    /// Capacity search under SLOs.
    #[serde(default)]
    pub search: Option<Spanned<SearchSection>>,
}

/// `search = { slo = [...], start = 1000, max = 1000000, ... }` of a load profile.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSection {
    /// Objectives, e.g. `"p99 < 10ms"`.
    pub slo: Spanned<Vec<Spanned<String>>>,
    /// First rate.
    #[serde(default)]
    pub start: Option<Spanned<f64>>,
    /// Highest rate.
    #[serde(default)]
    pub max: Option<Spanned<f64>>,
    /// Growth factor.
    #[serde(default)]
    pub factor: Option<Spanned<f64>>,
    /// Bisection precision, `"2%"` or `0.02`.
    #[serde(default)]
    pub precision: Option<Spanned<toml::Value>>,
    /// Measured length of a step.
    #[serde(default)]
    pub step: Option<Spanned<String>>,
    /// Warmup of a step.
    #[serde(default)]
    pub step_warmup: Option<Spanned<String>>,
    /// Pause between steps.
    #[serde(default)]
    pub cooldown: Option<Spanned<String>>,
}

/// One value of the `request` axis: a request, or a weighted mix of requests (`mix`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// Name for the axes: runs whose requests differ but share a name compare as one
    /// cell (e.g. the same endpoint before and after a change of its path).
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// Path and query.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// Method (default GET).
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    /// Body size in bytes (a body of `x`).
    #[serde(default)]
    pub body_bytes: Option<Spanned<i64>>,
    /// Body from a file, relative to the scenario file.
    #[serde(default)]
    pub body_file: Option<Spanned<String>>,
    /// Extra headers.
    #[serde(default)]
    pub headers: Option<StringTable>,
    /// Share within a mix.
    #[serde(default)]
    pub weight: Option<Spanned<i64>>,
    /// The requests of a weighted round-robin mix, sent in one cell.
    #[serde(default)]
    pub mix: Option<Spanned<Vec<Spanned<RequestSpec>>>>,
}

/// An include or exclude rule: axis values to match.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Topology.
    #[serde(default)]
    pub topology: Option<Spanned<String>>,
    /// Server TLS stack.
    #[serde(default)]
    pub server_tls: Option<Spanned<String>>,
    /// Certificate key type.
    #[serde(default)]
    pub cert: Option<Spanned<String>>,
    /// TLS versions.
    #[serde(default)]
    pub tls_versions: Option<Spanned<String>>,
    /// Client offer.
    #[serde(default)]
    pub client_offer: Option<Spanned<String>>,
    /// Client TLS stack.
    #[serde(default)]
    pub client_tls: Option<Spanned<String>>,
}
