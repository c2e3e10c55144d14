//! Starts the servers of one cell's topology on OS-chosen ports (sut processes and real
//! proxies through the shared launcher), and stops them all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use h2lab_common::launch::{self, ProxySpec, ProxyTls, RunningServer};
use h2lab_common::pki::{KeyType, PkiFiles};
use h2lab_common::profiles;

use crate::model::plan::{Cell, ServerTls, Topology};

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
        for mut s in self.servers {
            let pgid = s.child.pid();
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

/// A server to start: a topology, with TLS or cleartext.
#[derive(Debug, Clone)]
pub struct ServerSpec<'a> {
    /// The topology.
    pub topology: &'a Topology,
    /// TLS, or None for cleartext.
    pub tls: Option<TlsSpec>,
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
}

const READY: Duration = Duration::from_secs(30);

impl Launcher<'_> {
    fn files(&self, key: KeyType) -> &PkiFiles {
        &self
            .pki
            .iter()
            .find(|(k, _)| *k == key)
            .expect("PKI generated for every key type in the plan")
            .1
    }

    fn sut(&self, dir: &Path, name: &str, args: Vec<String>) -> Result<RunningServer, String> {
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
        let env = [("H2LAB_OWNER".to_string(), self.owner.clone())];
        let log = dir.join(format!("{name}.log"));
        launch::start_sut(&bin, &all, &env, Some(&log), READY)
            .map_err(|e| format!("{name} did not start: {e}"))
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

    /// Starts the topology of `cell`, logs in `dir`.
    pub fn start(&self, cell: &Cell, dir: &Path) -> Result<Launched, String> {
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
            },
            dir,
        )
    }

    /// Starts a topology as `spec` describes, logs in `dir`.
    pub fn start_spec(&self, spec: &ServerSpec, dir: &Path) -> Result<Launched, String> {
        let t0 = Instant::now();
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
                });
            }
            Topology::DirectEdge => {
                let mut a = vec!["edge".to_string()];
                a.extend(listen());
                a.extend(self.tls_args(spec));
                self.sut(dir, "direct-edge", a)?
            }
            Topology::InProcess | Topology::OutOfProcess => {
                let oop = *spec.topology == Topology::OutOfProcess;
                let name = if oop { "out-of-process" } else { "in-process" };
                let mut a = vec!["host".to_string(), "--hosting".into(), name.into()];
                a.extend(listen());
                a.extend(self.tls_args(spec));
                if oop {
                    a.extend([
                        "--eager-start".into(),
                        "--app-log".into(),
                        dir.join("app.log").display().to_string(),
                    ]);
                }
                self.sut(dir, name, a)?
            }
            Topology::SutProxy | Topology::RealProxy(_) => {
                let backend = self.sut(
                    dir,
                    "backend",
                    vec!["app".into(), "--listen".into(), "127.0.0.1:0".into()],
                )?;
                let backend_addr = backend.addr;
                servers.push(backend);
                match spec.topology {
                    Topology::SutProxy => {
                        let mut a = vec![
                            "proxy".to_string(),
                            "--upstream".into(),
                            format!("http://{backend_addr}"),
                        ];
                        a.extend(listen());
                        a.extend(self.tls_args(spec));
                        self.sut(dir, "reverse-proxy-sut", a)?
                    }
                    Topology::RealProxy(kind) => {
                        let f = self.files(spec.tls.as_ref().map_or(KeyType::Ecdsa, |t| t.cert));
                        let proxy = ProxySpec {
                            kind: *kind,
                            backend: backend_addr,
                            backend_h2: false,
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
            ca: spec.tls.as_ref().map(|t| self.files(t.cert).ca.clone()),
            servers,
            start_time: t0.elapsed(),
        })
    }
}
