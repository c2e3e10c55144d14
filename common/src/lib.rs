//! Code that both h2lab binaries need, kept in one place: generating a PKI for a run,
//! owning child processes so none outlives its owner, and launching servers under test
//! (the `sut` binary and real nginx / Apache / HAProxy) with a readiness signal, and
//! starting a user's own app (placeholders, readiness, the tail of its log).

pub mod app;
pub mod appendix_a;
pub mod h2_frame;
pub mod hpack;
pub mod launch;
pub mod pki;
pub mod process;
pub mod profiles;
pub mod template;
