//! The shared start of agents: a wall-clock T0 in the spec, or a release from agent 0
//! over the network. Kubernetes has no start barrier, so the agents agree on T0 here;
//! one that reaches it later than the tolerance refuses to send its share late.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How the agents agree on the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// A lone generator: start now.
    Now,
    /// At this wall-clock time (clocks must be synchronised, as NTP keeps them).
    At(SystemTime),
    /// On a release from agent 0, reached at this host and port.
    Release((String, u16)),
}

/// The start and its limits.
#[derive(Debug, Clone)]
pub struct StartPlan {
    /// How the start is agreed.
    pub start: Start,
    /// How late an agent may still start.
    pub tolerance: Duration,
    /// How long to wait for the release (agent 0: for every agent to report).
    pub release_timeout: Duration,
}

/// The start this agent will keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreed {
    /// T0 on this machine's clock.
    pub t0: SystemTime,
    /// `at`, `release` or `now`.
    pub how: &'static str,
    /// With a release: agent 0's T0 minus this agent's, in seconds (the clocks' offset
    /// plus the release's one-way delay). 0 otherwise.
    pub offset_s: f64,
}

/// Why an agent does not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// It reached the start too late.
    #[error("agent {index} of {of} reached the start {late:.3} s after T0 {t0} (tolerance {tolerance:.3} s): it does not send its share late; rerun all agents with a later --start-at")]
    Late {
        /// Which agent.
        index: usize,
        /// Of how many.
        of: usize,
        /// T0, RFC 3339.
        t0: String,
        /// Seconds late.
        late: f64,
        /// Seconds allowed.
        tolerance: f64,
    },
    /// The release did not come.
    #[error("agent {index} of {of}: {why}")]
    Release {
        /// Which agent.
        index: usize,
        /// Of how many.
        of: usize,
        /// What happened.
        why: String,
    },
}

/// Lead from the release to T0: time for the message to reach every agent and for each
/// to build its connections' TLS configuration and threads.
pub const RELEASE_LEAD: Duration = Duration::from_secs(1);

/// Protocol line an agent sends to agent 0.
const HELLO: &str = "h2lab-release/1 agent";

/// Parses `--start-at`: RFC 3339 or Unix seconds with an optional fraction.
pub fn parse_start_at(s: &str) -> Result<SystemTime, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = s
            .parse()
            .map_err(|_| "not a number of Unix seconds".to_string())?;
        return Ok(UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{e}: expected RFC 3339 (2026-12-03T10:00:00Z) or Unix seconds"))
}

/// Seconds since the Unix epoch, for the wire and the record.
pub fn unix_s(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl StartPlan {
    /// Agrees on T0 as agent `index` of `of` (waiting for the release if the run uses
    /// one), then checks this agent is not too late for it.
    pub fn agree(&self, index: usize, of: usize) -> Result<Agreed, StartError> {
        let agreed = match &self.start {
            Start::Now => Agreed {
                t0: SystemTime::now(),
                how: "now",
                offset_s: 0.0,
            },
            Start::At(t0) => Agreed {
                t0: *t0,
                how: "at",
                offset_s: 0.0,
            },
            Start::Release((host, port)) => {
                let release = |why: String| StartError::Release { index, of, why };
                let deadline = Instant::now() + self.release_timeout;
                if index == 0 {
                    serve_release(*port, of, deadline).map_err(release)?
                } else {
                    await_release(host, *port, index, of, deadline).map_err(release)?
                }
            }
        };
        self.check_late(index, of, &agreed, SystemTime::now())?;
        Ok(agreed)
    }

    /// Refuses a start reached more than the tolerance after T0.
    pub fn check_late(
        &self,
        index: usize,
        of: usize,
        agreed: &Agreed,
        now: SystemTime,
    ) -> Result<(), StartError> {
        let late = now.duration_since(agreed.t0).unwrap_or_default();
        if late > self.tolerance {
            return Err(StartError::Late {
                index,
                of,
                t0: crate::cli::agent::rfc3339(agreed.t0),
                late: late.as_secs_f64(),
                tolerance: self.tolerance.as_secs_f64(),
            });
        }
        Ok(())
    }
}

/// Agent 0: waits for the other `of - 1` agents to report, then tells each to start
/// [`RELEASE_LEAD`] from now.
fn serve_release(port: u16, of: usize, deadline: Instant) -> Result<Agreed, String> {
    if of == 1 {
        return Ok(Agreed {
            t0: SystemTime::now() + RELEASE_LEAD,
            how: "release",
            offset_s: 0.0,
        });
    }
    let listener = TcpListener::bind(("0.0.0.0", port))
        .or_else(|_| TcpListener::bind(("::", port)))
        .map_err(|e| format!("cannot listen for the release on port {port}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("release listener: {e}"))?;
    let mut waiting: Vec<Option<TcpStream>> = (0..of).map(|_| None).collect();
    while waiting.iter().skip(1).any(Option::is_none) {
        if Instant::now() >= deadline {
            let missing: Vec<String> = (1..of)
                .filter(|&i| waiting[i].is_none())
                .map(|i| i.to_string())
                .collect();
            return Err(format!(
                "agents {} did not report to the release on port {port} in time: none was started",
                missing.join(", ")
            ));
        }
        match listener.accept() {
            Ok((stream, peer)) => match hello(stream, of) {
                Ok((i, s)) if waiting[i].is_none() => waiting[i] = Some(s),
                Ok((i, _)) => {
                    tracing::warn!(%peer, agent = i, "agent reported twice; the first is kept")
                }
                Err(why) => tracing::warn!(%peer, why, "not an agent of this run"),
            },
            // Nothing yet: poll again shortly (the deadline bounds the wait).
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(format!("release listener: {e}")),
        }
    }
    let t0 = SystemTime::now() + RELEASE_LEAD;
    let go = format!("go {} {:.9}\n", RELEASE_LEAD.as_nanos(), unix_s(t0));
    for s in waiting.iter_mut().flatten() {
        // An agent that went away meanwhile is noticed by its own missing result.
        let _ = s.write_all(go.as_bytes());
        let _ = s.shutdown(Shutdown::Both);
    }
    Ok(Agreed {
        t0,
        how: "release",
        offset_s: 0.0,
    })
}

/// Reads an agent's hello: `h2lab-release/1 agent I of N`.
fn hello(stream: TcpStream, of: usize) -> Result<(usize, TcpStream), String> {
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream.try_clone().map_err(|e| e.to_string())?)
        .take(128)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let rest = line
        .trim()
        .strip_prefix(HELLO)
        .ok_or_else(|| format!("unexpected hello `{}`", line.trim()))?;
    let (i, n) = rest
        .trim()
        .split_once(" of ")
        .ok_or_else(|| format!("unexpected hello `{}`", line.trim()))?;
    let (i, n): (usize, usize) = (
        i.parse().map_err(|_| "bad index".to_string())?,
        n.parse().map_err(|_| "bad count".to_string())?,
    );
    if n != of || i == 0 || i >= of {
        return Err(format!(
            "agent {i} of {n} reported to a release of {of} agents"
        ));
    }
    Ok((i, stream))
}

/// Any other agent: reports to agent 0 (retrying while its pod starts and its DNS name
/// appears) and waits for the release.
fn await_release(
    host: &str,
    port: u16,
    index: usize,
    of: usize,
    deadline: Instant,
) -> Result<Agreed, String> {
    let mut last = String::from("no attempt");
    let stream = loop {
        if Instant::now() >= deadline {
            return Err(format!(
                "no release from agent 0 at {host}:{port} in time (last attempt: {last})"
            ));
        }
        let attempt = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))
            .and_then(|mut a| a.next().ok_or_else(|| format!("{host} has no address")))
            .and_then(|a| {
                TcpStream::connect_timeout(&a, Duration::from_secs(1)).map_err(|e| e.to_string())
            });
        match attempt {
            Ok(s) => break s,
            Err(why) => {
                last = why;
                // Agent 0 may not listen yet: retry shortly (the deadline bounds it).
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    let mut s = stream;
    s.write_all(format!("{HELLO} {index} of {of}\n").as_bytes())
        .map_err(|e| format!("release at {host}:{port}: {e}"))?;
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    s.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(s.take(256))
        .read_line(&mut line)
        .map_err(|e| format!("release at {host}:{port}: {e}"))?;
    let received = SystemTime::now();
    let mut words = line.split_whitespace();
    let (Some("go"), Some(lead), Some(t0)) = (words.next(), words.next(), words.next()) else {
        return Err(format!(
            "the release at {host}:{port} closed without a start (agent 0 gave up, or this agent came after the release)"
        ));
    };
    let lead: u64 = lead
        .parse()
        .map_err(|_| format!("bad release `{}`", line.trim()))?;
    let theirs: f64 = t0
        .parse()
        .map_err(|_| format!("bad release `{}`", line.trim()))?;
    let t0 = received + Duration::from_nanos(lead);
    Ok(Agreed {
        t0,
        how: "release",
        offset_s: theirs - unix_s(t0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_parse_in_both_forms() {
        let t = parse_start_at("1796292000.5").unwrap();
        assert_eq!(unix_s(t), 1_796_292_000.5);
        assert_eq!(
            unix_s(parse_start_at("2026-12-03T10:00:00.5Z").unwrap()),
            1_796_292_000.5
        );
        assert!(parse_start_at("soon").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn an_agent_past_the_tolerance_refuses_to_send() {
        let plan = StartPlan {
            start: Start::At(UNIX_EPOCH + Duration::from_secs(100)),
            tolerance: Duration::from_secs(1),
            release_timeout: Duration::from_secs(1),
        };
        let agreed = Agreed {
            t0: UNIX_EPOCH + Duration::from_secs(100),
            how: "at",
            offset_s: 0.0,
        };
        let at = |s: f64| UNIX_EPOCH + Duration::from_secs_f64(s);
        assert!(plan.check_late(1, 3, &agreed, at(99.0)).is_ok());
        assert!(plan.check_late(1, 3, &agreed, at(100.9)).is_ok());
        let err = plan
            .check_late(1, 3, &agreed, at(102.5))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agent 1 of 3") && err.contains("2.500 s after"),
            "{err}"
        );
    }

    #[test]
    fn agents_start_together_on_agent_zeros_release() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let plan = move |_: usize| StartPlan {
            start: Start::Release(("127.0.0.1".into(), port)),
            tolerance: Duration::from_secs(1),
            release_timeout: Duration::from_secs(20),
        };
        let agents: Vec<_> = (0..3)
            .map(|i| std::thread::spawn(move || plan(i).agree(i, 3)))
            .collect();
        let agreed: Vec<Agreed> = agents
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        for a in &agreed {
            assert_eq!(a.how, "release");
            let apart = (unix_s(a.t0) - unix_s(agreed[0].t0)).abs();
            assert!(apart < 0.2, "{apart}");
            assert!(a.offset_s.abs() < 0.2);
        }
    }

    #[test]
    fn agent_zero_gives_up_naming_the_missing_agents() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let plan = StartPlan {
            start: Start::Release(("127.0.0.1".into(), port)),
            tolerance: Duration::from_secs(1),
            release_timeout: Duration::from_millis(300),
        };
        let err = plan.agree(0, 3).unwrap_err().to_string();
        assert!(err.contains("agents 1, 2 did not report"), "{err}");
    }
}
