//! Whether a worker had a free connection (an HTTP/2 stream) for a request when it fell
//! due. Scheduler lag counts from when a request was due *and* could go out: while the
//! server holds every connection, the wait is the server's (it is in the latency), and
//! must not make the generator look late or the run generator-bound.

use std::cell::RefCell;
use std::time::Instant;

/// Free connections (or streams) of one worker, and since when there has been one.
#[derive(Debug)]
pub struct Room {
    free: usize,
    since: Instant,
}

impl Room {
    /// No connection yet at `start`.
    pub fn new(start: Instant) -> Room {
        Room {
            free: 0,
            since: start,
        }
    }

    /// `n` connections (streams) became free at `now`.
    pub fn freed(&mut self, n: usize, now: Instant) {
        if n == 0 {
            return;
        }
        if self.free == 0 {
            self.since = now;
        }
        self.free += n;
    }

    /// `n` free ones took requests or went away.
    pub fn taken(&mut self, n: usize) {
        self.free = self.free.saturating_sub(n);
    }

    /// When a request due at `intended` could first have gone out, given the room now.
    pub fn ready(&self, intended: Instant) -> Instant {
        intended.max(self.since)
    }
}

/// What one connection holds of its worker's [`Room`]: given back when it is dropped, so
/// that every way a connection ends leaves the count right.
pub struct Held<'a> {
    room: &'a RefCell<Room>,
    free: usize,
}

impl<'a> Held<'a> {
    /// A connection of `room` with nothing free yet.
    pub fn new(room: &'a RefCell<Room>) -> Held<'a> {
        Held { room, free: 0 }
    }

    /// `n` of this connection's places became free at `now`.
    pub fn freed(&mut self, n: usize, now: Instant) {
        self.free += n;
        self.room.borrow_mut().freed(n, now);
    }

    /// Sets this connection's free places to `n`: more are freed at `now`, fewer are
    /// taken away (an HTTP/2 server's stream limit arrived, or it sent GOAWAY).
    pub fn set_free(&mut self, n: usize, now: Instant) {
        if n > self.free {
            self.freed(n - self.free, now);
        } else {
            self.room.borrow_mut().taken(self.free - n);
            self.free = n;
        }
    }

    /// One free place takes a request due at `intended`; returns when it could first
    /// have gone out.
    pub fn take(&mut self, intended: Instant) -> Instant {
        let mut room = self.room.borrow_mut();
        let ready = room.ready(intended);
        if self.free > 0 {
            self.free -= 1;
            room.taken(1);
        }
        ready
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.room.borrow_mut().taken(self.free);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_request_due_while_every_connection_was_busy_is_ready_when_one_frees() {
        let t = Instant::now();
        let at = |ms| t + Duration::from_millis(ms);
        let room = RefCell::new(Room::new(t));
        let mut a = Held::new(&room);
        let mut b = Held::new(&room);
        a.freed(1, at(1));
        b.freed(1, at(2));
        // Due at 5 with two free since 1: ready when due.
        assert_eq!(a.take(at(5)), at(5));
        assert_eq!(b.take(at(6)), at(6));
        // Both busy; due at 10, a frees at 400: ready at 400.
        a.freed(1, at(400));
        assert_eq!(a.take(at(10)), at(400));
        // b frees at 500 while nothing is due; a frees at 600: room since 500, so a
        // request due at 550 was late by the generator, not the server.
        b.freed(1, at(500));
        a.freed(1, at(600));
        assert_eq!(a.take(at(550)), at(550));
        // b's connection ends: its free place goes with it.
        drop(b);
        assert_eq!(room.borrow().free, 0);
        drop(a);
        assert_eq!(room.borrow().free, 0);
    }

    #[test]
    fn places_a_server_withdraws_are_not_room() {
        let t = Instant::now();
        let at = |ms| t + Duration::from_millis(ms);
        let room = RefCell::new(Room::new(t));
        let mut a = Held::new(&room);
        // Four streams thought free at 1; the server's SETTINGS allow two at 2.
        a.set_free(4, at(1));
        a.set_free(2, at(2));
        assert_eq!(room.borrow().free, 2);
        a.take(at(3));
        a.take(at(3));
        // Both allowed streams busy: due at 10, one frees at 300.
        assert_eq!(room.borrow().free, 0);
        a.set_free(1, at(300));
        assert_eq!(a.take(at(10)), at(300));
        a.set_free(3, at(400));
        drop(a);
        assert_eq!(room.borrow().free, 0);
    }
}
