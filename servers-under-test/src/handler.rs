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
    /// Produces the response to `req`, which arrived on the connection `conn`.
    fn handle(
        self: Arc<Self>,
        req: Request<RequestBody>,
        conn: Arc<ConnInfo>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static;
}
