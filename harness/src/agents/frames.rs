//! An agent's files on its standard output, framed so that they survive `kubectl logs`
//! amid whatever else the container prints, and are read back exactly (each frame says
//! its length, so a cut-off log is noticed rather than half-merged).

use std::path::{Path, PathBuf};

const MARK: &str = "==h2lab-agent==";

/// Files an agent leaves: what `h2lab merge` reads from each agent's directory.
pub const FILES: [&str; 2] = ["result.json", "latency.hlog"];

/// One framed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The agent that wrote it.
    pub agent: usize,
    /// Of how many.
    pub of: usize,
    /// Its name (`result.json`, `latency.hlog`).
    pub file: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Frames `bytes` as agent `agent` of `of`'s file `file`.
pub fn frame(agent: usize, of: usize, file: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{MARK} begin agent={agent} of={of} file={file} bytes={}\n",
        bytes.len()
    )
    .into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(format!("\n{MARK} end agent={agent} file={file}\n").as_bytes());
    out
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Every frame in a log, in order. `what` names the log in errors.
pub fn parse(log: &[u8], what: &str) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    let mut at = 0;
    let begin = format!("{MARK} begin ");
    while let Some(found) = find(&log[at..], begin.as_bytes()) {
        let start = at + found;
        let line_end = start
            + find(&log[start..], b"\n")
                .ok_or_else(|| format!("{what}: a frame header is cut off"))?;
        let line = String::from_utf8_lossy(&log[start..line_end]).into_owned();
        let bad = || format!("{what}: bad frame header `{line}`");
        let agent: usize = field(&line, "agent")
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?;
        let of: usize = field(&line, "of")
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?;
        let file = field(&line, "file").ok_or_else(bad)?.to_string();
        let len: usize = field(&line, "bytes")
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?;
        let body = line_end + 1;
        let end_line = format!("\n{MARK} end agent={agent} file={file}");
        if log.len() < body + len || !log[body + len..].starts_with(end_line.as_bytes()) {
            return Err(format!(
                "{what}: agent {agent}'s {file} is cut off or garbled (the log holds less than its {len} bytes): collect from a shared volume for long runs"
            ));
        }
        frames.push(Frame {
            agent,
            of,
            file,
            bytes: log[body..body + len].to_vec(),
        });
        at = body + len + end_line.len();
    }
    Ok(frames)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The directory an agent's files go to under a shared results directory.
pub fn agent_dir(root: &Path, agent: usize) -> PathBuf {
    root.join(format!("agent-{agent}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_surrounding_output_and_a_cut_is_noticed() {
        let mut log = b"summary: 1000 requests\n".to_vec();
        log.extend(frame(1, 3, "result.json", b"{\"a\": 1}"));
        log.extend(b"noise\n");
        log.extend(frame(1, 3, "latency.hlog", b"#[StartTime: 1]\nline\n"));
        let frames = parse(&log, "pod-1").unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].bytes, b"{\"a\": 1}");
        assert_eq!((frames[1].agent, frames[1].of), (1, 3));
        assert_eq!(frames[1].bytes, b"#[StartTime: 1]\nline\n");
        let cut = &log[..log.len() - 30];
        let err = parse(cut, "pod-1").unwrap_err();
        assert!(
            err.contains("pod-1: agent 1's latency.hlog is cut off"),
            "{err}"
        );
    }
}
