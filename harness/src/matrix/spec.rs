//! The negotiation matrix as validated plain data: axes, expanded into server
//! configurations and probe cells.

use std::time::Duration;

use h2lab_common::pki::KeyType;
use h2lab_common::profiles::{ClientProfile, ServerProfile, Stack};

use crate::model::plan::{ServerTls, Topology};

/// A client offer of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatrixOffer {
    /// Over TLS with this ALPN list (empty = no extension).
    Alpn(Vec<String>),
    /// Cleartext HTTP/2 by prior knowledge.
    H2c,
    /// Cleartext HTTP/2 by `Upgrade: h2c`.
    H2cUpgrade,
}

impl MatrixOffer {
    /// Name as in scenario files: `h2,http/1.1`, `none`, `h2c`, `h2c-upgrade`.
    pub fn name(&self) -> String {
        match self {
            MatrixOffer::Alpn(l) if l.is_empty() => "none".into(),
            MatrixOffer::Alpn(l) => l.join(","),
            MatrixOffer::H2c => "h2c".into(),
            MatrixOffer::H2cUpgrade => "h2c-upgrade".into(),
        }
    }
}

/// A documented row: cells matching `filter` must show `edge` (and `app`).
#[derive(Debug, Clone)]
pub struct DocumentedRow {
    /// The row's words, e.g. "Kestrel on Windows Server 2012 R2, RSA certificate".
    pub row: String,
    /// Axis name -> value the cells must have.
    pub filter: Vec<(String, String)>,
    /// Protocol or failure class at the edge.
    pub edge: Option<String>,
    /// Protocol at the app.
    pub app: Option<String>,
}

/// A validated `[negotiation]` section.
#[derive(Debug, Clone)]
pub struct MatrixSpec {
    /// Name (the scenario's, else the file stem).
    pub name: String,
    /// Topologies.
    pub topologies: Vec<Topology>,
    /// Server TLS stacks (real proxies always use their own OpenSSL).
    pub server_tls: Vec<ServerTls>,
    /// Server platform profiles.
    pub profiles: Vec<&'static ServerProfile>,
    /// Certificate key types.
    pub certs: Vec<KeyType>,
    /// Client profiles.
    pub client_profiles: Vec<&'static ClientProfile>,
    /// Client offers.
    pub offers: Vec<MatrixOffer>,
    /// Probe each cell with an independent client too.
    pub cross_check: bool,
    /// Client policy: refuse h2 on Appendix A suites (default on).
    pub strict_h2: bool,
    /// Bound of each probe step.
    pub timeout: Duration,
    /// Servers started at once.
    pub parallel: usize,
    /// Rows of the documented table to reproduce.
    pub documented: Vec<DocumentedRow>,
}

/// One server to start.
#[derive(Debug, Clone)]
pub struct ServerCell {
    /// Topology.
    pub topology: Topology,
    /// TLS stack; `None` = cleartext.
    pub stack: ServerTls,
    /// Platform profile (TLS only).
    pub profile: Option<&'static ServerProfile>,
    /// Certificate (TLS only).
    pub cert: Option<KeyType>,
}

/// One probe against one server.
#[derive(Debug, Clone)]
pub struct ProbeCell {
    /// Index into the server list.
    pub server: usize,
    /// Client profile (TLS only).
    pub client: Option<&'static ClientProfile>,
    /// The offer.
    pub offer: MatrixOffer,
}

/// Axis value of a topology, as in scenario files.
pub fn topology_name(t: &Topology) -> String {
    match t {
        Topology::DirectEdge => "direct-edge".into(),
        Topology::SutProxy => "reverse-proxy:sut".into(),
        Topology::RealProxy(k) => format!("reverse-proxy:{}", k.name()),
        Topology::InProcess => "in-process".into(),
        Topology::OutOfProcess => "out-of-process".into(),
        Topology::External(u) => format!("external:{u}"),
    }
}

/// A combination left out, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    /// Which servers.
    pub what: String,
    /// Why.
    pub why: String,
}

impl MatrixSpec {
    /// Expands the axes into servers and probe cells; impossible combinations are listed
    /// with the reason.
    pub fn expand(&self) -> (Vec<ServerCell>, Vec<ProbeCell>, Vec<Skipped>) {
        let mut servers = Vec::new();
        let mut cells = Vec::new();
        let mut skipped = Vec::new();
        let tls_offers: Vec<&MatrixOffer> = self
            .offers
            .iter()
            .filter(|o| matches!(o, MatrixOffer::Alpn(_)))
            .collect();
        let clear_offers: Vec<&MatrixOffer> = self
            .offers
            .iter()
            .filter(|o| !matches!(o, MatrixOffer::Alpn(_)))
            .collect();
        for t in &self.topologies {
            let real = matches!(t, Topology::RealProxy(_));
            if !tls_offers.is_empty() {
                for &stack in &self.server_tls {
                    if stack == ServerTls::None {
                        continue;
                    }
                    if real && stack == ServerTls::Rustls {
                        skipped.push(Skipped {
                            what: format!("{} x rustls", topology_name(t)),
                            why: "a real proxy terminates TLS with its own OpenSSL".into(),
                        });
                        continue;
                    }
                    for &p in &self.profiles {
                        let want = if stack == ServerTls::Rustls {
                            Stack::Rustls
                        } else {
                            Stack::Openssl
                        };
                        if !p.stacks.contains(&want) {
                            skipped.push(Skipped {
                                what: format!("{} x rustls x {}", topology_name(t), p.name),
                                why: "rustls cannot express the profile (no CBC, RSA key exchange or DHE)".into(),
                            });
                            continue;
                        }
                        for &cert in &self.certs {
                            servers.push(ServerCell {
                                topology: t.clone(),
                                stack,
                                profile: Some(p),
                                cert: Some(cert),
                            });
                            let server = servers.len() - 1;
                            for &client in &self.client_profiles {
                                for offer in &tls_offers {
                                    cells.push(ProbeCell {
                                        server,
                                        client: Some(client),
                                        offer: (*offer).clone(),
                                    });
                                }
                            }
                        }
                    }
                }
            }
            if !clear_offers.is_empty() {
                servers.push(ServerCell {
                    topology: t.clone(),
                    stack: ServerTls::None,
                    profile: None,
                    cert: None,
                });
                let server = servers.len() - 1;
                for offer in &clear_offers {
                    cells.push(ProbeCell {
                        server,
                        client: None,
                        offer: (*offer).clone(),
                    });
                }
            }
        }
        (servers, cells, skipped)
    }
}
