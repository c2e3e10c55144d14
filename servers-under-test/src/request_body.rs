//! The request body handlers read: hyper's body or the lab HTTP/2 engine's, with the
//! minimum data rate Kestrel enforces (`MinRequestBodyDataRate`): after a grace period the body must have arrived at
//! least at the rate, or reading it fails and the engine answers 408 (Slow POST).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// Why reading a request body failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection failed or the client sent something invalid.
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    /// The lab engine's stream was reset or its connection closed.
    #[error(transparent)]
    Lab(#[from] crate::server::labh2::Broken),
    /// The body arrived slower than the minimum data rate.
    #[error(
        "request body arrived at under {per_second} bytes/s ({received} bytes in {elapsed:?})"
    )]
    TooSlow {
        /// The minimum rate.
        per_second: u64,
        /// Bytes received when it was given up.
        received: u64,
        /// Time since the request began.
        elapsed: Duration,
    },
}

/// The minimum data rate a body must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Bytes per second, averaged from the end of the grace period; 0 turns it off.
    pub per_second: u64,
    /// Time the body may take before the rate applies.
    pub grace: Duration,
}

impl MinRate {
    /// When `received` bytes are due: the grace period, then the rate.
    pub fn deadline(&self, start: Instant, received: u64) -> Instant {
        start + self.grace + Duration::from_secs_f64(received as f64 / self.per_second as f64)
    }
}

struct Rated {
    rate: MinRate,
    start: Instant,
    received: u64,
    timer: Pin<Box<tokio::time::Sleep>>,
    tripped: Arc<AtomicBool>,
}

/// The engine's body underneath.
enum Inner {
    Hyper(Incoming),
    Lab(crate::server::labh2::LabBody),
    Empty,
}

/// A request body as handlers receive it.
pub struct RequestBody {
    inner: Inner,
    rated: Option<Box<Rated>>,
}

impl From<Incoming> for RequestBody {
    fn from(inner: Incoming) -> Self {
        RequestBody {
            inner: Inner::Hyper(inner),
            rated: None,
        }
    }
}

impl From<crate::server::labh2::LabBody> for RequestBody {
    fn from(inner: crate::server::labh2::LabBody) -> Self {
        RequestBody {
            inner: Inner::Lab(inner),
            rated: None,
        }
    }
}

impl RequestBody {
    /// hyper's body, unchecked.
    pub fn plain(inner: Incoming) -> RequestBody {
        inner.into()
    }

    /// No body at all (the request ended with its head).
    pub fn empty() -> RequestBody {
        RequestBody {
            inner: Inner::Empty,
            rated: None,
        }
    }

    /// This body held to `rate` from `start`; `tripped` is set when it falls behind.
    pub fn rated(mut self, rate: MinRate, start: Instant, tripped: Arc<AtomicBool>) -> RequestBody {
        let deadline = rate.deadline(start, 0);
        self.rated = Some(Box::new(Rated {
            rate,
            start,
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(deadline.into())),
            tripped,
        }));
        self
    }

    fn poll_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.inner {
            Inner::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inner::Lab(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inner::Empty => Poll::Ready(None),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match this.poll_inner(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(r), Some(d)) = (this.rated.as_mut(), frame.data_ref()) {
                    r.received += d.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let Some(r) = this.rated.as_mut() else {
                    return Poll::Pending;
                };
                let deadline = r.rate.deadline(r.start, r.received);
                if r.timer.deadline().into_std() != deadline {
                    r.timer.as_mut().reset(deadline.into());
                }
                if Instant::now() < deadline && r.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                r.tripped.store(true, Relaxed);
                Poll::Ready(Some(Err(BodyError::TooSlow {
                    per_second: r.rate.per_second,
                    received: r.received,
                    elapsed: r.start.elapsed(),
                })))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Hyper(b) => b.is_end_stream(),
            Inner::Lab(b) => b.is_end_stream(),
            Inner::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Hyper(b) => b.size_hint(),
            Inner::Lab(b) => b.size_hint(),
            Inner::Empty => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_applies_after_the_grace_period() {
        let rate = MinRate {
            per_second: 240,
            grace: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        assert_eq!(rate.deadline(t0, 0), t0 + Duration::from_secs(5));
        assert_eq!(rate.deadline(t0, 480), t0 + Duration::from_secs(7));
    }
}
