//! h2lab: a performance test harness and HTTP/2 negotiation lab.
//!
//! Data flows one way: configuration (`cli`, `model`) -> load engine (`load`, with client
//! `tls`) -> recording (`record`) -> outputs (`output`: result JSON, interval logs,
//! summary).

pub mod agents;
pub mod analysis;
pub mod attack;
pub mod cli;
pub mod conform;
pub mod h1wire;
pub mod h2wire;
pub mod load;
pub mod matrix;
pub mod model;
pub mod output;
pub mod probe;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod search;
pub mod server_timing;
pub mod tls;
pub mod verdict;
