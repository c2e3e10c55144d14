//! Child processes with an owner: each runs in its own process group, gets SIGTERM when
//! the thread that started it dies, and is stopped and reaped (group included) when its
//! owner drops it. This is how the lab guarantees that no server outlives a test or a run.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Errors starting or waiting for a child process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started at all.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The child exited before it signalled readiness.
    #[error("{name} exited with {status} before it was ready{log_hint}")]
    ExitedEarly {
        /// Which child.
        name: String,
        /// Its exit status.
        status: ExitStatus,
        /// Where to look for its log, if any.
        log_hint: String,
    },
    /// The child did not signal readiness in time.
    #[error("{name} was not ready after {waited:?}{log_hint}")]
    NotReady {
        /// Which child.
        name: String,
        /// How long we waited.
        waited: Duration,
        /// Where to look for its log, if any.
        log_hint: String,
    },
    /// The readiness line was not what was expected.
    #[error("{name} printed an unexpected readiness line {line:?}: {reason}")]
    BadReadiness {
        /// Which child.
        name: String,
        /// The line it printed.
        line: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// A running child process that is stopped (with its whole process group) on drop.
#[derive(Debug)]
pub struct OwnedChild {
    child: Child,
    name: String,
    stopped: Option<ExitStatus>,
}

impl OwnedChild {
    /// Starts `cmd` in a new process group, with SIGTERM as its parent-death signal.
    ///
    /// The death signal is tied to the *thread* that spawns, so spawn from a thread that
    /// lives as long as the child should (a test thread, the main thread of a run).
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<OwnedChild, ProcessError> {
        cmd.process_group(0);
        set_parent_death_signal(cmd);
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            program: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        tracing::debug!(name, pid = child.id(), "child started");
        Ok(OwnedChild {
            child,
            name: name.to_string(),
            stopped: None,
        })
    }

    /// The child's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name given at spawn, used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the child's stdout pipe, if it was piped and not taken yet.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Returns the exit status if the child has exited, without blocking.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if let Some(s) = self.stopped {
            return Some(s);
        }
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` to the child's whole process group.
    pub fn signal_group(&self, signal: Signal) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), signal);
    }

    /// Stops the child: SIGTERM to its group, up to `grace` for it to exit, then SIGKILL.
    /// Any process left in the group afterwards is killed too. Returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> ExitStatus {
        if let Some(s) = self.stopped {
            return s;
        }
        self.signal_group(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    tracing::warn!(name = %self.name, "did not stop on SIGTERM, killing");
                    self.signal_group(Signal::SIGKILL);
                    break self.child.wait().expect("wait on a killed child");
                }
            }
        };
        // Workers of a master process (nginx, Apache, hypercorn) may outlive it for a
        // moment: kill them, and give the kernel a moment to finish them off, so that
        // what is still in the group afterwards really is a leftover.
        self.signal_group(Signal::SIGKILL);
        let pgid = self.child.id();
        let deadline = Instant::now() + Duration::from_secs(1);
        while !group_members(pgid).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stopped = Some(status);
        tracing::debug!(name = %self.name, %status, "child stopped");
        status
    }

    /// Waits (up to `timeout`) for the first line on the child's stdout, then keeps
    /// copying the rest of stdout into `sink` (or discards it) so the pipe never fills.
    pub fn wait_first_line(
        &mut self,
        timeout: Duration,
        mut sink: Option<std::fs::File>,
        log_hint: &str,
    ) -> Result<String, ProcessError> {
        let stdout = self
            .take_stdout()
            .expect("wait_first_line needs a piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let got = reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false);
            let _ = tx.send(got.then(|| line.clone()));
            if let Some(f) = sink.as_mut() {
                let _ = f.write_all(line.as_bytes());
            }
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Some(f) = sink.as_mut() {
                    let _ = f.write_all(&buf[..n]);
                }
            }
        });
        let start = Instant::now();
        match rx.recv_timeout(timeout) {
            Ok(Some(line)) => Ok(line.trim_end().to_string()),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self
                    .child
                    .wait()
                    .expect("wait on a child whose stdout closed");
                self.stopped = Some(status);
                Err(ProcessError::ExitedEarly {
                    name: self.name.clone(),
                    status,
                    log_hint: log_hint.to_string(),
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ProcessError::NotReady {
                name: self.name.clone(),
                waited: start.elapsed(),
                log_hint: log_hint.to_string(),
            }),
        }
    }
}

impl Drop for OwnedChild {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Processes still alive in process group `pgid` (zombies excluded), as "pid name".
pub fn group_members(pgid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (name, rest) = stat.rsplit_once(')')?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            // Fields after the name: state, ppid, pgrp.
            let alive = f.first().is_some_and(|s| *s != "Z" && *s != "X");
            (alive && f.get(2)?.parse::<u32>().ok()? == pgid).then(|| {
                format!(
                    "{} {}",
                    e.file_name().to_string_lossy(),
                    name.split_once('(').map_or("", |(_, n)| n)
                )
            })
        })
        .collect()
}

/// Live processes whose environment holds `key=value`, as (pid, name, process group): how a launch
/// finds processes that left their process group (environment is inherited, groups are
/// not).
pub fn marked(key: &str, value: &str) -> Vec<(u32, String, u32)> {
    let needle = format!("{key}={value}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            if pid == std::process::id() {
                return None;
            }
            let env = std::fs::read(e.path().join("environ")).ok()?;
            if !env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                return None;
            }
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (name, rest) = stat.rsplit_once(')')?;
            // Fields after the name: state, ppid, pgrp.
            let f: Vec<&str> = rest.split_whitespace().collect();
            let alive = f.first().is_some_and(|s| *s != "Z" && *s != "X");
            let pgid: u32 = f.get(2)?.parse().ok()?;
            alive.then(|| {
                let name = name.split_once('(').map_or("", |(_, n)| n).to_string();
                (pid, name, pgid)
            })
        })
        .collect()
}

/// Sends SIGKILL to one process.
pub fn kill(pid: u32) {
    let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
}

/// Formats a " (see LOG)" hint for error messages.
pub fn log_hint(log: Option<&Path>) -> String {
    match log {
        Some(p) => format!(" (see {})", p.display()),
        None => String::new(),
    }
}

/// Makes the command's process receive SIGTERM when the thread that spawns it exits, so a
/// crashed or killed owner leaves no orphan behind.
#[allow(unsafe_code)]
pub fn set_parent_death_signal(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    #[test]
    fn drop_kills_the_whole_process_group() {
        // A shell that starts a grandchild and reports its pid, then waits forever.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 1000 & echo $!; wait"])
            .stdout(Stdio::piped());
        let mut child = OwnedChild::spawn("sh", &mut cmd).unwrap();
        let grandchild: i32 = child
            .wait_first_line(Duration::from_secs(10), None, "")
            .unwrap()
            .parse()
            .unwrap();
        assert!(Path::new(&format!("/proc/{grandchild}")).exists());
        drop(child);
        // The grandchild was in the group: it is gone, or a zombie awaiting init. The
        // SIGKILL is sent but a non-child's exit cannot be awaited, so its state is read
        // until it has died (it may still be running for a moment on another core).
        let dead = |stat: &str| stat.is_empty() || stat.contains(" Z ");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let stat = loop {
            let stat =
                std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
            if dead(&stat) || std::time::Instant::now() > deadline {
                break stat;
            }
            std::thread::yield_now();
        };
        assert!(dead(&stat), "grandchild alive after 5 s: {stat}");
    }

    #[test]
    fn early_exit_is_reported_with_status() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]).stdout(Stdio::piped());
        let mut child = OwnedChild::spawn("sh", &mut cmd).unwrap();
        let err = child
            .wait_first_line(Duration::from_secs(10), None, "")
            .unwrap_err();
        assert!(matches!(err, ProcessError::ExitedEarly { .. }), "{err}");
        assert!(err.to_string().contains("exit status: 3"), "{err}");
    }
}
