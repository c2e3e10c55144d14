//! One stream's state on the lab engine, the connection's store of open streams, and a
//! memory of recently closed ones (RFC 9113 §5.1: frames on a stream the server reset
//! are ignored, frames on one closed normally are an error).

use bytes::Bytes;
use futures_util::future::AbortHandle;
use http::HeaderMap;

use super::body::Inbound;
use super::request::Head;
use crate::body::Body;
use crate::handler::Quick;

/// Where the response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Send {
    /// No response yet.
    Idle,
    /// Headers sent; the body is going out.
    Streaming,
    /// The response has ended.
    Done,
}

/// What the engine will do with a stream whose head is complete.
#[derive(Debug)]
pub enum Pending {
    /// Answered inline by the handler.
    Quick(Quick),
    /// Handed to the handler as a request.
    Request(Box<Head>),
    /// Dispatched already.
    None,
}

/// One open stream.
pub struct Stream {
    /// Its identifier.
    pub id: u32,
    /// The client may still send on it (no END_STREAM yet).
    pub recv_open: bool,
    /// The response's progress.
    pub send: Send,
    /// What the client allows us to send on it.
    pub send_window: i64,
    /// What we allow the client to send on it.
    pub recv_window: i64,
    /// Request bytes read by the handler and not yet given back as credit.
    pub unreleased: usize,
    /// The declared content-length.
    pub content_length: Option<u64>,
    /// Request body bytes received.
    pub received: u64,
    /// The request body, while one can still arrive.
    pub inbound: Option<Inbound>,
    /// The head, until dispatched.
    pub pending: Pending,
    /// The request is HEAD: its response carries no content.
    pub head_request: bool,
    /// Cancels the handler's future.
    pub abort: Option<AbortHandle>,
    /// The response body still to send.
    pub body: Option<Body>,
    /// Bytes of the body taken from it and not yet sent.
    pub chunk: Bytes,
    /// Trailers to send once the chunk is out.
    pub trailers: Option<HeaderMap>,
    /// The body has no more data after `chunk`.
    pub body_done: bool,
}

impl Stream {
    /// A stream opened by a request head.
    pub fn new(id: u32, send_window: i64, recv_window: i64) -> Stream {
        Stream {
            id,
            recv_open: true,
            send: Send::Idle,
            send_window,
            recv_window,
            unreleased: 0,
            content_length: None,
            received: 0,
            inbound: None,
            pending: Pending::None,
            head_request: false,
            abort: None,
            body: None,
            chunk: Bytes::new(),
            trailers: None,
            body_done: false,
        }
    }

    /// Stops everything still running for the stream: the handler, the request body.
    pub fn cancel(&mut self, why: &'static str) {
        if let Some(a) = self.abort.take() {
            a.abort();
        }
        if let Some(i) = self.inbound.take() {
            i.break_off(why);
        }
        self.body = None;
    }
}

/// The open streams. Few are open at once (the stream limit bounds them), so ids are
/// scanned: cheaper than hashing at these sizes.
#[derive(Default)]
pub struct Streams {
    ids: Vec<u32>,
    slots: Vec<Stream>,
}

impl Streams {
    /// How many are open.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The stream with this id.
    pub fn get(&mut self, id: u32) -> Option<&mut Stream> {
        let i = self.ids.iter().position(|&x| x == id)?;
        Some(&mut self.slots[i])
    }

    /// Adds a stream.
    pub fn insert(&mut self, s: Stream) {
        self.ids.push(s.id);
        self.slots.push(s);
    }

    /// Removes the stream with this id.
    pub fn remove(&mut self, id: u32) -> Option<Stream> {
        let i = self.ids.iter().position(|&x| x == id)?;
        self.ids.swap_remove(i);
        Some(self.slots.swap_remove(i))
    }

    /// Every open stream.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Stream> {
        self.slots.iter_mut()
    }

    /// Removes every stream.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Stream> {
        self.ids.clear();
        self.slots.drain(..)
    }

    /// The stream at position `i` (see [`Streams::len`]).
    pub fn at(&mut self, i: usize) -> &mut Stream {
        &mut self.slots[i]
    }
}

/// How a stream closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Both sides ended it.
    Normally,
    /// We reset it: what the client still sends on it is ignored.
    ByUs,
    /// The client reset it.
    ByPeer,
}

/// The last [`RECENT`] streams closed, and how.
pub struct Recent {
    ids: Vec<(u32, Closed)>,
    next: usize,
}

const RECENT: usize = 256;

impl Default for Recent {
    fn default() -> Self {
        Recent {
            ids: Vec::with_capacity(RECENT),
            next: 0,
        }
    }
}

impl Recent {
    /// Remembers that `id` closed `how`.
    pub fn add(&mut self, id: u32, how: Closed) {
        if self.ids.len() < RECENT {
            self.ids.push((id, how));
        } else {
            self.ids[self.next] = (id, how);
            self.next = (self.next + 1) % RECENT;
        }
    }

    /// How `id` closed, if it is remembered.
    pub fn get(&self, id: u32) -> Option<Closed> {
        self.ids.iter().find(|(x, _)| *x == id).map(|(_, h)| *h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_of_closed_streams_is_bounded_and_keeps_the_newest() {
        let mut r = Recent::default();
        for id in 0..(RECENT as u32 + 10) {
            r.add(
                id * 2 + 1,
                if id % 2 == 0 {
                    Closed::ByUs
                } else {
                    Closed::Normally
                },
            );
        }
        assert_eq!(r.get(1), None, "the oldest is forgotten");
        assert_eq!(r.get(21), Some(Closed::ByUs));
        assert_eq!(r.get(23), Some(Closed::Normally));
        assert_eq!(r.ids.len(), RECENT);
    }

    #[test]
    fn streams_are_found_by_id_and_removed() {
        let mut s = Streams::default();
        for id in [1, 3, 5] {
            s.insert(Stream::new(id, 10, 10));
        }
        assert_eq!(s.get(3).unwrap().id, 3);
        assert_eq!(s.remove(1).unwrap().id, 1);
        assert!(s.get(1).is_none());
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(5).unwrap().id, 5);
    }
}
