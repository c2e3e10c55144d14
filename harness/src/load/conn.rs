//! The life of one load connection: connect (timed), TLS (timed, classified), choose the
//! protocol, drive requests, and reconnect after a loss until the source is done.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::request::Prepared;
use super::source::Source;
use super::{Report, Shared};
use crate::model::{LoadConfig, Proto};
use crate::record::Recorder;
use crate::tls::{classify_handshake_error, ClientTls, Stream, TlsFacts};

/// How a connection's driver ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The source has no more work.
    Finished,
    /// The connection was lost or closed: reconnect if there is work.
    Closed,
}

/// What every connection of a worker shares.
pub struct ConnCtx {
    /// Validated configuration.
    pub cfg: Arc<LoadConfig>,
    /// Client TLS, for https.
    pub tls: Option<ClientTls>,
    /// Prepared requests, round-robin.
    pub requests: Rc<Vec<Prepared>>,
    /// Round-robin position.
    pub next_request: std::cell::Cell<usize>,
    /// Work source.
    pub source: Rc<Source>,
    /// The worker's recorder.
    pub recorder: Rc<RefCell<Recorder>>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Streams per HTTP/2 connection.
    pub streams: usize,
    /// Cross-thread flags and counters.
    pub shared: Arc<Shared>,
    /// Channel to the collector.
    pub reports: std::sync::mpsc::Sender<Report>,
    /// The worker's free connections (streams), for scheduler lag.
    pub room: RefCell<super::room::Room>,
}

impl ConnCtx {
    /// The next prepared request (round-robin).
    pub fn pick(&self) -> &Prepared {
        let i = self.next_request.get();
        self.next_request.set((i + 1) % self.requests.len());
        &self.requests[i]
    }

    /// Tells the collector the server's stream limit.
    pub fn report_max_streams(&self, n: u64) {
        let _ = self.reports.send(Report::ServerMaxStreams(n));
    }
}

/// Error class of an I/O error.
pub fn io_class(e: &io::Error) -> String {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connect_refused".into(),
        ConnectionReset => "reset".into(),
        ConnectionAborted | BrokenPipe => "reset".into(),
        UnexpectedEof => "closed".into(),
        TimedOut => "timeout".into(),
        other => format!("io:{other:?}"),
    }
}

/// Error class of a connect that timed out.
pub const CONNECT_TIMEOUT: &str = "connect_timeout";

/// Error class of a connect that failed with `e`.
pub fn connect_class(e: &io::Error) -> String {
    io_class(e).replace("reset", "connect_reset")
}

/// How long to wait before reconnecting after `failures` failed attempts in a row.
pub fn reconnect_backoff(failures: u32) -> Duration {
    Duration::from_millis(10 * 2u64.pow(failures.min(7))).min(Duration::from_secs(1))
}

/// A request timeout checked lazily: one timer per connection, re-armed only when it
/// fires, instead of a timer registered and cancelled for every request.
pub struct Deadline {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl Deadline {
    /// A deadline enforcing `timeout`.
    pub fn new(timeout: Duration) -> Deadline {
        Deadline {
            sleep: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }

    /// Resolves once the oldest in-flight request, started at `oldest()`, is older than
    /// the timeout. `oldest` returns `None` when nothing is in flight.
    pub async fn expired(&mut self, oldest: impl Fn() -> Option<Instant>) {
        loop {
            (&mut self.sleep).await;
            match oldest() {
                Some(t) if t.elapsed() >= self.timeout => return,
                Some(t) => self.sleep.as_mut().reset((t + self.timeout).into()),
                None => self
                    .sleep
                    .as_mut()
                    .reset((Instant::now() + self.timeout).into()),
            }
        }
    }
}

/// One negotiated outcome, as reported to the collector.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Negotiation {
    /// `h1` or `h2`.
    pub protocol: &'static str,
    /// TLS facts, if TLS.
    pub tls: Option<(String, String, Option<String>)>,
}

enum Established {
    H1(Stream),
    H2(Stream),
    H2cUpgrade(TcpStream),
}

async fn establish(ctx: &ConnCtx) -> Result<(Established, Negotiation), String> {
    let t0 = Instant::now();
    let tcp = match tokio::time::timeout(ctx.timeout, TcpStream::connect(ctx.cfg.addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(connect_class(&e)),
        Err(_) => return Err(CONNECT_TIMEOUT.into()),
    };
    let _ = tcp.set_nodelay(true);
    let connect = t0.elapsed();
    let Some(tls) = &ctx.tls else {
        ctx.recorder.borrow_mut().connection(connect, None);
        return Ok(match ctx.cfg.proto {
            Proto::H2c => (
                Established::H2(Stream::Tcp(tcp)),
                Negotiation {
                    protocol: "h2",
                    tls: None,
                },
            ),
            Proto::H2cUpgrade => (
                Established::H2cUpgrade(tcp),
                Negotiation {
                    protocol: "h2",
                    tls: None,
                },
            ),
            _ => (
                Established::H1(Stream::Tcp(tcp)),
                Negotiation {
                    protocol: "h1",
                    tls: None,
                },
            ),
        });
    };
    let t1 = Instant::now();
    let (stream, facts): (Stream, TlsFacts) =
        match tokio::time::timeout(ctx.timeout, tls.connect(tcp)).await {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => return Err(classify_handshake_error(tls.stack(), &e)),
            Err(_) => return Err("tls_handshake:timeout".into()),
        };
    ctx.recorder
        .borrow_mut()
        .connection(connect, Some(t1.elapsed()));
    let h2 = facts.alpn.as_deref() == Some("h2");
    let protocol = match (ctx.cfg.proto, h2) {
        (Proto::H2, false) => {
            let got = facts.alpn.clone().unwrap_or_else(|| "none".into());
            return Err(format!("alpn_mismatch:selected_{}", got.replace('/', "_")));
        }
        (Proto::H1, true) => return Err("alpn_mismatch:selected_h2".into()),
        (_, true) => "h2",
        (_, false) => "h1",
    };
    let neg = Negotiation {
        protocol,
        tls: Some((facts.version, facts.cipher, facts.alpn)),
    };
    Ok((
        if h2 {
            Established::H2(stream)
        } else {
            Established::H1(stream)
        },
        neg,
    ))
}

/// Runs one connection slot until the source is done.
pub async fn run(ctx: Rc<ConnCtx>) {
    let mut failures = 0u32;
    loop {
        if ctx.shared.stop.load(Ordering::Relaxed) || ctx.shared.abort.load(Ordering::Relaxed) {
            return;
        }
        match establish(&ctx).await {
            Ok((est, neg)) => {
                failures = 0;
                ctx.shared.connected.store(true, Ordering::Relaxed);
                let _ = ctx.reports.send(Report::Connection(neg));
                let end = match est {
                    Established::H1(s) => super::h1::drive(s, &ctx).await,
                    Established::H2(s) => {
                        let client = crate::h2wire::client::Client::new();
                        super::h2::drive(s, client, Vec::new(), &ctx).await
                    }
                    Established::H2cUpgrade(tcp) => super::upgrade::drive(tcp, &ctx).await,
                };
                if end == End::Finished {
                    return;
                }
            }
            Err(class) => {
                failures += 1;
                ctx.recorder.borrow_mut().connection_error(&class);
                if ctx.shared.connect_failed() {
                    return;
                }
                // Requests due meanwhile stay queued (open loop) and count from their time.
                tokio::time::sleep(reconnect_backoff(failures)).await;
            }
        }
        if ctx.source.is_done() {
            return;
        }
    }
}
