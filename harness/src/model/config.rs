//! The load engine's configuration: what `h2lab load` flags (and later scenario cells)
//! become after validation. Serialised into every result as `config`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    /// Over TLS: what ALPN selects (h2 or HTTP/1.1); cleartext: HTTP/1.1.
    Auto,
    /// HTTP/1.1.
    H1,
    /// HTTP/2 (over TLS, ALPN must select h2).
    H2,
    /// Cleartext HTTP/2 by prior knowledge.
    H2c,
    /// Cleartext HTTP/2 by HTTP/1.1 Upgrade.
    H2cUpgrade,
}

/// Which I/O engine drives the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IoEngine {
    /// io_uring for HTTP/1.1 over cleartext TCP where the kernel allows it, else epoll.
    Auto,
    /// io_uring (HTTP/1.1 over cleartext TCP, Linux 6.1 or later); an error otherwise.
    Uring,
    /// epoll, through tokio, for every protocol.
    Epoll,
}

/// Client TLS implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TlsClientStack {
    /// rustls (ring provider).
    Rustls,
    /// OpenSSL (vendored 3.x).
    Openssl,
}

/// Client TLS settings.
#[derive(Debug, Clone, Serialize)]
pub struct TlsClientConfig {
    /// Implementation.
    pub stack: TlsClientStack,
    /// Lowest version offered: "1.2" or "1.3".
    pub min: Option<String>,
    /// Highest version offered.
    pub max: Option<String>,
    /// TLS 1.2 cipher list (OpenSSL syntax, or rustls suite names).
    pub ciphers: Option<String>,
    /// TLS 1.3 suites.
    pub tls13_suites: Option<String>,
    /// ALPN offer; empty = no ALPN extension.
    pub alpn: Vec<String>,
    /// CA file to trust instead of the built-in roots.
    pub cacert: Option<PathBuf>,
    /// Skip certificate verification.
    pub insecure: bool,
    /// Server name to send (SNI) and verify.
    pub sni: String,
}

/// One request target (several are used in a weighted round-robin).
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// Path and query, e.g. `/plaintext`.
    pub path: String,
    /// Method of this target (None: the configuration's).
    pub method: Option<String>,
    /// Headers of this target, sent after the configuration's.
    pub headers: Vec<(String, String)>,
    /// Body of this target (None: the configuration's).
    #[serde(skip)]
    pub body: Option<Vec<u8>>,
    /// Share in the round-robin: sent `weight` times per round.
    pub weight: u32,
}

impl Target {
    /// A target of this path with the configuration's method, headers and body.
    pub fn path(path: impl Into<String>) -> Target {
        Target {
            path: path.into(),
            method: None,
            headers: Vec::new(),
            body: None,
            weight: 1,
        }
    }
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LoadModel {
    /// Each connection/stream sends the next request when the previous one completes.
    Closed,
    /// Constant arrival rate overall, latency measured from each intended send time.
    Open {
        /// Requests per second, all workers together.
        rate: f64,
    },
}

/// One agent's part of a load that several generators share (`--agent I/N`): the
/// numbers of [`LoadConfig`] stay the whole load's, and each agent takes its part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentShare {
    /// This agent's index, 0-based.
    pub index: usize,
    /// Weights of all agents (all 1 unless `--agent-weights`); its length is the count.
    pub weights: Vec<u32>,
}

impl AgentShare {
    /// How many agents share the load.
    pub fn of(&self) -> usize {
        self.weights.len()
    }

    /// This agent's part of an integer quantity (connections, a closed loop's requests):
    /// proportional to its weight, largest remainders rounded up, so that the parts of
    /// all agents add up to `total`.
    pub fn part(&self, total: u64) -> u64 {
        let w: Vec<u128> = self.weights.iter().map(|&w| u128::from(w)).collect();
        let sum: u128 = w.iter().sum();
        let total = u128::from(total);
        let floor: Vec<u128> = w.iter().map(|wi| total * wi / sum).collect();
        let mut left = total - floor.iter().sum::<u128>();
        let mut by_remainder: Vec<usize> = (0..w.len()).collect();
        by_remainder.sort_by_key(|&i| (std::cmp::Reverse(total * w[i] % sum), i));
        let mut part = floor[self.index];
        for &i in &by_remainder {
            if left == 0 {
                break;
            }
            left -= 1;
            if i == self.index {
                part += 1;
            }
        }
        part as u64
    }
}

/// Everything the load engine needs, validated.
#[derive(Debug, Clone, Serialize)]
pub struct LoadConfig {
    /// The URL as given.
    pub url: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Host for the Host header / :authority.
    pub authority: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Paths, round-robin.
    pub targets: Vec<Target>,
    /// Method.
    pub method: String,
    /// Extra headers. A `user-agent` replaces h2lab's own; an empty value sends no such
    /// header (`-H 'User-Agent:'` sends none, as curl does).
    pub headers: Vec<(String, String)>,
    /// Request body.
    #[serde(skip)]
    pub body: Vec<u8>,
    /// Body size, for the record.
    pub body_bytes: usize,
    /// Protocol.
    pub proto: Proto,
    /// TLS settings when the scheme is https.
    pub tls: Option<TlsClientConfig>,
    /// Connections.
    pub connections: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub streams: usize,
    /// HTTP/2 closed loop: the fewest new streams a connection sends at once while the
    /// rest are in flight (1: each as soon as one completes). See [`default_batch`].
    pub batch: usize,
    /// Worker threads.
    pub threads: usize,
    /// I/O engine asked for.
    pub io: IoEngine,
    /// Measured duration (None when bounded by `requests`).
    #[serde(with = "humantime_serde_opt")]
    pub duration: Option<Duration>,
    /// Warmup before the measured phase.
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
    /// Request count bound for the measured phase.
    pub requests: Option<u64>,
    /// Pacing.
    pub model: LoadModel,
    /// Per-request timeout (also bounds the drain at the end).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Cores the generator's worker threads are pinned to (None: not pinned).
    pub cpu_affinity: Option<Vec<usize>>,
    /// Keep-alive on (always, recorded for the reader).
    pub keep_alive: bool,
    /// HTTP/1.1 pipelining (never; recorded for the reader).
    pub pipelining: bool,
    /// TLS session resumption (never: every connection does a full handshake).
    pub tls_resumption: bool,
    /// This generator's part when several share the load (None: all of it).
    pub agent: Option<AgentShare>,
    /// Header carrying each request's global index in the open-loop schedule.
    pub seq_header: Option<String>,
    /// Wall-clock start of the schedule shared by every agent (None: now).
    #[serde(skip)]
    pub start_at: Option<std::time::SystemTime>,
}

impl LoadConfig {
    /// Connections this generator opens: its agent's part of `connections`.
    pub fn own_connections(&self) -> usize {
        match &self.agent {
            Some(a) => a.part(self.connections as u64) as usize,
            None => self.connections,
        }
    }
}

mod humantime_serde {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

mod humantime_serde_opt {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

/// The default `--batch`: half of `streams`. Sending each stream the moment another
/// completes fragments both sides' I/O into one small write per response: against nginx
/// (1 worker, 16 x 16 over TLS) that served 18% fewer requests/s than h2load drives it
/// to, at more CPU per request on both sides. Batches of half the streams keep the server
/// within a few percent of h2load's throughput, with at least half the streams always in
/// flight.
pub fn default_batch(streams: usize) -> usize {
    (streams / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::AgentShare;

    #[test]
    fn agents_parts_add_up_in_proportion() {
        for weights in [
            vec![1, 1, 1],
            vec![2, 1, 1],
            vec![5, 3, 2],
            vec![1, 7],
            vec![1; 8],
        ] {
            for total in [0u64, 1, 2, 3, 7, 16, 100, 1001] {
                let parts: Vec<u64> = (0..weights.len())
                    .map(|index| {
                        AgentShare {
                            index,
                            weights: weights.clone(),
                        }
                        .part(total)
                    })
                    .collect();
                assert_eq!(parts.iter().sum::<u64>(), total, "{weights:?} {total}");
                let sum: u32 = weights.iter().sum();
                for (p, w) in parts.iter().zip(&weights) {
                    let exact = total as f64 * f64::from(*w) / f64::from(sum);
                    assert!(
                        (*p as f64 - exact).abs() < 1.0,
                        "{weights:?} {total}: {parts:?}"
                    );
                }
            }
        }
        let equal = |index, total| {
            AgentShare {
                index,
                weights: vec![1, 1, 1],
            }
            .part(total)
        };
        assert_eq!([equal(0, 16), equal(1, 16), equal(2, 16)], [6, 5, 5]);
    }
}
