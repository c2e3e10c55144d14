//! Sends an attack: its connections on one current-thread runtime, each writing its
//! recipe's units at the paced rate (or as fast as the socket takes them) until the
//! duration, the unit bound or a stop, while a reader watches how the server answers.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ending::{Ending, Watcher};
use super::recipe::{Recipe, Request};
use super::{Kind, Wire};
use crate::tls::{ClientTls, Stream};

/// One attack, validated: what, where, how hard and for how long.
#[derive(Clone)]
pub struct Spec {
    /// The attack.
    pub kind: Kind,
    /// Where to connect (loopback or a namespace the lab made; checked by the caller).
    pub addr: SocketAddr,
    /// The request the attack sends where it sends requests.
    pub request: Request,
    /// Client TLS for https targets (ALPN h2 for HTTP/2 attacks).
    pub tls: Option<ClientTls>,
    /// Attacking connections.
    pub connections: usize,
    /// Units per second over all connections; 0: as fast as the sockets take them.
    pub rate: f64,
    /// Most units per connection; reached, the connection is held open.
    pub max_units: u64,
    /// How long the attack lasts.
    pub duration: Duration,
}

/// How one attacking connection went.
#[derive(Debug, Clone, Serialize)]
pub struct ConnReport {
    /// How it ended.
    pub ending: Ending,
    /// Units written (frames, requests, lines, bytes: see the kind).
    pub units: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Seconds from its start to its end (or to the attack's end).
    pub seconds: f64,
    /// Frames the server sent, by type.
    pub frames_received: std::collections::BTreeMap<String, u64>,
    /// Streams the server reset, by code.
    pub resets: std::collections::BTreeMap<String, u64>,
}

/// Units written per write when unpaced: enough to keep the socket full, few enough to
/// notice the stop quickly.
const BATCH: u64 = 256;
/// Pacing tick.
const TICK: Duration = Duration::from_millis(10);
/// Longest wait for a TCP connect or TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the attack to its end (duration, or `stop`); blocking.
pub fn run(spec: &Spec, stop: &AtomicBool) -> std::io::Result<Vec<ConnReport>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let deadline = Instant::now() + spec.duration;
    Ok(local.block_on(&rt, async {
        let mut tasks = Vec::new();
        let per_conn = spec.rate / spec.connections.max(1) as f64;
        // Set at the stop: every connection then reports as it stands, however far it got.
        let (halt, halted) = tokio::sync::watch::channel(false);
        for i in 0..spec.connections {
            // A connection flood at a rate opens its connections at that rate.
            if spec.kind == Kind::ConnectionFlood && spec.rate > 0.0 {
                let at = Duration::from_secs_f64(i as f64 / spec.rate);
                tokio::time::sleep_until((deadline - spec.duration + at).into()).await;
            }
            if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                break;
            }
            let (spec, halted) = (spec.clone(), halted.clone());
            tasks.push(tokio::task::spawn_local(async move {
                one(&spec, per_conn, deadline, halted).await
            }));
        }
        let stopper = async {
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                tokio::time::sleep(TICK).await;
            }
        };
        let all = futures_util::future::join_all(tasks);
        tokio::pin!(all);
        tokio::select! {
            done = &mut all => done.into_iter().flatten().collect(),
            () = stopper => {
                // Stopped early: every connection reports as it stands at the stop.
                let _ = halt.send(true);
                tokio::time::timeout(Duration::from_secs(1), all)
                    .await
                    .map(|d| d.into_iter().flatten().collect())
                    .unwrap_or_default()
            }
        }
    }))
}

async fn connect(spec: &Spec) -> Result<Stream, String> {
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(spec.addr)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(crate::load::conn::connect_class(&e)),
        Err(_) => return Err(crate::load::conn::CONNECT_TIMEOUT.into()),
    };
    let _ = tcp.set_nodelay(true);
    match &spec.tls {
        None => Ok(Stream::Tcp(tcp)),
        Some(tls) => match tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(tcp)).await {
            Ok(Ok((s, _))) => Ok(s),
            Ok(Err(e)) => Err(crate::tls::classify_handshake_error(tls.stack(), &e)),
            Err(_) => Err("tls_timeout".into()),
        },
    }
}

/// What the writer saw when it stopped.
enum Wrote {
    /// The attack's end came, the connection still open.
    Done,
    /// Writes blocked until the end: the server stopped reading.
    Stalled,
    /// The write failed.
    Failed(std::io::ErrorKind),
}

async fn one(
    spec: &Spec,
    per_conn: f64,
    deadline: Instant,
    mut halted: tokio::sync::watch::Receiver<bool>,
) -> ConnReport {
    let halt = async move {
        let _ = halted.wait_for(|h| *h).await;
    };
    tokio::pin!(halt);
    let start = Instant::now();
    let mut report = ConnReport {
        ending: Ending::Open,
        units: 0,
        bytes: 0,
        seconds: 0.0,
        frames_received: Default::default(),
        resets: Default::default(),
    };
    let connected = tokio::select! {
        c = connect(spec) => c,
        () = &mut halt => {
            report.ending = Ending::Connecting;
            report.seconds = start.elapsed().as_secs_f64();
            return report;
        }
    };
    let stream = match connected {
        Ok(s) => s,
        Err(class) => {
            report.ending = Ending::ConnectFailed { class };
            report.seconds = start.elapsed().as_secs_f64();
            return report;
        }
    };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let watcher = Rc::new(RefCell::new(Watcher::new(spec.kind.wire() != Wire::H2)));
    let mut recipe = Recipe::new(spec.kind, spec.request.clone());
    let bytes = std::cell::Cell::new(0u64);
    let writer = write_recipe(&mut wr, &mut recipe, spec, per_conn, deadline, &bytes);
    let reader = async {
        if !spec.kind.reads() {
            return std::future::pending::<(bool, bool)>().await;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => return (true, false),
                Ok(n) => watcher.borrow_mut().feed(&buf[..n]),
                Err(e) => return (false, is_reset(e.kind())),
            }
        }
    };
    let ending = tokio::select! {
        () = &mut halt => watcher.borrow().ending(false, false),
        (eof, reset) = reader => watcher.borrow().ending(eof, reset),
        wrote = writer => {
            let seen = watcher.borrow().ending(false, false);
            match (seen, wrote) {
                (Ending::Open, Wrote::Stalled) => Ending::Stalled,
                (Ending::Open, Wrote::Failed(kind)) if is_reset(kind) => Ending::Reset,
                (Ending::Open, Wrote::Failed(_)) => Ending::Closed,
                (Ending::Open, Wrote::Done) if recipe_exhausted(&recipe, spec) => Ending::Exhausted,
                (seen, _) => seen,
            }
        }
    };
    let w = watcher.borrow();
    report.ending = ending;
    report.units = recipe.units();
    report.bytes = bytes.get();
    report.seconds = start.elapsed().as_secs_f64();
    report.frames_received = w.frames.clone();
    report.resets = w.resets.clone();
    report
}

fn recipe_exhausted(recipe: &Recipe, spec: &Spec) -> bool {
    recipe.exhausted() && recipe.units() < spec.max_units
}

fn is_reset(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(kind, ConnectionReset | ConnectionAborted | BrokenPipe)
}

async fn write_recipe<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    recipe: &mut Recipe,
    spec: &Spec,
    per_conn: f64,
    deadline: Instant,
    bytes: &std::cell::Cell<u64>,
) -> Wrote {
    let mut out = Vec::with_capacity(64 * 1024);
    recipe.opening(&mut out);
    let started = Instant::now();
    loop {
        if !out.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, wr.write_all(&out)).await {
                Ok(Ok(())) => bytes.set(bytes.get() + out.len() as u64),
                Ok(Err(e)) => return Wrote::Failed(e.kind()),
                Err(_) => return Wrote::Stalled,
            }
            out.clear();
        }
        if Instant::now() >= deadline {
            return Wrote::Done;
        }
        // How many units are due now: all of a batch unpaced, else what the rate allows.
        let due = if per_conn > 0.0 {
            let allowed = (started.elapsed().as_secs_f64() * per_conn) as u64 + 1;
            allowed.saturating_sub(recipe.units())
        } else {
            BATCH
        };
        let due = due.min(spec.max_units.saturating_sub(recipe.units()));
        for _ in 0..due {
            if !recipe.unit(&mut out) {
                break;
            }
        }
        if out.is_empty() {
            // Nothing due (paced, bound reached, ids used up, or an attack that only
            // holds its connections): wait for the next tick, the connection held open.
            let next = (Instant::now() + TICK).min(deadline);
            tokio::time::sleep_until(next.into()).await;
        }
    }
}
