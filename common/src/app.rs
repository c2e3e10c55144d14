//! A user's app as a process, as both the lab and the module start it: the placeholders of
//! its command line (`{port}`, `{cert}`, `{key}`, `{ca}`), the readiness check that says it
//! serves (its port accepts, or an HTTP GET gets any status under 500), and the tail of its
//! log for the message when it does not.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::process::{OwnedChild, ProcessError};

/// The placeholders a command line may hold, with what each becomes.
pub const PLACEHOLDERS: [(&str, &str); 4] = [
    ("port", "a free loopback port the app must listen on"),
    ("cert", "the certificate chain PEM of the run's PKI"),
    ("key", "the private key PEM of that certificate"),
    ("ca", "the CA certificate PEM that signed it"),
];

/// Every `{name}` in `text` whose name is made of letters, digits and `_`, with its byte
/// range. Anything else with braces (`{"a": 1}`, `{ }`) is literal text.
pub fn placeholders(text: &str) -> Vec<(Range<usize>, &str)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' {
            let start = i + 1;
            let mut j = start;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > start && j < bytes.len() && bytes[j] == b'}' {
                out.push((i..j + 1, &text[start..j]));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Replaces each placeholder `lookup` knows; the others stay as written (the module
/// replaces `{port}` after the lab has replaced the rest).
pub fn substitute(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (range, name) in placeholders(text) {
        if let Some(value) = lookup(name) {
            out.push_str(&text[last..range.start]);
            out.push_str(&value);
            last = range.end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// How to tell that an app serves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Readiness {
    /// Its port accepts a TCP connection.
    Tcp,
    /// `GET path` over HTTP/1.1 gets a response with a status under 500.
    Http {
        /// Path and query to ask for.
        path: String,
        /// Over TLS (the app terminates TLS itself); the certificate is not checked.
        tls: bool,
    },
}

impl Readiness {
    /// One attempt: `Ok` when the app at `addr` is ready, else what was seen.
    pub fn check(&self, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
        let mut tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
        let (path, tls) = match self {
            Readiness::Tcp => return Ok(()),
            Readiness::Http { path, tls } => (path, *tls),
        };
        tcp.set_read_timeout(Some(timeout))
            .and_then(|()| tcp.set_write_timeout(Some(timeout)))
            .map_err(|e| e.to_string())?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: {addr}\r\nuser-agent: h2lab-readiness\r\nconnection: close\r\n\r\n"
        );
        let head = if tls {
            let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client())
                .map_err(|e| e.to_string())?;
            b.set_verify(openssl::ssl::SslVerifyMode::NONE);
            let mut ssl = b
                .build()
                .configure()
                .map_err(|e| e.to_string())?
                .verify_hostname(false)
                .use_server_name_indication(false)
                .connect("localhost", tcp)
                .map_err(|e| format!("TLS handshake: {e}"))?;
            exchange(&mut ssl, &request)?
        } else {
            exchange(&mut tcp, &request)?
        };
        let status = status_of(&head).ok_or_else(|| format!("not an HTTP response: {head:?}"))?;
        if status < 500 {
            Ok(())
        } else {
            Err(format!("GET {path} answered {status}"))
        }
    }
}

fn exchange(stream: &mut (impl Read + Write), request: &str) -> Result<String, String> {
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    while !got.contains(&b'\n') && got.len() < 4096 {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// The status code of a response's first line (`HTTP/1.x NNN ...`).
fn status_of(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// Waits until `child`'s app at `addr` is ready, failing early when it exits; the errors
/// carry the last lines of `log`.
pub fn wait_ready(
    child: &mut OwnedChild,
    addr: SocketAddr,
    readiness: &Readiness,
    timeout: Duration,
    log: &Path,
) -> Result<(), ProcessError> {
    let start = Instant::now();
    let mut backoff = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_exit_status() {
            return Err(ProcessError::ExitedEarly {
                name: child.name().to_string(),
                status,
                log_hint: tail_hint(log),
            });
        }
        let last = match readiness.check(addr, Duration::from_millis(500)) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if start.elapsed() > timeout {
            return Err(ProcessError::NotReady {
                name: child.name().to_string(),
                waited: start.elapsed(),
                log_hint: format!(" (last check on {addr}: {last}){}", tail_hint(log)),
            });
        }
        // The port is the only signal a foreign program gives; poll it gently.
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(50));
    }
}

/// The last `lines` lines of a log file (at most its last 8 KiB), or "" when unreadable.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(8192)));
    let mut text = String::new();
    let mut bytes = Vec::new();
    if f.read_to_end(&mut bytes).is_ok() {
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// "; last lines of LOG:\n..." for an error message, or where the log is when it is empty.
pub fn tail_hint(log: &Path) -> String {
    let tail = log_tail(log, 12);
    if tail.trim().is_empty() {
        format!(" (its log {} is empty)", log.display())
    } else {
        let indented: Vec<String> = tail.lines().map(|l| format!("  | {l}")).collect();
        format!(
            "; last lines of {}:\n{}",
            log.display(),
            indented.join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_names_in_braces_and_other_braces_are_text() {
        let found: Vec<&str> = placeholders("--port={port} {cert}{key} {\"a\":1} { } {Port}")
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(found, ["port", "cert", "key", "Port"]);
        let s = substitute("-b 127.0.0.1:{port} --ca {ca}", |n| {
            (n == "ca").then(|| "/x/ca.pem".to_string())
        });
        assert_eq!(s, "-b 127.0.0.1:{port} --ca /x/ca.pem");
        assert_eq!(
            substitute(&s, |n| (n == "port").then(|| "8080".into())),
            "-b 127.0.0.1:8080 --ca /x/ca.pem"
        );
    }

    #[test]
    fn status_is_read_from_the_first_line() {
        assert_eq!(status_of("HTTP/1.0 200 OK\r\n"), Some(200));
        assert_eq!(status_of("HTTP/1.1 503 Busy\r\nx: y\r\n"), Some(503));
        assert_eq!(status_of("SSH-2.0-OpenSSH\r\n"), None);
    }

    #[test]
    fn the_tail_is_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        assert_eq!(log_tail(&p, 2), "line 98\nline 99");
        assert!(tail_hint(&p).contains("  | line 99"));
        assert!(tail_hint(&dir.path().join("none")).contains("is empty"));
    }
}
