//! `sut proxy`: a reverse proxy in the IIS/nginx role. It terminates client TLS/h2/h1
//! with the same engine as `sut edge` and forwards every request to one upstream.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::request_body::RequestBody;
use http::{Request, Response};

use crate::body::Body;
use crate::conn_info::ConnInfo;
use crate::forward::{ForwardOptions, Forwarder};
use crate::handler::Handler;

/// The proxy's per-worker handler.
pub struct ProxyHandler {
    forwarder: Forwarder,
    upstream: SocketAddr,
}

impl ProxyHandler {
    /// A handler forwarding to `upstream`.
    pub fn new(upstream: SocketAddr, opts: ForwardOptions) -> ProxyHandler {
        ProxyHandler {
            forwarder: Forwarder::new(opts),
            upstream,
        }
    }
}

impl Handler for ProxyHandler {
    async fn handle(
        self: Arc<Self>,
        req: Request<RequestBody>,
        conn: Arc<ConnInfo>,
    ) -> Response<Body> {
        self.forwarder.forward(req, &conn, self.upstream, &[]).await
    }
}
