//! The flags that make `h2lab load` one agent of several: its part of the schedule, the
//! shared start, and where its results go. Each has the variable a Kubernetes pod is
//! given (`h2lab k8s render` writes them into the Job).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::Args;

use super::load::duration;
use super::UsageError;
use crate::agents::start::{parse_start_at, Start, StartPlan};
use crate::model::AgentShare;

/// Most agents a load can be split among; more would leave each a share too thin to
/// measure.
pub const MAX_AGENTS: usize = 1000;

/// Agent flags of `h2lab load`.
#[derive(Debug, Args, Default)]
pub struct AgentArgs {
    /// Be agent I of N (0-based): send the global requests I, I+N, I+2N... of the
    /// open-loop schedule and 1/N of the connections. Without it, JOB_COMPLETION_INDEX
    /// (set by a Kubernetes Indexed Job) and H2LAB_AGENTS give I and N.
    #[arg(long, value_name = "I/N", help_heading = "Agents")]
    pub agent: Option<String>,
    /// Weights of the agents, e.g. `2,1,1`: each takes its proportion of the schedule's
    /// indices and of the connections.
    #[arg(
        long,
        value_name = "LIST",
        env = "H2LAB_AGENT_WEIGHTS",
        help_heading = "Agents"
    )]
    pub agent_weights: Option<String>,
    /// Wall-clock start of the schedule shared by every agent: RFC 3339
    /// (`2026-12-03T10:00:00.5Z`) or Unix seconds (`1796292000.5`).
    #[arg(
        long,
        value_name = "T0",
        env = "H2LAB_START_AT",
        help_heading = "Agents"
    )]
    pub start_at: Option<String>,
    /// Start on a release from agent 0 at this address (`host:port`): agent 0 listens on
    /// its port, and releases all once every agent has reported.
    #[arg(
        long,
        value_name = "ADDR",
        env = "H2LAB_RELEASE_FROM",
        help_heading = "Agents"
    )]
    pub release_from: Option<String>,
    /// How long agents wait for the release before giving up (exit 3).
    #[arg(long, value_parser = duration, default_value = "5m", value_name = "DUR", env = "H2LAB_RELEASE_TIMEOUT", help_heading = "Agents")]
    pub release_timeout: Duration,
    /// How late an agent may reach the start and still send; later, it exits 3 rather
    /// than send its share late.
    #[arg(long, value_parser = duration, default_value = "1s", value_name = "DUR", env = "H2LAB_START_TOLERANCE", help_heading = "Agents")]
    pub start_tolerance: Duration,
    /// Send each request's global index in the schedule in this header, so the target
    /// can check every index arrived exactly once (open loop only).
    #[arg(long, value_name = "NAME", help_heading = "Agents")]
    pub seq_header: Option<String>,
    /// Where the agent puts result.json and latency.hlog: `stdout` (framed, for
    /// `kubectl logs` and `h2lab k8s collect`) or a directory (a shared volume; each
    /// agent writes DIR/agent-I).
    #[arg(
        long,
        value_name = "stdout|DIR",
        env = "H2LAB_RESULTS",
        help_heading = "Agents"
    )]
    pub results: Option<String>,
}

/// Where an agent's results go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultsTo {
    /// Framed on standard output.
    Stdout,
    /// Into `DIR/agent-I`.
    Dir(PathBuf),
}

/// The agent flags, validated.
#[derive(Debug, Clone)]
pub struct AgentPlan {
    /// The part of the load.
    pub share: AgentShare,
    /// How the start is agreed.
    pub start: StartPlan,
    /// Where the results go.
    pub results: Option<ResultsTo>,
}

fn index_of(s: &str, what: &str) -> Result<usize, UsageError> {
    s.trim()
        .parse()
        .map_err(|_| UsageError(format!("{what}: `{s}` is not a whole number")))
}

impl AgentArgs {
    /// Validates the flags (with `env` standing in for the process environment, so that
    /// tests can give a pod's). None when this generator runs the whole load alone.
    pub fn to_plan(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<AgentPlan>, UsageError> {
        let (index, of, source) = match &self.agent {
            Some(a) => {
                let (i, n) = a
                    .split_once('/')
                    .ok_or_else(|| UsageError(format!("--agent `{a}`: expected I/N, e.g. 0/3")))?;
                (index_of(i, "--agent")?, index_of(n, "--agent")?, "--agent")
            }
            None => match (env("JOB_COMPLETION_INDEX"), env("H2LAB_AGENTS")) {
                (Some(i), Some(n)) => (
                    index_of(&i, "JOB_COMPLETION_INDEX")?,
                    index_of(&n, "H2LAB_AGENTS")?,
                    "JOB_COMPLETION_INDEX/H2LAB_AGENTS",
                ),
                (None, Some(_)) => {
                    return Err(UsageError(
                        "H2LAB_AGENTS is set but JOB_COMPLETION_INDEX is not: give --agent I/N"
                            .into(),
                    ))
                }
                _ => {
                    if let Some(flag) = self.agent_only_flag() {
                        return Err(UsageError(format!("{flag} needs --agent I/N")));
                    }
                    return Ok(None);
                }
            },
        };
        if of == 0 || of > MAX_AGENTS {
            return Err(UsageError(format!(
                "{source}: {of} agents; between 1 and {MAX_AGENTS} can share a load"
            )));
        }
        if index >= of {
            return Err(UsageError(format!(
                "{source}: agent {index} of {of}: the index counts from 0 to {}",
                of - 1
            )));
        }
        let weights = match &self.agent_weights {
            None => vec![1; of],
            Some(list) => {
                let w: Vec<u32> = list
                    .split(',')
                    .map(|x| x.trim().parse::<u32>().ok().filter(|&w| (1..=1000).contains(&w)))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        UsageError(format!(
                            "--agent-weights `{list}`: expected {of} whole numbers from 1 to 1000, e.g. 2,1,1"
                        ))
                    })?;
                if w.len() != of {
                    return Err(UsageError(format!(
                        "--agent-weights `{list}`: {} weights for {of} agents",
                        w.len()
                    )));
                }
                w
            }
        };
        let start = match (&self.start_at, &self.release_from) {
            (Some(_), Some(_)) => {
                return Err(UsageError(
                    "--start-at and --release-from both given: the run uses one of them".into(),
                ))
            }
            (Some(t), None) => Start::At(
                parse_start_at(t).map_err(|why| UsageError(format!("--start-at `{t}`: {why}")))?,
            ),
            (None, Some(addr)) => Start::Release(parse_release(addr)?),
            (None, None) if of == 1 => Start::Now,
            (None, None) => {
                return Err(UsageError(format!(
                    "{of} agents need a shared start: --start-at T0 or --release-from ADDR"
                )))
            }
        };
        let results = self.results.as_deref().map(|r| match r {
            "stdout" | "-" => ResultsTo::Stdout,
            dir => ResultsTo::Dir(PathBuf::from(dir)),
        });
        Ok(Some(AgentPlan {
            share: AgentShare { index, weights },
            start: StartPlan {
                start,
                tolerance: self.start_tolerance,
                release_timeout: self.release_timeout,
            },
            results,
        }))
    }

    /// A flag that only means something for an agent, if one is given.
    fn agent_only_flag(&self) -> Option<&'static str> {
        [
            (self.agent_weights.is_some(), "--agent-weights"),
            (self.start_at.is_some(), "--start-at"),
            (self.release_from.is_some(), "--release-from"),
            (self.results.is_some(), "--results"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

/// `host:port` of agent 0's release; the host may be a name not yet resolvable (a pod's
/// DNS record appears when the pod runs), so only the form is checked here.
fn parse_release(addr: &str) -> Result<(String, u16), UsageError> {
    let bad = || {
        UsageError(format!(
            "--release-from `{addr}`: expected host:port, e.g. h2lab-load-0.h2lab-load:7070"
        ))
    };
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok((sa.ip().to_string(), sa.port()));
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// The start time of a run, for a message.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(agent: Option<&str>) -> AgentArgs {
        AgentArgs {
            agent: agent.map(str::to_string),
            start_at: Some("1796292000".into()),
            release_timeout: Duration::from_secs(1),
            start_tolerance: Duration::from_secs(1),
            ..AgentArgs::default()
        }
    }

    #[test]
    fn an_indexed_job_pod_finds_its_part_in_the_environment() {
        let pod = |k: &str| match k {
            "JOB_COMPLETION_INDEX" => Some("2".to_string()),
            "H2LAB_AGENTS" => Some("3".to_string()),
            _ => None,
        };
        let plan = args(None).to_plan(pod).unwrap().unwrap();
        assert_eq!(
            plan.share,
            AgentShare {
                index: 2,
                weights: vec![1, 1, 1]
            }
        );
        // The flag wins over the environment.
        let plan = args(Some("0/2")).to_plan(pod).unwrap().unwrap();
        assert_eq!(plan.share.index, 0);
        assert_eq!(plan.share.of(), 2);
        assert!(AgentArgs::default().to_plan(|_| None).unwrap().is_none());
    }

    #[test]
    fn bad_agent_flags_name_the_flag() {
        let none = |_: &str| None;
        for (a, weights, needle) in [
            (Some("3/3"), None, "counts from 0 to 2"),
            (Some("1"), None, "expected I/N"),
            (Some("0/0"), None, "between 1 and"),
            (Some("0/3"), Some("2,1"), "2 weights for 3 agents"),
            (Some("0/3"), Some("2,0,1"), "--agent-weights"),
        ] {
            let mut x = args(a);
            x.agent_weights = weights.map(str::to_string);
            let err = x.to_plan(none).unwrap_err().0;
            assert!(err.contains(needle), "{a:?} {weights:?}: {err}");
        }
        let mut x = args(Some("0/2"));
        x.start_at = None;
        assert!(x.to_plan(none).unwrap_err().0.contains("shared start"));
        x.release_from = Some("agent-0".into());
        assert!(x.to_plan(none).unwrap_err().0.contains("--release-from"));
        let lone = AgentArgs {
            start_at: Some("1796292000".into()),
            ..AgentArgs::default()
        };
        assert!(lone.to_plan(none).unwrap_err().0.contains("needs --agent"));
    }
}
