//! HTTP/1.1 over cleartext TCP on io_uring: the lowest-cost engine for the workload that
//! costs a generator most per request (one exchange per round trip, no multiplexing).
//! Used where the kernel allows it (Linux 6.1 or later, io_uring not forbidden);
//! everything else runs on tokio.

mod arrival;
mod engine;
mod ring;

pub(super) use engine::run;
pub(super) use ring::Ring;

use crate::model::{IoEngine, LoadConfig, Proto};

/// Why the io_uring engine cannot run this load.
pub fn unavailable(cfg: &LoadConfig) -> Option<String> {
    if cfg.tls.is_some() || !matches!(cfg.proto, Proto::Auto | Proto::H1) {
        return Some("it runs HTTP/1.1 over cleartext TCP only".into());
    }
    if cfg.seq_header.is_some() {
        return Some("its requests are encoded once, so they cannot carry --seq-header".into());
    }
    Ring::new(1, cfg.addr, cfg.timeout, Vec::new())
        .err()
        .map(|e| format!("io_uring is not available here: {e}"))
}

/// The engine a load runs on: `io_uring` or `tokio`; `Err` when `--io uring` was asked
/// for and cannot be had.
pub fn choose(cfg: &LoadConfig) -> Result<&'static str, String> {
    match cfg.io {
        IoEngine::Epoll => Ok("tokio"),
        IoEngine::Auto => Ok(match unavailable(cfg) {
            None => "io_uring",
            Some(why) => {
                tracing::debug!(why, "load runs on tokio");
                "tokio"
            }
        }),
        IoEngine::Uring => match unavailable(cfg) {
            None => Ok("io_uring"),
            Some(why) => Err(format!("--io uring: {why}")),
        },
    }
}
