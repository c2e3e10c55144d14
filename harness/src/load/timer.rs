//! A precise one-shot timer for the open-loop schedule. tokio's timer wheel has 1 ms
//! resolution, which added about 0.8 ms of scheduler lag to every open-loop latency; a
//! Linux timerfd registered with the runtime wakes within microseconds. A floor keeps
//! high rates batched (several due requests per wake-up) instead of one wake each.

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

/// Shortest sleep: below this the generator batches instead of waking per request.
pub(crate) const FLOOR: Duration = Duration::from_micros(50);

/// A timerfd on the current runtime, or tokio's timer where timerfd is unavailable.
pub struct PreciseTimer {
    fd: Option<AsyncFd<Fd>>,
}

/// `AsyncFd` needs `AsRawFd`, which nix's `TimerFd` only offers as `AsFd`.
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl PreciseTimer {
    /// A new timer (must be created inside a runtime).
    pub fn new() -> PreciseTimer {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()
        .and_then(register);
        PreciseTimer { fd }
    }

    /// Sleeps until `when` (or at least the floor).
    pub async fn sleep_until(&mut self, when: Instant) {
        let wait = when.saturating_duration_since(Instant::now()).max(FLOOR);
        let Some(fd) = &self.fd else {
            tokio::time::sleep(wait).await;
            return;
        };
        if fd
            .get_ref()
            .0
            .set(
                Expiration::OneShot(TimeSpec::from_duration(wait)),
                TimerSetTimeFlags::empty(),
            )
            .is_err()
        {
            tokio::time::sleep(wait).await;
            return;
        }
        loop {
            let Ok(mut guard) = fd.readable().await else {
                tokio::time::sleep(wait).await;
                return;
            };
            let read = guard.try_io(|inner| {
                let mut buf = [0u8; 8];
                nix::unistd::read(inner.get_ref().as_raw_fd(), &mut buf)
                    .map_err(std::io::Error::from)
            });
            if let Ok(_expirations) = read {
                return;
            }
        }
    }
}

#[allow(unsafe_code)]
fn register(t: TimerFd) -> Option<AsyncFd<Fd>> {
    // SAFETY: `Fd` owns the timerfd; its descriptor stays open and the same for as long as
    // the AsyncFd (which owns the `Fd`) lives.
    unsafe { AsyncFd::register(Fd(t)).ok() }
}

impl Default for PreciseTimer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_close_to_the_deadline() {
        let mut t = PreciseTimer::new();
        let mut worst = Duration::ZERO;
        for _ in 0..50 {
            let when = Instant::now() + Duration::from_micros(300);
            t.sleep_until(when).await;
            let late = Instant::now().saturating_duration_since(when);
            assert!(Instant::now() >= when);
            worst = worst.max(late);
        }
        // A tokio timer would be up to a millisecond late; allow for a busy CI machine.
        assert!(
            worst < Duration::from_millis(20),
            "worst lateness {worst:?}"
        );
    }
}
