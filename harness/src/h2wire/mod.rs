//! HTTP/2 for the load engine's hot path, without I/O: frames, HPACK, and a client
//! connection state machine that the driver in `load::h2` feeds with bytes.
//!
//! The h2 crate serves everything else (the probe, the servers under test); a load
//! client needs far less of it per request: pre-encoded request blocks, responses reduced
//! to their status, no per-stream tasks, handles or locks.

pub mod client;
pub mod frame;
pub mod hpack;
