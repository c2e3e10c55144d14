//! The io_uring side of the HTTP/1.1 engine: one ring per worker thread, and a ring of
//! provided buffers that multishot receives fill. Every `unsafe` of the engine is here:
//! the kernel reads and writes memory the ring hands it until the ring is dropped, so the
//! ring owns that memory (buffers, request bytes, address, timeout) and drops it last.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

/// Receive buffers in the provided-buffer ring (a power of two).
const BUFFERS: u16 = 512;
/// Size of one receive buffer.
const BUFFER_BYTES: usize = 16 * 1024;
/// The only buffer group.
const GROUP: u16 = 0;

/// What an operation was for; part of its user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Connecting a new socket.
    Connect,
    /// The timeout linked to a connect.
    ConnectTimeout,
    /// The multishot receive of a connection (with each segment's arrival time).
    Recv,
    /// Sending a request.
    Send,
}

/// Which connection (slot and generation) and operation a completion belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// Connection slot.
    pub slot: u32,
    /// Generation of the slot's connection (24 bits), so that completions of a closed
    /// connection are told from those of its successor.
    pub generation: u32,
    /// The operation.
    pub op: Op,
}

impl Token {
    fn encode(self) -> u64 {
        let op = match self.op {
            Op::Connect => 0,
            Op::ConnectTimeout => 1,
            Op::Recv => 2,
            Op::Send => 3,
        };
        (u64::from(self.slot) << 32) | (u64::from(self.generation & 0xff_ffff) << 8) | op
    }

    fn decode(v: u64) -> Token {
        Token {
            slot: (v >> 32) as u32,
            generation: ((v >> 8) & 0xff_ffff) as u32,
            op: match v & 0xff {
                0 => Op::Connect,
                1 => Op::ConnectTimeout,
                2 => Op::Recv,
                _ => Op::Send,
            },
        }
    }

    /// Whether a completion with this token belongs to connection `generation`.
    pub fn is_of(&self, generation: u32) -> bool {
        self.generation == generation & 0xff_ffff
    }
}

/// One completion, copied out of the completion queue.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    /// Whose it is.
    pub token: Token,
    /// Bytes, 0, or a negated errno.
    pub result: i32,
    /// The provided buffer holding received bytes; give it back with [`Ring::recycle`].
    pub buffer: Option<u16>,
    /// A multishot receive goes on (false: it ended and must be armed again).
    pub more: bool,
}

/// The provided-buffer ring: entries the kernel takes buffers from, and the buffers.
struct BufRing {
    entries: *mut types::BufRingEntry,
    layout: std::alloc::Layout,
    /// The buffers, behind a raw pointer: the kernel writes into them while the ring
    /// holds no Rust reference to them.
    memory: *mut u8,
    memory_layout: std::alloc::Layout,
    tail: u16,
}

/// Allocates zeroed memory for `layout` (non-zero size).
fn alloc_zeroed(layout: std::alloc::Layout) -> *mut u8 {
    // SAFETY: every layout used here has a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    p
}

impl BufRing {
    fn new() -> BufRing {
        let layout = std::alloc::Layout::from_size_align(
            usize::from(BUFFERS) * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .expect("buffer ring layout");
        let memory_layout =
            std::alloc::Layout::from_size_align(usize::from(BUFFERS) * BUFFER_BYTES, 4096)
                .expect("buffer memory layout");
        let mut ring = BufRing {
            entries: alloc_zeroed(layout) as *mut types::BufRingEntry,
            layout,
            memory: alloc_zeroed(memory_layout),
            memory_layout,
            tail: 0,
        };
        for bid in 0..BUFFERS {
            ring.push(bid);
        }
        ring.publish();
        ring
    }

    fn push(&mut self, bid: u16) {
        // SAFETY: bid < BUFFERS, so the offset stays inside the allocation.
        let addr = unsafe { self.memory.add(usize::from(bid) * BUFFER_BYTES) } as u64;
        // SAFETY: the index is masked into the ring, which holds BUFFERS entries.
        let e = unsafe { &mut *self.entries.add(usize::from(self.tail & (BUFFERS - 1))) };
        e.set_addr(addr);
        e.set_len(BUFFER_BYTES as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail lives in the first entry's reserved field, which the kernel
        // reads; it is written atomically with release ordering, as liburing does.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < BUFFERS, "buffer id from the kernel");
        // SAFETY: inside the allocation; the kernel has finished writing this buffer (its
        // completion was reaped) and takes it again only once it is recycled.
        unsafe {
            std::slice::from_raw_parts(
                self.memory.add(usize::from(bid) * BUFFER_BYTES),
                len.min(BUFFER_BYTES),
            )
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts.
        unsafe {
            std::alloc::dealloc(self.entries as *mut u8, self.layout);
            std::alloc::dealloc(self.memory, self.memory_layout);
        }
    }
}

/// A worker's ring. Fields drop in order: the ring (and with it every registration)
/// before the memory it was given.
pub struct Ring {
    ring: IoUring,
    bufs: BufRing,
    payloads: Vec<bytes::Bytes>,
    connect_timeout: Box<types::Timespec>,
    addr: Box<socket2::SockAddr>,
    /// The receives' template: no name, room for one timestamp's control message.
    msghdr: Box<MsgHdr>,
    /// Completions the next wait waits for.
    want: usize,
    dirty: bool,
}

/// A `msghdr` the kernel reads while the ring lives (only its lengths matter for a
/// multishot receive).
struct MsgHdr(libc::msghdr);

/// Size of `struct io_uring_recvmsg_out`, which starts each received buffer.
const RECVMSG_OUT: usize = 16;
/// Room for the receive timestamp's control message (`CMSG_SPACE(sizeof(timespec))`).
const CONTROL_LEN: usize =
    std::mem::size_of::<libc::cmsghdr>() + std::mem::size_of::<libc::timespec>();

/// What one receive brought.
pub struct Received<'a> {
    /// The bytes.
    pub data: &'a [u8],
    /// When they reached the socket (the kernel's stamp), if it gave one.
    pub stamp: Option<(i64, i64)>,
}

impl Ring {
    /// A ring for `connections` connections to `addr`; connects give up after
    /// `connect_timeout`. Fails where io_uring, its deferred task running (Linux 6.1) or
    /// provided-buffer rings are not available, or are forbidden (seccomp, sysctl).
    /// `payloads` are the requests [`Ring::send`] sends.
    pub fn new(
        connections: usize,
        addr: SocketAddr,
        connect_timeout: Duration,
        payloads: Vec<bytes::Bytes>,
    ) -> io::Result<Ring> {
        let sq = (2 * connections).next_power_of_two().clamp(256, 4096) as u32;
        let cq = (4 * connections).next_power_of_two().clamp(1024, 65536) as u32;
        let ring = IoUring::builder()
            .setup_cqsize(cq)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(sq)?;
        if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_nodrop() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring lacks waiting with a timeout or never dropping completions",
            ));
        }
        // Connection i's socket is registered at index i: no descriptor lookup per send.
        ring.submitter().register_files_sparse(connections as u32)?;
        let bufs = BufRing::new();
        // SAFETY: the entries stay allocated until after the ring is dropped (field order).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.entries as u64,
                BUFFERS,
                GROUP,
                0,
            )?;
        }
        Ok(Ring {
            ring,
            bufs,
            payloads,
            connect_timeout: Box::new(
                types::Timespec::new()
                    .sec(connect_timeout.as_secs())
                    .nsec(connect_timeout.subsec_nanos()),
            ),
            addr: Box::new(socket2::SockAddr::from(addr)),
            msghdr: Box::new(MsgHdr({
                // SAFETY: a zeroed msghdr is valid (null pointers, zero lengths).
                let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
                m.msg_controllen = CONTROL_LEN as _;
                m
            })),
            want: 1,
            dirty: false,
        })
    }

    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry points into memory the ring owns (address, timespec,
            // payloads, buffers), which lives until the ring is dropped.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Asks the kernel to stamp what `fd` receives with its arrival time.
    pub fn stamp_arrivals(fd: RawFd) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: a valid option value of the size given, for a socket option that only
        // reads it.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Registers `fd` as the socket of connection `slot` (replacing the previous one).
    pub fn install(&mut self, slot: u32, fd: RawFd) -> io::Result<()> {
        self.ring
            .submitter()
            .register_files_update(slot, &[fd])
            .map(drop)
    }

    /// Unregisters the socket of connection `slot`; operations in flight keep it open
    /// until they end.
    pub fn remove(&mut self, slot: u32) -> io::Result<()> {
        self.ring
            .submitter()
            .register_files_update(slot, &[-1])
            .map(drop)
    }

    /// Connects the socket of `token`'s slot (non-blocking, of the address's family) to
    /// the address, with the connect timeout linked to it.
    pub fn connect(&mut self, token: Token) -> io::Result<()> {
        let fd = types::Fixed(token.slot);
        let connect = opcode::Connect::new(fd, self.addr.as_ptr().cast(), self.addr.len())
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(token.encode());
        let timeout = opcode::LinkTimeout::new(&*self.connect_timeout)
            .build()
            .user_data(
                Token {
                    op: Op::ConnectTimeout,
                    ..token
                }
                .encode(),
            );
        // Both in one go: a link cannot span two submissions.
        let free = {
            let sq = self.ring.submission();
            sq.capacity() - sq.len()
        };
        if free < 2 {
            self.ring.submit()?;
        }
        self.push(connect)?;
        self.push(timeout)
    }

    /// Arms the multishot receive of `token`'s slot.
    pub fn recv(&mut self, token: Token) -> io::Result<()> {
        let msghdr: *const libc::msghdr = &self.msghdr.0;
        self.push(
            opcode::RecvMsgMulti::new(types::Fixed(token.slot), msghdr, GROUP)
                .build()
                .user_data(token.encode()),
        )
    }

    /// Sends all of payload `payload` on `token`'s slot. It completes on failure, and on
    /// success only if `complete` is set.
    pub fn send(&mut self, payload: usize, token: Token, complete: bool) -> io::Result<()> {
        let bytes = &self.payloads[payload];
        let (ptr, len) = (bytes.as_ptr(), bytes.len() as u32);
        let flags = if complete {
            squeue::Flags::empty()
        } else {
            squeue::Flags::SKIP_SUCCESS
        };
        self.push(
            opcode::Send::new(types::Fixed(token.slot), ptr, len)
                .flags(libc::MSG_WAITALL | libc::MSG_NOSIGNAL)
                .build()
                .flags(flags)
                .user_data(token.encode()),
        )
    }

    /// Submits what was queued and waits for a completion, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        if self.dirty {
            self.bufs.publish();
            self.dirty = false;
        }
        if !self.ring.completion().is_empty() {
            self.ring.submit()?;
            return Ok(());
        }
        let ts = types::Timespec::new()
            .sec(timeout.as_secs())
            .nsec(timeout.subsec_nanos());
        let args = types::SubmitArgs::new().timespec(&ts);
        let want = std::mem::replace(&mut self.want, 1);
        match self.ring.submitter().submit_with_args(want, &args) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Moves every available completion into `out`.
    pub fn completions(&mut self, out: &mut Vec<Completion>) {
        for cqe in self.ring.completion() {
            out.push(Completion {
                token: Token::decode(cqe.user_data()),
                result: cqe.result(),
                buffer: cqueue::buffer_select(cqe.flags()),
                more: cqueue::more(cqe.flags()),
            });
        }
    }

    /// What a receive completion of `len` bytes left in provided buffer `bid`: its data
    /// (empty at the end of the stream) and the kernel's timestamp.
    pub fn received(&self, bid: u16, len: usize) -> Received<'_> {
        let buffer = self.bufs.buffer(bid, len);
        let Ok(out) = types::RecvMsgOut::parse(buffer, &self.msghdr.0) else {
            return Received {
                data: &[],
                stamp: None,
            };
        };
        // The buffer holds the header, the control field (no name), then the data.
        let control_len = (out.incoming_control_len() as usize).min(CONTROL_LEN);
        let start = RECVMSG_OUT + CONTROL_LEN;
        let data_len = (out.incoming_payload_len() as usize).min(buffer.len() - start);
        Received {
            data: &buffer[start..start + data_len],
            stamp: super::arrival::timestamp(&buffer[RECVMSG_OUT..RECVMSG_OUT + control_len]),
        }
    }

    /// Waits for at least `want` completions, or `timeout`. With the ring's deferred task
    /// running, the kernel wakes the engine only once `want` are ready.
    pub fn wait_for(&mut self, want: usize, timeout: Duration) -> io::Result<()> {
        self.want = want.max(1);
        self.wait(timeout)
    }

    /// Gives provided buffer `bid` back to the kernel (published at the next wait).
    pub fn recycle(&mut self, bid: u16) {
        self.bufs.push(bid);
        self.dirty = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_generations_wrap_at_24_bits() {
        for op in [Op::Connect, Op::ConnectTimeout, Op::Recv, Op::Send] {
            let t = Token {
                slot: 70_000,
                generation: 0x123456,
                op,
            };
            assert_eq!(Token::decode(t.encode()), t);
        }
        let t = Token::decode(
            Token {
                slot: 1,
                generation: 0x1_000_002,
                op: Op::Recv,
            }
            .encode(),
        );
        assert!(t.is_of(0x1_000_002) && t.is_of(2) && !t.is_of(3));
    }

    #[test]
    fn received_bytes_carry_their_arrival_time_from_the_kernel() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let Ok(mut ring) = Ring::new(1, addr, Duration::from_secs(1), Vec::new()) else {
            eprintln!("io_uring is not available here: nothing to test");
            return;
        };
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        Ring::stamp_arrivals(client.as_raw_fd()).unwrap();
        ring.install(0, client.as_raw_fd()).unwrap();
        let token = Token {
            slot: 0,
            generation: 0,
            op: Op::Recv,
        };
        ring.recv(token).unwrap();
        let clock = super::super::arrival::WallClock::now();
        // The kernel turns receive stamps on for the whole stack a moment after the first
        // socket asks (a deferred work item): until then segments come unstamped.
        let mut tries = 0;
        let (bid, at, before, after) = loop {
            tries += 1;
            let before = std::time::Instant::now();
            server.write_all(b"hello").unwrap();
            let mut got = Vec::new();
            while got.is_empty() {
                ring.wait(Duration::from_secs(1)).unwrap();
                ring.completions(&mut got);
            }
            let after = std::time::Instant::now();
            let c = got[0];
            let bid = c.buffer.expect("a provided buffer");
            let r = ring.received(bid, c.result as usize);
            assert_eq!(r.data, b"hello");
            match r.stamp {
                Some((sec, nsec)) => break (bid, clock.instant(sec, nsec), before, after),
                None => {
                    assert!(tries < 1000, "no arrival stamp after {tries} messages");
                    ring.recycle(bid);
                    std::thread::yield_now();
                }
            }
        };
        let slack = Duration::from_millis(5);
        assert!(
            at + slack >= before && at <= after + slack,
            "{at:?} not in {before:?}..{after:?}"
        );
        ring.recycle(bid);
        // The end of the stream: no data.
        drop(server);
        let mut got = Vec::new();
        while got.is_empty() {
            ring.wait(Duration::from_secs(1)).unwrap();
            ring.completions(&mut got);
        }
        let c = got[0];
        let empty = c.result == 0
            || c.buffer
                .is_some_and(|b| ring.received(b, c.result as usize).data.is_empty());
        assert!(empty, "{} bytes at the end", c.result);
        ring.remove(0).unwrap();
    }
}
