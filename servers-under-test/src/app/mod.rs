//! The test app: the same handlers behind every topology, so that what differs between
//! cells is the deployment, not the application.
//!
//! Routes: `GET /plaintext`, `GET /json`, `GET /bytes/{n}`, `GET /delay/{ms}`,
//! `POST /echo`, `GET /info`.

pub mod forwarded;
mod info;
mod repeat;

use std::sync::Arc;
use std::time::Duration;

use crate::request_body::RequestBody;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

pub use forwarded::{ForwardedHeaders, RequestView};
pub use info::Info;

use crate::body::{self, Body};
use crate::conn_info::ConnInfo;
use crate::handler::Handler;

/// Largest `/bytes/{n}` response.
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Longest `/delay/{ms}`.
pub const MAX_DELAY_MS: u64 = 60_000;
/// Largest `/echo` body, whatever the server's own body limit.
pub const MAX_ECHO: u64 = 64 * 1024 * 1024;
/// Header carrying the out-of-process pairing token (the role of MS-ASPNETCORE-TOKEN).
pub const PAIRING_TOKEN_HEADER: &str = "x-h2lab-pairing-token";

/// How the app is hosted, as reported by `/info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HostingModel {
    /// The app's own server faces clients.
    Edge,
    /// The app runs inside the front host's process.
    InProcess,
    /// The app runs in a process managed by the front host's module.
    OutOfProcess,
    /// The app's server sits behind a reverse proxy.
    BehindProxy,
}

/// Settings of one app instance.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Reported by `/info`.
    pub hosting: HostingModel,
    /// Forwarded-headers middleware settings.
    pub forwarded: ForwardedHeaders,
    /// When set, requests must carry this pairing token or get 400.
    pub pairing_token: Option<String>,
    /// Test support: hold every response while the clock is inside a stall window.
    pub stall: Option<Stall>,
    /// Test support: serve one request at a time, each taking exactly this long.
    pub serial: Option<std::sync::Arc<Serial>>,
    /// Test support: every response takes this much longer (a known slowdown).
    pub extra_latency: Option<Duration>,
}

/// A server of known capacity: requests are served one at a time, each for exactly
/// `service`, so the capacity is 1 / `service` requests per second whatever the timer's
/// jitter (completions are scheduled on a virtual clock, never from when a sleep woke).
#[derive(Debug)]
pub struct Serial {
    /// Time each request takes.
    pub service: Duration,
    /// When the server is next free.
    free_at: std::sync::Mutex<std::time::Instant>,
}

impl Serial {
    /// An idle server with this service time.
    pub fn new(service: Duration) -> Serial {
        Serial {
            service,
            free_at: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    /// When a request arriving at `now` completes.
    pub fn complete_at(&self, now: std::time::Instant) -> std::time::Instant {
        let mut free = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let done = (*free).max(now) + self.service;
        *free = done;
        done
    }
}

/// Waits `d`: spinning below 2 ms, where the runtime's timer (1 ms ticks) cannot.
async fn wait(d: Duration) {
    if d >= Duration::from_millis(2) {
        tokio::time::sleep(d).await;
    } else {
        let until = std::time::Instant::now() + d;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

/// A server stall schedule: for `duration` out of every `period` (from process start),
/// no response leaves; requests arriving then wait for the window's end. This is the
/// ground truth the load engine's coordinated-omission tests measure against.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    /// Time between stall starts.
    pub period: Duration,
    /// Length of each stall.
    pub duration: Duration,
    /// Origin of the schedule.
    pub origin: std::time::Instant,
}

impl Stall {
    /// How long a request arriving at `now` must wait.
    pub fn wait_at(&self, now: std::time::Instant) -> Duration {
        let phase = now.duration_since(self.origin).as_nanos() % self.period.as_nanos().max(1);
        let phase = Duration::from_nanos(phase as u64);
        self.duration.saturating_sub(phase)
    }
}

/// The test app.
#[derive(Debug, Clone)]
pub struct App {
    opts: Arc<AppOptions>,
}

impl App {
    /// An app with these options.
    pub fn new(opts: AppOptions) -> App {
        App {
            opts: Arc::new(opts),
        }
    }

    /// Answers one request, with its handler time in a `Server-Timing: app` entry.
    pub async fn respond(&self, req: Request<RequestBody>, conn: &ConnInfo) -> Response<Body> {
        let start = std::time::Instant::now();
        let mut resp = self.route(req, conn).await;
        crate::server_timing::append(resp.headers_mut(), "app", start);
        resp
    }

    async fn route(&self, req: Request<RequestBody>, conn: &ConnInfo) -> Response<Body> {
        if let Some(serial) = &self.opts.serial {
            let done = serial.complete_at(std::time::Instant::now());
            tokio::time::sleep_until(done.into()).await;
        }
        if let Some(extra) = self.opts.extra_latency {
            wait(extra).await;
        }
        if let Some(stall) = &self.opts.stall {
            let wait = stall.wait_at(std::time::Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        if let Some(expected) = &self.opts.pairing_token {
            let ok = req
                .headers()
                .get(PAIRING_TOKEN_HEADER)
                .is_some_and(|v| v.as_bytes() == expected.as_bytes());
            if !ok {
                return body::text(
                    StatusCode::BAD_REQUEST,
                    "missing or wrong pairing token: this app only answers requests from its host",
                );
            }
        }
        let path = req.uri().path();
        match (req.method(), path) {
            (&Method::GET | &Method::HEAD, "/plaintext") => body::response(
                StatusCode::OK,
                "text/plain",
                Bytes::from_static(b"Hello, World!"),
            ),
            (&Method::GET | &Method::HEAD, "/json") => body::response(
                StatusCode::OK,
                "application/json",
                Bytes::from_static(br#"{"message":"Hello, World!"}"#),
            ),
            (&Method::GET | &Method::HEAD, "/info") => {
                let view = self.opts.forwarded.apply(&req, conn);
                let info = Info::collect(&req, conn, &view, self.opts.hosting);
                let json = serde_json::to_vec_pretty(&info).expect("info serialises");
                body::response(StatusCode::OK, "application/json", json)
            }
            (&Method::GET | &Method::HEAD, p) if p.starts_with("/bytes/") => {
                match parse_capped(&p["/bytes/".len()..], MAX_BYTES) {
                    Ok(n) => {
                        let mut resp = Response::new(repeat::body(n));
                        resp.headers_mut().insert(
                            header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/octet-stream"),
                        );
                        resp
                    }
                    Err(e) => body::text(StatusCode::BAD_REQUEST, e),
                }
            }
            (&Method::GET | &Method::HEAD, p) if p.starts_with("/delay/") => {
                match parse_capped(&p["/delay/".len()..], MAX_DELAY_MS) {
                    Ok(ms) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        body::response(StatusCode::OK, "text/plain", format!("delayed {ms} ms"))
                    }
                    Err(e) => body::text(StatusCode::BAD_REQUEST, e),
                }
            }
            (&Method::POST | &Method::PUT, "/echo") => echo(req, conn.max_body.min(MAX_ECHO)).await,
            // The root greets; a POST's body is read to its end first. Conformance suites
            // request `/` and expect 200, and a body read to its end lets the server judge
            // all of it (trailers, content-length).
            (&Method::GET | &Method::HEAD, "/") => body::response(
                StatusCode::OK,
                "text/plain",
                Bytes::from_static(b"Hello, World!"),
            ),
            (&Method::POST | &Method::PUT, "/") => {
                match echo(req, conn.max_body.min(MAX_ECHO)).await {
                    read if read.status() != StatusCode::OK => read,
                    _ => body::response(
                        StatusCode::OK,
                        "text/plain",
                        Bytes::from_static(b"Hello, World!"),
                    ),
                }
            }
            (_, "/" | "/plaintext" | "/json" | "/info" | "/echo") => {
                body::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            }
            _ => body::text(StatusCode::NOT_FOUND, format!("no route for {path}")),
        }
    }
}

impl Handler for App {
    fn quick(&self, method: &[u8], path: &[u8]) -> Option<crate::handler::Quick> {
        let o = &self.opts;
        if o.serial.is_some()
            || o.extra_latency.is_some()
            || o.stall.is_some()
            || o.pairing_token.is_some()
        {
            return None;
        }
        if method != b"GET" && method != b"HEAD" {
            return None;
        }
        let path = path.split(|&b| b == b'?').next().unwrap_or(path);
        // The same answers as `route`'s for these paths.
        let (content_type, body): (&'static str, &'static [u8]) = match path {
            b"/plaintext" | b"/" => ("text/plain", b"Hello, World!"),
            b"/json" => ("application/json", br#"{"message":"Hello, World!"}"#),
            _ => return None,
        };
        Some(crate::handler::Quick { content_type, body })
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<RequestBody>,
        conn: Arc<ConnInfo>,
    ) -> Response<Body> {
        self.respond(req, &conn).await
    }
}

fn parse_capped(s: &str, cap: u64) -> Result<u64, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a non-negative integer"))?;
    if n > cap {
        return Err(format!("{n} is over the cap of {cap}"));
    }
    Ok(n)
}

async fn echo(req: Request<RequestBody>, limit: u64) -> Response<Body> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(http::HeaderValue::from_static("application/octet-stream"));
    match Limited::new(req.into_body(), limit as usize)
        .collect()
        .await
    {
        Ok(collected) => {
            let mut resp = Response::new(body::full(collected.to_bytes()));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
            resp
        }
        Err(e) if e.is::<http_body_util::LengthLimitError>() => body::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over the limit of {limit} bytes"),
        ),
        Err(e) => body::text(
            StatusCode::BAD_REQUEST,
            format!("reading the body failed: {e}"),
        ),
    }
}
