//! The connection engine shared by every `sut` server: N worker threads, each with its own
//! current-thread runtime and its own SO_REUSEPORT listener (the nginx worker model),
//! TLS with either stack, HTTP/1.1, HTTP/2 (ALPN, prior knowledge, h2c Upgrade), edge
//! limits, and graceful shutdown.

mod conn;
pub mod guard;
mod h2c;
mod io;
mod labh1;
pub mod labh2;
mod malformed;
mod watchdog;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

use crate::handler::Handler;
use crate::request_body::MinRate;
use crate::tls::{ServerTls, TlsError, TlsSettings};

pub use guard::FloodLimits;
pub use watchdog::{Activity, Snapshot, Verdict, Watchdog};

/// Edge limits: the defences Kestrel 1.x lacked. Defaults follow Kestrel's.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time allowed to receive a request head (HTTP/1.1), answered with 408.
    pub header_timeout: Duration,
    /// Keep-alive idle time after which a connection is closed (GOAWAY on HTTP/2).
    pub idle_timeout: Duration,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Largest request head (HTTP/1.1) or header list (HTTP/2), answered with 431.
    pub max_header_bytes: usize,
    /// Largest request body, answered with 413.
    pub max_body_bytes: u64,
    /// Most connections served at once; further ones get 503 and are closed.
    pub max_connections: usize,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; excess streams get REFUSED_STREAM.
    pub max_streams: u32,
    /// How long in-flight requests may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Output blocked this long (the peer does not read) drops the connection; 0: never.
    pub send_timeout: Duration,
    /// Slowest request body accepted after its grace period (408 below it; Slow POST).
    pub min_body_rate: MinRate,
    /// HTTP/2 frames that do no work (PING, SETTINGS, PRIORITY, resets, empty frames,
    /// tiny window updates, streams the server had to reset) allowed per connection
    /// before GOAWAY ENHANCE_YOUR_CALM.
    pub h2_flood: FloodLimits,
    /// h2's bound on client-reset streams not yet accepted (Rapid Reset).
    pub h2_max_pending_resets: usize,
    /// h2's bound on streams the server reset because of the client (MadeYouReset).
    pub h2_max_local_resets: usize,
    /// The HTTP/2 server engine.
    pub h2_engine: labh2::H2Engine,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(130),
            handshake_timeout: Duration::from_secs(10),
            max_header_bytes: 32 * 1024,
            max_body_bytes: 30_000_000,
            max_connections: 100_000,
            max_streams: 100,
            shutdown_grace: Duration::from_secs(5),
            send_timeout: Duration::from_secs(30),
            min_body_rate: MinRate {
                per_second: 240,
                grace: Duration::from_secs(5),
            },
            h2_flood: FloodLimits {
                burst: 1000,
                per_second: 100,
            },
            h2_max_pending_resets: 20,
            h2_max_local_resets: 1024,
            h2_engine: labh2::H2Engine::default(),
        }
    }
}

/// Everything that configures the engine.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Address to bind (port 0: the OS chooses).
    pub listen: SocketAddr,
    /// TLS, or cleartext when `None`.
    pub tls: Option<TlsSettings>,
    /// Accept cleartext HTTP/2 (prior knowledge and Upgrade).
    pub h2c: bool,
    /// Worker threads.
    pub workers: usize,
    /// Edge limits.
    pub limits: Limits,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A worker thread could not be started.
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
}

/// Counts open connections against the limit.
#[derive(Debug)]
pub(crate) struct ConnCounter {
    active: AtomicUsize,
    max: usize,
    overflow: AtomicUsize,
}

/// Held while a connection is counted; releases its slot on drop.
pub(crate) struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnCounter {
    /// Most over-limit connections answered 503 at once; beyond, they are just closed.
    const MAX_OVERFLOW: usize = 256;

    fn admit(&self) -> Option<(Slot<'_>, bool)> {
        if self.active.fetch_add(1, Ordering::Relaxed) < self.max {
            return Some((Slot(&self.active), false));
        }
        self.active.fetch_sub(1, Ordering::Relaxed);
        if self.overflow.fetch_add(1, Ordering::Relaxed) < Self::MAX_OVERFLOW {
            return Some((Slot(&self.overflow), true));
        }
        self.overflow.fetch_sub(1, Ordering::Relaxed);
        None
    }
}

/// A server with its listeners bound and TLS ready, not yet serving.
pub struct BoundServer {
    listeners: Vec<std::net::TcpListener>,
    addr: SocketAddr,
    tls: Option<ServerTls>,
    opts: ServerOptions,
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Binds one listener per worker (SO_REUSEPORT when more than one) and builds TLS.
pub fn bind(opts: ServerOptions) -> Result<BoundServer, ServerError> {
    let workers = opts.workers.max(1);
    let reuse = workers > 1;
    let bind_err = |addr| move |source| ServerError::Bind { addr, source };
    let first = bind_one(opts.listen, reuse).map_err(bind_err(opts.listen))?;
    let addr = first.local_addr().map_err(bind_err(opts.listen))?;
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(bind_one(addr, true).map_err(bind_err(addr))?);
    }
    let tls = opts.tls.as_ref().map(ServerTls::build).transpose()?;
    Ok(BoundServer {
        listeners,
        addr,
        tls,
        opts,
    })
}

/// Worker threads serving a [`BoundServer`]; join them after cancelling the token.
pub struct Workers(Vec<std::thread::JoinHandle<()>>);

impl Workers {
    /// Waits for every worker to finish (after shutdown was requested).
    pub fn join(self) {
        for w in self.0 {
            let _ = w.join();
        }
    }
}

impl BoundServer {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The readiness line: `{"event":"listening","addr":...,"scheme":...,"pid":...}`.
    pub fn listening_line(&self) -> String {
        serde_json::json!({
            "event": "listening",
            "addr": self.addr.to_string(),
            "scheme": self.scheme(),
            "pid": std::process::id(),
        })
        .to_string()
    }

    /// Starts the workers; `make_handler(i)` builds worker `i`'s handler on its thread.
    pub fn spawn<H, F>(
        self,
        make_handler: F,
        shutdown: CancellationToken,
    ) -> Result<Workers, ServerError>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let make_handler = Arc::new(make_handler);
        let counter = Arc::new(ConnCounter {
            active: AtomicUsize::new(0),
            max: self.opts.limits.max_connections,
            overflow: AtomicUsize::new(0),
        });
        let mut threads = Vec::new();
        for (i, listener) in self.listeners.into_iter().enumerate() {
            let make_handler = make_handler.clone();
            let counter = counter.clone();
            let tls = self.tls.clone();
            let opts = self.opts.clone();
            let shutdown = shutdown.clone();
            let t = std::thread::Builder::new()
                .name(format!("sut-worker-{i}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("worker runtime");
                    rt.block_on(async move {
                        let handler = Arc::new(make_handler(i));
                        let listener =
                            tokio::net::TcpListener::from_std(listener).expect("register listener");
                        let ctx = conn::WorkerCtx::new(handler, tls, &opts, counter, shutdown);
                        conn::accept_loop(listener, ctx).await;
                    });
                })
                .map_err(ServerError::Thread)?;
            threads.push(t);
        }
        Ok(Workers(threads))
    }
}
