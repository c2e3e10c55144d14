//! The HTTP/1.1 engine's loop: one per worker thread, driving all of its connections as
//! state machines fed by io_uring completions. Per request that is one send and one
//! received buffer, with no task, waker or epoll round between them: the tokio driver
//! spends about twice the user CPU per request on that machinery.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::arrival::WallClock;
use super::ring::{Completion, Op, Ring, Token};
use crate::h1wire::{Response, ResponseReader};
use crate::load::conn::{connect_class, io_class, reconnect_backoff, Negotiation, CONNECT_TIMEOUT};
use crate::load::request::Prepared;
use crate::load::room::Room;
use crate::load::source::{Next, Source, Ticket};
use crate::load::{Report, Shared, WorkerPlan};
use crate::record::{Recorder, Sample};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No connection; (re)connect at `retry_at` if there is work.
    Down,
    /// Connect submitted.
    Connecting,
    /// Connected, waiting for a request to send (open loop).
    Idle,
    /// A request in flight.
    Busy,
    /// No more work.
    Finished,
}

struct Slot {
    state: State,
    generation: u32,
    fd: Option<OwnedFd>,
    reader: ResponseReader,
    ticket: Ticket,
    /// When the request in flight could first have been sent (see [`Sample::ready`]).
    ready: Instant,
    sent: Instant,
    first_byte: Option<Instant>,
    connect_started: Instant,
    failures: u32,
    retry_at: Instant,
    /// A large request is still being sent (its send completes; small ones do not).
    sending: bool,
    /// Length of the request sent last.
    sent_bytes: usize,
}

/// Requests above this size report their send's completion.
const LARGE_REQUEST: usize = 4096;

/// What received bytes did to a connection.
enum Fed {
    Pending,
    /// A whole response: when its first and last bytes arrived.
    Answered(Response, Instant, Instant),
    Failed(String),
    /// Too much unsolicited data: close without blaming a request.
    Dropped,
}

impl Slot {
    /// Takes bytes that arrived `at`.
    fn feed(&mut self, data: &[u8], at: Instant) -> Fed {
        if self.state != State::Busy {
            // Before any request: kept for the next response, unless it is too much.
            return match self.reader.feed(data) {
                Ok(_) => Fed::Pending,
                Err(_) => Fed::Dropped,
            };
        }
        let first_byte = *self.first_byte.get_or_insert(at);
        match self.reader.feed(data) {
            Ok(Some(r)) => Fed::Answered(r, first_byte, at),
            Ok(None) => Fed::Pending,
            Err(e) => Fed::Failed(format!("protocol:{}", e.0)),
        }
    }
}

/// The engine of one worker.
struct Engine {
    ring: Ring,
    requests: Vec<Prepared>,
    next_request: usize,
    slots: Vec<Slot>,
    source: Rc<Source>,
    recorder: Recorder,
    shared: std::sync::Arc<Shared>,
    reports: mpsc::Sender<Report>,
    addr: std::net::SocketAddr,
    open_loop: bool,
    /// Slots connected and waiting for work.
    idle: Vec<u32>,
    /// Slots waiting to reconnect.
    down: Vec<u32>,
    /// Slots not finished.
    active: usize,
    /// Multishot receives not yet ended.
    receiving: usize,
    /// Slots whose request goes out at the next submission: stamped just before it.
    unsent: Vec<u32>,
    /// Free connections, for scheduler lag: an Idle slot, or one between a response (or
    /// its connect) and its next request.
    room: Room,
    /// Slots with a request in flight.
    busy: usize,
    /// Slots connected and free (open loop).
    idle_now: usize,
    /// Maps the kernel's arrival stamps onto `Instant`s (refreshed every second).
    clock: WallClock,
}

/// Completions one wait asks for: one per this many requests in flight.
const BATCH_PER: usize = 8;
/// Most completions one wait asks for.
const MAX_BATCH: usize = 8;
/// Longest a wait for several completions lasts before the engine looks anyway.
const MAX_BATCH_WAIT: Duration = Duration::from_micros(500);

/// Runs `plan`'s share of the load on `ring` (created by this thread).
pub fn run(plan: WorkerPlan, ring: Ring, tx: mpsc::Sender<Report>) {
    let source = plan.source();
    let start = plan.phases.start;
    let slots = (0..plan.connections)
        .map(|_| Slot {
            state: State::Down,
            generation: 0,
            fd: None,
            reader: ResponseReader::default(),
            ticket: Ticket {
                intended: start,
                warmup: true,
                seq: 0,
            },
            ready: start,
            sent: start,
            first_byte: None,
            connect_started: start,
            failures: 0,
            retry_at: start,
            sending: false,
            sent_bytes: 0,
        })
        .collect();
    let mut e = Engine {
        ring,
        requests: plan.requests,
        next_request: 0,
        slots,
        source: source.clone(),
        recorder: Recorder::default(),
        shared: plan.shared.clone(),
        reports: tx.clone(),
        addr: plan.cfg.addr,
        open_loop: plan.open.is_some(),
        idle: Vec::new(),
        down: (0..plan.connections as u32).rev().collect(),
        active: plan.connections,
        receiving: 0,
        unsent: Vec::new(),
        room: Room::new(start),
        busy: 0,
        idle_now: 0,
        clock: WallClock::now(),
    };
    let timeout = plan.cfg.timeout;
    // Timeouts are enforced within 1% of their length (and 100 ms).
    let scan_every = (timeout / 100).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let schedule = source.schedule();
    let mut next_ticket = 0u64;
    let mut next_due = schedule.as_ref().map(|_| start);
    let mut interval = 0u64;
    let mut next_flush = plan.phases.measure + Duration::from_secs(1);
    std::thread::sleep(start.saturating_duration_since(Instant::now()));
    let mut next_scan = start + scan_every;
    let mut completions = Vec::new();
    let mut now = Instant::now();
    loop {
        if let (Some(s), Some(due)) = (&schedule, next_due) {
            if due <= now {
                next_due = source.fill(s, &mut next_ticket, now).1;
                e.assign(now);
            }
        }
        if !e.idle.is_empty() {
            // Open loop: queued work, or the end (stop, schedule over) for idle slots.
            e.assign(now);
        }
        e.reconnect(now);
        if now >= next_scan {
            e.expire(now, timeout);
            next_scan = now + scan_every;
        }
        while now >= next_flush {
            e.clock = WallClock::now();
            let data = e.recorder.swap_interval(e.shared.pool.take());
            let _ = tx.send(Report::Interval {
                worker: plan.index,
                index: interval,
                data,
            });
            interval += 1;
            next_flush += Duration::from_secs(1);
        }
        if e.active == 0 {
            break;
        }
        let mut wake = next_flush
            .min(next_scan)
            .min(now + Duration::from_millis(50));
        if let Some(due) = next_due {
            // As the tokio timer does: at high rates, several due requests per wake-up.
            wake = wake.min(due.max(now + crate::load::timer::FLOOR));
        }
        if let Some(retry) = e.next_retry() {
            wake = wake.min(retry);
        }
        e.stamp_sends();
        // Open loop with connections to spare: several completions per wake-up when many
        // requests are in flight (fewer system calls and sleeps per request). Nothing
        // waits for them: due requests find an idle connection and bound the wait, and
        // every latency ends at the arrival the kernel stamped. A closed loop answers
        // each response at once: holding a connection after its response would add a
        // think time the closed loop does not have.
        let want = if e.open_loop && e.idle_now > 0 {
            (e.busy / BATCH_PER).clamp(1, MAX_BATCH)
        } else {
            1
        };
        if want > 1 {
            wake = wake.min(now + MAX_BATCH_WAIT);
        }
        if let Err(err) = e.ring.wait_for(want, wake.saturating_duration_since(now)) {
            tracing::error!(error = %err, "io_uring wait failed; the worker stops");
            e.fail_all(&io_class(&err), Instant::now());
            break;
        }
        now = Instant::now();
        e.ring.completions(&mut completions);
        for c in completions.drain(..) {
            e.complete(c, now);
        }
    }
    e.close_all(now);
    let last = e.recorder.take_interval();
    let _ = tx.send(Report::Done {
        worker: plan.index,
        warmup: std::mem::take(&mut e.recorder.warmup),
        last: (interval, last),
        finished: e.recorder.last_done.unwrap_or(plan.phases.measure),
    });
    e.drain();
}

impl Engine {
    /// Moves slot `i` to `state`, keeping the counts of busy and idle slots.
    fn set_state(&mut self, i: usize, state: State) {
        let was = self.slots[i].state;
        self.busy = self.busy + usize::from(state == State::Busy) - usize::from(was == State::Busy);
        self.idle_now =
            self.idle_now + usize::from(state == State::Idle) - usize::from(was == State::Idle);
        self.slots[i].state = state;
    }

    fn token(&self, i: usize, op: Op) -> Token {
        Token {
            slot: i as u32,
            generation: self.slots[i].generation,
            op,
        }
    }

    /// Gives idle connections the requests that are due.
    fn assign(&mut self, now: Instant) {
        while let Some(&i) = self.idle.last() {
            let i = i as usize;
            if self.slots[i].state != State::Idle {
                self.idle.pop();
                continue;
            }
            match self.source.next() {
                Next::Go(t) => {
                    self.idle.pop();
                    self.send(i, t, now);
                }
                Next::Wait => return,
                Next::Done => {
                    self.idle.pop();
                    self.room.taken(1);
                    self.finish(i, now);
                }
            }
        }
    }

    /// What connection `i` does after a response or a connect: the next request.
    fn next(&mut self, i: usize, now: Instant) {
        self.room.freed(1, now);
        match self.source.next() {
            Next::Go(t) => self.send(i, t, now),
            Next::Wait => {
                self.set_state(i, State::Idle);
                self.idle.push(i as u32);
            }
            Next::Done => {
                self.room.taken(1);
                self.finish(i, now);
            }
        }
    }

    fn send(&mut self, i: usize, ticket: Ticket, now: Instant) {
        let r = self.next_request;
        self.next_request = (r + 1) % self.requests.len();
        let token = self.token(i, Op::Send);
        self.set_state(i, State::Busy);
        let req = &self.requests[r];
        let slot = &mut self.slots[i];
        slot.ticket = ticket;
        slot.ready = self.room.ready(ticket.intended);
        self.room.taken(1);
        slot.sent = now;
        slot.first_byte = None;
        slot.reader.start(req.head);
        if slot.fd.is_none() {
            // Not reachable (Idle and Busy slots have a socket), but a ticket is never lost.
            return self.fail(i, "closed", now);
        }
        // A request larger than this may still be going out when an early answer (413,
        // 401) comes back: its send completes, so the connection is not reused before.
        let large = req.h1.len() > LARGE_REQUEST;
        slot.sending = large;
        slot.sent_bytes = req.h1.len();
        self.unsent.push(i as u32);
        let sent = self.ring.send(r, token, large);
        if let Err(err) = sent {
            self.fail(i, &io_class(&err), now);
            return;
        }
        if self.slots[i].reader.has_carry() {
            let fed = self.slots[i].feed(&[], now);
            self.act(i, fed, now);
        }
    }

    /// Sets the send time of the requests about to be submitted to now, after the batch
    /// that produced them was handled. Closed loop: the send time is also the intended
    /// time, as a closed loop's request is due when it is sent.
    fn stamp_sends(&mut self) {
        if self.unsent.is_empty() {
            return;
        }
        let now = Instant::now();
        for &i in &self.unsent {
            let slot = &mut self.slots[i as usize];
            if slot.state == State::Busy && slot.first_byte.is_none() {
                slot.sent = now;
                if !self.open_loop {
                    slot.ticket.intended = now;
                }
            }
        }
        self.unsent.clear();
    }

    /// Fails every request in flight (the ring broke).
    fn fail_all(&mut self, class: &str, now: Instant) {
        for i in 0..self.slots.len() {
            if self.slots[i].state == State::Busy {
                self.fail(i, class, now);
            }
        }
    }

    fn act(&mut self, i: usize, fed: Fed, now: Instant) {
        match fed {
            Fed::Pending => {}
            Fed::Answered(r, first_byte, done) => self.answered(i, r, first_byte, done, now),
            Fed::Failed(class) => self.fail(i, &class, now),
            Fed::Dropped => self.close(i, now),
        }
    }

    /// A response ended at `done` (its arrival) and was read at `now`.
    fn answered(
        &mut self,
        i: usize,
        r: Response,
        first_byte: Instant,
        done: Instant,
        now: Instant,
    ) {
        let slot = &self.slots[i];
        self.recorder.ok(
            Sample {
                intended: slot.ticket.intended,
                ready: slot.ready,
                sent: slot.sent,
                first_byte,
                done,
                status: r.status,
            },
            slot.ticket.warmup,
        );
        if let Some(t) = slot.reader.server_timing() {
            self.recorder.hops(t, slot.ticket.warmup);
        }
        if r.keep_alive && !self.slots[i].sending {
            self.next(i, now);
        } else {
            self.close(i, now);
        }
    }

    /// The request in flight on `i` failed with `class`; the connection is closed.
    fn fail(&mut self, i: usize, class: &str, now: Instant) {
        let slot = &self.slots[i];
        if slot.state == State::Busy {
            self.recorder
                .error(class, slot.ticket.intended, now, slot.ticket.warmup);
        }
        self.close(i, now);
    }

    /// Closes connection `i`; it reconnects at once if there is work.
    fn close(&mut self, i: usize, now: Instant) {
        if self.slots[i].state == State::Idle {
            self.room.taken(1);
        }
        let slot = &mut self.slots[i];
        if let Some(fd) = slot.fd.take() {
            // Ends the multishot receive, which holds the socket open otherwise.
            let _ = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Both);
            let _ = self.ring.remove(i as u32);
        }
        slot.generation = slot.generation.wrapping_add(1);
        slot.reader = ResponseReader::default();
        if slot.state != State::Finished {
            slot.retry_at = slot.retry_at.max(now);
            self.set_state(i, State::Down);
            self.down.push(i as u32);
        }
    }

    fn finish(&mut self, i: usize, now: Instant) {
        self.set_state(i, State::Finished);
        self.close(i, now);
        self.active -= 1;
    }

    /// Starts the connects that are due.
    fn reconnect(&mut self, now: Instant) {
        let mut k = 0;
        while k < self.down.len() {
            let i = self.down[k] as usize;
            if self.slots[i].state != State::Down {
                self.down.swap_remove(k);
                continue;
            }
            if self.source.is_done() {
                self.down.swap_remove(k);
                self.set_state(i, State::Finished);
                self.active -= 1;
                continue;
            }
            if self.slots[i].retry_at > now {
                k += 1;
                continue;
            }
            self.down.swap_remove(k);
            self.connect(i, now);
        }
    }

    fn next_retry(&self) -> Option<Instant> {
        self.down
            .iter()
            .map(|&i| self.slots[i as usize].retry_at)
            .min()
    }

    fn connect(&mut self, i: usize, now: Instant) {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(self.addr),
            socket2::Type::STREAM.nonblocking().cloexec(),
            None,
        );
        let fd = match socket {
            Ok(s) => OwnedFd::from(s),
            Err(err) => return self.connect_failed(i, io_class(&err), now),
        };
        if let Err(err) = self.ring.install(i as u32, fd.as_raw_fd()) {
            return self.connect_failed(i, io_class(&err), now);
        }
        // Without stamps (not expected on Linux), arrivals are timed when read.
        let _ = Ring::stamp_arrivals(fd.as_raw_fd());
        let token = self.token(i, Op::Connect);
        self.set_state(i, State::Connecting);
        let slot = &mut self.slots[i];
        slot.fd = Some(fd);
        slot.connect_started = now;
        if let Err(err) = self.ring.connect(token) {
            self.connect_failed(i, io_class(&err), now);
        }
    }

    fn connected(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        let Some(fd) = slot.fd.as_ref() else { return };
        let _ = socket2::SockRef::from(fd).set_nodelay(true);
        slot.failures = 0;
        let connect = now.saturating_duration_since(slot.connect_started);
        self.recorder.connection(connect, None);
        self.shared.connected.store(true, Ordering::Relaxed);
        let _ = self.reports.send(Report::Connection(Negotiation {
            protocol: "h1",
            tls: None,
        }));
        let token = self.token(i, Op::Recv);
        if let Err(err) = self.ring.recv(token) {
            return self.connect_failed(i, io_class(&err), now);
        }
        self.receiving += 1;
        self.next(i, now);
    }

    fn connect_failed(&mut self, i: usize, class: String, now: Instant) {
        self.recorder.connection_error(&class);
        // A hopeless run ends through the source, which answers Done once aborted.
        self.shared.connect_failed();
        let slot = &mut self.slots[i];
        slot.failures += 1;
        // Requests due meanwhile stay queued (open loop) and count from their time.
        slot.retry_at = now + reconnect_backoff(slot.failures);
        self.close(i, now);
    }

    /// Fails requests older than the timeout.
    fn expire(&mut self, now: Instant, timeout: Duration) {
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.state == State::Busy && now.saturating_duration_since(slot.sent) >= timeout {
                self.fail(i, "timeout", now);
            }
        }
    }

    fn complete(&mut self, c: Completion, now: Instant) {
        if c.token.op == Op::Recv && !c.more {
            self.receiving -= 1;
        }
        let i = c.token.slot as usize;
        let current = c.token.is_of(self.slots[i].generation);
        match c.token.op {
            Op::Recv => {
                let mut eof = c.result == 0;
                if let Some(bid) = c.buffer {
                    let fed = if current && c.result > 0 {
                        let got = self.ring.received(bid, c.result as usize);
                        // Arrival as the kernel stamped it: never before the send, never
                        // after now.
                        let at = got.stamp.map_or(now, |(sec, nsec)| {
                            self.clock.instant(sec, nsec).clamp(self.slots[i].sent, now)
                        });
                        eof = got.data.is_empty();
                        self.slots[i].feed(got.data, at)
                    } else {
                        Fed::Pending
                    };
                    self.ring.recycle(bid);
                    self.act(i, fed, now);
                }
                if !current {
                    return;
                }
                match c.result {
                    _ if eof => match self.slots[i].reader.eof() {
                        Some(r) if self.slots[i].state == State::Busy => {
                            let fb = self.slots[i].first_byte.unwrap_or(now);
                            self.answered(i, r, fb, now, now);
                        }
                        _ => self.fail(i, "closed", now),
                    },
                    r if r < 0 && r != -libc::ENOBUFS => {
                        let err = io::Error::from_raw_os_error(-r);
                        self.fail(i, &io_class(&err), now);
                    }
                    _ => {}
                }
                let slot = &self.slots[i];
                if !c.more && slot.fd.is_some() && c.token.is_of(slot.generation) {
                    let token = self.token(i, Op::Recv);
                    match self.ring.recv(token) {
                        Ok(()) => self.receiving += 1,
                        Err(err) => self.fail(i, &io_class(&err), now),
                    }
                }
            }
            Op::Send if current => {
                // Small requests complete only on failure; large ones always. A short
                // count means the peer went away.
                let slot = &mut self.slots[i];
                let whole = slot.sending && usize::try_from(c.result) == Ok(slot.sent_bytes);
                slot.sending = false;
                if !whole {
                    let err = match c.result {
                        r if r < 0 => io::Error::from_raw_os_error(-r),
                        _ => io::Error::from(io::ErrorKind::ConnectionReset),
                    };
                    self.fail(i, &io_class(&err), now);
                }
            }
            Op::Connect if current && self.slots[i].state == State::Connecting => match c.result {
                0 => self.connected(i, now),
                r => {
                    let class = if r == -libc::ECANCELED {
                        CONNECT_TIMEOUT.to_string()
                    } else {
                        connect_class(&io::Error::from_raw_os_error(-r))
                    };
                    self.connect_failed(i, class, now);
                }
            },
            _ => {}
        }
    }

    /// Closes every connection at the end of the run.
    fn close_all(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            self.close(i, now);
        }
    }

    /// Waits (briefly) for the closed connections' receives to end, so that the kernel
    /// is done with the buffers before they are freed; gives up after a second and then
    /// leaks the ring instead.
    fn drain(mut self) {
        let until = Instant::now() + Duration::from_secs(1);
        let mut completions = Vec::new();
        while self.receiving > 0 && Instant::now() < until {
            if self.ring.wait(Duration::from_millis(10)).is_err() {
                break;
            }
            self.ring.completions(&mut completions);
            for c in completions.drain(..) {
                if c.token.op == Op::Recv && !c.more {
                    self.receiving -= 1;
                }
                if let Some(bid) = c.buffer {
                    self.ring.recycle(bid);
                }
            }
        }
        if self.receiving > 0 {
            tracing::warn!(
                receiving = self.receiving,
                "receives still armed at the end; their buffers are not freed"
            );
            std::mem::forget(self.ring);
        }
    }
}
