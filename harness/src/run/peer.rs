//! Peer load generators as engines of a cell: wrk and h2load run with the cell's
//! connections, streams and duration; their output is parsed into the same result schema,
//! marked with the tool's name and version, so users can check h2lab against tools they
//! trust in one report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::model::result::{Negotiated, Summary, Tool};
use crate::model::{LoadConfig, LoadModel, Percentiles, Proto, ResultV1, RESULT_SCHEMA};

/// Why a peer could not run this cell.
#[derive(Debug)]
pub enum PeerError {
    /// The cell asks for something the tool cannot do, or the tool is missing.
    Skip(String),
    /// The tool ran but failed, or its output could not be read.
    Failed(String),
}

fn find(tool: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

fn version(tool: &Path, flag: &str) -> String {
    Command::new(tool)
        .arg(flag)
        .output()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}

/// Parses `123.4us`, `1.2ms`, `3.4s`, `2m` into microseconds.
fn micros(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, factor) = if let Some(v) = s.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1e6)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60e6)
    } else {
        (s, 1.0)
    };
    num.trim().parse::<f64>().ok().map(|v| (v * factor) as u64)
}

fn base(tool: Tool, cfg: &LoadConfig, protocol: &str) -> ResultV1 {
    ResultV1 {
        schema: RESULT_SCHEMA.into(),
        tool,
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        negotiated: Negotiated {
            protocol: protocol.into(),
            connections: cfg.connections as u64,
            ..Negotiated::default()
        },
        config: serde_json::to_value(cfg).unwrap_or_default(),
        ..ResultV1::default()
    }
}

/// Adds the cell's headers and URL to a peer's command, runs it, and returns its stdout,
/// its stderr and the tool's identity.
fn finish_and_run(
    mut cmd: Command,
    cfg: &LoadConfig,
    name: &str,
    bin: &Path,
    version_flag: &str,
) -> Result<(String, String, Tool), PeerError> {
    for (k, v) in &cfg.headers {
        cmd.args(["-H", &format!("{k}: {v}")]);
    }
    cmd.arg(&cfg.url);
    let out = cmd
        .output()
        .map_err(|e| PeerError::Failed(format!("{name}: {e}")))?;
    let tool = Tool {
        name: name.into(),
        version: version(bin, version_flag),
    };
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        tool,
    ))
}

/// Runs `engine` for `cfg` and converts its report.
pub fn run(engine: &str, cfg: &LoadConfig) -> Result<ResultV1, PeerError> {
    let secs = cfg
        .duration
        .unwrap_or(Duration::from_secs(10))
        .as_secs()
        .max(1);
    let threads = cfg.threads.max(1).min(cfg.connections);
    if cfg.targets.len() > 1 {
        return Err(PeerError::Skip(format!(
            "{engine} cannot send a weighted mix of requests; cell skipped"
        )));
    }
    match engine {
        "wrk" => {
            let bin = find("wrk").ok_or_else(|| {
                PeerError::Skip(
                    "wrk is not installed (apt-get install wrk, or scripts/setup.sh)".into(),
                )
            })?;
            if matches!(cfg.model, LoadModel::Open { .. }) {
                return Err(PeerError::Skip(
                    "wrk has no open loop (wrk2 has); cell skipped".into(),
                ));
            }
            if matches!(cfg.proto, Proto::H2 | Proto::H2c | Proto::H2cUpgrade) {
                return Err(PeerError::Skip("wrk speaks HTTP/1.1 only".into()));
            }
            let mut cmd = Command::new(&bin);
            cmd.args([
                "-t",
                &threads.to_string(),
                "-c",
                &cfg.connections.to_string(),
                "-d",
                &format!("{secs}s"),
                "--latency",
            ]);
            let (text, stderr, tool) = finish_and_run(cmd, cfg, "wrk", &bin, "-v")?;
            parse_wrk(&text, base(tool, cfg, "h1")).ok_or_else(|| {
                PeerError::Failed(format!("cannot read wrk's output:\n{text}{}", stderr))
            })
        }
        "h2load" => {
            let bin = find("h2load").ok_or_else(|| {
                PeerError::Skip(
                    "h2load is not installed (apt-get install nghttp2-client, or scripts/setup.sh)"
                        .into(),
                )
            })?;
            if cfg.proto == Proto::H2cUpgrade {
                return Err(PeerError::Skip("h2load does not do the h2c Upgrade".into()));
            }
            let h1 = cfg.proto == Proto::H1
                || cfg
                    .tls
                    .as_ref()
                    .is_some_and(|t| !t.alpn.iter().any(|p| p == "h2"));
            // h2load's -m pipelines on HTTP/1.1; h2lab never does, so compare like for like.
            let streams = if h1 { 1 } else { cfg.streams };
            let mut cmd = Command::new(&bin);
            cmd.args([
                "-t",
                &threads.to_string(),
                "-c",
                &cfg.connections.to_string(),
                "-m",
                &streams.to_string(),
                "-D",
                &secs.to_string(),
            ]);
            if h1 {
                cmd.arg("--h1");
            }
            if let LoadModel::Open { rate } = cfg.model {
                // h2load paces per client and measures from the actual send (no CO correction).
                cmd.args(["--rps", &format!("{:.3}", rate / cfg.connections as f64)]);
            }
            let (text, _, tool) = finish_and_run(cmd, cfg, "h2load", &bin, "--version")?;
            let mut r = parse_h2load(&text, base(tool, cfg, if h1 { "h1" } else { "h2" }), secs)
                .ok_or_else(|| {
                    PeerError::Failed(format!("cannot read h2load's output:\n{text}"))
                })?;
            if let LoadModel::Open { rate } = cfg.model {
                r.summary.target_rps = Some(rate);
                r.summary.achieved_ratio = Some(r.summary.rps / rate);
                r.warnings.push("h2load --rps measures from the actual send: latency is not corrected for coordinated omission".into());
            }
            Ok(r)
        }
        other => Err(PeerError::Skip(format!("unknown engine `{other}`"))),
    }
}

fn field<'a>(line: &'a str, after: &str) -> Option<&'a str> {
    line.split_once(after)
        .map(|(_, r)| r.split_whitespace().next().unwrap_or(""))
}

/// Reads wrk's report (with `--latency`).
pub fn parse_wrk(text: &str, mut r: ResultV1) -> Option<ResultV1> {
    let mut lat = Percentiles::default();
    let mut requests = None;
    let mut secs = None;
    let mut errors = 0u64;
    let mut non2xx = 0u64;
    for line in text.lines().map(str::trim) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with("Latency ") && cols.len() >= 4 && !line.contains("Distribution") {
            lat.mean = micros(cols[1])? as f64;
            lat.stdev = micros(cols[2])? as f64;
            lat.max = micros(cols[3])?;
        } else if cols.len() == 2 && cols[0].ends_with('%') {
            let v = micros(cols[1])?;
            match cols[0] {
                "50%" => lat.p50 = v,
                "90%" => lat.p90 = v,
                "99%" => lat.p99 = v,
                _ => {}
            }
        } else if line.contains(" requests in ") {
            requests = cols.first().and_then(|n| n.parse::<u64>().ok());
            secs = cols
                .get(3)
                .map(|s| s.trim_end_matches(','))
                .and_then(micros)
                .map(|us| us as f64 / 1e6);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            errors = rest
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non2xx = rest.trim().parse().ok()?;
        }
    }
    let requests = requests?;
    let secs = secs?;
    lat.count = requests;
    r.summary = Summary {
        requests: requests + errors,
        ok: requests,
        errors,
        duration_s: secs,
        rps: requests as f64 / secs,
        ..Summary::default()
    };
    r.latency_us = lat;
    r.status
        .insert("2xx/3xx".into(), requests - non2xx.min(requests));
    if non2xx > 0 {
        r.status.insert("non-2xx/3xx".into(), non2xx);
    }
    if errors > 0 {
        r.errors.insert("socket".into(), errors);
    }
    r.warnings.push(
        "wrk measures closed loop from the actual send; p99.9 and above are not reported".into(),
    );
    Some(r)
}

/// Reads h2load's report.
pub fn parse_h2load(text: &str, mut r: ResultV1, secs: u64) -> Option<ResultV1> {
    let mut ok = None;
    let mut failed = 0;
    let mut rps = None;
    let mut lat = Percentiles::default();
    for line in text.lines().map(str::trim) {
        if line.starts_with("finished in ") {
            rps = field(line, ", ").and_then(|v| v.parse::<f64>().ok());
        } else if line.starts_with("requests: ") {
            let num = |key: &str| {
                line.split(',')
                    .find(|p| p.trim().ends_with(key))
                    .and_then(|p| p.split_whitespace().next()?.parse::<u64>().ok())
            };
            ok = num("succeeded");
            failed = num("failed").unwrap_or(0) + num("errored").unwrap_or(0);
        } else if let Some(codes) = line.strip_prefix("status codes: ") {
            for part in codes.split(',') {
                let mut it = part.split_whitespace();
                if let (Some(n), Some(class)) =
                    (it.next().and_then(|n| n.parse::<u64>().ok()), it.next())
                {
                    if n > 0 {
                        r.status.insert(class.to_string(), n);
                    }
                }
            }
        } else if let Some(rest) = line.strip_prefix("time for request:") {
            let cols: Vec<&str> = rest.split_whitespace().collect();
            if cols.len() >= 4 {
                lat.min = micros(cols[0])?;
                lat.max = micros(cols[1])?;
                lat.mean = micros(cols[2])? as f64;
                lat.stdev = micros(cols[3])? as f64;
            }
        }
    }
    let ok = ok?;
    lat.count = ok;
    r.summary = Summary {
        requests: ok + failed,
        ok,
        errors: failed,
        duration_s: secs as f64,
        rps: rps?,
        ..Summary::default()
    };
    r.latency_us = lat;
    if failed > 0 {
        r.errors.insert("failed".into(), failed);
    }
    r.warnings
        .push("h2load reports min/max/mean/sd only: percentiles are 0 (not measured)".into());
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_and_h2load_reports() {
        let wrk = "Running 1s test @ http://127.0.0.1:8080/\n  1 threads and 2 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency    61.03us   20.36us 551.00us   93.94%\n    Req/Sec    31.70k     1.20k   33.00k    70.00%\n  Latency Distribution\n     50%   57.00us\n     75%   63.00us\n     90%   73.00us\n     99%  131.00us\n  31536 requests in 1.00s, 3.52MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\nRequests/sec:  31519.44\n";
        let r = parse_wrk(wrk, ResultV1::default()).unwrap();
        assert_eq!((r.summary.ok, r.summary.errors), (31536, 3));
        assert_eq!(
            (r.latency_us.p50, r.latency_us.p99, r.latency_us.max),
            (57, 131, 551)
        );
        let h2 = "finished in 2.00s, 45000.50 req/s, 5.1MB/s\nrequests: 90001 total, 90001 started, 90001 done, 90000 succeeded, 1 failed, 0 errored, 0 timeout\nstatus codes: 90000 2xx, 0 3xx, 0 4xx, 0 5xx\n                     min         max         mean         sd        +/- sd\ntime for request:      123us      4.56ms       345us       100us    80.00%\n";
        let r = parse_h2load(h2, ResultV1::default(), 2).unwrap();
        assert_eq!((r.summary.ok, r.summary.errors), (90000, 1));
        assert_eq!((r.latency_us.min, r.latency_us.max), (123, 4560));
        assert_eq!(r.status["2xx"], 90000);
        assert!((r.summary.rps - 45000.5).abs() < 1e-6);
    }
}
