//! `sut host`: the front server with its module. In-process, the app's handlers run inside
//! this process (no loopback hop). Out-of-process, the module manages a separate `sut app`
//! process, like the ASP.NET Core Module: started on first request (or eagerly), a random
//! loopback port passed in `H2LAB_APP_PORT`, a pairing token the app checks, HTTP/1.1 on
//! the hop whatever the client spoke, restarts with backoff, and the app's output captured.

mod supervisor;

use std::sync::Arc;

use http::{header, HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

pub use supervisor::{AppProcessOptions, Supervisor, Unavailable};

use crate::app::PAIRING_TOKEN_HEADER;
use crate::body::{self, Body};
use crate::conn_info::ConnInfo;
use crate::forward::{ForwardOptions, Forwarder};
use crate::handler::Handler;

/// Environment variable carrying the app's port.
pub const APP_PORT_ENV: &str = "H2LAB_APP_PORT";
/// Environment variable carrying the pairing token.
pub const PAIRING_TOKEN_ENV: &str = "H2LAB_PAIRING_TOKEN";

/// The module's per-worker handler: waits for the app process, then forwards to it.
pub struct ModuleHandler {
    supervisor: Arc<Supervisor>,
    forwarder: Forwarder,
}

impl ModuleHandler {
    /// A handler using `supervisor`'s app process. The hop is always HTTP/1.1.
    pub fn new(supervisor: Arc<Supervisor>, mut opts: ForwardOptions) -> ModuleHandler {
        opts.upstream_h2 = false;
        ModuleHandler {
            supervisor,
            forwarder: Forwarder::new(opts),
        }
    }
}

impl Handler for ModuleHandler {
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<ConnInfo>,
    ) -> Response<Body> {
        {
            let endpoint = match self.supervisor.endpoint().await {
                Ok(ep) => ep,
                Err(Unavailable::Down(reason)) => {
                    let mut resp = body::text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("app process is down ({reason}); restarting"),
                    );
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    return resp;
                }
                Err(Unavailable::Stopping) => {
                    return body::text(StatusCode::SERVICE_UNAVAILABLE, "host is shutting down")
                }
                Err(Unavailable::StartTimeout(t)) => {
                    return body::text(
                        StatusCode::BAD_GATEWAY,
                        format!("app process did not start within {t:?}"),
                    )
                }
            };
            let token = [(
                HeaderName::from_static(PAIRING_TOKEN_HEADER),
                endpoint.token.clone(),
            )];
            self.forwarder
                .forward(req, &conn, endpoint.addr, &token)
                .await
        }
    }
}
