//! The scenario file as written: serde structs with spans, so every later check can point
//! at the exact place in the file.

use serde::Deserialize;
use toml::Spanned;

/// A list value of one axis, each element with its span.
pub type Axis = Spanned<Vec<Spanned<String>>>;

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
    /// `[negotiation]`: the negotiation matrix (read by `h2lab matrix`).
    #[serde(default)]
    pub negotiation: Option<toml::Table>,
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
}

/// One request of the mix.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// Name for the axes: runs whose requests differ but share a name compare as one
    /// cell (e.g. the same endpoint before and after a change of its path).
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// Path and query.
    pub path: Spanned<String>,
    /// Method (default GET).
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    /// Body size in bytes (a body of `x`).
    #[serde(default)]
    pub body_bytes: Option<Spanned<i64>>,
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
