//! A validated scenario: the matrix expanded into cells. Plain data; the orchestrator
//! only reads it.

use std::collections::BTreeMap;
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
}

/// The request of a cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellRequest {
    /// Name that stands for the request in the axes (comparisons match by it), if given.
    pub name: Option<String>,
    /// Path and query.
    pub path: String,
    /// Method.
    pub method: String,
    /// Body size.
    pub body_bytes: usize,
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
}

fn human<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}
