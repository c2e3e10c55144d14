//! A request body on the lab engine: the connection pushes each DATA frame's bytes into an
//! [`Inbound`] shared with the handler's [`LabBody`]; what the handler has read is handed
//! back as flow-control credit, so a connection never holds more than its windows allow
//! (as the h2 crate's `release_capacity`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};

/// Why a request body ended without its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Broken(pub &'static str);

#[derive(Debug, Default)]
struct State {
    chunks: VecDeque<Bytes>,
    end: bool,
    trailers: Option<HeaderMap>,
    broken: Option<Broken>,
    /// Bytes read by the handler and not yet handed back as credit.
    consumed: usize,
    /// The handler dropped its body: what arrives from now on is discarded.
    dropped: bool,
    reader: Option<Waker>,
    engine: Option<Waker>,
    /// Bytes still expected (content-length less what arrived), for the size hint.
    remaining: Option<u64>,
}

/// The engine's side of one request body.
#[derive(Debug, Clone, Default)]
pub struct Inbound(Arc<Mutex<State>>);

/// Credit worth waking the engine for: a quarter of the stream window the engine gives.
const WAKE_AT: usize = 256 * 1024;

impl Inbound {
    /// A body whose declared length is `content_length`.
    pub fn new(content_length: Option<u64>) -> Inbound {
        Inbound(Arc::new(Mutex::new(State {
            remaining: content_length,
            ..State::default()
        })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `data` to the handler; `false` when it dropped its body (the caller gives
    /// the bytes' credit back at once).
    pub fn push(&self, data: Bytes, engine: &Waker) -> bool {
        let mut s = self.lock();
        if s.dropped {
            return false;
        }
        if let Some(r) = s.remaining.as_mut() {
            *r = r.saturating_sub(data.len() as u64);
        }
        if !data.is_empty() {
            s.chunks.push_back(data);
        }
        if !s.engine.as_ref().is_some_and(|w| w.will_wake(engine)) {
            s.engine = Some(engine.clone());
        }
        if let Some(w) = s.reader.take() {
            w.wake();
        }
        true
    }

    /// The body's end, with trailers if any.
    pub fn finish(&self, trailers: Option<HeaderMap>) {
        let mut s = self.lock();
        s.end = true;
        s.trailers = trailers;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }

    /// The body will not end (the stream was reset, the connection closed).
    pub fn break_off(&self, why: &'static str) {
        let mut s = self.lock();
        if !s.end {
            s.broken = Some(Broken(why));
        }
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }

    /// Bytes read since the last call, to give back as credit; with whether the handler
    /// has dropped its body.
    pub fn take_consumed(&self) -> (usize, bool) {
        let mut s = self.lock();
        (std::mem::take(&mut s.consumed), s.dropped)
    }

    /// The stream is gone: every byte it received, read or not, is credit again. Unread
    /// bytes are discarded, and what arrives later too.
    pub fn reclaim(&self) -> usize {
        let mut s = self.lock();
        s.dropped = true;
        let unread: usize = s.chunks.drain(..).map(|c| c.len()).sum();
        std::mem::take(&mut s.consumed) + unread
    }

    /// The handler's side.
    pub fn body(&self) -> LabBody {
        LabBody(self.clone())
    }
}

/// A request body as a handler reads it.
#[derive(Debug)]
pub struct LabBody(Inbound);

impl Drop for LabBody {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        if s.dropped {
            return; // reclaimed by the engine already
        }
        s.dropped = true;
        // What was never read is credit too.
        let unread: usize = s.chunks.drain(..).map(|c| c.len()).sum();
        s.consumed += unread;
        if let Some(w) = s.engine.take() {
            w.wake();
        }
    }
}

impl http_body::Body for LabBody {
    type Data = Bytes;
    type Error = Broken;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Broken>>> {
        let mut s = self.0.lock();
        if let Some(chunk) = s.chunks.pop_front() {
            s.consumed += chunk.len();
            if s.consumed >= WAKE_AT {
                if let Some(w) = s.engine.take() {
                    w.wake();
                }
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if let Some(t) = s.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(t))));
        }
        if s.end {
            return Poll::Ready(None);
        }
        if let Some(b) = s.broken {
            return Poll::Ready(Some(Err(b)));
        }
        // Credit held back below WAKE_AT would stall a client whose window it is.
        if s.consumed > 0 {
            if let Some(w) = s.engine.take() {
                w.wake();
            }
        }
        if !s.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.reader = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let s = self.0.lock();
        s.end && s.chunks.is_empty() && s.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let s = self.0.lock();
        let queued: u64 = s.chunks.iter().map(|c| c.len() as u64).sum();
        match s.remaining {
            Some(r) => SizeHint::with_exact(queued + r),
            None => {
                let mut h = SizeHint::new();
                h.set_lower(queued);
                h
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn what_is_read_comes_back_as_credit_and_a_dropped_body_gives_back_the_rest() {
        let inbound = Inbound::new(Some(6));
        let waker = futures_util::task::noop_waker();
        let mut body = inbound.body();
        assert!(inbound.push(Bytes::from_static(b"abc"), &waker));
        assert_eq!(body.size_hint().exact(), Some(6));
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "abc");
        assert_eq!(inbound.take_consumed(), (3, false));
        assert!(inbound.push(Bytes::from_static(b"def"), &waker));
        drop(body);
        assert_eq!(inbound.take_consumed(), (3, true));
        assert!(!inbound.push(Bytes::from_static(b"g"), &waker));
    }

    #[tokio::test]
    async fn a_body_ends_with_its_trailers_or_breaks_off() {
        let inbound = Inbound::new(None);
        let waker = futures_util::task::noop_waker();
        inbound.push(Bytes::from_static(b"x"), &waker);
        let mut t = HeaderMap::new();
        t.insert("x-sum", "1".parse().unwrap());
        inbound.finish(Some(t));
        let collected = inbound.body().collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["x-sum"], "1");
        let inbound = Inbound::new(None);
        inbound.break_off("stream reset");
        let err = inbound.body().collect().await.unwrap_err();
        assert_eq!(err, Broken("stream reset"));
    }
}
