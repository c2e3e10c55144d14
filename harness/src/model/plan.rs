//! A validated scenario: the matrix expanded into cells. Plain data; the orchestrator
//! only reads it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use h2lab_common::launch::ProxyKind;
use h2lab_common::pki::KeyType;
use serde::Serialize;

use super::TlsClientStack;

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "detail")]
pub enum Topology {
    /// `sut edge` faces the client.
    DirectEdge,
    /// `sut proxy` in front of `sut app`.
    SutProxy,
    /// A real proxy in front of `sut app`.
    RealProxy(ProxyKind),
    /// `sut host --hosting in-process`.
    InProcess,
    /// `sut host --hosting out-of-process`.
    OutOfProcess,
    /// Something already running.
    External(String),
}

/// Server TLS of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerTls {
    /// rustls.
    Rustls,
    /// OpenSSL.
    Openssl,
    /// Cleartext.
    None,
}

/// What the client offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "alpn")]
pub enum Offer {
    /// Over TLS with this ALPN list (empty = no extension).
    Tls(Vec<String>),
    /// Cleartext HTTP/1.1.
    H1,
    /// Cleartext HTTP/2 by prior knowledge.
    H2c,
    /// Cleartext HTTP/2 by Upgrade.
    H2cUpgrade,
}

/// The load of a cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellLoad {
    /// Connections.
    pub connections: usize,
    /// Streams per HTTP/2 connection.
    pub streams: usize,
    /// Open-loop rate, or closed loop.
    pub rate: Option<f64>,
    /// The sweep this cell belongs to (same id for every rate of one sweep).
    pub sweep: Option<String>,
    /// A capacity search instead of one load: the highest open-loop rate meeting its
    /// SLOs (each repetition of the cell is one search).
    pub search: Option<crate::search::SearchSpec>,
}

/// What a request carries as its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum RequestBody {
    /// No body.
    Empty,
    /// This many bytes of `x` (`body_bytes`).
    Filler {
        /// Size in bytes.
        bytes: usize,
    },
    /// The bytes of a file (`body_file`), read when the cell starts.
    File {
        /// The file, resolved against the scenario's directory.
        path: PathBuf,
        /// Its size when the scenario was validated.
        bytes: u64,
    },
}

/// One request a cell sends (alone, or as part of a weighted mix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpRequest {
    /// Path and query.
    pub path: String,
    /// Method.
    pub method: String,
    /// Extra headers, in the order written.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: RequestBody,
    /// Share in the mix: sent `weight` times per round of the weighted round-robin.
    pub weight: u32,
}

/// The request (or request mix) of a cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellRequest {
    /// Name that stands for the request in the axes (comparisons match by it), if given;
    /// a mix always has one.
    pub name: Option<String>,
    /// The requests, one unless this is a mix.
    pub requests: Vec<HttpRequest>,
}

/// What the user's app speaks on its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppProtocol {
    /// HTTP/1.1.
    H1,
    /// HTTP/2 by prior knowledge (h2c); such apps usually speak HTTP/1.1 as well.
    H2c,
}

/// The user's app under test (`[app]`): started by the lab for every cell whose topology
/// can hold it, instead of the built-in test app.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppSpec {
    /// Program and arguments (no shell); `{port}`, `{cert}`, `{key}`, `{ca}` not yet
    /// replaced.
    pub command: Vec<String>,
    /// Working directory, resolved against the scenario's directory.
    pub cwd: PathBuf,
    /// Extra environment (values may hold placeholders).
    pub env: BTreeMap<String, String>,
    /// A variable that also receives the port.
    pub port_env: Option<String>,
    /// What it speaks on its port.
    pub protocol: AppProtocol,
    /// How the lab sees that it serves (`tls` is filled in from [`AppSpec::tls`]).
    pub ready: h2lab_common::app::Readiness,
    /// How long it may take to become ready.
    #[serde(serialize_with = "human")]
    pub ready_timeout: Duration,
    /// The app terminates TLS itself (given `{cert}` and `{key}`).
    pub tls: bool,
    /// Names the out-of-process module and the app agree on: `h2lab` or `ancm`.
    pub module_contract: String,
}

/// How the client reaches external targets (`[target]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TargetSpec {
    /// CA file to trust instead of the built-in roots.
    pub cacert: Option<PathBuf>,
    /// Skip certificate verification.
    pub insecure: bool,
    /// Server name to send (SNI) and verify, instead of the URL's host.
    pub sni: Option<String>,
    /// Host header / :authority to send, instead of the URL's.
    pub host: Option<String>,
}

/// How the attacked cells' attacks are sent and judged (`[attack]`); each unset value
/// is `h2lab attack`'s default.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttackSpec {
    /// Length of the calm and of the attacked phase (default: the scenario's duration).
    #[serde(serialize_with = "human_opt")]
    pub phase: Option<Duration>,
    /// Length of the phase after the attack.
    #[serde(serialize_with = "human")]
    pub after: Duration,
    /// Attacking connections.
    pub connections: Option<usize>,
    /// Units per second over all attacking connections.
    pub rate: Option<f64>,
    /// Most units per attacking connection.
    pub max_units: u64,
    /// Path of the attack's requests.
    pub path: Option<String>,
    /// Attacked legitimate p99 over calm that still holds.
    pub p99_bound: f64,
    /// Attacked peak RSS over calm that still holds.
    pub rss_bound: f64,
}

impl Default for AttackSpec {
    fn default() -> AttackSpec {
        AttackSpec {
            phase: None,
            after: Duration::from_secs(1),
            connections: None,
            rate: None,
            max_units: 10_000_000,
            path: None,
            p99_bound: 2.0,
            rss_bound: 2.0,
        }
    }
}

/// The HTTP/2 conformance suite run against each cell's topology (`[conformance]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConformSpec {
    /// Only cases whose name contains this.
    pub filter: Option<String>,
    /// Longest the suite may run per cell.
    #[serde(serialize_with = "human")]
    pub timeout: Duration,
}

fn human_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => human(d, s),
        None => s.serialize_none(),
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// Stable id (directory name), unique in the plan.
    pub id: String,
    /// Axis name -> value as written: what comparisons match cells by.
    pub axes: BTreeMap<String, String>,
    /// Topology.
    pub topology: Topology,
    /// Server TLS.
    pub server_tls: ServerTls,
    /// Certificate key type.
    pub cert: KeyType,
    /// Lowest TLS version (`1.2`/`1.3`).
    pub tls_min: String,
    /// Highest TLS version.
    pub tls_max: String,
    /// Client offer.
    pub offer: Offer,
    /// Client TLS stack.
    pub client_tls: TlsClientStack,
    /// Load.
    pub load: CellLoad,
    /// Request.
    pub request: CellRequest,
    /// Load engine: `h2lab`, `wrk` or `h2load`.
    pub engine: String,
    /// The attack sent beside the load (an open-loop one), if any.
    #[serde(serialize_with = "attack_name")]
    pub attack: Option<crate::attack::Kind>,
    /// The user's app (`[app]`) serves this cell, not the built-in test app.
    pub app: bool,
}

/// A validated scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Measured duration per cell and repetition.
    #[serde(serialize_with = "human")]
    pub duration: Duration,
    /// Warmup per cell and repetition.
    #[serde(serialize_with = "human")]
    pub warmup: Duration,
    /// Per-request timeout.
    #[serde(serialize_with = "human")]
    pub timeout: Duration,
    /// Repetitions (interleaved across cells).
    pub repetitions: u32,
    /// The cells.
    pub cells: Vec<Cell>,
    /// Real proxies the plan needs that are not installed: (proxy, install hint).
    pub missing_proxies: Vec<(String, String)>,
    /// The user's app, when the scenario names one.
    pub app: Option<AppSpec>,
    /// How external cells are reached.
    pub target: TargetSpec,
    /// How attacked cells are attacked.
    pub attack: AttackSpec,
    /// The conformance suite, run after each cell's load, when the scenario asks.
    pub conformance: Option<ConformSpec>,
}

fn attack_name<S: serde::Serializer>(
    a: &Option<crate::attack::Kind>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match a {
        Some(k) => s.serialize_str(&k.to_string()),
        None => s.serialize_none(),
    }
}

fn human<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}
