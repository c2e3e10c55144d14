//! A byte relay that lets a cleartext suite test HTTP/2 over TLS: it listens on loopback,
//! and for each connection it accepts it opens one to the target with the lab's client
//! TLS (ALPN h2) and copies bytes both ways untouched, so every frame the suite sends is
//! the frame the server reads.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::tls::ClientTls;

/// A running relay; dropping it stops it and closes its connections.
pub struct Relay {
    /// Where the suite connects.
    pub addr: SocketAddr,
    /// ALPN the target chose on each relayed connection (None: no ALPN), in order.
    pub alpn: Arc<Mutex<Vec<Option<String>>>>,
    /// Handshakes that failed, with why.
    pub failures: Arc<Mutex<Vec<String>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying to `target` over `tls`.
    pub fn start(target: SocketAddr, tls: ClientTls) -> std::io::Result<Relay> {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let alpn = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (seen, failed) = (alpn.clone(), failures.clone());
        let thread = std::thread::Builder::new()
            .name("h2lab-relay".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let tls = Arc::new(tls);
                    let accepting = async {
                        while let Ok((inbound, _)) = listener.accept().await {
                            let (tls, seen, failed) = (tls.clone(), seen.clone(), failed.clone());
                            tokio::spawn(relay_one(inbound, target, tls, seen, failed));
                        }
                    };
                    tokio::select! {
                        () = accepting => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here ends every connection still relayed.
            })?;
        Ok(Relay {
            addr,
            alpn,
            failures,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

async fn relay_one(
    mut inbound: TcpStream,
    target: SocketAddr,
    tls: Arc<ClientTls>,
    seen: Arc<Mutex<Vec<Option<String>>>>,
    failed: Arc<Mutex<Vec<String>>>,
) {
    let _ = inbound.set_nodelay(true);
    let outbound = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(e) => {
            failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("connect {target}: {e}"));
            return;
        }
    };
    let _ = outbound.set_nodelay(true);
    let (mut stream, facts) = match tls.connect(outbound).await {
        Ok(x) => x,
        Err(e) => {
            failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("TLS handshake: {e}"));
            return;
        }
    };
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(facts.alpn.clone());
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut stream).await;
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
