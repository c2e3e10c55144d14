//! `h2lab probe`: one connection, no load. What TCP, TLS and ALPN settled, which protocol a
//! real request/response actually used, which protocol reached the app (from the servers
//! under test's `/info`), or the precise reason it failed.

pub mod classify;
pub mod h2c_upgrade;
pub mod render;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::model::{Proto, TlsClientConfig};
use crate::tls::{ClientTls, Stream, TlsConfigError};
pub use classify::FailureClass;
use h2c_upgrade::Upgrade;

/// Schema of `--json` output.
pub const SCHEMA: &str = "h2lab.probe/v1";

/// What to probe and how: plain data, validated by the CLI or the matrix.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    /// The URL as given (for the report).
    pub url: String,
    /// Address to connect to.
    pub addr: SocketAddr,
    /// Host[:port] for the Host header / :authority.
    pub authority: String,
    /// Path and query of the request.
    pub path: String,
    /// auto (ALPN decides; HTTP/1.1 on cleartext), h1, h2, h2c, h2c-upgrade.
    pub proto: Proto,
    /// TLS, for https:// URLs.
    pub tls: Option<TlsClientConfig>,
    /// RFC 7540 section 9.2.2: refuse HTTP/2 over TLS 1.2 with an Appendix A suite.
    pub strict_h2: bool,
    /// Bound of each step (connect, handshake, response).
    pub timeout: Duration,
}

/// TLS part of a report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TlsReport {
    /// Client stack used.
    pub stack: String,
    /// e.g. `TLSv1.2`.
    pub version: String,
    /// Cipher suite as the stack names it.
    pub cipher: String,
    /// Cipher suite, IANA name.
    pub cipher_iana: String,
    /// Whether the suite is on RFC 7540 Appendix A (matters only with TLS 1.2).
    pub appendix_a: bool,
    /// Key exchange group.
    pub group: Option<String>,
    /// Server certificate key type.
    pub cert_key: Option<String>,
    /// Handshake time, ms.
    pub handshake_ms: f64,
}

/// The outcome of one probe.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The URL probed.
    pub url: String,
    /// What was asked: `auto`, `h1`, `h2`, `h2c`, `h2c-upgrade`.
    pub proto: String,
    /// Whether TCP connected.
    pub tcp_connect: bool,
    /// TCP connect time, ms.
    pub connect_ms: Option<f64>,
    /// ALPN offered (TLS only).
    pub alpn_offered: Option<Vec<String>>,
    /// ALPN selected by the server (TLS only; None = nothing selected).
    pub alpn_selected: Option<String>,
    /// TLS facts, when the handshake completed.
    pub tls: Option<TlsReport>,
    /// The protocol a real request/response used: `HTTP/2` or `HTTP/1.1`.
    pub protocol: Option<String>,
    /// Response status.
    pub status: Option<u16>,
    /// Protocol of the request as it reached the app (`/info` of a server under test).
    pub app_protocol: Option<String>,
    /// Hosting model the app reported.
    pub app_hosting: Option<String>,
    /// Failure class; None when the asked-for exchange worked.
    pub class: Option<String>,
    /// What failed, in words.
    pub detail: Option<String>,
    /// Remarks that are not failures (e.g. ALPN ignored, fell back to HTTP/1.1).
    pub notes: Vec<String>,
    /// Whole probe, ms.
    pub elapsed_ms: f64,
}

impl ProbeReport {
    fn new(spec: &ProbeSpec) -> ProbeReport {
        ProbeReport {
            schema: SCHEMA,
            url: spec.url.clone(),
            proto: proto_name(spec.proto),
            tcp_connect: false,
            connect_ms: None,
            alpn_offered: spec.tls.as_ref().map(|t| t.alpn.clone()),
            alpn_selected: None,
            tls: None,
            protocol: None,
            status: None,
            app_protocol: None,
            app_hosting: None,
            class: None,
            detail: None,
            notes: Vec::new(),
            elapsed_ms: 0.0,
        }
    }

    fn fail(&mut self, class: FailureClass, detail: impl Into<String>) {
        self.class = Some(class.to_string());
        self.detail = Some(detail.into());
    }

    /// The verdict in one word: the protocol spoken, or the failure class.
    pub fn verdict(&self) -> String {
        match (&self.class, &self.protocol) {
            (Some(c), _) => c.clone(),
            (None, Some(p)) => p.clone(),
            (None, None) => "unknown".into(),
        }
    }
}

/// The name `--proto` takes.
fn proto_name(p: Proto) -> String {
    use clap::ValueEnum;
    p.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Probes once. Only configuration errors (bad TLS flags) are `Err`; every network
/// outcome is a report.
pub async fn probe(spec: &ProbeSpec) -> Result<ProbeReport, TlsConfigError> {
    let tls = spec.tls.as_ref().map(ClientTls::build).transpose()?;
    let t0 = Instant::now();
    let mut report = ProbeReport::new(spec);
    run(spec, tls, &mut report).await;
    report.elapsed_ms = ms(t0.elapsed());
    Ok(report)
}

async fn run(spec: &ProbeSpec, tls: Option<ClientTls>, report: &mut ProbeReport) {
    let t = Instant::now();
    let tcp = match tokio::time::timeout(spec.timeout, TcpStream::connect(spec.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return report.fail(FailureClass::ConnectFailed, e.to_string()),
        Err(_) => return report.fail(FailureClass::Timeout("connect"), "TCP connect"),
    };
    let _ = tcp.set_nodelay(true);
    report.tcp_connect = true;
    report.connect_ms = Some(ms(t.elapsed()));
    let Some(tls) = tls else {
        return cleartext(spec, tcp, report).await;
    };
    let t = Instant::now();
    let (stream, facts) = match tokio::time::timeout(spec.timeout, tls.connect(tcp)).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return report.fail(classify::handshake(tls.stack(), &e), e.to_string()),
        Err(_) => return report.fail(FailureClass::Timeout("handshake"), "TLS handshake"),
    };
    let details = stream.details().unwrap_or_default();
    report.alpn_selected = facts.alpn.clone();
    report.tls = Some(TlsReport {
        stack: format!("{:?}", tls.stack()).to_lowercase(),
        appendix_a: h2lab_common::profiles::on_appendix_a(details.cipher_code),
        version: facts.version.clone(),
        cipher: facts.cipher.clone(),
        cipher_iana: details.cipher_iana,
        group: details.group,
        cert_key: details.cert_key,
        handshake_ms: ms(t.elapsed()),
    });
    let offered = report.alpn_offered.clone().unwrap_or_default();
    match facts.alpn.as_deref() {
        Some("h2") => {
            let weak = report
                .tls
                .as_ref()
                .is_some_and(|t| t.version == "TLSv1.2" && t.appendix_a);
            if weak && spec.strict_h2 {
                refuse_inadequate(stream).await;
                return report.fail(
                    FailureClass::InadequateSecurity,
                    format!(
                        "we sent GOAWAY INADEQUATE_SECURITY: h2 over TLS 1.2 with {}, a suite on \
                         RFC 7540 Appendix A (--allow-weak-h2 to go on)",
                        facts.cipher
                    ),
                );
            }
            h2_exchange(spec, stream, report).await
        }
        Some("http/1.1") => h1_exchange(spec, stream, report).await,
        Some(other) => report.fail(
            FailureClass::Http(format!("unknown_alpn:{other}")),
            format!("server selected `{other}`"),
        ),
        None if offered.is_empty() || offered.iter().any(|p| p == "http/1.1") => {
            if !offered.is_empty() {
                report
                    .notes
                    .push("ALPN ignored: the server selected no protocol; HTTP/1.1".into());
            }
            h1_exchange(spec, stream, report).await
        }
        None => report.fail(
            FailureClass::AlpnIgnored,
            format!(
                "offered {} without http/1.1; the server selected no protocol (no ALPN)",
                offered.join(",")
            ),
        ),
    }
}

async fn cleartext(spec: &ProbeSpec, tcp: TcpStream, report: &mut ProbeReport) {
    match spec.proto {
        Proto::H2c => {
            let before = report.class.is_none();
            h2_exchange(spec, Stream::Tcp(tcp), report).await;
            if before && report.protocol.is_none() {
                if let Some(class) = &report.class {
                    if !class.starts_with("timeout") {
                        let detail = report.detail.take().unwrap_or_default();
                        report.fail(
                            FailureClass::H2cPriorKnowledgeRejected,
                            format!("the server did not take the HTTP/2 preface: {detail}"),
                        );
                    }
                }
            }
        }
        Proto::H2cUpgrade => {
            let up = h2c_upgrade::upgrade(tcp, &spec.authority, &spec.path);
            match tokio::time::timeout(spec.timeout, up).await {
                Err(_) => report.fail(FailureClass::Timeout("response"), "Upgrade: h2c"),
                Ok(Err(class)) => report.fail(FailureClass::Http(class.clone()), class),
                Ok(Ok(Upgrade::Declined(status))) => {
                    report.protocol = Some("HTTP/1.1".into());
                    report.status = Some(status);
                    report.fail(
                        FailureClass::H2cUpgradeDeclined,
                        format!("the server answered {status} over HTTP/1.1 instead of 101"),
                    );
                }
                Ok(Ok(Upgrade::Switched { conn, response, .. })) => {
                    let got =
                        tokio::time::timeout(spec.timeout, with_conn(conn, h2_response(response)))
                            .await;
                    finish_h2(got, report);
                }
            }
        }
        _ => h1_exchange(spec, Stream::Tcp(tcp), report).await,
    }
}

/// Client side of RFC 7540 9.2.2: preface, SETTINGS, GOAWAY(0, INADEQUATE_SECURITY).
async fn refuse_inadequate<S: AsyncWrite + Unpin>(mut io: S) {
    let mut out = Vec::from(&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..]);
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0, 0, 8, 7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&u32::from(h2::Reason::INADEQUATE_SECURITY).to_be_bytes());
    let _ = io.write_all(&out).await;
    let _ = io.shutdown().await;
}

type H2Result = Result<(u16, Bytes), FailureClass>;

async fn h2_response(response: h2::client::ResponseFuture) -> H2Result {
    let resp = response.await.map_err(|e| classify::h2(&e))?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| classify::h2(&e))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if data.len() < 1 << 16 {
            data.extend_from_slice(&chunk);
        }
    }
    Ok((status, Bytes::from(data)))
}

fn finish_h2(got: Result<H2Result, tokio::time::error::Elapsed>, report: &mut ProbeReport) {
    match got {
        Err(_) => report.fail(FailureClass::Timeout("response"), "HTTP/2 response"),
        Ok(Err(class)) => {
            let detail = match &class {
                FailureClass::InadequateSecurity => {
                    "the server sent GOAWAY INADEQUATE_SECURITY".to_string()
                }
                other => other.to_string(),
            };
            report.fail(class, detail)
        }
        Ok(Ok((status, body))) => {
            report.protocol = Some("HTTP/2".into());
            report.status = Some(status);
            read_info(&body, report);
        }
    }
}

async fn h2_exchange<S>(spec: &ProbeSpec, io: S, report: &mut ProbeReport)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .handshake::<_, Bytes>(io);
    let (mut send, conn) = match tokio::time::timeout(spec.timeout, handshake).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return report.fail(classify::h2(&e), e.to_string()),
        Err(_) => return report.fail(FailureClass::Timeout("response"), "HTTP/2 handshake"),
    };
    let scheme = if spec.tls.is_some() { "https" } else { "http" };
    let req = http::Request::builder()
        .uri(format!("{scheme}://{}{}", spec.authority, spec.path))
        .body(())
        .expect("valid request");
    let got = match send.send_request(req, true) {
        Ok((response, _)) => {
            tokio::time::timeout(spec.timeout, with_conn(conn, h2_response(response))).await
        }
        Err(e) => Ok(Err(classify::h2(&e))),
    };
    finish_h2(got, report);
}

async fn h1_exchange(spec: &ProbeSpec, io: Stream, report: &mut ProbeReport) {
    let exchange = async {
        let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(
            hyper_util::rt::TokioIo::new(io),
        )
        .await?;
        let req = http::Request::builder()
            .uri(spec.path.as_str())
            .header(http::header::HOST, spec.authority.as_str())
            .body(Empty::new())
            .expect("valid request");
        let exchange = async {
            let resp = send.send_request(req).await?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), 1 << 16)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, hyper::Error>((status, body))
        };
        with_conn(conn, exchange).await
    };
    match tokio::time::timeout(spec.timeout, exchange).await {
        Err(_) => report.fail(FailureClass::Timeout("response"), "HTTP/1.1 response"),
        Ok(Err(e)) => report.fail(
            FailureClass::Http("h1".into()),
            format!("HTTP/1.1 exchange failed: {e}"),
        ),
        Ok(Ok((status, body))) => {
            report.protocol = Some("HTTP/1.1".into());
            report.status = Some(status);
            read_info(&body, report);
        }
    }
}

/// Polls a connection's I/O future while `work` runs, in this task (no spawned task can
/// outlive the probe and keep a socket open); once the connection ends, `work` is still
/// awaited so it can report why.
async fn with_conn<C: std::future::Future, W: std::future::Future>(conn: C, work: W) -> W::Output {
    let mut conn = std::pin::pin!(conn);
    let mut work = std::pin::pin!(work);
    tokio::select! {
        out = &mut work => out,
        _ = &mut conn => work.await,
    }
}

/// Takes the app's view from a `/info` document, when the body is one.
fn read_info(body: &[u8], report: &mut ProbeReport) {
    #[derive(serde::Deserialize)]
    struct Info {
        http_version: String,
        hosting_model: Option<String>,
    }
    if let Ok(info) = serde_json::from_slice::<Info>(body) {
        report.app_protocol = Some(info.http_version);
        report.app_hosting = info.hosting_model;
    }
}
