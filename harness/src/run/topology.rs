//! Starts the servers of one cell's topology on OS-chosen ports (sut processes, real
//! proxies through the shared launcher, and the user's own app when the scenario names
//! one), and stops them all. Every process of one launch carries a marker in its
//! environment, so whatever escaped its process group is found and stopped too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use h2lab_common::launch::{self, ProxyKind, ProxySpec, ProxyTls, RunningServer};
use h2lab_common::pki::{KeyType, PkiFiles};
use h2lab_common::profiles;

use crate::model::plan::{AppProtocol, AppSpec, Cell, ServerTls, Topology};

/// Environment variable that marks every process of one launch.
pub const LAUNCH_MARKER: &str = "H2LAB_LAUNCH";

/// A started topology.
pub struct Launched {
    /// Where the client connects.
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: String,
    /// The CA clients trust (None for external targets: built-in roots).
    pub ca: Option<PathBuf>,
    /// Every process of the topology, front first.
    pub servers: Vec<RunningServer>,
    /// Time from the first spawn to the last readiness signal.
    pub start_time: Duration,
    /// With the user's app behind a front: the protocol the front is configured to speak
    /// to it (no app reports what it saw), and why it differs from what the app offers.
    pub app_hop: Option<AppHop>,
    /// The marker value of this launch's processes.
    marker: String,
}

/// The hop from a front to the user's app, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppHop {
    /// `HTTP/1.1` or `HTTP/2`.
    pub protocol: &'static str,
    /// Why the hop does not use the app's protocol, when it does not.
    pub note: Option<String>,
}

/// How a teardown went.
pub struct Stopped {
    /// Time to stop everything.
    pub took: Duration,
    /// Processes found alive in a server's process group after it was stopped.
    pub leftovers: Vec<String>,
}

impl Launched {
    /// Stops every server, keeps the logs of real proxies (their private directory goes
    /// away) in `dir`, and checks that no process of any server's group is left.
    pub fn stop(self, dir: &Path) -> Stopped {
        let t = Instant::now();
        let mut leftovers = Vec::new();
        let mut groups = Vec::new();
        for mut s in self.servers {
            let pgid = s.child.pid();
            groups.push(pgid);
            s.child.stop(Duration::from_secs(5));
            if let Some(private) = &s.dir {
                for name in ["error.log", "stdout.log"] {
                    let _ = std::fs::copy(
                        private.path().join(name),
                        dir.join(format!("{}-{name}", s.child.name())),
                    );
                }
            }
            leftovers.extend(h2lab_common::process::group_members(pgid));
        }
        // A process that left its group (a daemonising app) still carries the marker.
        let escaped = || {
            let marked = h2lab_common::process::marked(LAUNCH_MARKER, &self.marker);
            marked
                .into_iter()
                .filter(|(_, _, g)| !groups.contains(g))
                .collect::<Vec<_>>()
        };
        // A group the module killed a moment ago may still be dying: give it a second.
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut left = escaped();
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            left = escaped();
        }
        for (pid, name, _) in left {
            h2lab_common::process::kill(pid);
            leftovers.push(format!("{pid} {name} (outside its process group; killed)"));
        }
        Stopped {
            took: t.elapsed(),
            leftovers,
        }
    }
}

/// TLS of a server to start.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    /// Stack (real proxies use their own OpenSSL whatever this says).
    pub stack: ServerTls,
    /// Certificate key type.
    pub cert: KeyType,
    /// Lowest TLS version, when set apart from the profile.
    pub min: Option<String>,
    /// Highest TLS version.
    pub max: Option<String>,
    /// Platform profile name.
    pub profile: Option<String>,
}

/// A server to start: a topology, with TLS or cleartext, serving the built-in app or the
/// user's.
#[derive(Debug, Clone)]
pub struct ServerSpec<'a> {
    /// The topology.
    pub topology: &'a Topology,
    /// TLS, or None for cleartext.
    pub tls: Option<TlsSpec>,
    /// The user's app, instead of the built-in one.
    pub app: Option<&'a AppSpec>,
}

/// How to start processes for a run.
pub struct Launcher<'a> {
    /// The `sut` binary.
    pub sut: PathBuf,
    /// Certificates by key type.
    pub pki: &'a [(KeyType, PkiFiles)],
    /// Environment marker set on every sut process (lets tests find leftovers).
    pub owner: String,
    /// Core to pin servers to, if pinning.
    pub pin_core: Option<usize>,
    /// Environment of a variant (`h2lab run --variant-env`), set on every sut process and
    /// on the user's app, over the app's own `env`.
    pub env: Vec<(String, String)>,
}

const READY: Duration = Duration::from_secs(30);

/// What a `sut` process said as it failed: its `sut: error:` line and what follows.
fn last_error_line(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let at = text.rfind("sut: error: ")?;
    Some(text[at + "sut: error: ".len()..].trim_end().to_string())
}

/// A marker value unique to one launch of this process.
fn new_marker(owner: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{owner}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The hop from `topology`'s front to an app speaking `protocol`, as the lab configures it.
pub fn app_hop(topology: &Topology, protocol: AppProtocol) -> Option<AppHop> {
    let h2c = protocol == AppProtocol::H2c;
    let (protocol, note) = match topology {
        Topology::SutProxy | Topology::RealProxy(ProxyKind::Apache | ProxyKind::Haproxy) => {
            (if h2c { "HTTP/2" } else { "HTTP/1.1" }, None)
        }
        Topology::RealProxy(ProxyKind::Nginx) => (
            "HTTP/1.1",
            h2c.then(|| "nginx cannot speak HTTP/2 to a backend".to_string()),
        ),
        Topology::OutOfProcess => (
            "HTTP/1.1",
            h2c.then(|| "the module's hop is HTTP/1.1 by contract".to_string()),
        ),
        Topology::DirectEdge | Topology::InProcess | Topology::External(_) => return None,
    };
    Some(AppHop { protocol, note })
}
impl Launcher<'_> {
    fn files(&self, key: KeyType) -> &PkiFiles {
        &self
            .pki
            .iter()
            .find(|(k, _)| *k == key)
            .expect("PKI generated for every key type in the plan")
            .1
    }

    fn sut(
        &self,
        dir: &Path,
        name: &str,
        args: Vec<String>,
        marker: &str,
    ) -> Result<RunningServer, String> {
        let (bin, mut all) = match self.pin_core {
            Some(core) => (
                PathBuf::from("taskset"),
                vec![
                    "-c".to_string(),
                    core.to_string(),
                    self.sut.display().to_string(),
                ],
            ),
            None => (self.sut.clone(), Vec::new()),
        };
        all.extend(args);
        // Fault injection for tests: makes this topology's server refuse to start.
        if std::env::var("H2LAB_FAULT_START").is_ok_and(|t| name.starts_with(&t)) {
            all.push("--fault-injected-bad-flag".into());
        }
        let mut env = self.env.clone();
        env.push(("H2LAB_OWNER".to_string(), self.owner.clone()));
        env.push((LAUNCH_MARKER.to_string(), marker.to_string()));
        let log = dir.join(format!("{name}.log"));
        launch::start_sut(&bin, &all, &env, Some(&log), READY)
            .map_err(|e| format!("{name} did not start: {e}"))
    }

    /// `{cert}`, `{key}` and `{ca}` of the run's PKI for `key`.
    fn pki_placeholder(&self, key: KeyType, name: &str) -> Option<String> {
        let f = self.files(key);
        let path = match name {
            "cert" => &f.chain,
            "key" => &f.key,
            "ca" => &f.ca,
            _ => return None,
        };
        Some(path.display().to_string())
    }

    /// Starts the user's app on a free loopback port, its output in `dir/app.log`, and
    /// waits until it serves.
    fn user_app(
        &self,
        app: &AppSpec,
        key: KeyType,
        dir: &Path,
        marker: &str,
    ) -> Result<RunningServer, String> {
        let port = launch::free_loopback_port().map_err(|e| format!("no free port: {e}"))?;
        let lookup = |name: &str| match name {
            "port" => Some(port.to_string()),
            other => self.pki_placeholder(key, other),
        };
        let argv: Vec<String> = app
            .command
            .iter()
            .map(|a| h2lab_common::app::substitute(a, lookup))
            .collect();
        let log = dir.join("app.log");
        let out = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let (program, args) = argv.split_first().ok_or("the app's command is empty")?;
        let (bin, mut all) = match self.pin_core {
            Some(core) => (
                "taskset".to_string(),
                vec!["-c".to_string(), core.to_string(), program.clone()],
            ),
            None => (program.clone(), Vec::new()),
        };
        all.extend(args.iter().cloned());
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(&all)
            .current_dir(&app.cwd)
            .envs(
                app.env
                    .iter()
                    .map(|(k, v)| (k, h2lab_common::app::substitute(v, lookup))),
            )
            .envs(app.port_env.iter().map(|k| (k, port.to_string())))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("H2LAB_OWNER", &self.owner)
            .env(LAUNCH_MARKER, marker)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut child = h2lab_common::process::OwnedChild::spawn("app", &mut cmd)
            .map_err(|e| format!("the app did not start: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        h2lab_common::app::wait_ready(&mut child, addr, &app.ready, app.ready_timeout, &log)
            .map_err(|e| format!("the app ({}) did not get ready: {e}", argv.join(" ")))?;
        Ok(RunningServer {
            addr,
            scheme: if app.tls { "https" } else { "http" }.into(),
            child,
            log: Some(log),
            dir: None,
        })
    }

    /// `sut host` flags that make the module host the user's app (`--app-command` last).
    fn module_app_args(&self, app: &AppSpec, key: KeyType, dir: &Path) -> Vec<String> {
        // `{port}` is the module's to fill in at each start.
        let lookup = |name: &str| self.pki_placeholder(key, name);
        let mut a = vec![
            "--wait-for-app".to_string(),
            "--module-contract".into(),
            app.module_contract.clone(),
            "--app-cwd".into(),
            app.cwd.display().to_string(),
            "--startup-timeout".into(),
            humantime::format_duration(app.ready_timeout).to_string(),
            "--app-ready".into(),
            match &app.ready {
                h2lab_common::app::Readiness::Tcp => "tcp".into(),
                h2lab_common::app::Readiness::Http { path, .. } => format!("http:{path}"),
            },
            "--app-log".into(),
            dir.join("app.log").display().to_string(),
        ];
        for (k, v) in &app.env {
            a.extend([
                "--app-env".into(),
                format!("{k}={}", h2lab_common::app::substitute(v, lookup)),
            ]);
        }
        if let Some(name) = &app.port_env {
            a.extend(["--app-port-env".into(), name.clone()]);
        }
        a.push("--app-command".into());
        a.extend(
            app.command
                .iter()
                .map(|c| h2lab_common::app::substitute(c, lookup)),
        );
        a
    }

    fn tls_args(&self, spec: &ServerSpec) -> Vec<String> {
        let Some(tls) = &spec.tls else {
            return Vec::new();
        };
        let stack = match tls.stack {
            ServerTls::None => return Vec::new(),
            ServerTls::Rustls => "rustls",
            ServerTls::Openssl => "openssl",
        };
        let f = self.files(tls.cert);
        let mut args = vec![
            "--tls".into(),
            stack.into(),
            "--cert".into(),
            f.chain.display().to_string(),
            "--key".into(),
            f.key.display().to_string(),
        ];
        for (flag, value) in [
            ("--tls-min", &tls.min),
            ("--tls-max", &tls.max),
            ("--platform-profile", &tls.profile),
        ] {
            if let Some(v) = value {
                args.extend([flag.to_string(), v.clone()]);
            }
        }
        args
    }

    fn proxy_tls(&self, spec: &ServerSpec) -> ProxyTls {
        let Some(tls) = &spec.tls else {
            return ProxyTls {
                enabled: false,
                ..ProxyTls::default()
            };
        };
        let profile = tls.profile.as_deref().and_then(profiles::server_profile);
        let d = ProxyTls::default();
        ProxyTls {
            enabled: true,
            min: tls
                .min
                .clone()
                .or(profile.map(|p| p.min.to_string()))
                .unwrap_or(d.min),
            max: tls
                .max
                .clone()
                .or(profile.map(|p| p.max.to_string()))
                .unwrap_or(d.max),
            ciphers: profile
                .filter(|p| !p.tls12_suites.is_empty())
                .map(|p| p.tls12_suites.join(":")),
            groups: profile.and_then(|p| p.groups.map(str::to_string)),
            alpn_h2: profile.is_none_or(|p| p.alpn),
        }
    }

    /// Starts the topology of `cell` (around the user's `app`, when given), logs in `dir`.
    pub fn start(
        &self,
        cell: &Cell,
        app: Option<&AppSpec>,
        dir: &Path,
    ) -> Result<Launched, String> {
        let tls = (cell.server_tls != ServerTls::None
            || matches!(cell.topology, Topology::RealProxy(_)))
        .then(|| TlsSpec {
            stack: if cell.server_tls == ServerTls::None {
                ServerTls::Openssl
            } else {
                cell.server_tls
            },
            cert: cell.cert,
            min: Some(cell.tls_min.clone()),
            max: Some(cell.tls_max.clone()),
            profile: None,
        });
        self.start_spec(
            &ServerSpec {
                topology: &cell.topology,
                tls,
                app,
            },
            dir,
        )
    }

    /// Starts a topology as `spec` describes, logs in `dir`.
    pub fn start_spec(&self, spec: &ServerSpec, dir: &Path) -> Result<Launched, String> {
        let t0 = Instant::now();
        let marker = new_marker(&self.owner);
        let key = spec.tls.as_ref().map_or(KeyType::Ecdsa, |t| t.cert);
        let app_hop = spec.app.and_then(|a| app_hop(spec.topology, a.protocol));
        let listen = || {
            vec![
                "--listen".to_string(),
                "127.0.0.1:0".to_string(),
                "--workers".to_string(),
                "1".to_string(),
            ]
        };
        let mut servers = Vec::new();
        let front = match spec.topology {
            Topology::External(url) => {
                let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
                let https = uri.scheme_str() == Some("https");
                let host = uri.host().unwrap_or("localhost");
                let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
                    .map_err(|e| format!("cannot resolve {host}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{host} has no address"))?;
                return Ok(Launched {
                    addr,
                    scheme: if https { "https" } else { "http" }.into(),
                    ca: None,
                    servers,
                    start_time: t0.elapsed(),
                    app_hop: None,
                    marker,
                });
            }
            Topology::DirectEdge if spec.app.is_some() => {
                let app = spec.app.expect("checked");
                self.user_app(app, key, dir, &marker)?
            }
            Topology::DirectEdge => {
                let mut a = vec!["edge".to_string()];
                a.extend(listen());
                a.extend(self.tls_args(spec));
                self.sut(dir, "direct-edge", a, &marker)?
            }
            Topology::InProcess | Topology::OutOfProcess => {
                let oop = *spec.topology == Topology::OutOfProcess;
                let name = if oop { "out-of-process" } else { "in-process" };
                let mut a = vec!["host".to_string(), "--hosting".into(), name.into()];
                a.extend(listen());
                a.extend(self.tls_args(spec));
                match spec.app {
                    Some(app) if oop => a.extend(self.module_app_args(app, key, dir)),
                    _ if oop => a.extend([
                        "--eager-start".into(),
                        "--app-log".into(),
                        dir.join("app.log").display().to_string(),
                    ]),
                    _ => {}
                }
                self.sut(dir, name, a, &marker)
                    .map_err(|e| match spec.app {
                        // sut host said why the app did not start, with the app's log tail.
                        Some(_) => match last_error_line(&dir.join(format!("{name}.log"))) {
                            Some(why) => format!("{e}: {why}"),
                            None => {
                                format!("{e}{}", h2lab_common::app::tail_hint(&dir.join("app.log")))
                            }
                        },
                        None => e,
                    })?
            }
            Topology::SutProxy | Topology::RealProxy(_) => {
                let backend = match spec.app {
                    Some(app) => self.user_app(app, key, dir, &marker)?,
                    None => self.sut(
                        dir,
                        "backend",
                        vec!["app".into(), "--listen".into(), "127.0.0.1:0".into()],
                        &marker,
                    )?,
                };
                let backend_addr = backend.addr;
                servers.push(backend);
                let backend_h2 = app_hop.as_ref().is_some_and(|h| h.protocol == "HTTP/2");
                match spec.topology {
                    Topology::SutProxy => {
                        let mut a = vec![
                            "proxy".to_string(),
                            "--upstream".into(),
                            format!("http://{backend_addr}"),
                        ];
                        if backend_h2 {
                            a.extend(["--upstream-proto".into(), "h2".into()]);
                        }
                        a.extend(listen());
                        a.extend(self.tls_args(spec));
                        self.sut(dir, "reverse-proxy-sut", a, &marker)?
                    }
                    Topology::RealProxy(kind) => {
                        let f = self.files(spec.tls.as_ref().map_or(KeyType::Ecdsa, |t| t.cert));
                        let proxy = ProxySpec {
                            kind: *kind,
                            backend: backend_addr,
                            backend_h2,
                            chain: f.chain.clone(),
                            key: f.key.clone(),
                            workers: 1,
                            tls: self.proxy_tls(spec),
                        };
                        launch::start_proxy(&proxy, READY)
                            .map_err(|e| format!("{} did not start: {e}", kind.name()))?
                    }
                    _ => unreachable!(),
                }
            }
        };
        let addr = front.addr;
        let scheme = front.scheme.clone();
        servers.insert(0, front);
        Ok(Launched {
            addr,
            scheme,
            ca: spec
                .tls
                .as_ref()
                .map(|t| self.files(t.cert).ca.clone())
                .or_else(|| {
                    spec.app
                        .filter(|a| a.tls)
                        .map(|_| self.files(key).ca.clone())
                }),
            servers,
            start_time: t0.elapsed(),
            app_hop,
            marker,
        })
    }
}
