//! The interface between the connection engine and what answers requests (the test app,
//! the reverse proxy, the out-of-process module).

use std::future::Future;
use std::sync::Arc;

use crate::request_body::RequestBody;
use http::{Request, Response};

use crate::body::Body;
use crate::conn_info::ConnInfo;

/// Answers requests. One value is built per worker thread, so implementations may keep
/// per-worker state (such as a connection pool) without sharing it across threads.
pub trait Handler: Send + Sync + 'static {
    /// The answer to a request that needs no body, no I/O and no wait, given inline by
    /// an engine that can take it (the lab engine, HTTP/2 and HTTP/1.1): `None` sends it through
    /// [`Handler::handle`].
    fn quick(&self, _method: &[u8], _path: &[u8]) -> Option<Quick> {
        None
    }

    /// Produces the response to `req`, which arrived on the connection `conn`.
    fn handle(
        self: Arc<Self>,
        req: Request<RequestBody>,
        conn: Arc<ConnInfo>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static;
}

/// A response known at once: status 200, a content type and a static body, timed as the
/// app's hop (`Server-Timing: app`).
#[derive(Debug, Clone, Copy)]
pub struct Quick {
    /// Content-Type.
    pub content_type: &'static str,
    /// The body (not sent for HEAD).
    pub body: &'static [u8],
}
