//! Starts, watches and restarts the out-of-process app.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{APP_PORT_ENV, PAIRING_TOKEN_ENV};
use h2lab_common::launch::ListeningEvent;

/// How to run the app process.
#[derive(Debug, Clone)]
pub struct AppProcessOptions {
    /// Executable (normally this very `sut` binary).
    pub exe: PathBuf,
    /// Arguments (normally `app` and its options).
    pub args: Vec<String>,
    /// Extra environment variables for the app.
    pub env: Vec<(String, String)>,
    /// File that receives the app's stdout and stderr; else they go to our stderr.
    pub log: Option<PathBuf>,
    /// Time allowed from spawn to the app's `listening` line.
    pub startup_timeout: Duration,
    /// Longest wait between restarts.
    pub max_backoff: Duration,
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
    Down(String),
    Stopped,
}

/// Why no app endpoint can be given.
#[derive(Debug)]
pub enum Unavailable {
    /// The app exited or failed to start and waits for its restart.
    Down(String),
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
                Phase::Down(reason) => return Err(Unavailable::Down(reason)),
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
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            self.phase.send_replace(Phase::Starting);
            let reason = match self.start_once().await {
                Ok((mut child, endpoint)) => {
                    tracing::info!(pid = endpoint.pid, addr = %endpoint.addr, "app process is up");
                    self.phase.send_replace(Phase::Up(endpoint));
                    let up_since = Instant::now();
                    let status = tokio::select! {
                        status = child.wait() => status,
                        _ = self.shutdown.cancelled() => {
                            stop_child(&mut child).await;
                            break;
                        }
                    };
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
            failures += 1;
            let backoff = (Duration::from_millis(100) * 2u32.pow(failures.min(16) - 1))
                .min(self.opts.max_backoff);
            self.phase
                .send_replace(Phase::Down(format!("{reason}; next start in {backoff:?}")));
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.shutdown.cancelled() => break,
            }
        }
        self.phase.send_replace(Phase::Stopped);
    }

    async fn start_once(&self) -> Result<(tokio::process::Child, Arc<Endpoint>), String> {
        let port =
            h2lab_common::launch::free_loopback_port().map_err(|e| format!("no free port: {e}"))?;
        let token = random_token();
        let mut cmd = std::process::Command::new(&self.opts.exe);
        cmd.args(&self.opts.args)
            .env(APP_PORT_ENV, port.to_string())
            .env(PAIRING_TOKEN_ENV, &token)
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
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
        match &log {
            Some(f) => cmd.stderr(f.try_clone().map_err(|e| e.to_string())?),
            None => cmd.stderr(Stdio::inherit()),
        };
        h2lab_common::process::set_parent_death_signal(&mut cmd);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.opts.exe.display()))?;
        let pid = child.id().unwrap_or(0);
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
                let _ = child.start_kill();
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
        let endpoint = Endpoint {
            addr: event.addr,
            token: HeaderValue::from_str(&token).expect("hex is a valid header"),
            pid,
        };
        Ok((child, Arc::new(endpoint)))
    }
}

async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}
