//! When a response arrived, from the kernel: each socket of the io_uring engine asks for
//! receive timestamps (`SO_TIMESTAMPNS`), stamped when the segment reached the socket, so
//! a response's latency does not include how long the engine took to get to it. That lets
//! the engine wait for several completions per wake-up (fewer system calls and context
//! switches per request) without any sample growing by the wait.
//!
//! The kernel stamps with the wall clock; [`WallClock`] maps its stamps onto the
//! monotonic clock every other timestamp uses.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The wall clock at one monotonic instant, to map kernel timestamps onto `Instant`s.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    mono: Instant,
    wall_ns: i128,
}

fn wall_ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

impl WallClock {
    /// Both clocks read now (the wall clock between two monotonic reads, so the pair is
    /// off by half their distance at most).
    pub fn now() -> WallClock {
        let before = Instant::now();
        let wall = SystemTime::now();
        let after = Instant::now();
        WallClock {
            mono: before + after.saturating_duration_since(before) / 2,
            wall_ns: wall_ns(wall),
        }
    }

    /// The monotonic instant of a kernel timestamp (seconds, nanoseconds since the epoch).
    pub fn instant(&self, sec: i64, nsec: i64) -> Instant {
        let ns = i128::from(sec) * 1_000_000_000 + i128::from(nsec);
        let d = ns - self.wall_ns;
        if d >= 0 {
            self.mono + Duration::from_nanos(d.min(u64::MAX as i128) as u64)
        } else {
            self.mono
                .checked_sub(Duration::from_nanos((-d).min(u64::MAX as i128) as u64))
                .unwrap_or(self.mono)
        }
    }
}

/// Reads the receive timestamp out of a message's control data (`SCM_TIMESTAMPNS`).
pub fn timestamp(control: &[u8]) -> Option<(i64, i64)> {
    const W: usize = std::mem::size_of::<usize>();
    const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
    let mut rest = control;
    while rest.len() >= HDR {
        let len = usize::from_ne_bytes(rest[..W].try_into().ok()?);
        let level = i32::from_ne_bytes(rest[W..W + 4].try_into().ok()?);
        let kind = i32::from_ne_bytes(rest[W + 4..W + 8].try_into().ok()?);
        if len < HDR || len > rest.len() {
            return None;
        }
        if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS && len >= HDR + 16 {
            let sec = i64::from_ne_bytes(rest[HDR..HDR + 8].try_into().ok()?);
            let nsec = i64::from_ne_bytes(rest[HDR + 8..HDR + 16].try_into().ok()?);
            return Some((sec, nsec));
        }
        // Each message is aligned to the size of a pointer.
        let step = len.next_multiple_of(std::mem::size_of::<usize>());
        rest = rest.get(step..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_timestamps_map_onto_the_monotonic_clock() {
        let c = WallClock::now();
        let wall = c.wall_ns;
        let at = |ns: i128| {
            c.instant(
                (ns.div_euclid(1_000_000_000)) as i64,
                (ns.rem_euclid(1_000_000_000)) as i64,
            )
        };
        assert_eq!(at(wall), c.mono);
        assert_eq!(at(wall + 1_500), c.mono + Duration::from_nanos(1_500));
        assert_eq!(at(wall - 2_000_000), c.mono - Duration::from_millis(2));
    }

    #[test]
    fn the_timestamp_is_found_among_control_messages() {
        let mut control = Vec::new();
        // Another message first (8-byte aligned), then SCM_TIMESTAMPNS.
        control.extend_from_slice(&20usize.to_ne_bytes());
        control.extend_from_slice(&libc::SOL_IP.to_ne_bytes());
        control.extend_from_slice(&8i32.to_ne_bytes());
        control.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 0]);
        control.extend_from_slice(&32usize.to_ne_bytes());
        control.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        control.extend_from_slice(&libc::SCM_TIMESTAMPNS.to_ne_bytes());
        control.extend_from_slice(&1_700_000_000i64.to_ne_bytes());
        control.extend_from_slice(&123i64.to_ne_bytes());
        assert_eq!(timestamp(&control), Some((1_700_000_000, 123)));
        assert_eq!(timestamp(&control[..24]), None);
        assert_eq!(timestamp(&[]), None);
    }
}
