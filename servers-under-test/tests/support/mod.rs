//! Helpers shared by the integration tests: start `sut` through the real launcher, and
//! talk to it with curl and with a hyper + rustls client.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2lab_common::launch::{self, RunningServer};
use http::{Request, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;

pub fn sut_bin() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_sut").into()
}

/// Starts `sut ARGS` and waits for its readiness line.
pub fn start(args: &[&str]) -> RunningServer {
    start_env(args, &[])
}

pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> RunningServer {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    launch::start_sut(&sut_bin(), &args, &env, None, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("sut {args:?} did not start: {e}"))
}

/// A TLS edge with a generated CA written to a temporary directory.
pub struct TlsServer {
    pub server: RunningServer,
    pub ca: std::path::PathBuf,
    pub ca_pem: String,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    pub fn port(&self) -> u16 {
        self.server.addr.port()
    }
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port())
    }
}

/// Starts `sut SUBCOMMAND --listen 127.0.0.1:0 --self-signed KEY --ca-out ... EXTRA`.
pub fn start_tls(subcommand: &str, stack: &str, key: &str, extra: &[&str]) -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let ca_s = ca.display().to_string();
    let mut args = h2lab_common::launch::tls_test_args(subcommand, stack, key, &ca_s);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(&args);
    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    TlsServer {
        server,
        ca,
        ca_pem,
        _dir: dir,
    }
}

#[derive(Debug)]
pub struct CurlReply {
    pub exit: i32,
    pub status: u16,
    pub http_version: String,
    pub body: String,
    pub stderr: String,
}

const MARK: &str = "\n__h2lab__";

/// Runs curl with `args` (plus -s -S and a write-out marker).
pub fn curl(args: &[&str]) -> CurlReply {
    let out = Command::new("curl")
        .args([
            "-s",
            "-S",
            "--max-time",
            "20",
            "-w",
            &format!("{MARK}%{{http_code}} %{{http_version}}"),
        ])
        .args(args)
        .output()
        .expect("curl is installed (scripts/setup.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = stdout.rsplit_once(MARK).unwrap_or((&stdout, "0 0"));
    let mut it = tail.split_whitespace();
    CurlReply {
        exit: out.status.code().unwrap_or(-1),
        status: it.next().and_then(|s| s.parse().ok()).unwrap_or(0),
        http_version: it.next().unwrap_or("").to_string(),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub version: Version,
    pub body: Bytes,
    pub alpn: Option<String>,
    pub tls_version: Option<rustls::ProtocolVersion>,
}

/// rustls client config trusting `ca_pem`, offering `alpn`, limited to `versions`.
pub fn client_config(
    ca_pem: &str,
    alpn: &[&str],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(cfg)
}

/// GET `path` over TLS with hyper, speaking whatever ALPN chose (h2 or HTTP/1.1).
pub async fn hyper_tls_get(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
) -> anyhow::Result<Reply> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let (_, conn) = tls.get_ref();
    let alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let tls_version = conn.protocol_version();
    let uri = format!("https://localhost:{}{path}", addr.port());
    let resp = if alpn.as_deref() == Some("h2") {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        send.send_request(Request::get(uri).body(Empty::<Bytes>::new())?)
            .await?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", format!("localhost:{}", addr.port()))
            .body(Empty::<Bytes>::new())?;
        send.send_request(req).await?
    };
    let status = resp.status().as_u16();
    let version = resp.version();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        version,
        body,
        alpn,
        tls_version,
    })
}

/// GET `path` over cleartext HTTP/2 with prior knowledge, using the h2 crate directly.
pub async fn h2c_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Bytes)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (client, conn) = h2::client::handshake(tcp).await?;
    tokio::spawn(conn);
    let mut client = client.ready().await?;
    let req = Request::get(format!("http://{addr}{path}")).body(())?;
    let (resp, _) = client.send_request(req, true)?;
    let resp = resp.await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        out.extend_from_slice(&chunk);
    }
    Ok((status, out.into()))
}

/// Whether a real proxy test may be skipped: only outside CI, when not installed.
pub fn proxy_missing(kind: launch::ProxyKind) -> bool {
    if kind.find().is_some() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is not installed in CI: run scripts/setup.sh",
        kind.name()
    );
    eprintln!(
        "skipping: {} not installed ({})",
        kind.name(),
        kind.install_hint()
    );
    true
}
