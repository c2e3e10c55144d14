//! Starts, watches and restarts the out-of-process app, as the ASP.NET Core Module does:
//! a free loopback port and a pairing token per start, a start-up time limit, restarts with
//! backoff, and a "rapid fails per minute" limit after which it stops restarting for the
//! rest of the minute. The app runs in a process group of its own, so everything it
//! starts goes with it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use h2lab_common::app::{substitute, tail_hint, Readiness};
use h2lab_common::launch::ListeningEvent;
use http::HeaderValue;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::contract::ModuleContract;

/// How the module knows the app serves.
#[derive(Debug, Clone)]
pub enum AppReady {
    /// The app prints sut's `listening` line (the built-in `sut app`).
    ListeningLine,
    /// The module checks the app's port (any other program).
    Probe(Readiness),
}

/// How to run the app process.
#[derive(Debug, Clone)]
pub struct AppProcessOptions {
    /// Executable (this very `sut` binary, or `--app-command`'s program).
    pub exe: PathBuf,
    /// Arguments; `{port}` becomes the port of each start.
    pub args: Vec<String>,
    /// Extra environment variables for the app; `{port}` in values is replaced too.
    pub env: Vec<(String, String)>,
    /// Working directory of the app.
    pub cwd: Option<PathBuf>,
    /// File that receives the app's stdout and stderr; else they go to our stderr.
    pub log: Option<PathBuf>,
    /// Time allowed from spawn to readiness.
    pub startup_timeout: Duration,
    /// Longest wait between restarts.
    pub max_backoff: Duration,
    /// Names of the port, token and path base variables and of the token header.
    pub contract: ModuleContract,
    /// A further variable that receives the port.
    pub port_env: Option<String>,
    /// The path base the app is served under (told to it under the ANCM contract).
    pub path_base: Option<String>,
    /// How readiness is seen.
    pub ready: AppReady,
    /// Failures within a minute after which no restart is tried for the rest of it.
    pub rapid_fails_per_minute: u32,
}

/// Where the running app can be reached.
#[derive(Debug)]
pub struct Endpoint {
    /// Its loopback address.
    pub addr: SocketAddr,
    /// The pairing token it expects.
    pub token: HeaderValue,
    /// Its process id.
    pub pid: u32,
}

#[derive(Debug, Clone)]
enum Phase {
    NotStarted,
    Starting,
    Up(Arc<Endpoint>),
    Down { reason: String, retry_in: Duration },
    GaveUp { reason: String, until: Instant },
    Stopped,
}

/// Why no app endpoint can be given.
#[derive(Debug)]
pub enum Unavailable {
    /// The app exited or failed to start and waits for its restart.
    Down(String),
    /// The app failed too often: no restart until the minute is over.
    GaveUp(String),
    /// The app did not come up in time.
    StartTimeout(Duration),
    /// The host is shutting down.
    Stopping,
}

/// Owns the app process for the whole host.
pub struct Supervisor {
    opts: AppProcessOptions,
    phase: watch::Sender<Phase>,
    started: AtomicBool,
    control: tokio::runtime::Handle,
    shutdown: CancellationToken,
}

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).expect("OpenSSL random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const MINUTE: Duration = Duration::from_secs(60);

impl Supervisor {
    /// A supervisor whose tasks (and child processes) live on `control`, a runtime on a
    /// thread that lasts as long as the host (the parent-death signal is per thread).
    pub fn new(
        opts: AppProcessOptions,
        control: tokio::runtime::Handle,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Supervisor {
            opts,
            phase: watch::Sender::new(Phase::NotStarted),
            started: AtomicBool::new(false),
            control,
            shutdown,
        })
    }

    /// The header and contract the forwarded requests carry.
    pub fn contract(&self) -> ModuleContract {
        self.opts.contract
    }

    /// Starts the app now instead of on the first request. Returns the task to await at
    /// shutdown (it stops the app).
    pub fn start(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if self.started.swap(true, Ordering::AcqRel) {
            return None;
        }
        let this = self.clone();
        Some(self.control.spawn(async move { this.run().await }))
    }

    /// Waits until the app is up, starting it if needed.
    pub async fn endpoint(self: &Arc<Self>) -> Result<Arc<Endpoint>, Unavailable> {
        let mut rx = self.phase.subscribe();
        let deadline = tokio::time::Instant::now() + self.opts.startup_timeout;
        loop {
            let phase = rx.borrow_and_update().clone();
            match phase {
                Phase::Up(ep) => return Ok(ep),
                Phase::Down { reason, retry_in } => {
                    return Err(Unavailable::Down(format!(
                        "{reason}; next start in {retry_in:?}"
                    )))
                }
                Phase::GaveUp { reason, until } => {
                    let left = until.saturating_duration_since(Instant::now());
                    return Err(Unavailable::GaveUp(format!(
                        "{reason}; not restarting for {} s",
                        left.as_secs() + 1
                    )));
                }
                Phase::Stopped => return Err(Unavailable::Stopping),
                Phase::NotStarted => {
                    if let Some(task) = self.start() {
                        // Nobody awaits this task but shutdown, which waits on Stopped.
                        drop(task);
                    }
                }
                Phase::Starting => {}
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Unavailable::Stopping),
                Err(_) => return Err(Unavailable::StartTimeout(self.opts.startup_timeout)),
            }
        }
    }

    /// Starts the app and waits for the outcome of its first start: `Err` says why it did
    /// not come up, with the last lines of its log.
    pub async fn first_start(self: &Arc<Self>) -> Result<(), String> {
        self.start();
        let mut rx = self.phase.subscribe();
        let outcome = rx
            .wait_for(|p| !matches!(p, Phase::NotStarted | Phase::Starting))
            .await
            .map(|p| p.clone());
        match outcome {
            Ok(Phase::Up(_)) => Ok(()),
            Ok(Phase::Down { reason, .. } | Phase::GaveUp { reason, .. }) => Err(format!(
                "the app did not start: {reason}{}",
                self.opts.log.as_deref().map(tail_hint).unwrap_or_default()
            )),
            _ => Err("the host stopped before the app started".into()),
        }
    }

    /// Waits until the supervisor has stopped the app (after shutdown was requested).
    pub async fn stopped(&self) {
        if !self.started.load(Ordering::Acquire) {
            return;
        }
        let mut rx = self.phase.subscribe();
        let _ = rx.wait_for(|p| matches!(p, Phase::Stopped)).await;
    }

    async fn run(self: Arc<Self>) {
        let mut failures: u32 = 0;
        let mut recent: VecDeque<Instant> = VecDeque::new();
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            self.phase.send_replace(Phase::Starting);
            let reason = match self.start_once().await {
                Ok((mut child, endpoint)) => {
                    tracing::info!(pid = endpoint.pid, addr = %endpoint.addr, "app process is up");
                    let pid = endpoint.pid;
                    self.phase.send_replace(Phase::Up(endpoint));
                    let up_since = Instant::now();
                    let status = tokio::select! {
                        status = child.wait() => status,
                        _ = self.shutdown.cancelled() => {
                            stop_group(&mut child, pid).await;
                            break;
                        }
                    };
                    // What the app started dies with it, as under the module.
                    kill_group(pid, Signal::SIGKILL);
                    if up_since.elapsed() > Duration::from_secs(10) {
                        failures = 0;
                    }
                    let reason = match status {
                        Ok(s) => format!("app process exited with {s}"),
                        Err(e) => format!("waiting for the app process failed: {e}"),
                    };
                    tracing::warn!(%reason, "app process is gone");
                    reason
                }
                Err(e) => {
                    tracing::warn!(error = %e, "app process failed to start");
                    e
                }
            };
            let now = Instant::now();
            recent.push_back(now);
            while recent
                .front()
                .is_some_and(|t| now.duration_since(*t) > MINUTE)
            {
                recent.pop_front();
            }
            let limit = self.opts.rapid_fails_per_minute;
            let pause = if recent.len() > limit as usize {
                let until = recent.front().copied().unwrap_or(now) + MINUTE;
                let reason = format!(
                    "app process failed {} times within a minute (--rapid-fails-per-minute {limit}); last failure: {reason}",
                    recent.len()
                );
                tracing::error!(%reason, "not restarting for the rest of the minute");
                self.phase.send_replace(Phase::GaveUp { reason, until });
                recent.clear();
                failures = 0;
                until.saturating_duration_since(now)
            } else {
                failures += 1;
                let backoff = (Duration::from_millis(100) * 2u32.pow(failures.min(16) - 1))
                    .min(self.opts.max_backoff);
                self.phase.send_replace(Phase::Down {
                    reason,
                    retry_in: backoff,
                });
                backoff
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.shutdown.cancelled() => break,
            }
        }
        self.phase.send_replace(Phase::Stopped);
    }

    fn command(&self, port: u16, token: &str) -> std::process::Command {
        let o = &self.opts;
        let port_s = port.to_string();
        let put_port = |s: &str| substitute(s, |n| (n == "port").then(|| port_s.clone()));
        let mut cmd = std::process::Command::new(&o.exe);
        cmd.args(o.args.iter().map(|a| put_port(a)))
            .envs(o.contract.env(port, token, o.path_base.as_deref()))
            .envs(o.port_env.iter().map(|name| (name.clone(), port_s.clone())))
            .envs(o.env.iter().map(|(k, v)| (k.clone(), put_port(v))))
            .stdin(Stdio::null());
        if let Some(dir) = &o.cwd {
            cmd.current_dir(dir);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        h2lab_common::process::set_parent_death_signal(&mut cmd);
        cmd
    }

    async fn start_once(&self) -> Result<(tokio::process::Child, Arc<Endpoint>), String> {
        let port =
            h2lab_common::launch::free_loopback_port().map_err(|e| format!("no free port: {e}"))?;
        let token = random_token();
        let mut cmd = self.command(port, &token);
        let log = match &self.opts.log {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open app log {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let to_log = || -> Result<Stdio, String> {
            match &log {
                Some(f) => Ok(f.try_clone().map_err(|e| e.to_string())?.into()),
                None => Ok(Stdio::inherit()),
            }
        };
        cmd.stderr(to_log()?);
        let line_ready = matches!(self.opts.ready, AppReady::ListeningLine);
        cmd.stdout(if line_ready {
            Stdio::piped()
        } else {
            to_log()?
        });
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.opts.exe.display()))?;
        let pid = child.id().unwrap_or(0);
        let ready = match &self.opts.ready {
            AppReady::ListeningLine => self.listening_line(&mut child, log).await,
            AppReady::Probe(r) => {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                self.probe(&mut child, addr, r).await
            }
        };
        match ready {
            Ok(addr) => {
                let endpoint = Endpoint {
                    addr,
                    token: HeaderValue::from_str(&token).expect("hex is a valid header"),
                    pid,
                };
                Ok((child, Arc::new(endpoint)))
            }
            Err(e) => {
                kill_group(pid, Signal::SIGKILL);
                let _ = child.wait().await;
                Err(e)
            }
        }
    }

    /// Reads the built-in app's `listening` line, then keeps its stdout flowing to `log`.
    async fn listening_line(
        &self,
        child: &mut tokio::process::Child,
        log: Option<std::fs::File>,
    ) -> Result<SocketAddr, String> {
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(self.opts.startup_timeout, lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = child
                    .wait()
                    .await
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                return Err(format!("app process exited before listening ({status})"));
            }
            Err(_) => {
                return Err(format!(
                    "app process did not listen within {:?}",
                    self.opts.startup_timeout
                ));
            }
        };
        let event: ListeningEvent = serde_json::from_str(&line)
            .map_err(|e| format!("app printed {line:?} instead of its listening line: {e}"))?;
        // Keep draining the app's stdout into the log so its pipe never fills.
        let mut sink: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match log {
            Some(f) => Box::new(tokio::fs::File::from_std(f)),
            None => Box::new(tokio::io::stderr()),
        };
        tokio::spawn(async move {
            let _ = sink.write_all(format!("{line}\n").as_bytes()).await;
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = sink.write_all(format!("{l}\n").as_bytes()).await;
            }
            let _ = sink.flush().await;
        });
        Ok(event.addr)
    }

    /// Checks a foreign app's port until it is ready, it exits, or the time is up.
    async fn probe(
        &self,
        child: &mut tokio::process::Child,
        addr: SocketAddr,
        readiness: &Readiness,
    ) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + self.opts.startup_timeout;
        let mut backoff = Duration::from_millis(2);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "app process exited with {status} before it was ready"
                ));
            }
            let r = readiness.clone();
            let check =
                tokio::task::spawn_blocking(move || r.check(addr, Duration::from_millis(500)))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
            let last = match check {
                Ok(()) => return Ok(addr),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                return Err(format!(
                    "app process was not ready on {addr} within {:?} (last check: {last})",
                    self.opts.startup_timeout
                ));
            }
            // A foreign program signals nothing but its port: poll it gently.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }
}

fn kill_group(pid: u32, signal: Signal) {
    if pid != 0 {
        let _ = killpg(Pid::from_raw(pid as i32), signal);
    }
}

/// SIGTERM to the app's group, five seconds to exit, then SIGKILL to whatever is left.
async fn stop_group(child: &mut tokio::process::Child, pid: u32) {
    kill_group(pid, Signal::SIGTERM);
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    kill_group(pid, Signal::SIGKILL);
}
