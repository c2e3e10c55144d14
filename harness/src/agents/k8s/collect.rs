//! The agents' results gathered back from a finished Job: from each pod's log (the
//! frames `h2lab load --results stdout` printed), or from the shared volume they wrote.

use std::collections::BTreeMap;
use std::process::Command;

use super::render::{CONTAINER, JOB_LABEL};
use crate::agents::frames::{self, FILES};
use crate::agents::merge::AgentFiles;

/// Why results could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// kubectl could not be run or refused.
    #[error("kubectl {args}: {why}")]
    Kubectl {
        /// Its arguments.
        args: String,
        /// What went wrong (its stderr).
        why: String,
    },
    /// A log holds no usable frames, or conflicting ones.
    #[error("{0}")]
    Logs(String),
}

/// Each agent's files found in `logs` (each a name for messages and the log's bytes).
/// An agent framed twice, with different bytes, is refused: two pods claimed one index.
pub fn from_logs(logs: &[(String, Vec<u8>)]) -> Result<Vec<AgentFiles>, CollectError> {
    let mut found: BTreeMap<usize, (String, BTreeMap<String, Vec<u8>>)> = BTreeMap::new();
    for (name, log) in logs {
        let frames = frames::parse(log, name).map_err(CollectError::Logs)?;
        if frames.is_empty() {
            return Err(CollectError::Logs(format!(
                "{name}: no h2lab agent results in this log (was the agent run with --results stdout, and did it finish?){}",
                tail(log)
            )));
        }
        for f in frames {
            let (source, files) = found
                .entry(f.agent)
                .or_insert_with(|| (name.clone(), BTreeMap::new()));
            if source != name {
                return Err(CollectError::Logs(format!(
                    "agent {} appears in both {source} and {name}: two pods ran one index",
                    f.agent
                )));
            }
            if files.insert(f.file.clone(), f.bytes).is_some() {
                return Err(CollectError::Logs(format!(
                    "{name}: agent {} printed its {} twice",
                    f.agent, f.file
                )));
            }
        }
    }
    found
        .into_iter()
        .map(|(agent, (source, mut files))| {
            let mut take = |file: &str| {
                files.remove(file).ok_or_else(|| {
                    CollectError::Logs(format!("{source}: agent {agent} printed no {file}"))
                })
            };
            Ok(AgentFiles {
                source: source.clone(),
                result: take(FILES[0])?,
                hlog: take(FILES[1])?,
            })
        })
        .collect()
}

/// The log's last lines, where an agent that gave up says why.
fn tail(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let last = &lines[lines.len().saturating_sub(3)..];
    format!("; it ends:\n  {}", last.join("\n  "))
}

/// Where a Job runs.
#[derive(Debug, Clone)]
pub struct JobRef {
    /// The `kubectl` to run (a path, or a name on PATH).
    pub kubectl: String,
    /// The Job's name.
    pub name: String,
    /// Its namespace, else the context's.
    pub namespace: Option<String>,
}

impl JobRef {
    fn kubectl(&self, args: &[&str]) -> Result<Vec<u8>, CollectError> {
        let mut all: Vec<String> = Vec::new();
        if let Some(ns) = &self.namespace {
            all.extend(["--namespace".to_string(), ns.clone()]);
        }
        all.extend(args.iter().map(|a| a.to_string()));
        let shown = all.join(" ");
        let out = Command::new(&self.kubectl)
            .args(&all)
            .output()
            .map_err(|e| CollectError::Kubectl {
                args: shown.clone(),
                why: format!("cannot run `{}`: {e}", self.kubectl),
            })?;
        if !out.status.success() {
            return Err(CollectError::Kubectl {
                args: shown,
                // kubectl repeats client-go's retries; its last line says what failed.
                why: String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .rfind(|l| !l.trim().is_empty())
                    .unwrap_or("failed")
                    .trim()
                    .to_string(),
            });
        }
        Ok(out.stdout)
    }

    /// The Job's pods' logs, each named by its pod.
    pub fn logs(&self) -> Result<Vec<(String, Vec<u8>)>, CollectError> {
        let selector = format!("{JOB_LABEL}={}", self.name);
        let pods = self.kubectl(&["get", "pods", "--selector", &selector, "--output", "name"])?;
        let pods: Vec<String> = String::from_utf8_lossy(&pods)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if pods.is_empty() {
            return Err(CollectError::Logs(format!(
                "no pods of Job {} (selector {selector}): has it been applied, or already deleted?",
                self.name
            )));
        }
        pods.iter()
            .map(|pod| {
                let log = self.kubectl(&["logs", pod, "--container", CONTAINER])?;
                Ok((pod.clone(), log))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(agent: usize, noise: &str) -> Vec<u8> {
        let mut out = noise.as_bytes().to_vec();
        out.extend(frames::frame(agent, 2, FILES[0], b"{}"));
        out.extend(b"summary line\n");
        out.extend(frames::frame(agent, 2, FILES[1], b"#[StartTime: 1]\n"));
        out
    }

    #[test]
    fn each_pods_frames_become_its_agents_files() {
        let got = from_logs(&[
            ("pod/b".into(), log(1, "x\n")),
            ("pod/a".into(), log(0, "")),
        ])
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].source, "pod/a");
        assert_eq!(got[1].result, b"{}");
        assert_eq!(got[1].hlog, b"#[StartTime: 1]\n");
    }

    #[test]
    fn one_index_in_two_pods_or_a_log_without_results_is_refused() {
        let err =
            from_logs(&[("pod/a".into(), log(0, "")), ("pod/b".into(), log(0, ""))]).unwrap_err();
        assert!(err.to_string().contains("two pods ran one index"), "{err}");
        let err = from_logs(&[("pod/a".into(), b"panic at start\n".to_vec())]).unwrap_err();
        assert!(
            err.to_string().contains("pod/a: no h2lab agent results"),
            "{err}"
        );
        assert!(
            err.to_string().ends_with("it ends:\n  panic at start"),
            "{err}"
        );
        let mut half = log(0, "");
        half.truncate(half.len() - 30);
        let err = from_logs(&[("pod/a".into(), half)]).unwrap_err();
        assert!(err.to_string().contains("cut off"), "{err}");
    }
}
