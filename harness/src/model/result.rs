//! The result schema `h2lab.result/v1`: what `--json` writes and what reports, comparisons
//! and the gate read. Peers' results (wrk, h2load) are converted into the same shape.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Schema identifier written in every result.
pub const RESULT_SCHEMA: &str = "h2lab.result/v1";

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// Largest.
    pub max: u64,
    /// Smallest.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
}

impl Percentiles {
    /// Percentiles of `h` (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
            min: h.min(),
            mean: h.mean(),
            stdev: h.stdev(),
        }
    }
}

/// Headline numbers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Requests completed or failed in the measured phase.
    pub requests: u64,
    /// Requests answered (any status).
    pub ok: u64,
    /// Requests that failed (no response).
    pub errors: u64,
    /// Length of the measured phase in seconds.
    pub duration_s: f64,
    /// Achieved requests per second.
    pub rps: f64,
    /// Target rate (open loop), else null.
    pub target_rps: Option<f64>,
    /// Achieved over target (open loop), else null.
    pub achieved_ratio: Option<f64>,
    /// The generator itself was the bottleneck (CPU over 80% or scheduler lag p99 over 1 ms).
    pub generator_bound: bool,
    /// Why it was judged generator-bound, if it was.
    pub generator_bound_reason: Option<String>,
    /// Generator CPU use over the measured phase, as a fraction of its threads.
    pub generator_cpu: f64,
    /// Requests whose actual send was later than intended (open loop).
    pub late_sends: u64,
    /// Peak resident memory of the generator process, in bytes.
    pub generator_peak_rss_bytes: u64,
    /// The generator's I/O engine: `io_uring` or `tokio` (epoll).
    #[serde(default)]
    pub io_engine: String,
}

/// One distinct negotiation outcome and how many connections had it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Negotiated {
    /// `h1` or `h2`.
    pub protocol: String,
    /// e.g. `TLSv1.3`, or null for cleartext.
    pub tls_version: Option<String>,
    /// Cipher suite, or null.
    pub cipher: Option<String>,
    /// ALPN selected, or null.
    pub alpn: Option<String>,
    /// Connections with this outcome.
    pub connections: u64,
}

/// HTTP/2 limits the server announced (rule 9).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSettings {
    /// SETTINGS_MAX_CONCURRENT_STREAMS as seen by the client.
    pub max_concurrent_streams: Option<u64>,
}

/// Warmup phase, kept apart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Warmup {
    /// Requests in the warmup.
    pub requests: u64,
    /// Answered.
    pub ok: u64,
    /// Failed.
    pub errors: u64,
}

/// The tool that produced a result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tool {
    /// `h2lab`, `wrk`, `h2load`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// A whole result document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResultV1 {
    /// Always [`RESULT_SCHEMA`].
    pub schema: String,
    /// Producer.
    pub tool: Tool,
    /// Wall-clock start (RFC 3339), a label only.
    pub started_at: String,
    /// Whether the run was interrupted (Ctrl-C / SIGTERM) before its end.
    pub interrupted: bool,
    /// Headline numbers.
    pub summary: Summary,
    /// Latency from the intended send time (open loop) or the actual send (closed loop).
    pub latency_us: Percentiles,
    /// Time from actual send to the end of the response.
    pub service_time_us: Percentiles,
    /// Time from actual send to the first response byte.
    pub ttfb_us: Percentiles,
    /// TCP connect time per connection.
    pub connect_us: Percentiles,
    /// TLS handshake time per connection.
    pub tls_handshake_us: Percentiles,
    /// Latency of failed requests (kept apart so fast errors do not flatter the results).
    pub error_latency_us: Percentiles,
    /// How late sends were (open loop): from when each was due and had a free connection
    /// (an HTTP/2 stream) to its send. Waiting for a connection the server holds is not
    /// counted: that is the server's delay, and shows in the latency.
    pub scheduler_lag_us: Percentiles,
    /// Time each hop reported in its `Server-Timing` entry, per entry name (`app`,
    /// `proxy`, `host`, `nginx`...): where the latency went, hop by hop.
    #[serde(default)]
    pub hops_us: BTreeMap<String, Percentiles>,
    /// Responses by status code.
    pub status: BTreeMap<String, u64>,
    /// Failures by class, e.g. `connect_refused`, `tls_handshake:handshake_failure`.
    pub errors: BTreeMap<String, u64>,
    /// The most common negotiation outcome.
    pub negotiated: Negotiated,
    /// Every distinct negotiation outcome.
    pub negotiated_outcomes: Vec<Negotiated>,
    /// HTTP/2 limits announced by the server.
    pub server_settings: ServerSettings,
    /// Warnings for the reader (e.g. streams above the server's limit).
    pub warnings: Vec<String>,
    /// The warmup phase.
    pub warmup: Warmup,
    /// The effective configuration.
    pub config: serde_json::Value,
    /// This generator's part when agents shared the load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentRecord>,
    /// A merged result (`h2lab merge`): every agent's line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentRow>,
}

/// What one agent of a shared load recorded about its part (`h2lab load --agent`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Its index, 0-based.
    pub index: usize,
    /// How many agents shared the load.
    pub of: usize,
    /// Every agent's weight.
    pub weights: Vec<u32>,
    /// T0 on its clock, RFC 3339 with nanoseconds.
    pub t0: String,
    /// T0 as Unix seconds.
    pub t0_unix_s: f64,
    /// How the start was agreed: `at` (a time in the spec), `release` (from agent 0) or
    /// `now` (a lone agent).
    pub start: String,
    /// How late it reached T0, in seconds (negative: it waited for it).
    pub late_s: f64,
    /// With a release: agent 0's T0 minus this agent's, seconds.
    pub offset_s: f64,
    /// The host it ran on.
    pub host: String,
}

/// One agent's line in a merged result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgentRow {
    /// The agent, as it recorded itself.
    pub agent: AgentRecord,
    /// Where its files were read from.
    pub source: String,
    /// Its requests.
    pub requests: u64,
    /// Answered.
    pub ok: u64,
    /// Failed.
    pub errors: u64,
    /// Its achieved rate.
    pub rps: f64,
    /// Its part of the target rate (open loop).
    pub target_rps: Option<f64>,
    /// Its latency percentiles.
    pub latency_us: Percentiles,
    /// Its generator's CPU share.
    pub generator_cpu: f64,
    /// Whether its generator was the bottleneck.
    pub generator_bound: bool,
}
