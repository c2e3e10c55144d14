//! A request body on the lab engine: the connection copies each DATA frame's bytes into
//! an [`Inbound`] shared with the handler's [`LabBody`]; what the handler has read is
//! handed back as flow-control credit, so a connection never holds more than its windows
//! allow (as the h2 crate's `release_capacity`). Small frames are gathered into one
//! buffer, so a client sending one byte per frame costs memory in proportion to its bytes,
//! not its frames; nothing keeps the connection's read buffer alive.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Frame, SizeHint};

/// Why a request body ended without its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Broken(pub &'static str);

#[derive(Debug, Default)]
struct State {
    chunks: VecDeque<Bytes>,
    /// Small frames' bytes, gathered until [`GATHER`] or a large frame.
    tail: BytesMut,
    end: bool,
    trailers: Option<HeaderMap>,
    broken: Option<Broken>,
    /// Bytes read by the handler and not yet handed back as credit.
    consumed: usize,
    /// The handler dropped its body: what arrives from now on is discarded.
    dropped: bool,
    reader: Option<Waker>,
    /// The connection's task: woken when credit is worth giving back. Kept (not taken),
    /// as the handler may read from another task and find credit more than once.
    engine: Option<Waker>,
    /// Bytes still expected (content-length less what arrived), for the size hint.
    remaining: Option<u64>,
}

impl State {
    fn queued(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum::<usize>() + self.tail.len()
    }

    fn wake_engine(&self) {
        if let Some(w) = &self.engine {
            w.wake_by_ref();
        }
    }
}

/// The engine's side of one request body.
#[derive(Debug, Clone, Default)]
pub struct Inbound(Arc<Mutex<State>>);

/// Credit worth waking the engine for: a quarter of the stream window the engine gives.
const WAKE_AT: usize = 256 * 1024;
/// Frames smaller than this are gathered; the gathered bytes become a chunk at this size.
const GATHER: usize = 16 * 1024;

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

    /// Hands a copy of `data` to the handler; `false` when it dropped its body (the
    /// caller gives the bytes' credit back at once). `engine` wakes the connection.
    pub fn push(&self, data: &[u8], engine: &Waker) -> bool {
        let mut s = self.lock();
        if !s.engine.as_ref().is_some_and(|w| w.will_wake(engine)) {
            s.engine = Some(engine.clone());
        }
        if s.dropped {
            return false;
        }
        if let Some(r) = s.remaining.as_mut() {
            *r = r.saturating_sub(data.len() as u64);
        }
        if data.len() < GATHER {
            s.tail.extend_from_slice(data);
            if s.tail.len() >= GATHER {
                let full = s.tail.split().freeze();
                s.chunks.push_back(full);
            }
        } else {
            if !s.tail.is_empty() {
                let gathered = s.tail.split().freeze();
                s.chunks.push_back(gathered);
            }
            s.chunks.push_back(Bytes::copy_from_slice(data));
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

    /// Bytes read since the last call, to give back as credit.
    pub fn take_consumed(&self) -> usize {
        std::mem::take(&mut self.lock().consumed)
    }

    /// The stream is gone: every byte it received, read or not, is credit again. Unread
    /// bytes are discarded (a reader still holding the body gets an error, not a short
    /// body), and what arrives later too.
    pub fn reclaim(&self) -> usize {
        let mut s = self.lock();
        s.dropped = true;
        let unread = s.queued();
        s.chunks.clear();
        s.tail.clear();
        if unread > 0 {
            s.broken = Some(Broken("the stream closed before its body was read"));
        }
        if let Some(w) = s.reader.take() {
            w.wake();
        }
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
        let unread = s.queued();
        s.chunks.clear();
        s.tail.clear();
        s.consumed += unread;
        s.wake_engine();
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
        let chunk = match s.chunks.pop_front() {
            Some(c) => Some(c),
            None if !s.tail.is_empty() => Some(s.tail.split().freeze()),
            None => None,
        };
        if let Some(chunk) = chunk {
            s.consumed += chunk.len();
            if s.consumed >= WAKE_AT {
                s.wake_engine();
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if let Some(b) = s.broken {
            return Poll::Ready(Some(Err(b)));
        }
        if let Some(t) = s.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(t))));
        }
        if s.end {
            return Poll::Ready(None);
        }
        // Credit held back below WAKE_AT would stall a client whose window it is.
        if s.consumed > 0 {
            s.wake_engine();
        }
        if !s.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.reader = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let s = self.0.lock();
        s.end && s.broken.is_none() && s.queued() == 0 && s.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let s = self.0.lock();
        let queued = s.queued() as u64;
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
        assert!(inbound.push(b"abc", &waker));
        assert_eq!(body.size_hint().exact(), Some(6));
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "abc");
        assert_eq!(inbound.take_consumed(), 3);
        assert!(inbound.push(b"def", &waker));
        drop(body);
        assert_eq!(inbound.take_consumed(), 3);
        assert!(!inbound.push(b"g", &waker));
    }

    #[tokio::test]
    async fn a_body_ends_with_its_trailers_or_breaks_off() {
        let inbound = Inbound::new(None);
        let waker = futures_util::task::noop_waker();
        inbound.push(b"x", &waker);
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

    #[tokio::test]
    async fn one_byte_frames_are_gathered_and_a_body_cut_short_is_an_error() {
        let inbound = Inbound::new(None);
        let waker = futures_util::task::noop_waker();
        for _ in 0..40_000 {
            inbound.push(b"y", &waker);
        }
        // 40,000 one-byte frames: two gathered chunks and the tail, not 40,000.
        assert_eq!(inbound.lock().chunks.len(), 2);
        let mut body = inbound.body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), GATHER);
        // The stream goes while bytes are unread: the reader sees an error.
        assert_eq!(inbound.reclaim(), 40_000);
        assert!(body.frame().await.unwrap().is_err());
    }
}
