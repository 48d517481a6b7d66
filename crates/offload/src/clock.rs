//! `std::time::Instant` on the program's clock.
//!
//! `bpf_ktime_get_ns` reads CLOCK_MONOTONIC, and on Linux `Instant` is CLOCK_MONOTONIC
//! too; `Instant` just hides the number. [`BpfClock`] reads both once, side by side,
//! and converts any `Instant` by its distance from that anchor.

use std::time::Instant;

/// Converts `Instant`s to `bpf_ktime_get_ns` nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct BpfClock {
    anchor: Instant,
    anchor_ns: u64,
}

impl BpfClock {
    /// Reads CLOCK_MONOTONIC and `Instant::now()` once.
    pub fn new() -> Self {
        let anchor = Instant::now();
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists
        // on Linux, so the call cannot fail (and `ts` stays zero if it somehow did).
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let anchor_ns = u64::try_from(ts.tv_sec)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0));
        Self { anchor, anchor_ns }
    }

    /// `t` in `bpf_ktime_get_ns` nanoseconds (saturating at 0 and `u64::MAX`).
    pub fn ns(&self, t: Instant) -> u64 {
        if t >= self.anchor {
            let d = u64::try_from(t.duration_since(self.anchor).as_nanos()).unwrap_or(u64::MAX);
            self.anchor_ns.saturating_add(d)
        } else {
            let d = u64::try_from(self.anchor.duration_since(t).as_nanos()).unwrap_or(u64::MAX);
            self.anchor_ns.saturating_sub(d)
        }
    }
}

impl Default for BpfClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn follows_instant_and_monotonic() {
        let clock = BpfClock::new();
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        assert_eq!(clock.ns(later) - clock.ns(now), 5_000_000_000);
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: as in `BpfClock::new`.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let mono = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        let mine = clock.ns(Instant::now());
        assert!(mine.abs_diff(mono) < 50_000_000, "{mine} vs {mono}");
    }
}
