//! The lab's own HTTP/2 server engine: one task per connection, frames and HPACK handled
//! in place, the handler's inline answers ([`crate::handler::Handler::quick`]) written in
//! the same pass, one write per read. Design and plan: `servers-under-test/docs/h2-engine.md`.
//!
//! A **prototype** (issue 22, stage 1 not finished): only h2c by prior knowledge, only
//! when `SUT_H2_ENGINE=lab-prototype` is set, and only inline answers (anything else gets
//! 501); no watchdog, flood budget or reset limits yet. It exists to measure the lever;
//! the hyper engine serves everything by default.

mod conn;
mod hpack;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub use conn::{Conn, Settings};

use crate::handler::Handler;

/// The variable that turns the prototype on.
pub const ENGINE_VAR: &str = "SUT_H2_ENGINE";

/// Whether this process serves h2c with the prototype.
pub fn enabled() -> bool {
    std::env::var(ENGINE_VAR).is_ok_and(|v| v == "lab-prototype")
}

/// Serves one HTTP/2 connection (the preface not yet read) until it ends.
pub async fn serve<H, T>(handler: &H, mut io: T, settings: Settings, shutdown: &CancellationToken)
where
    H: Handler,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Conn::new(settings);
    let mut input = BytesMut::with_capacity(64 * 1024);
    loop {
        if !conn.out.is_empty() {
            if io.write_all(&conn.out).await.is_err() {
                return;
            }
            conn.out.clear();
        }
        if conn.closing {
            let _ = io.shutdown().await;
            return;
        }
        if input.capacity() - input.len() < 16 * 1024 {
            input.reserve(64 * 1024);
        }
        tokio::select! {
            read = io.read_buf(&mut input) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => conn.receive(&mut input, handler),
            },
            () = shutdown.cancelled() => conn.shut_down(),
        }
    }
}
