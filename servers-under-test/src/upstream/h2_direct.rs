//! HTTP/2 (h2c) upstream requests without a body, sent with the h2 crate from the request's
//! own task on the shared connection. hyper's client puts a dispatch channel, a response
//! channel and a task per request between the proxy and that connection; this does not.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::RecvStream;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body::{Frame, SizeHint};
use tokio::net::TcpStream;

use crate::body::{self, Body, BoxError};

/// Opens an HTTP/2 connection (prior knowledge) on `tcp`; its I/O runs in its own task.
pub async fn connect(tcp: TcpStream) -> Result<SendRequest<Bytes>, h2::Error> {
    let (send, conn) = h2::client::Builder::new()
        // Large windows, as the server side has: small defaults slow large bodies.
        .initial_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .handshake(tcp)
        .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream h2 connection ended");
        }
    });
    Ok(send)
}

/// Whether a failed bodiless request may be sent again on a new connection: the
/// connection went away, or the upstream refused the stream before processing it.
pub fn retryable(e: &h2::Error) -> bool {
    e.is_go_away() || e.is_io() || e.reason() == Some(h2::Reason::REFUSED_STREAM)
}

/// Sends a request without a body on `send`'s connection and returns the response.
pub async fn exchange(
    send: SendRequest<Bytes>,
    method: &Method,
    uri: Uri,
    headers: &HeaderMap,
) -> Result<Response<Body>, h2::Error> {
    let mut send = send.ready().await?;
    let mut req = Request::new(());
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_2;
    *req.headers_mut() = headers.clone();
    let (response, _) = send.send_request(req, true)?;
    let (parts, recv) = response.await?.into_parts();
    let body = if recv.is_end_stream() {
        body::full(Bytes::new())
    } else {
        http_body_util::BodyExt::boxed_unsync(H2Body {
            recv,
            state: Part::Data,
        })
    };
    Ok(Response::from_parts(parts, body))
}

/// A response body read from the upstream stream, giving flow-control capacity back as
/// the client side takes the data.
struct H2Body {
    recv: RecvStream,
    state: Part,
}

/// Which part of the body comes next.
#[derive(PartialEq, Eq)]
enum Part {
    Data,
    Trailers,
    Done,
}

impl http_body::Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match self.state {
                Part::Data => match ready!(self.recv.poll_data(cx)) {
                    Some(Ok(data)) => {
                        let _ = self.recv.flow_control().release_capacity(data.len());
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Some(Err(e)) => {
                        self.state = Part::Done;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    None => self.state = Part::Trailers,
                },
                Part::Trailers => {
                    let polled = ready!(self.recv.poll_trailers(cx));
                    self.state = Part::Done;
                    return match polled {
                        Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                        Ok(None) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(e.into()))),
                    };
                }
                Part::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == Part::Done || self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
