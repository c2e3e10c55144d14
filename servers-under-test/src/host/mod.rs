//! `sut host`: the front server with its module. In-process, the app's handlers run inside
//! this process (no loopback hop). Out-of-process, the module manages a separate app
//! process (`sut app`, or any program given with `--app-command`), like the ASP.NET Core
//! Module: started on first request (or eagerly), a random loopback port passed in the
//! contract's variable (`H2LAB_APP_PORT` or `ASPNETCORE_PORT`), a pairing token the app
//! checks, HTTP/1.1 on the hop whatever the client spoke, restarts with backoff up to a
//! rapid-fail limit, and the app's output captured.

mod contract;
mod supervisor;

use std::sync::Arc;

use crate::request_body::RequestBody;
use http::{header, HeaderName, HeaderValue, Request, Response, StatusCode};

pub use contract::{ModuleContract, H2LAB_PORT_ENV, H2LAB_TOKEN_ENV};
pub use supervisor::{AppProcessOptions, AppReady, Supervisor, Unavailable};

use crate::body::{self, Body};
use crate::conn_info::ConnInfo;
use crate::forward::{ForwardOptions, Forwarder};
use crate::handler::Handler;

/// The module's per-worker handler: waits for the app process, then forwards to it.
pub struct ModuleHandler {
    supervisor: Arc<Supervisor>,
    forwarder: Forwarder,
    token_header: HeaderName,
}

impl ModuleHandler {
    /// A handler using `supervisor`'s app process. The hop is always HTTP/1.1; the path
    /// base is stripped or kept as the module's contract says.
    pub fn new(supervisor: Arc<Supervisor>, mut opts: ForwardOptions) -> ModuleHandler {
        opts.upstream_h2 = false;
        opts.strip_path_base = supervisor.contract().strips_path_base();
        opts.timing_name = "host";
        ModuleHandler {
            token_header: supervisor.contract().token_header(),
            supervisor,
            forwarder: Forwarder::new(opts),
        }
    }
}

impl Handler for ModuleHandler {
    async fn handle(
        self: Arc<Self>,
        req: Request<RequestBody>,
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
                Err(Unavailable::GaveUp(reason)) => {
                    return body::text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("app process is not restarted: {reason}"),
                    )
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
            let token = [(self.token_header.clone(), endpoint.token.clone())];
            self.forwarder
                .forward(req, &conn, endpoint.addr, &token)
                .await
        }
    }
}
