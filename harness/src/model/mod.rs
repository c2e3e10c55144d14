//! Plain data shared by every step: the validated load configuration and the result
//! schema. Nothing here does I/O.

pub mod config;
pub mod plan;
pub mod result;

pub use config::{
    AgentShare, IoEngine, LoadConfig, LoadModel, Proto, Target, TlsClientConfig, TlsClientStack,
};
pub use plan::{Cell, CellLoad, CellRequest, Offer, Plan, ServerTls, Topology};
pub use result::{Percentiles, ResultV1, RESULT_SCHEMA};
