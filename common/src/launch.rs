//! Starts servers under test and waits until they are ready: the `sut` binary (which prints
//! one JSON `listening` line once bound) and real nginx, Apache and HAProxy (rendered from
//! `servers-under-test/templates/`, run as a child from a private directory, ready once
//! their port accepts connections). Every server is an [`OwnedChild`]: dropped, it is gone.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{log_hint, OwnedChild, ProcessError};
use crate::template;

/// Errors launching a server under test.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The child process failed to start or to become ready.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A real proxy's binary is not on this machine.
    #[error("{name} is not installed (install hint: {hint})")]
    NotInstalled {
        /// The proxy's name.
        name: &'static str,
        /// The command that installs it.
        hint: &'static str,
    },
    /// The `sut` binary could not be found.
    #[error("cannot find the sut binary (looked at {looked}); build it with `cargo build -p sut` or set H2LAB_SUT_BIN")]
    SutNotFound {
        /// Where we looked.
        looked: String,
    },
    /// Preparing files for the server failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A configuration template could not be rendered.
    #[error("template {name}: {reason}")]
    Template {
        /// Which template.
        name: &'static str,
        /// What was wrong.
        reason: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Io { what, source }
}

/// A server under test that is up: where it listens, and the process that owns it.
#[derive(Debug)]
pub struct RunningServer {
    /// The address it actually bound.
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: String,
    /// The server process; dropping it stops the server.
    pub child: OwnedChild,
    /// Where its log goes, if anywhere.
    pub log: Option<PathBuf>,
    /// Private directory holding its configuration (real proxies); removed on drop.
    pub dir: Option<tempfile::TempDir>,
}

impl RunningServer {
    /// The base URL, e.g. `https://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stops the server and waits for it (and its process group) to be gone.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.child.stop(Duration::from_secs(5))
    }
}

/// The readiness line every `sut` subcommand prints once bound.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ListeningEvent {
    /// Always `listening`.
    pub event: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: String,
}

/// Finds the `sut` binary: `$H2LAB_SUT_BIN`, else next to the running executable (or its
/// parent directory, which is where cargo puts binaries when a test runs from `deps/`).
pub fn locate_sut() -> Result<PathBuf, LaunchError> {
    if let Some(p) = std::env::var_os("H2LAB_SUT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(io_err("current_exe"))?;
    let mut looked = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("sut");
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    Err(LaunchError::SutNotFound {
        looked: looked.join(", "),
    })
}

/// Starts `sut ARGS...` and waits for its `listening` line.
pub fn start_sut(
    bin: &Path,
    args: &[String],
    env: &[(String, String)],
    log: Option<&Path>,
    timeout: Duration,
) -> Result<RunningServer, LaunchError> {
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped());
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.stderr(child_stderr(log)?);
    let name = format!("sut {}", args.first().map(String::as_str).unwrap_or(""));
    let mut child = OwnedChild::spawn(&name, &mut cmd)?;
    let hint = log_hint(log);
    let line = child.wait_first_line(timeout, None, &hint)?;
    let event: ListeningEvent =
        serde_json::from_str(&line).map_err(|e| ProcessError::BadReadiness {
            name: name.clone(),
            line: line.clone(),
            reason: e.to_string(),
        })?;
    if event.event != "listening" {
        return Err(ProcessError::BadReadiness {
            name,
            line,
            reason: "expected event `listening`".into(),
        }
        .into());
    }
    Ok(RunningServer {
        addr: event.addr,
        scheme: event.scheme,
        child,
        log: log.map(Path::to_path_buf),
        dir: None,
    })
}

fn child_stderr(log: Option<&Path>) -> Result<Stdio, LaunchError> {
    match log {
        Some(p) => Ok(std::fs::File::create(p)
            .map_err(io_err(format!("create log {}", p.display())))?
            .into()),
        None if std::env::var_os("H2LAB_CHILD_LOGS").is_some() => Ok(Stdio::inherit()),
        None => Ok(Stdio::null()),
    }
}

/// A real reverse proxy the lab can put in front of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyKind {
    /// nginx (Debian package `nginx-light` or `nginx`).
    Nginx,
    /// Apache httpd 2.4 with mod_ssl, mod_http2 and mod_proxy.
    Apache,
    /// HAProxy.
    Haproxy,
}

/// What a real proxy is put in front of, and how.
#[derive(Debug, Clone)]
pub struct ProxySpec {
    /// Which proxy.
    pub kind: ProxyKind,
    /// The backend (a `sut app` or `sut edge` on cleartext).
    pub backend: SocketAddr,
    /// Speak HTTP/2 (h2c) to the backend instead of HTTP/1.1 (Apache and HAProxy only).
    pub backend_h2: bool,
    /// Certificate chain PEM for the edge.
    pub chain: PathBuf,
    /// Private key PEM for the edge.
    pub key: PathBuf,
    /// Worker processes (nginx, Apache) or threads (HAProxy).
    pub workers: u32,
    /// TLS at the edge: versions, suites, groups, ALPN (or cleartext).
    pub tls: ProxyTls,
}

/// TLS settings of a real proxy's listener (a platform profile, rendered into its config).
#[derive(Debug, Clone)]
pub struct ProxyTls {
    /// TLS at all; cleartext listeners accept HTTP/1.1 (and h2c where the proxy can).
    pub enabled: bool,
    /// Lowest version, `1.2` or `1.3`.
    pub min: String,
    /// Highest version.
    pub max: String,
    /// TLS 1.2 suites in server order (OpenSSL syntax); None = the proxy's default.
    pub ciphers: Option<String>,
    /// Key exchange groups (OpenSSL syntax).
    pub groups: Option<String>,
    /// Offer h2 by ALPN (false: HTTP/1.1 only, as far as the proxy allows).
    pub alpn_h2: bool,
}

impl Default for ProxyTls {
    fn default() -> Self {
        ProxyTls {
            enabled: true,
            min: "1.2".into(),
            max: "1.3".into(),
            ciphers: None,
            groups: None,
            alpn_h2: true,
        }
    }
}

impl ProxyTls {
    fn versions(&self) -> Vec<&'static str> {
        [("1.2", "TLSv1.2"), ("1.3", "TLSv1.3")]
            .into_iter()
            .filter(|(v, _)| *v >= self.min.as_str() && *v <= self.max.as_str())
            .map(|(_, name)| name)
            .collect()
    }

    /// Template variables `listen_opts` and `tls` for one proxy kind.
    fn render(&self, kind: ProxyKind, spec: &ProxySpec, dir: &str) -> (String, String) {
        let (chain, key) = (spec.chain.display(), spec.key.display());
        if !self.enabled {
            return match kind {
                ProxyKind::Nginx => (String::new(), String::new()),
                ProxyKind::Apache => (
                    String::new(),
                    "Protocols h2c http/1.1\nRequestHeader set X-Forwarded-Proto \"http\"".into(),
                ),
                ProxyKind::Haproxy => (
                    String::new(),
                    "    http-request set-header X-Forwarded-Proto http".into(),
                ),
            };
        }
        let mut lines: Vec<String> = Vec::new();
        match kind {
            ProxyKind::Nginx => {
                lines.push(format!("ssl_certificate {chain};"));
                lines.push(format!("ssl_certificate_key {key};"));
                lines.push(format!("ssl_protocols {};", self.versions().join(" ")));
                lines.push("ssl_prefer_server_ciphers on;".into());
                if let Some(c) = &self.ciphers {
                    lines.push(format!("ssl_ciphers {c};"));
                }
                if let Some(g) = &self.groups {
                    lines.push(format!("ssl_ecdh_curve {g};"));
                }
                let opts = if self.alpn_h2 { " ssl http2" } else { " ssl" };
                let tls = lines
                    .iter()
                    .map(|l| format!("        {l}"))
                    .collect::<Vec<_>>();
                (opts.into(), tls.join("\n"))
            }
            ProxyKind::Apache => {
                let protocols = if self.alpn_h2 {
                    "h2 http/1.1"
                } else {
                    "http/1.1"
                };
                lines.push(format!("Protocols {protocols}"));
                lines.push("SSLEngine on".into());
                lines.push(format!("SSLCertificateFile \"{chain}\""));
                lines.push(format!("SSLCertificateKeyFile \"{key}\""));
                let v: Vec<String> = self.versions().iter().map(|v| format!("+{v}")).collect();
                lines.push(format!("SSLProtocol -all {}", v.join(" ")));
                lines.push("SSLHonorCipherOrder on".into());
                if let Some(c) = &self.ciphers {
                    lines.push(format!("SSLCipherSuite {c}"));
                }
                if let Some(g) = &self.groups {
                    lines.push(format!("SSLOpenSSLConfCmd Groups {g}"));
                }
                lines.push(format!(
                    "SSLSessionCache \"shmcb:{dir}/ssl_scache(512000)\""
                ));
                lines.push("RequestHeader set X-Forwarded-Proto \"https\"".into());
                (String::new(), lines.join("\n"))
            }
            ProxyKind::Haproxy => {
                let mut opts = format!(" ssl crt {dir}/cert.pem");
                if self.alpn_h2 {
                    opts.push_str(" alpn h2,http/1.1");
                }
                let name = |v: &str| if v == "1.2" { "TLSv1.2" } else { "TLSv1.3" };
                opts.push_str(&format!(
                    " ssl-min-ver {} ssl-max-ver {}",
                    name(&self.min),
                    name(&self.max)
                ));
                if let Some(c) = &self.ciphers {
                    opts.push_str(&format!(" ciphers {c}"));
                }
                if let Some(g) = &self.groups {
                    opts.push_str(&format!(" curves {g}"));
                }
                (
                    opts,
                    "    http-request set-header X-Forwarded-Proto https".into(),
                )
            }
        }
    }
}

impl ProxyKind {
    /// All real proxies.
    pub const ALL: [ProxyKind; 3] = [ProxyKind::Nginx, ProxyKind::Apache, ProxyKind::Haproxy];

    /// Short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "nginx",
            ProxyKind::Apache => "apache",
            ProxyKind::Haproxy => "haproxy",
        }
    }

    /// The executable to run.
    pub fn binary(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "nginx",
            ProxyKind::Apache => "apache2",
            ProxyKind::Haproxy => "haproxy",
        }
    }

    /// How to install it on Debian.
    pub fn install_hint(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "apt-get install nginx-light (or run scripts/setup.sh)",
            ProxyKind::Apache => "apt-get install apache2 (or run scripts/setup.sh)",
            ProxyKind::Haproxy => "apt-get install haproxy (or run scripts/setup.sh)",
        }
    }

    /// Full path of the executable, if installed (also searched in the sbin directories,
    /// which are not on every user's PATH).
    pub fn find(self) -> Option<PathBuf> {
        let path = std::env::var("PATH").unwrap_or_default();
        let found = path
            .split(':')
            .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
            .map(|d| Path::new(d).join(self.binary()))
            .find(|p| p.is_file());
        found
    }

    /// The version string the proxy reports, e.g. `nginx/1.22.1`.
    pub fn version(self) -> Option<String> {
        let bin = self.find()?;
        let out = Command::new(bin).arg("-v").output().ok()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let first = text.lines().next()?.trim().to_string();
        Some(
            first
                .trim_start_matches("nginx version: ")
                .trim_start_matches("Server version: ")
                .to_string(),
        )
    }
}

impl std::str::FromStr for ProxyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ProxyKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown proxy `{s}` (expected nginx, apache or haproxy)"))
    }
}

const NGINX_TEMPLATE: &str = include_str!("../../servers-under-test/templates/nginx.conf");
const APACHE_TEMPLATE: &str = include_str!("../../servers-under-test/templates/apache2.conf");
const HAPROXY_TEMPLATE: &str = include_str!("../../servers-under-test/templates/haproxy.cfg");

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// HAProxy needs about two descriptors per connection and refuses to start when the
/// descriptor limit cannot cover `maxconn`, so derive it from the limit in force.
fn haproxy_maxconn() -> u64 {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    (soft.saturating_sub(200) / 2).clamp(256, 20_000)
}

/// Arguments of `sut SUBCOMMAND` for tests: a port the OS picks on loopback, one worker,
/// TLS from `stack` with a self-signed `key` certificate whose CA is written to `ca_out`.
pub fn tls_test_args(subcommand: &str, stack: &str, key: &str, ca_out: &str) -> Vec<String> {
    [
        subcommand,
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--tls",
        stack,
        "--self-signed",
        key,
        "--ca-out",
        ca_out,
    ]
    .map(String::from)
    .to_vec()
}

/// Asks the OS for a free loopback port. The port is released before the proxy binds it,
/// so a bind race is possible; [`start_proxy`] retries when that happens.
pub fn free_loopback_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts a real proxy in front of `spec.backend` and waits until its port accepts.
pub fn start_proxy(spec: &ProxySpec, timeout: Duration) -> Result<RunningServer, LaunchError> {
    let bin = spec.kind.find().ok_or(LaunchError::NotInstalled {
        name: spec.kind.name(),
        hint: spec.kind.install_hint(),
    })?;
    let mut last_err = None;
    for _attempt in 0..3 {
        match start_proxy_once(spec, &bin, timeout) {
            Ok(server) => return Ok(server),
            // An early exit is most often the port we picked being taken meanwhile.
            Err(e @ LaunchError::Process(ProcessError::ExitedEarly { .. })) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.expect("at least one attempt"))
}

fn start_proxy_once(
    spec: &ProxySpec,
    bin: &Path,
    timeout: Duration,
) -> Result<RunningServer, LaunchError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("h2lab-{}-", spec.kind.name()))
        .tempdir()
        .map_err(io_err("create proxy directory"))?;
    // Workers drop root privileges and must still reach files in the directory.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(io_err("chmod proxy directory"))?;
    let port = free_loopback_port().map_err(io_err("pick a free port"))?;
    let listen = format!("127.0.0.1:{port}");
    let d = dir.path().display().to_string();
    let workers = spec.workers.max(1);
    let log = dir.path().join("error.log");

    let mut cmd = Command::new(bin);
    let (name, template, file) = match spec.kind {
        ProxyKind::Nginx => ("nginx", NGINX_TEMPLATE, "nginx.conf"),
        ProxyKind::Apache => ("apache", APACHE_TEMPLATE, "apache2.conf"),
        ProxyKind::Haproxy => ("haproxy", HAPROXY_TEMPLATE, "haproxy.cfg"),
    };
    let conf = dir.path().join(file);
    let user = match (spec.kind, is_root()) {
        (ProxyKind::Nginx, true) => "user nobody nogroup;".to_string(),
        (ProxyKind::Apache, true) => "User nobody\nGroup nogroup".to_string(),
        _ => String::new(),
    };
    let backend_url = if spec.backend_h2 {
        format!("h2c://{}", spec.backend)
    } else {
        format!("http://{}", spec.backend)
    };
    let (listen_opts, tls) = spec.tls.render(spec.kind, spec, &d);
    let vars = [
        ("dir", d.clone()),
        ("listen", listen),
        ("backend", spec.backend.to_string()),
        ("backend_url", backend_url),
        (
            "backend_proto",
            if spec.backend_h2 { "proto h2" } else { "" }.to_string(),
        ),
        ("listen_opts", listen_opts),
        ("tls", tls),
        ("workers", workers.to_string()),
        ("max_workers", (workers * 64).to_string()),
        ("user", user),
        ("maxconn", haproxy_maxconn().to_string()),
    ];
    let text = template::render(template, &vars)
        .map_err(|reason| LaunchError::Template { name, reason })?;
    std::fs::write(&conf, text).map_err(io_err(format!("write {}", conf.display())))?;
    match spec.kind {
        ProxyKind::Nginx => {
            if spec.backend_h2 {
                tracing::warn!("nginx 1.22 cannot speak HTTP/2 to a backend; using HTTP/1.1");
            }
            cmd.arg("-c").arg(&conf).arg("-p").arg(dir.path());
        }
        ProxyKind::Apache => {
            cmd.arg("-f").arg(&conf).arg("-DFOREGROUND");
        }
        ProxyKind::Haproxy if spec.tls.enabled => {
            let chain = std::fs::read_to_string(&spec.chain)
                .map_err(io_err(format!("read {}", spec.chain.display())))?;
            let key = std::fs::read_to_string(&spec.key)
                .map_err(io_err(format!("read {}", spec.key.display())))?;
            let pem = dir.path().join("cert.pem");
            std::fs::write(&pem, format!("{chain}{key}"))
                .map_err(io_err(format!("write {}", pem.display())))?;
            cmd.arg("-f").arg(&conf).arg("-db");
        }
        ProxyKind::Haproxy => {
            cmd.arg("-f").arg(&conf).arg("-db");
        }
    }
    cmd.current_dir(dir.path()).stdin(Stdio::null());
    let out = std::fs::File::create(dir.path().join("stdout.log"))
        .map_err(io_err("create proxy stdout log"))?;
    let err = out.try_clone().map_err(io_err("clone log handle"))?;
    cmd.stdout(out).stderr(err);
    let mut child = OwnedChild::spawn(name, &mut cmd)?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("valid address");
    wait_until_accepting(&mut child, addr, timeout, dir.path())?;
    Ok(RunningServer {
        addr,
        scheme: if spec.tls.enabled { "https" } else { "http" }.into(),
        child,
        log: Some(log),
        dir: Some(dir),
    })
}

/// Waits until `addr` accepts a TCP connection, failing early if the child exits.
fn wait_until_accepting(
    child: &mut OwnedChild,
    addr: SocketAddr,
    timeout: Duration,
    dir: &Path,
) -> Result<(), LaunchError> {
    let start = Instant::now();
    let hint = format!(" (see {}/error.log and stdout.log)", dir.display());
    let mut backoff = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_exit_status() {
            let detail = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
            tracing::debug!(%detail, "proxy exited during start-up");
            return Err(ProcessError::ExitedEarly {
                name: child.name().to_string(),
                status,
                log_hint: format!("{hint}: {}", detail.trim()),
            }
            .into());
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(ProcessError::NotReady {
                name: child.name().to_string(),
                waited: start.elapsed(),
                log_hint: hint,
            }
            .into());
        }
        // Polling the port is the readiness signal these daemons offer; back off gently.
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(50));
    }
}
