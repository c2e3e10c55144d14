//! HTTP/2 conformance: the RFC 9113 cases of `httpwg-cli` (installed, at a pinned
//! version, by scripts/setup.sh) run against a URL: h2c directly, https through a relay
//! ([`relay`]) that speaks the lab's client TLS with ALPN h2. Each case passed or failed
//! ([`outcome`], parsed from the suite's output), each failure matched against the lab's
//! accepted deviations ([`deviations`]) with its RFC section and why; `conform.json`
//! (`h2lab.conform/v1`) and JUnit XML. Loopback only.

pub mod deviations;
pub mod outcome;
pub mod relay;
mod suite;

pub use suite::locate;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::tls::ClientTls;
use deviations::Deviation;
pub use outcome::Case;

/// Schema of `conform.json`.
pub const CONFORM_SCHEMA: &str = "h2lab.conform/v1";
/// The suite and the version scripts/setup.sh installs.
pub const SUITE: &str = "httpwg-cli 0.2.5";

/// Why the suite could not run.
#[derive(Debug, thiserror::Error)]
pub enum ConformError {
    /// The target is not on loopback.
    #[error("the conformance suite goes to loopback (127.0.0.0/8, ::1) only, not {0}")]
    NotLoopback(std::net::IpAddr),
    /// The suite is not installed.
    #[error("`{0}` not found: install it with scripts/setup.sh (cargo install httpwg-cli --version 0.2.5 --locked), or set H2LAB_HTTPWG to its path")]
    Missing(String),
    /// The suite could not be started or read.
    #[error("cannot run the suite: {0}")]
    Io(#[from] std::io::Error),
    /// The suite reported nothing (it could not reach the target, or crashed).
    #[error("the suite reported no case; its output ends:\n{0}")]
    NoCases(String),
}

/// How the suite is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only cases whose name contains this (the suite's `-f`).
    pub filter: Option<String>,
    /// Longest the whole suite may run; it is killed then.
    pub timeout: Duration,
    /// How long the suite waits for each frame, milliseconds.
    pub frame_timeout_ms: u64,
    /// The target is one of the lab's own servers: its accepted deviations apply (they
    /// are the h2 crate's and the built-in app's, and explain nothing of another server).
    pub lab: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            filter: None,
            timeout: Duration::from_secs(120),
            frame_timeout_ms: 1000,
            lab: false,
        }
    }
}

/// One case with the verdict on it.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    /// The case.
    #[serde(flatten)]
    pub case: Case,
    /// The accepted deviation its failure matches.
    pub accepted: Option<Deviation>,
    /// The reason of the accepted deviation.
    pub why: Option<&'static str>,
}

/// What `h2lab conform` writes.
#[derive(Debug, Clone, Serialize)]
pub struct ConformReport {
    /// [`CONFORM_SCHEMA`].
    pub schema: &'static str,
    /// [`SUITE`].
    pub suite: &'static str,
    /// The target URL.
    pub url: String,
    /// `h2c`, or `h2 over TLS (relayed)`.
    pub transport: String,
    /// ALPN the target chose on the relayed connections (https only), each value once.
    pub alpn: Vec<String>,
    /// Cases the suite says it ran.
    pub total: usize,
    /// Passed.
    pub passed: usize,
    /// Failed, and matched by an accepted deviation.
    pub accepted: usize,
    /// Failed otherwise, or never reported: what needs a look.
    pub unexpected: usize,
    /// Cases the closing count has and the output does not name at all.
    pub unreported: usize,
    /// Cases the suite itself panicked in (counted as failed).
    pub crashed: usize,
    /// Every case.
    pub cases: Vec<Judged>,
}

impl ConformReport {
    /// The failures not accepted.
    pub fn unexpected_cases(&self) -> impl Iterator<Item = &Judged> {
        self.cases
            .iter()
            .filter(|c| !c.case.passed && c.accepted.is_none())
    }
}

/// Runs the suite against `addr` (the host and port of `url`), through a TLS relay when
/// `tls` is given.
pub fn run(
    url: &str,
    addr: SocketAddr,
    tls: Option<ClientTls>,
    opts: &Options,
) -> Result<ConformReport, ConformError> {
    if !addr.ip().is_loopback() {
        return Err(ConformError::NotLoopback(addr.ip()));
    }
    let relay = tls.map(|t| relay::Relay::start(addr, t)).transpose()?;
    let to = relay.as_ref().map_or(addr, |r| r.addr);
    let output = suite::run(to, opts)?;
    let parsed = outcome::parse(&output);
    if parsed.cases.is_empty() {
        let lines: Vec<&str> = output.lines().collect();
        let mut tail = outcome::strip_ansi(&lines[lines.len().saturating_sub(15)..].join("\n"));
        if let Some(r) = &relay {
            let failures = r.failures.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = failures.first() {
                tail.push_str(&format!("\nrelay: {f}"));
            }
        }
        return Err(ConformError::NoCases(tail));
    }
    let mut alpn: Vec<String> = Vec::new();
    if let Some(r) = &relay {
        for a in r.alpn.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let a = a.clone().unwrap_or_else(|| "(none)".into());
            if !alpn.contains(&a) {
                alpn.push(a);
            }
        }
    }
    drop(relay);
    let cases: Vec<Judged> = parsed
        .cases
        .into_iter()
        .map(|case| {
            let accepted = (opts.lab && !case.passed)
                .then(|| deviations::accepted(&case.name, case.message.as_deref()))
                .flatten()
                .copied();
            Judged {
                why: accepted.map(|d| d.cause.why()),
                accepted,
                case,
            }
        })
        .collect();
    let passed = cases.iter().filter(|c| c.case.passed).count();
    let accepted = cases.iter().filter(|c| c.accepted.is_some()).count();
    let total = parsed.summary.map_or(cases.len(), |s| s.1.max(cases.len()));
    let unreported = total - cases.len();
    Ok(ConformReport {
        schema: CONFORM_SCHEMA,
        suite: SUITE,
        url: url.to_string(),
        transport: if alpn.is_empty() {
            "h2c (prior knowledge)".into()
        } else {
            "h2 over TLS (relayed)".into()
        },
        alpn,
        total,
        passed,
        accepted,
        unexpected: cases.len() - passed - accepted + unreported,
        unreported,
        crashed: cases.iter().filter(|c| c.case.crashed).count(),
        cases,
    })
}

/// The section a failure departs from: the accepted deviation's, else the chapter's.
pub fn section(c: &Judged) -> String {
    match &c.accepted {
        Some(d) => format!("{} §{}", c.case.rfc, d.section),
        None => {
            let chapter = c.case.chapter.split('.').next().unwrap_or("");
            format!("{} §{chapter}", c.case.rfc)
        }
    }
}

/// The report for the terminal: counts, then every failure with its section and why.
pub fn text(r: &ConformReport) -> String {
    let mut out = format!(
        "{} against {} ({}): {} of {} passed, {} failed as accepted, {} unexpected{}\n",
        r.suite,
        r.url,
        r.transport,
        r.passed,
        r.total,
        r.accepted,
        r.unexpected,
        if r.unreported > 0 {
            format!(" ({} never reported)", r.unreported)
        } else {
            String::new()
        }
    );
    for c in r.cases.iter().filter(|c| !c.case.passed) {
        let _ = writeln!(
            out,
            "  {} {:<13} {}: {}",
            if c.accepted.is_some() {
                "accepted  "
            } else {
                "UNEXPECTED"
            },
            section(c),
            c.case.name,
            c.case.message.as_deref().unwrap_or("(no message)")
        );
    }
    out
}

/// JUnit XML: one test case per suite case; accepted failures pass with their reason in
/// system-out.
pub fn junit(r: &ConformReport) -> String {
    let esc = crate::output::html_escape;
    let mut cases = String::new();
    for c in &r.cases {
        let _ = write!(
            cases,
            "    <testcase classname=\"{}\" name=\"{}\">",
            esc(&format!("{} {}", c.case.rfc, c.case.chapter)),
            esc(&c.case.name)
        );
        if !c.case.passed {
            let msg = c.case.message.as_deref().unwrap_or("(no message)");
            match (&c.accepted, c.why) {
                (Some(_), Some(why)) => {
                    let _ = write!(
                        cases,
                        "<system-out>{}</system-out>",
                        esc(&format!("accepted ({}): {msg}; {why}", section(c)))
                    );
                }
                _ => {
                    let _ = write!(
                        cases,
                        "<failure message=\"{}\">{}</failure>",
                        esc(msg),
                        esc(&section(c))
                    );
                }
            }
        }
        cases.push_str("</testcase>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{} {}\" tests=\"{}\" failures=\"{}\">\n{cases}  </testsuite>\n</testsuites>\n",
        esc(r.suite),
        esc(&r.url),
        r.total,
        r.unexpected
    )
}
