//! `h2lab load`: flags in the spirit of wrk2, h2load and oha, validated into a
//! [`LoadConfig`].

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

use super::print_out;
use crate::load::{self, Shared};
use crate::output::{self, progress::Live};
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::agent::{AgentArgs, AgentPlan, ResultsTo};
use super::tls::TlsClientArgs;
use super::UsageError;
use crate::model::{IoEngine, LoadConfig, LoadModel, Proto, Target};

pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration such as 10s or 1m: {e}"))
}

/// Flags of `h2lab load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Target URL, then more URLs (same origin) or paths used round-robin.
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
    /// Connections, all workers together.
    #[arg(short = 'c', long, default_value_t = 16, value_name = "N")]
    pub connections: usize,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(short = 'm', long, default_value_t = 1, value_name = "N")]
    pub streams: usize,
    /// HTTP/2 closed loop: send new streams in groups of at least N while the others are
    /// in flight (default: half of -m; 1 = each as soon as another completes).
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Measured duration, e.g. 10s or 1m (default 10s unless -n is given).
    #[arg(short = 'd', long, value_parser = duration, value_name = "DUR")]
    pub duration: Option<Duration>,
    /// Warmup before the measured phase (recorded apart).
    #[arg(long, value_parser = duration, default_value = "0s", value_name = "DUR")]
    pub warmup: Duration,
    /// Stop after this many measured requests.
    #[arg(short = 'n', long, value_name = "N")]
    pub requests: Option<u64>,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// I/O engine: auto (io_uring for HTTP/1.1 over cleartext TCP where the kernel
    /// allows it, else epoll), uring (an error where it cannot run), epoll.
    #[arg(long, value_enum, default_value = "auto")]
    pub io: IoEngine,
    /// Open loop: constant arrival rate in requests/s overall; latency counts from each
    /// request's intended send time (coordinated omission corrected).
    #[arg(short = 'r', long, value_name = "REQ/S")]
    pub rate: Option<f64>,
    /// Protocol: auto (ALPN decides over TLS), h1, h2, h2c (prior knowledge), h2c-upgrade.
    #[arg(long, value_enum, default_value = "auto")]
    pub proto: Proto,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: TlsClientArgs,
    /// Request method.
    #[arg(short = 'X', long, default_value = "GET", value_name = "METHOD")]
    pub method: String,
    /// Extra request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(long, value_name = "TEXT", conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Request body from a file.
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<PathBuf>,
    /// Per-request timeout (also bounds the drain at the end).
    #[arg(long, value_parser = duration, default_value = "10s", value_name = "DUR")]
    pub timeout: Duration,
    /// Write the result (schema h2lab.result/v1) here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write an HdrHistogram interval log (.hlog) here.
    #[arg(long, value_name = "PATH")]
    pub hlog: Option<PathBuf>,
    /// No live progress.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub agents: AgentArgs,
}

/// Scheme, host and port of a URL.
pub(crate) struct Origin {
    pub(crate) scheme: String,
    pub(crate) host: String,
    pub(crate) authority: String,
    pub(crate) port: u16,
}

/// Splits a URL into its origin and path.
pub(crate) fn parse_origin(url: &str) -> Result<(Origin, String), UsageError> {
    let bad = |why: &str| UsageError(format!("URL `{url}`: {why}"));
    let uri: http::Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| bad("needs http:// or https://"))?
        .to_string();
    if scheme != "http" && scheme != "https" {
        return Err(bad("only http:// and https:// are supported"));
    }
    let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
    let port = authority
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    Ok((
        Origin {
            scheme,
            host,
            authority: authority.as_str().to_string(),
            port,
        },
        path,
    ))
}

/// Resolves the URL's host to its first address.
pub(crate) fn resolve(url: &str, origin: &Origin) -> Result<std::net::SocketAddr, UsageError> {
    (origin.host.as_str(), origin.port)
        .to_socket_addrs()
        .map_err(|e| {
            UsageError(format!(
                "URL `{url}`: cannot resolve `{}`: {e}",
                origin.host
            ))
        })?
        .next()
        .ok_or_else(|| UsageError(format!("URL `{url}`: `{}` has no address", origin.host)))
}

impl LoadArgs {
    /// Validates the flags into a configuration.
    pub fn to_config(&self) -> Result<LoadConfig, UsageError> {
        self.to_config_with(|_| None).map(|(cfg, _)| cfg)
    }

    /// Validates the flags, the agent's among them, with `env` giving the variables a
    /// pod would get (JOB_COMPLETION_INDEX, H2LAB_AGENTS).
    pub fn to_config_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(LoadConfig, Option<AgentPlan>), UsageError> {
        self.config_for(env, true)
    }

    /// Validates the flags where the target may not resolve (`h2lab k8s render` checks
    /// a pod's arguments on a machine outside the cluster).
    pub(crate) fn to_config_offline(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(LoadConfig, Option<AgentPlan>), UsageError> {
        self.config_for(env, false)
    }

    fn config_for(
        &self,
        env: impl Fn(&str) -> Option<String>,
        resolve_target: bool,
    ) -> Result<(LoadConfig, Option<AgentPlan>), UsageError> {
        let agent = self.agents.to_plan(env)?;
        let mut cfg = self.load_config(resolve_target)?;
        if let Some(plan) = &agent {
            let share = &plan.share;
            if share.part(cfg.connections as u64) == 0 {
                return Err(UsageError(format!(
                    "-c/--connections {}: too few for {} agents (weights {:?}); each needs at least one",
                    cfg.connections,
                    share.of(),
                    share.weights
                )));
            }
            if cfg.model == LoadModel::Closed && cfg.requests.is_some_and(|n| share.part(n) == 0) {
                return Err(UsageError(format!(
                    "-n/--requests: too few for {} agents; each needs at least one",
                    share.of()
                )));
            }
            let threads = self.threads.unwrap_or(cfg.threads.max(1));
            cfg.threads = threads
                .min(share.part(cfg.connections as u64) as usize)
                .max(1);
            cfg.agent = Some(plan.share.clone());
        }
        if let Some(name) = &self.agents.seq_header {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(UsageError(format!(
                    "--seq-header `{name}`: not a header name"
                )));
            }
            if cfg.model == LoadModel::Closed {
                return Err(UsageError(
                    "--seq-header numbers the open-loop schedule: give -r/--rate".into(),
                ));
            }
            if cfg.proto == Proto::H2cUpgrade {
                return Err(UsageError(
                    "--seq-header cannot ride the h2c upgrade request: use --proto h2c".into(),
                ));
            }
            cfg.seq_header = Some(name.to_ascii_lowercase());
        }
        Ok((cfg, agent))
    }

    fn load_config(&self, resolve_target: bool) -> Result<LoadConfig, UsageError> {
        let (origin, first_path) = parse_origin(&self.urls[0])?;
        let mut targets = vec![Target::path(first_path)];
        for more in &self.urls[1..] {
            if more.starts_with('/') {
                targets.push(Target::path(more.clone()));
                continue;
            }
            let (o, path) = parse_origin(more)?;
            if o.scheme != origin.scheme || o.authority != origin.authority {
                return Err(UsageError(format!(
                    "URL `{more}`: every URL must share the first one's scheme, host and port"
                )));
            }
            targets.push(Target::path(path));
        }
        let addr = if resolve_target {
            resolve(&self.urls[0], &origin)?
        } else {
            std::net::SocketAddr::from(([0, 0, 0, 0], origin.port))
        };
        if self.connections == 0 {
            return Err(UsageError("-c/--connections must be at least 1".into()));
        }
        if self.streams == 0 {
            return Err(UsageError("-m/--streams must be at least 1".into()));
        }
        if let Some(b) = self.batch.filter(|&b| b == 0 || b > self.streams) {
            return Err(UsageError(format!(
                "--batch {b}: must be between 1 and -m/--streams ({})",
                self.streams
            )));
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(UsageError(format!(
                    "-r/--rate {r}: must be a positive number of requests per second"
                )));
            }
        }
        if self.requests == Some(0) {
            return Err(UsageError("-n/--requests must be at least 1".into()));
        }
        if self.threads == Some(0) {
            return Err(UsageError("--threads must be at least 1".into()));
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(UsageError("-d/--duration must be longer than zero".into()));
        }
        let https = origin.scheme == "https";
        match (self.proto, https) {
            (Proto::H2c | Proto::H2cUpgrade, true) => {
                return Err(UsageError("--proto h2c and h2c-upgrade are cleartext: use an http:// URL (or --proto h2 over TLS)".into()))
            }
            (Proto::H2, false) => return Err(UsageError("--proto h2 needs an https:// URL; for cleartext use --proto h2c".into())),
            _ => {}
        }
        let tls = self.tls.to_config(https, self.proto, &origin.host)?;
        let body = match (&self.body, &self.body_file) {
            (Some(b), _) => b.clone().into_bytes(),
            (None, Some(p)) => std::fs::read(p)
                .map_err(|e| UsageError(format!("--body-file {}: {e}", p.display())))?,
            (None, None) => Vec::new(),
        };
        if self.proto == Proto::H2cUpgrade
            && (!body.is_empty() || !self.method.eq_ignore_ascii_case("GET"))
        {
            return Err(UsageError("--proto h2c-upgrade sends GET requests without a body (the Upgrade request cannot carry one)".into()));
        }
        let mut headers = Vec::new();
        let mut authority = origin.authority;
        for h in &self.headers {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| UsageError(format!("-H `{h}`: expected `Name: value`")))?;
            let (k, v) = (k.trim(), v.trim());
            if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                || http::HeaderValue::from_str(v).is_err()
            {
                return Err(UsageError(format!("-H `{h}`: not a valid header")));
            }
            // As wrk and h2load do: a Host header replaces the URL's (HTTP/2 :authority
            // too) instead of being sent twice; the connection still goes to the URL.
            if k.eq_ignore_ascii_case("host") {
                authority = v
                    .parse::<http::uri::Authority>()
                    .map_err(|_| UsageError(format!("-H `{h}`: expected `Host: name[:port]`")))?
                    .to_string();
                continue;
            }
            headers.push((k.to_string(), v.to_string()));
        }
        if http::Method::from_bytes(self.method.as_bytes()).is_err() {
            return Err(UsageError(format!(
                "-X `{}`: not a valid method",
                self.method
            )));
        }
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        Ok(LoadConfig {
            url: self.urls[0].clone(),
            scheme: origin.scheme,
            authority,
            addr,
            targets,
            method: self.method.to_ascii_uppercase(),
            headers,
            body_bytes: body.len(),
            body,
            proto: self.proto,
            tls,
            connections: self.connections,
            streams: self.streams,
            batch: self
                .batch
                .unwrap_or_else(|| crate::model::config::default_batch(self.streams)),
            threads: threads.min(self.connections),
            io: self.io,
            duration: match (self.duration, self.requests) {
                (None, None) => Some(Duration::from_secs(10)),
                (d, _) => d,
            },
            warmup: self.warmup,
            requests: self.requests,
            model: match self.rate {
                Some(rate) => LoadModel::Open { rate },
                None => LoadModel::Closed,
            },
            timeout: self.timeout,
            cpu_affinity: None,
            keep_alive: true,
            pipelining: false,
            tls_resumption: false,
            agent: None,
            seq_header: None,
            start_at: None,
        })
    }
}

/// Runs `h2lab load`: the exit code, or an error for `main` to report.
pub fn run(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let (mut cfg, agent) = args.to_config_with(|k| std::env::var(k).ok())?;
    let agreed = match &agent {
        Some(plan) => match plan.start.agree(plan.share.index, plan.share.of()) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("h2lab: error: {e}");
                return Ok(ExitCode::from(crate::agents::LATE_EXIT));
            }
        },
        None => None,
    };
    cfg.start_at = agreed.as_ref().map(|a| a.t0);
    let sigint = Arc::new(AtomicBool::new(false));
    let sigterm = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        connections: cfg.own_connections(),
        ..Shared::default()
    });
    // Both signals stop the run; which one decides the exit code.
    let stop = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGINT, &sigint),
        (signal_hook::consts::SIGTERM, &sigterm),
    ] {
        signal_hook::flag::register(sig, flag.clone()).context("cannot install signal handler")?;
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handler")?;
    }
    let live = Live::new(args.quiet);
    let watch_shared = shared.clone();
    let reached = std::time::SystemTime::now();
    let run = load::run(&cfg, shared, |p| {
        if stop.load(Ordering::Relaxed) {
            watch_shared.stop.store(true, Ordering::Relaxed);
        }
        live.update(p);
    })?;
    live.finish();
    let mut result = output::result::build(&cfg, &run);
    if let (Some(plan), Some(agreed)) = (&agent, &agreed) {
        result.agent = Some(crate::agents::record(&plan.share, agreed, reached));
    }
    if let Some(path) = &args.json {
        output::atomic_write(path, |w| {
            serde_json::to_writer_pretty(&mut *w, &result).map_err(std::io::Error::other)?;
            std::io::Write::write_all(w, b"\n")
        })
        .with_context(|| format!("cannot write --json {}", path.display()))?;
    }
    if let Some(path) = &args.hlog {
        crate::record::hlog::write(path, run.started, &run.intervals)
            .with_context(|| format!("cannot write --hlog {}", path.display()))?;
    }
    print_out(&output::summary::render(&result));
    if let Some(AgentPlan {
        results: Some(to),
        share,
        ..
    }) = &agent
    {
        let files = crate::agents::files(&result, &run)?;
        match to {
            ResultsTo::Stdout => crate::agents::print_frames(share, &files),
            ResultsTo::Dir(root) => crate::agents::write_files(root, share, &files)
                .with_context(|| format!("--results {}", root.display()))?,
        }
    }
    Ok(if sigint.load(Ordering::Relaxed) {
        ExitCode::from(130)
    } else if sigterm.load(Ordering::Relaxed) {
        ExitCode::from(143)
    } else if result.summary.ok == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<LoadConfig, String> {
        let cli = crate::cli::Cli::try_parse_from(
            std::iter::once("h2lab")
                .chain(["load"])
                .chain(args.iter().copied()),
        )
        .map_err(|e| e.to_string())?;
        let crate::cli::Command::Load(a) = cli.command else {
            unreachable!()
        };
        a.to_config().map_err(|e| e.0)
    }

    #[test]
    fn defaults_and_round_robin_paths() {
        let c = parse(&[
            "http://127.0.0.1:8080/a",
            "/b",
            "http://127.0.0.1:8080/c?x=1",
        ])
        .unwrap();
        assert_eq!(
            c.targets
                .iter()
                .map(|t| t.path.as_str())
                .collect::<Vec<_>>(),
            ["/a", "/b", "/c?x=1"]
        );
        assert_eq!(c.duration, Some(Duration::from_secs(10)));
        assert_eq!(c.model, LoadModel::Closed);
        assert!(c.tls.is_none());
    }

    #[test]
    fn bad_flags_name_the_flag() {
        for (args, flag) in [
            (vec!["http://127.0.0.1:1/", "--cacert", "x.pem"], "--cacert"),
            (vec!["http://127.0.0.1:1/", "--proto", "h2"], "--proto h2"),
            (
                vec!["https://127.0.0.1:1/", "--proto", "h2c"],
                "--proto h2c",
            ),
            (vec!["http://127.0.0.1:1/", "-r", "0"], "--rate"),
            (vec!["http://127.0.0.1:1/", "-c", "0"], "--connections"),
            (vec!["http://127.0.0.1:1/", "-H", "nocolon"], "-H"),
            (
                vec!["https://127.0.0.1:1/", "--tls-min", "1.1"],
                "--tls-min",
            ),
            (vec!["http://127.0.0.1:1/", "http://other:2/"], "share"),
            (vec!["ftp://127.0.0.1:1/"], "http://"),
            (
                vec![
                    "http://127.0.0.1:1/",
                    "--proto",
                    "h2c-upgrade",
                    "--body",
                    "x",
                ],
                "h2c-upgrade",
            ),
        ] {
            let err = parse(&args).unwrap_err();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
        assert!(parse(&["http://127.0.0.1:1/", "-d", "soon"])
            .unwrap_err()
            .contains("soon"));
    }

    #[test]
    fn alpn_offer_follows_proto_unless_given() {
        let c = parse(&["https://localhost:1/", "--proto", "h1"]).unwrap();
        assert_eq!(c.tls.unwrap().alpn, ["http/1.1"]);
        let c = parse(&["https://localhost:1/", "--alpn", ""]).unwrap();
        assert!(c.tls.unwrap().alpn.is_empty());
        let c = parse(&["https://localhost:1/", "-r", "100"]).unwrap();
        assert_eq!(c.model, LoadModel::Open { rate: 100.0 });
        assert_eq!(c.tls.unwrap().sni, "localhost");
    }

    /// The HTTP/1.1 head of the first request `args` give.
    fn head(args: &[&str]) -> String {
        let c = parse(args).unwrap();
        let r = &crate::load::request::prepare(&c).unwrap()[0];
        String::from_utf8(r.h1.to_vec()).unwrap()
    }

    #[test]
    fn host_and_user_agent_headers_replace_the_defaults() {
        let url = "http://127.0.0.1:8080/p";
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(
            head(&[url]),
            format!("GET /p HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nuser-agent: h2lab/{v}\r\n\r\n")
        );
        // Replaced, not sent twice; an empty value sends none (curl's convention).
        assert_eq!(
            head(&[url, "-H", "Host: example.test", "-H", "User-Agent: probe/2"]),
            "GET /p HTTP/1.1\r\nhost: example.test\r\nUser-Agent: probe/2\r\n\r\n"
        );
        assert_eq!(
            head(&[url, "-H", "user-agent:", "-H", "x-empty:", "-H", "x-a: 1"]),
            "GET /p HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nx-a: 1\r\n\r\n"
        );
        // HTTP/2 takes the Host as :authority; the connection still goes to the URL.
        let c = parse(&["http://127.0.0.1:8080/p", "-H", "host: example.test:81"]).unwrap();
        assert_eq!(c.addr.port(), 8080);
        let block = &crate::load::request::prepare(&c).unwrap()[0].h2_block;
        assert!(block.windows(15).any(|w| w == b"example.test:81"));
        let err = parse(&[url, "-H", "Host:"]).unwrap_err();
        assert!(err.contains("-H `Host:`"), "{err}");
        assert!(parse(&[url, "-H", "Host: a b"]).is_err());
    }
}
