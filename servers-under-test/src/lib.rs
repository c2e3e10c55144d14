//! Servers under test for h2lab: the test app every server embeds, an edge server (the
//! Kestrel analogue), a reverse proxy, and a front host that runs the app in-process or
//! manages it out-of-process like the ASP.NET Core Module.
//!
//! Layout: `app` is the application (routes, `/info`, forwarded headers); `tls` builds
//! server TLS with rustls or OpenSSL; `server` is the connection engine (workers, TLS
//! accept, HTTP/1.1, HTTP/2, h2c, edge limits); `forward` is the proxying client shared by
//! `proxy` and `host`; `cli` maps command-line flags onto these.

pub mod app;
pub mod body;
pub mod cli;
pub mod conn_info;
pub mod forward;
pub mod handler;
pub mod host;
pub mod proxy;
pub mod request_body;
pub mod run;
pub mod server;
pub mod server_timing;
pub mod tls;
pub mod upstream;
