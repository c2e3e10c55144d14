//! The lab's own HTTP/2 server engine: one task per connection, frames and HPACK handled
//! in place, the handler's inline answers ([`crate::handler::Handler::quick`]) written in
//! the same pass, handlers' futures polled inside the connection's task (no task per
//! stream), one write per batch. Every defence of the hyper engine is kept: the flood
//! budget, Rapid Reset and MadeYouReset bounds, the stream limit, header-list and
//! CONTINUATION bounds, the send and idle timeouts. Design: `servers-under-test/docs/h2-engine.md`.
//!
//! `conn` is the state machine (no sockets), `driver` the task around it, `hpack` and
//! `request` the header blocks in, `encode` and `respond` what goes out, `body` the
//! request bodies, `stream` the per-stream state.

mod body;
mod conn;
mod driver;
mod encode;
mod hpack;
pub mod oracle;
mod request;
mod respond;
mod stream;
#[cfg(test)]
mod tests;

pub use body::{Broken, LabBody};
pub use conn::{max_continuations, Config, Conn, ConnError, Phase, CONN_WINDOW, STREAM_WINDOW};
pub(crate) use driver::serve;
pub use respond::{decimal, Date, Dispatch, OUT_HIGH};

/// Which HTTP/2 server engine serves a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum H2Engine {
    /// The lab's own engine (this module).
    #[default]
    Lab,
    /// hyper over the h2 crate: the reference, kept selectable.
    Hyper,
}
