//! Command-line flags of `sut`, and their conversion into validated engine options.
//! Flags are checked here, once; nothing downstream re-reads them.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use h2lab_common::pki::KeyType;
use h2lab_common::profiles::{self, ServerProfile};

use crate::app::{ForwardedHeaders, HostingModel};
use crate::forward::ForwardOptions;
use crate::request_body::MinRate;
use crate::server::labh2::H2Engine;
use crate::server::{FloodLimits, Limits, ServerOptions};
use crate::tls::{CertSource, TlsSettings, TlsStack, TlsVersion};

/// `sut`: servers under test for h2lab. Every subcommand prints one JSON line
/// `{"event":"listening","addr":...,"scheme":...}` on stdout once bound, logs to stderr,
/// and shuts down gracefully on SIGTERM or SIGINT.
#[derive(Debug, Parser)]
#[command(name = "sut", version, max_term_width = 100)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// Log filter for stderr (tracing syntax), e.g. `info` or `sut=debug`.
    #[arg(long, global = true, default_value = "info", env = "SUT_LOG")]
    pub log: String,
}

/// The servers.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The edge server (the Kestrel analogue): the app behind its own HTTP/1.1 + HTTP/2 server.
    Edge(EdgeArgs),
    /// A reverse proxy (the IIS/nginx role) in front of an upstream.
    Proxy(ProxyArgs),
    /// The front host with its module: the app in-process, or out-of-process like the ASP.NET Core Module.
    Host(HostArgs),
    /// The app alone on cleartext HTTP/1.1 (and h2c): a backend for proxies, and what the module starts.
    App(AppArgs),
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration such as 500ms or 10s: {e}"))
}

/// `SUT_EXTRA_LATENCY` for the apps that have no `--extra-latency` flag (the hosted and
/// proxied `sut app`, the in-process host): the same known slowdown in every topology.
pub fn extra_latency_from_env() -> Result<Option<Duration>, UsageError> {
    match std::env::var("SUT_EXTRA_LATENCY") {
        Ok(v) if !v.trim().is_empty() => duration(v.trim())
            .map(Some)
            .map_err(|e| UsageError(format!("SUT_EXTRA_LATENCY: {e}"))),
        _ => Ok(None),
    }
}

/// Where and how to listen.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address to listen on; port 0 lets the OS choose (the readiness line tells which).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Worker threads, each with its own runtime and SO_REUSEPORT listener (default: one per core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Refuse cleartext HTTP/2 (prior knowledge and Upgrade: h2c).
    #[arg(long)]
    pub no_h2c: bool,
}

/// TLS settings.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Terminate TLS with this stack (default: cleartext).
    #[arg(long, value_enum, value_name = "STACK")]
    pub tls: Option<TlsStack>,
    /// ALPN protocols in preference order, comma-separated; an empty string disables ALPN
    /// (default h2,http/1.1, or none when the platform profile has no ALPN).
    #[arg(long, value_name = "LIST")]
    pub alpn: Option<String>,
    /// Apply a platform profile: TLS versions, TLS 1.2 suites in server order, groups and
    /// ALPN of a platform (modern, windows-2016+, windows-2012r2, openssl-1.0.1,
    /// tls12-cbc-only, tls13-only); explicit TLS flags override its values.
    #[arg(long, value_name = "NAME")]
    pub platform_profile: Option<String>,
    /// Key exchange groups, OpenSSL list syntax (e.g. P-256:P-384) or rustls names.
    #[arg(long, value_name = "LIST")]
    pub groups: Option<String>,
    /// Refuse HTTP/2 negotiated over TLS 1.2 with an RFC 7540 Appendix A suite: GOAWAY
    /// INADEQUATE_SECURITY, as RFC 9113 section 9.2.2 allows (off by default, like nginx).
    #[arg(long)]
    pub reject_weak_h2: bool,
    /// Lowest TLS version accepted.
    #[arg(long, value_enum, value_name = "VER")]
    pub tls_min: Option<TlsVersion>,
    /// Highest TLS version accepted.
    #[arg(long, value_enum, value_name = "VER")]
    pub tls_max: Option<TlsVersion>,
    /// TLS 1.2 cipher list (OpenSSL syntax with openssl; suite names with rustls).
    #[arg(long, value_name = "LIST")]
    pub ciphers: Option<String>,
    /// TLS 1.3 cipher suites (OpenSSL syntax with openssl; suite names with rustls).
    #[arg(long, value_name = "LIST")]
    pub tls13_suites: Option<String>,
    /// Certificate chain PEM (leaf first).
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key PEM.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Generate a CA and a leaf for localhost/127.0.0.1/::1 with this key type.
    #[arg(long, value_name = "KEY", value_parser = parse_key_type, conflicts_with = "cert")]
    pub self_signed: Option<KeyType>,
    /// Write the generated CA certificate here, so clients can verify.
    #[arg(long, value_name = "PATH", requires = "self_signed")]
    pub ca_out: Option<PathBuf>,
}

fn parse_key_type(s: &str) -> Result<KeyType, String> {
    s.parse()
}

/// Edge limits.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Time allowed to receive a request head (HTTP/1.1); 408 when exceeded.
    #[arg(long, value_parser = duration, default_value = "30s", value_name = "DUR")]
    pub header_timeout: Duration,
    /// Keep-alive idle time before the connection is closed (GOAWAY on HTTP/2).
    #[arg(long, value_parser = duration, default_value = "130s", value_name = "DUR")]
    pub idle_timeout: Duration,
    /// Time allowed for the TLS handshake.
    #[arg(long, value_parser = duration, default_value = "10s", value_name = "DUR")]
    pub handshake_timeout: Duration,
    /// Largest request head / HTTP/2 header list in bytes; 431 when exceeded.
    #[arg(long, default_value_t = 32 * 1024, value_name = "BYTES")]
    pub max_header_bytes: usize,
    /// Largest request body in bytes; 413 when exceeded.
    #[arg(long, default_value_t = 30_000_000, value_name = "BYTES")]
    pub max_body_bytes: u64,
    /// Most connections at once; further ones get 503 and are closed.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub max_connections: usize,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; excess streams are refused (REFUSED_STREAM).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_streams: u32,
    /// Time in-flight requests get to finish after SIGTERM.
    #[arg(long, value_parser = duration, default_value = "5s", value_name = "DUR")]
    pub shutdown_grace: Duration,
    /// Output blocked this long (the client does not read: zero window, slow read) drops
    /// the connection; 0s turns it off.
    #[arg(long, value_parser = duration, default_value = "30s", value_name = "DUR")]
    pub send_timeout: Duration,
    /// Slowest request body accepted, in bytes/s after the grace period; slower gets 408
    /// (Slow POST). 0 turns it off. Kestrel's MinRequestBodyDataRate.
    #[arg(long, default_value_t = 240, value_name = "BYTES_PER_S")]
    pub min_body_rate: u64,
    /// Time a request body may take before --min-body-rate applies.
    #[arg(long, value_parser = duration, default_value = "5s", value_name = "DUR")]
    pub body_rate_grace: Duration,
    /// HTTP/2 frames that do no work (PING, SETTINGS, PRIORITY, RST_STREAM, empty frames,
    /// window updates under 1 KiB, streams the server had to reset) a connection may send
    /// at once before GOAWAY ENHANCE_YOUR_CALM; 0 turns the flood guard off.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub h2_flood_burst: u32,
    /// Such frames allowed per second, sustained, once the burst is spent.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub h2_flood_rate: u32,
    /// Client-reset streams not yet accepted before GOAWAY ENHANCE_YOUR_CALM (the h2
    /// crate's Rapid Reset bound); 0 turns it off.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub h2_max_pending_resets: usize,
    /// Streams the server resets because of the client before GOAWAY ENHANCE_YOUR_CALM
    /// (the h2 crate's MadeYouReset bound); 0 turns it off.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub h2_max_local_resets: usize,
    /// The HTTP/2 server engine: the lab's own (one task per connection, inline answers)
    /// or hyper over the h2 crate (the reference). Every topology follows it.
    #[arg(
        long,
        value_enum,
        default_value = "lab",
        env = "SUT_H2_ENGINE",
        value_name = "ENGINE"
    )]
    pub h2_engine: H2Engine,
}

/// `sut edge`.
#[derive(Debug, Args)]
pub struct EdgeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub listen: ListenArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: TlsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: LimitArgs,
    /// Apply X-Forwarded-* headers from trusted peers (loopback, and --trusted-proxy).
    #[arg(long)]
    pub forwarded_headers: bool,
    /// Further trusted proxy addresses for --forwarded-headers.
    #[arg(long, value_name = "IP")]
    pub trusted_proxy: Vec<IpAddr>,
    /// Hosting model /info reports (behind-proxy when this edge serves a proxy).
    #[arg(long, value_enum, default_value = "edge")]
    pub hosting: HostingModel,
    /// Test support: stall all responses for DURATION every PERIOD, e.g. `2s:400ms`.
    #[arg(long, value_name = "PERIOD:DURATION", value_parser = parse_stall)]
    pub stall: Option<(Duration, Duration)>,
    /// Test support: serve one request at a time, each taking exactly DUR (a server whose
    /// capacity is 1/DUR requests per second, for the capacity search).
    #[arg(long, value_parser = duration, value_name = "DUR")]
    pub serial_service: Option<Duration>,
    /// Test support: make every response DUR slower (spinning below 2 ms), a known
    /// slowdown for measuring the gate (scripts/bench-gate.sh sets it through the
    /// environment, so every edge a scenario starts gets it).
    #[arg(long, value_parser = duration, value_name = "DUR", env = "SUT_EXTRA_LATENCY")]
    pub extra_latency: Option<Duration>,
}

fn parse_stall(s: &str) -> Result<(Duration, Duration), String> {
    let (p, d) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not PERIOD:DURATION, e.g. 2s:400ms"))?;
    let (p, d) = (duration(p)?, duration(d)?);
    if p.is_zero() || d >= p {
        return Err(format!("`{s}`: the stall must be shorter than its period"));
    }
    Ok((p, d))
}

/// Protocol of the hop to the upstream.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum UpstreamProto {
    /// HTTP/1.1 over pooled keep-alive connections.
    H1,
    /// HTTP/2 with prior knowledge (h2c).
    H2,
}

/// Options of the forwarding hop.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Path prefix served: stripped before forwarding and sent as X-Forwarded-Prefix.
    #[arg(long, value_name = "PATH")]
    pub path_base: Option<String>,
    /// Time allowed to connect to the upstream; 502 when exceeded.
    #[arg(long, value_parser = duration, default_value = "5s", value_name = "DUR")]
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response head; 504 when exceeded.
    #[arg(long, value_parser = duration, default_value = "60s", value_name = "DUR")]
    pub upstream_timeout: Duration,
}

/// `sut proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub listen: ListenArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: TlsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: LimitArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub forward: ForwardArgs,
    /// The upstream, `http://HOST:PORT`.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// Protocol to the upstream.
    #[arg(long, value_enum, default_value = "h1")]
    pub upstream_proto: UpstreamProto,
}

/// Hosting model of `sut host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Hosting {
    /// The app's handlers run inside the host process.
    InProcess,
    /// The module runs the app as a separate process and forwards to it over HTTP/1.1.
    OutOfProcess,
}

/// `sut host`.
#[derive(Debug, Args)]
pub struct HostArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub listen: ListenArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: TlsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: LimitArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub forward: ForwardArgs,
    /// In-process or out-of-process.
    #[arg(long, value_enum)]
    pub hosting: Hosting,
    /// Start the app process at once instead of on the first request.
    #[arg(long)]
    pub eager_start: bool,
    /// Extra environment variable for the app process (repeatable).
    #[arg(long, value_name = "K=V", value_parser = parse_env)]
    pub app_env: Vec<(String, String)>,
    /// Append the app process's stdout and stderr to this file.
    #[arg(long, value_name = "PATH")]
    pub app_log: Option<PathBuf>,
    /// Time the app process gets to start listening; requests get 502 after it.
    #[arg(long, value_parser = duration, default_value = "20s", value_name = "DUR")]
    pub startup_timeout: Duration,
    /// Longest pause between restarts of a crashing app.
    #[arg(long, value_parser = duration, default_value = "5s", value_name = "DUR")]
    pub max_restart_backoff: Duration,
    /// Worker threads of the app process (the built-in app).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub app_workers: usize,
    /// Names the module and its app agree on: `h2lab` (H2LAB_APP_PORT, H2LAB_PAIRING_TOKEN,
    /// x-h2lab-pairing-token) or `ancm`, the ASP.NET Core Module's (ASPNETCORE_PORT,
    /// ASPNETCORE_TOKEN, ASPNETCORE_APPL_PATH, MS-ASPNETCORE-TOKEN).
    #[arg(long, value_enum, default_value = "h2lab", value_name = "NAME")]
    pub module_contract: crate::host::ModuleContract,
    /// Also pass the app's port in this environment variable.
    #[arg(long, value_name = "NAME")]
    pub app_port_env: Option<String>,
    /// Working directory of the app process.
    #[arg(long, value_name = "DIR")]
    pub app_cwd: Option<PathBuf>,
    /// How the module sees that a program given with --app-command serves: `tcp` (its port
    /// accepts, as the ASP.NET Core Module checks) or `http:PATH` (GET PATH answers with a
    /// status under 500).
    #[arg(long, value_name = "HOW", value_parser = parse_app_ready, default_value = "tcp")]
    pub app_ready: h2lab_common::app::Readiness,
    /// App failures (exits or failed starts) within a minute after which the module stops
    /// restarting it for the rest of the minute and answers 503 (ANCM's rapidFailsPerMinute).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub rapid_fails_per_minute: u32,
    /// Start the app at once and print the listening line only once it serves; exit 1 with
    /// the app's log tail if its first start fails.
    #[arg(long)]
    pub wait_for_app: bool,
    /// Host this program instead of the built-in `sut app`: everything after the flag is
    /// the command and its arguments; `{port}` in them (and in --app-env values) becomes
    /// the port the module chose for each start. Must be the last flag.
    #[arg(long, value_name = "CMD", num_args = 1.., allow_hyphen_values = true)]
    pub app_command: Option<Vec<String>>,
}

fn parse_app_ready(s: &str) -> Result<h2lab_common::app::Readiness, String> {
    match s {
        "tcp" => Ok(h2lab_common::app::Readiness::Tcp),
        _ => match s.strip_prefix("http:") {
            Some(path) if path.starts_with('/') => Ok(h2lab_common::app::Readiness::Http {
                path: path.to_string(),
                tls: false,
            }),
            _ => Err(format!("`{s}` is not `tcp` or `http:/PATH`")),
        },
    }
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not of the form KEY=VALUE")),
    }
}

/// `sut app`.
#[derive(Debug, Args)]
pub struct AppArgs {
    /// Address to listen on (default: 127.0.0.1 and the port in $H2LAB_APP_PORT).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Worker threads.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: LimitArgs,
    /// Hosting model /info reports (default: out-of-process when started by the module,
    /// else behind-proxy).
    #[arg(long, value_enum)]
    pub hosting: Option<HostingModel>,
    /// Do not apply X-Forwarded-* headers.
    #[arg(long)]
    pub no_forwarded_headers: bool,
}

/// A flag combination that makes no sense, named so the user can fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A count limit where 0 means none (h2 takes "no limit" as the largest count).
fn off_if_zero(n: usize) -> usize {
    if n == 0 {
        usize::MAX
    } else {
        n
    }
}

impl LimitArgs {
    /// The limits.
    pub fn to_limits(&self) -> Limits {
        Limits {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            handshake_timeout: self.handshake_timeout,
            max_header_bytes: self.max_header_bytes,
            max_body_bytes: self.max_body_bytes,
            max_connections: self.max_connections,
            max_streams: self.max_streams,
            shutdown_grace: self.shutdown_grace,
            send_timeout: self.send_timeout,
            min_body_rate: MinRate {
                per_second: self.min_body_rate,
                grace: self.body_rate_grace,
            },
            h2_flood: FloodLimits {
                burst: self.h2_flood_burst,
                per_second: self.h2_flood_rate,
            },
            h2_max_pending_resets: off_if_zero(self.h2_max_pending_resets),
            h2_max_local_resets: off_if_zero(self.h2_max_local_resets),
            h2_engine: self.h2_engine,
        }
    }
}

impl TlsArgs {
    /// The TLS settings, or `None` for cleartext.
    pub fn to_settings(&self) -> Result<Option<TlsSettings>, UsageError> {
        let Some(stack) = self.tls else {
            let stray = [
                (self.cert.is_some(), "--cert"),
                (self.self_signed.is_some(), "--self-signed"),
                (self.ciphers.is_some(), "--ciphers"),
                (self.tls13_suites.is_some(), "--tls13-suites"),
                (self.tls_min.is_some(), "--tls-min"),
                (self.tls_max.is_some(), "--tls-max"),
                (self.alpn.is_some(), "--alpn"),
                (self.platform_profile.is_some(), "--platform-profile"),
                (self.groups.is_some(), "--groups"),
                (self.reject_weak_h2, "--reject-weak-h2"),
            ];
            if let Some((_, flag)) = stray.iter().find(|(set, _)| *set) {
                return Err(UsageError(format!("{flag} needs --tls rustls|openssl")));
            }
            return Ok(None);
        };
        let cert =
            match (&self.cert, &self.key, self.self_signed) {
                (Some(chain), Some(key), None) => CertSource::Files {
                    chain: chain.clone(),
                    key: key.clone(),
                },
                (None, None, Some(key_type)) => CertSource::SelfSigned {
                    key_type,
                    ca_out: self.ca_out.clone(),
                },
                _ => return Err(UsageError(
                    "--tls needs a certificate: --cert PEM --key PEM, or --self-signed rsa|ecdsa"
                        .into(),
                )),
            };
        let profile = match &self.platform_profile {
            None => None,
            Some(name) => Some(platform_profile(name, stack)?),
        };
        let alpn_list = match (&self.alpn, profile) {
            (Some(list), _) => list.clone(),
            (None, Some(p)) if !p.alpn => String::new(),
            (None, _) => "h2,http/1.1".to_string(),
        };
        let alpn: Vec<String> = alpn_list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(bad) = alpn.iter().find(|p| p.len() > 255) {
            return Err(UsageError(format!(
                "--alpn: protocol `{bad}` is longer than 255 bytes"
            )));
        }
        let version = |v: &str| {
            if v == "1.2" {
                TlsVersion::Tls12
            } else {
                TlsVersion::Tls13
            }
        };
        // A profile's TLS 1.2 list is OpenSSL syntax; on rustls the profiles that it can
        // express use rustls's own (ECDHE + AEAD) list, which is the same set.
        let profile_ciphers = profile
            .filter(|p| stack == TlsStack::Openssl && !p.tls12_suites.is_empty())
            .map(|p| p.tls12_suites.join(":"));
        Ok(Some(TlsSettings {
            stack,
            min: self.tls_min.or(profile.map(|p| version(p.min))),
            max: self.tls_max.or(profile.map(|p| version(p.max))),
            ciphers: self.ciphers.clone().or(profile_ciphers),
            tls13_suites: self.tls13_suites.clone(),
            groups: self
                .groups
                .clone()
                .or(profile.and_then(|p| p.groups.map(str::to_string))),
            alpn,
            reject_weak_h2: self.reject_weak_h2,
            cert,
        }))
    }
}

/// Looks up a platform profile and checks that `stack` can express it.
fn platform_profile(name: &str, stack: TlsStack) -> Result<&'static ServerProfile, UsageError> {
    let p = profiles::server_profile(name).ok_or_else(|| {
        UsageError(format!(
            "--platform-profile `{name}`: unknown; one of {}",
            profiles::server_profile_names()
        ))
    })?;
    let wanted = match stack {
        TlsStack::Rustls => profiles::Stack::Rustls,
        TlsStack::Openssl => profiles::Stack::Openssl,
    };
    if !p.stacks.contains(&wanted) {
        return Err(UsageError(format!(
            "--platform-profile {name} needs --tls openssl: rustls cannot express it (no CBC \
             suites, RSA key exchange or finite-field DHE)"
        )));
    }
    Ok(p)
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Builds server options from the shared flag groups.
pub fn server_options(
    listen: &ListenArgs,
    tls: &TlsArgs,
    limits: &LimitArgs,
) -> Result<ServerOptions, UsageError> {
    Ok(ServerOptions {
        listen: listen.listen,
        tls: tls.to_settings()?,
        h2c: !listen.no_h2c,
        workers: listen.workers.unwrap_or_else(default_workers).max(1),
        limits: limits.to_limits(),
    })
}

impl ForwardArgs {
    /// Forwarding options.
    pub fn to_options(&self, upstream_h2: bool) -> Result<ForwardOptions, UsageError> {
        if let Some(base) = &self.path_base {
            if !base.starts_with('/') || base.ends_with('/') {
                return Err(UsageError(format!(
                    "--path-base `{base}` must start with `/` and not end with one, e.g. /app"
                )));
            }
        }
        Ok(ForwardOptions {
            strip_path_base: true,
            timing_name: "proxy",
            upstream_h2,
            connect_timeout: self.connect_timeout,
            response_timeout: self.upstream_timeout,
            path_base: self.path_base.clone(),
        })
    }
}

/// Parses `http://HOST:PORT` into an address.
pub fn parse_upstream(url: &str) -> Result<SocketAddr, UsageError> {
    let bad = |why: &str| {
        UsageError(format!(
            "--upstream `{url}`: {why} (expected http://HOST:PORT)"
        ))
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// upstreams are supported"))?;
    let hostport = rest.trim_end_matches('/');
    if hostport.contains('/') {
        return Err(bad(
            "a path is not allowed; use --path-base on the front instead",
        ));
    }
    hostport
        .to_socket_addrs()
        .map_err(|e| bad(&e.to_string()))?
        .next()
        .ok_or_else(|| bad("the host has no address"))
}

impl EdgeArgs {
    /// Forwarded-headers settings.
    pub fn forwarded(&self) -> ForwardedHeaders {
        ForwardedHeaders {
            enabled: self.forwarded_headers,
            trusted: self.trusted_proxy.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sut").chain(args.iter().copied()))
    }

    #[test]
    fn tls_flags_without_tls_are_refused_with_the_flag_named() {
        let cli = parse(&["edge", "--listen", "127.0.0.1:0", "--ciphers", "HIGH"]).unwrap();
        let Command::Edge(e) = cli.command else {
            panic!()
        };
        let err = server_options(&e.listen, &e.tls, &e.limits).unwrap_err();
        assert!(err.0.contains("--ciphers"), "{err}");
    }

    #[test]
    fn tls_needs_exactly_one_certificate_source() {
        let cli = parse(&["edge", "--listen", "127.0.0.1:0", "--tls", "rustls"]).unwrap();
        let Command::Edge(e) = cli.command else {
            panic!()
        };
        assert!(e.tls.to_settings().unwrap_err().0.contains("--self-signed"));
        assert!(parse(&[
            "edge",
            "--listen",
            "127.0.0.1:0",
            "--tls",
            "rustls",
            "--cert",
            "a.pem",
            "--self-signed",
            "rsa"
        ])
        .is_err());
    }

    #[test]
    fn empty_alpn_means_no_alpn() {
        let cli = parse(&[
            "edge",
            "--listen",
            "127.0.0.1:0",
            "--tls",
            "openssl",
            "--self-signed",
            "ecdsa",
            "--alpn",
            "",
        ])
        .unwrap();
        let Command::Edge(e) = cli.command else {
            panic!()
        };
        assert!(e.tls.to_settings().unwrap().unwrap().alpn.is_empty());
    }

    #[test]
    fn upstream_must_be_plain_http_host_port() {
        assert_eq!(
            parse_upstream("http://127.0.0.1:8080").unwrap().port(),
            8080
        );
        assert!(parse_upstream("https://127.0.0.1:8080")
            .unwrap_err()
            .0
            .contains("only http://"));
        assert!(parse_upstream("http://127.0.0.1:8080/x").is_err());
    }

    #[test]
    fn app_command_takes_every_argument_after_it() {
        let cli = parse(&[
            "host",
            "--listen",
            "127.0.0.1:0",
            "--hosting",
            "out-of-process",
            "--module-contract",
            "ancm",
            "--app-ready",
            "http:/health",
            "--app-command",
            "python3",
            "-m",
            "http.server",
            "{port}",
            "--listen",
            "--bind",
            "127.0.0.1",
        ])
        .unwrap();
        let Command::Host(h) = cli.command else {
            panic!()
        };
        assert_eq!(
            h.app_command.unwrap(),
            [
                "python3",
                "-m",
                "http.server",
                "{port}",
                "--listen",
                "--bind",
                "127.0.0.1"
            ],
            "flags after --app-command are the app's, even those sut also has"
        );
        assert_eq!(h.module_contract, crate::host::ModuleContract::Ancm);
        assert!(matches!(
            h.app_ready,
            h2lab_common::app::Readiness::Http { ref path, tls: false } if path == "/health"
        ));
        let bad = parse(&[
            "host",
            "--listen",
            "127.0.0.1:0",
            "--hosting",
            "out-of-process",
            "--app-ready",
            "health",
        ]);
        assert!(bad.unwrap_err().to_string().contains("http:/PATH"));
    }

    #[test]
    fn durations_are_humane() {
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(duration("soon").unwrap_err().contains("soon"));
    }
}
