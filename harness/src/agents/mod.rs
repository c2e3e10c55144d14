//! Load from more than one generator: agents that split the open-loop schedule exactly
//! (each sends its stripe of the global indices at their global times), agree on a shared
//! start, and leave results that merge exactly (histograms summed bucket by bucket per
//! interval index). They run as a Kubernetes Indexed Job (`k8s`), with no cluster
//! manager of the lab's own.
//!
//! The split itself lives in the load engine (`load::schedule::Stripe`,
//! `model::AgentShare`); this module holds what surrounds it.

pub mod frames;
pub mod k8s;
pub mod merge;
pub mod start;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::load::RunOutput;
use crate::model::result::AgentRecord;
use crate::model::{AgentShare, ResultV1};

/// Exit code of an agent that does not send because it could not keep the shared start
/// (late past the tolerance, or no release came).
pub const LATE_EXIT: u8 = 3;

/// What an agent records about its part and its start; `reached` is when it was ready
/// to send.
pub fn record(share: &AgentShare, agreed: &start::Agreed, reached: SystemTime) -> AgentRecord {
    let late_s = match reached.duration_since(agreed.t0) {
        Ok(late) => late.as_secs_f64(),
        Err(early) => -early.duration().as_secs_f64(),
    };
    AgentRecord {
        index: share.index,
        of: share.of(),
        weights: share.weights.clone(),
        t0: humantime::format_rfc3339_nanos(agreed.t0).to_string(),
        t0_unix_s: start::unix_s(agreed.t0),
        start: agreed.how.to_string(),
        late_s,
        offset_s: agreed.offset_s,
        // A pod's HOSTNAME is its name: which pod (and so which node) sent this share.
        host: std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
    }
}

/// The agent's files, named as [`frames::FILES`]: result.json and latency.hlog.
pub fn files(result: &ResultV1, run: &RunOutput) -> std::io::Result<Vec<(&'static str, Vec<u8>)>> {
    let mut json = serde_json::to_vec_pretty(result).map_err(std::io::Error::other)?;
    json.push(b'\n');
    let hlog = crate::record::hlog::render(run.started, &run.intervals)?;
    Ok(vec![(frames::FILES[0], json), (frames::FILES[1], hlog)])
}

/// Prints the files framed on standard output, for `kubectl logs`.
pub fn print_frames(share: &AgentShare, files: &[(&str, Vec<u8>)]) {
    let mut out = std::io::stdout().lock();
    for (name, bytes) in files {
        let _ = out.write_all(&frames::frame(share.index, share.of(), name, bytes));
    }
    let _ = out.flush();
}

/// Writes the files into `root/agent-I` (a volume every agent shares).
pub fn write_files(
    root: &Path,
    share: &AgentShare,
    files: &[(&str, Vec<u8>)],
) -> std::io::Result<()> {
    let dir = frames::agent_dir(root, share.index);
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in files {
        crate::output::atomic_write(&dir.join(name), |w| w.write_all(bytes))?;
    }
    Ok(())
}

/// The agents' files under `dirs`: each a directory of one agent, or of several
/// (`agent-I` inside).
pub fn read_dirs(dirs: &[PathBuf]) -> Result<Vec<merge::AgentFiles>, String> {
    let mut out = Vec::new();
    for dir in dirs {
        if dir.join(frames::FILES[0]).exists() {
            out.push(read_agent_dir(dir)?);
            continue;
        }
        let mut inner: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("agent-"))
            })
            .collect();
        if inner.is_empty() {
            return Err(format!(
                "{}: neither an agent's directory (no {}) nor one of agent-I directories",
                dir.display(),
                frames::FILES[0]
            ));
        }
        inner.sort();
        for d in inner {
            out.push(read_agent_dir(&d)?);
        }
    }
    Ok(out)
}

fn read_agent_dir(dir: &Path) -> Result<merge::AgentFiles, String> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    Ok(merge::AgentFiles {
        source: dir.display().to_string(),
        result: read(frames::FILES[0])?,
        hlog: read(frames::FILES[1])?,
    })
}
