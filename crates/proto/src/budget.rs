//! Per-user traffic budgets (`[quotas] user_*`): packets and bytes per second, and bytes
//! per period, across all of a user's allocations whichever core serves them.
//!
//! A user's [`UserBudget`] is shared by its allocations (an `Arc` the host hands out when
//! an allocation is made, [`crate::Host::user_budget`]); the data path charges it with a
//! few relaxed atomic operations — no lock — and drops what is over. Rates are counted in
//! fixed one-second windows (a burst straddling two windows may pass up to twice the rate
//! for a moment); the period budget counts every relayed payload byte until the period
//! ends. Once a user's period budget is spent its new Allocates and Refreshes get 486
//! (RFC 8656 §7.2: the user is over its quota), and its data is dropped, until the period
//! rolls over.

use core::time::Duration;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The limits a budget is charged against (from `[quotas]`; 0 = unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserLimits {
    /// Datagrams per second, both directions, all allocations.
    pub packets_per_sec: u64,
    /// Payload bytes per second, both directions, all allocations.
    pub bytes_per_sec: u64,
    /// Payload bytes per period.
    pub bytes_per_period: u64,
    /// The period.
    pub period: Duration,
}

impl UserLimits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.packets_per_sec != 0 || self.bytes_per_sec != 0 || self.bytes_per_period != 0
    }
}

/// Why a datagram was not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    /// Over the packets or bytes per second.
    Rate,
    /// The period's bytes are spent.
    Spent,
}

/// One user's consumption, shared by its allocations.
#[derive(Debug)]
pub struct UserBudget {
    base: Instant,
    /// Start of the current one-second window, ns since `base`.
    window: AtomicU64,
    window_packets: AtomicU64,
    window_bytes: AtomicU64,
    /// Start of the current period, ns since `base`.
    period: AtomicU64,
    period_bytes: AtomicU64,
    /// Datagrams dropped for this user.
    dropped: AtomicU64,
}

const SECOND_NS: u64 = 1_000_000_000;

impl UserBudget {
    /// A fresh budget; its first window and period start at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            base: now,
            window: AtomicU64::new(0),
            window_packets: AtomicU64::new(0),
            window_bytes: AtomicU64::new(0),
            period: AtomicU64::new(0),
            period_bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn ns(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Starts a new window or period when `now` is past the current one (whichever
    /// caller sees it first resets the counters; a racing charge may land in either).
    fn roll(start: &AtomicU64, counters: &[&AtomicU64], at: u64, length: u64) {
        let current = start.load(Ordering::Relaxed);
        if at.saturating_sub(current) >= length {
            let next = at - (at - current) % length.max(1);
            if start
                .compare_exchange(current, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                for c in counters {
                    c.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// Counts `len` bytes at `at` (ns) in the period's bytes, unless that would pass the
    /// period's budget: then nothing is counted and the answer is false.
    fn charge_period(&self, at: u64, len: u64, limits: &UserLimits) -> bool {
        if limits.bytes_per_period == 0 {
            return true;
        }
        let period = u64::try_from(limits.period.as_nanos()).unwrap_or(u64::MAX);
        Self::roll(
            &self.period,
            &[&self.period_bytes],
            at,
            period.max(SECOND_NS),
        );
        let used = self.period_bytes.fetch_add(len, Ordering::Relaxed);
        if used.saturating_add(len) > limits.bytes_per_period {
            self.period_bytes.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Charges one datagram of `len` payload bytes at `now`.
    ///
    /// # Errors
    ///
    /// [`OverBudget`]: the datagram must be dropped (it is counted as dropped).
    pub fn charge(&self, now: Instant, len: usize, limits: &UserLimits) -> Result<(), OverBudget> {
        let at = self.ns(now);
        let len = len as u64;
        if !self.charge_period(at, len, limits) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(OverBudget::Spent);
        }
        if limits.packets_per_sec != 0 || limits.bytes_per_sec != 0 {
            Self::roll(
                &self.window,
                &[&self.window_packets, &self.window_bytes],
                at,
                SECOND_NS,
            );
            let packets = self.window_packets.fetch_add(1, Ordering::Relaxed) + 1;
            let bytes = self.window_bytes.fetch_add(len, Ordering::Relaxed) + len;
            let over = (limits.packets_per_sec != 0 && packets > limits.packets_per_sec)
                || (limits.bytes_per_sec != 0 && bytes > limits.bytes_per_sec);
            if over {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(OverBudget::Rate);
            }
        }
        Ok(())
    }

    /// Charges `len` bytes a stream moved at `now` (an RFC 6062 data connection: one
    /// read counts as one packet). Nothing is dropped on a stream, so over the rate nothing
    /// is counted and the caller waits for the next window before it tries again; spent,
    /// the caller closes the connection. The check and the count are not one atomic step:
    /// streams of one user racing each other may pass a window's rate by a read each.
    ///
    /// # Errors
    ///
    /// [`OverBudget::Rate`]: wait ([`Self::next_window`]) and try again;
    /// [`OverBudget::Spent`]: the period's bytes are spent.
    pub fn charge_stream(
        &self,
        now: Instant,
        len: usize,
        limits: &UserLimits,
    ) -> Result<(), OverBudget> {
        let at = self.ns(now);
        let len = len as u64;
        let rated = limits.packets_per_sec != 0 || limits.bytes_per_sec != 0;
        if rated {
            Self::roll(
                &self.window,
                &[&self.window_packets, &self.window_bytes],
                at,
                SECOND_NS,
            );
            let packets = self.window_packets.load(Ordering::Relaxed) + 1;
            let bytes = self.window_bytes.load(Ordering::Relaxed) + len;
            if (limits.packets_per_sec != 0 && packets > limits.packets_per_sec)
                || (limits.bytes_per_sec != 0 && bytes > limits.bytes_per_sec)
            {
                return Err(OverBudget::Rate);
            }
        }
        if !self.charge_period(at, len, limits) {
            return Err(OverBudget::Spent);
        }
        if rated {
            self.window_packets.fetch_add(1, Ordering::Relaxed);
            self.window_bytes.fetch_add(len, Ordering::Relaxed);
        }
        Ok(())
    }

    /// How long from `now` until the current one-second rate window ends.
    pub fn next_window(&self, now: Instant) -> Duration {
        let into = self
            .ns(now)
            .saturating_sub(self.window.load(Ordering::Relaxed));
        Duration::from_nanos(SECOND_NS.saturating_sub(into).clamp(1_000_000, SECOND_NS))
    }

    /// Whether the period's bytes are spent at `now`.
    pub fn spent(&self, now: Instant, limits: &UserLimits) -> bool {
        if limits.bytes_per_period == 0 {
            return false;
        }
        let period = u64::try_from(limits.period.as_nanos()).unwrap_or(u64::MAX);
        Self::roll(
            &self.period,
            &[&self.period_bytes],
            self.ns(now),
            period.max(SECOND_NS),
        );
        self.period_bytes.load(Ordering::Relaxed) >= limits.bytes_per_period
    }

    /// Payload bytes counted in the current period.
    pub fn period_bytes(&self) -> u64 {
        self.period_bytes.load(Ordering::Relaxed)
    }

    /// Datagrams dropped for this user so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the current period (of length `period`) has ended at `now`: a budget no
    /// allocation holds may then be forgotten.
    pub fn period_over(&self, now: Instant, period: Duration) -> bool {
        let period = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        self.ns(now)
            .saturating_sub(self.period.load(Ordering::Relaxed))
            >= period
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test's one clock reading; everything after is virtual time from it.
    #[allow(clippy::disallowed_methods)]
    fn epoch() -> Instant {
        Instant::now()
    }

    fn limits(pps: u64, bps: u64, total: u64) -> UserLimits {
        UserLimits {
            packets_per_sec: pps,
            bytes_per_sec: bps,
            bytes_per_period: total,
            period: Duration::from_secs(60),
        }
    }

    /// A stream waits instead of dropping: over the rate nothing is counted (not even as
    /// dropped) and the next window lets it on; spent is final for the period, and
    /// datagrams and streams share the one budget.
    #[test]
    fn streams_wait_for_the_rate_and_stop_when_spent() {
        let t0 = epoch();
        let b = UserBudget::new(t0);
        let l = limits(0, 1000, 2500);
        assert!(b.charge_stream(t0, 600, &l).is_ok());
        assert_eq!(b.charge_stream(t0, 600, &l), Err(OverBudget::Rate));
        assert_eq!(b.charge_stream(t0, 600, &l), Err(OverBudget::Rate));
        assert_eq!((b.dropped(), b.period_bytes()), (0, 600), "nothing counted");
        let wait = b.next_window(t0 + Duration::from_millis(300));
        assert_eq!(wait, Duration::from_millis(700));
        let t1 = t0 + Duration::from_secs(1);
        assert!(b.charge_stream(t1, 600, &l).is_ok(), "the next window");
        assert!(
            b.charge(t1 + Duration::from_secs(1), 900, &l).is_ok(),
            "a datagram"
        );
        let t3 = t0 + Duration::from_secs(3);
        assert_eq!(
            b.charge_stream(t3, 600, &l),
            Err(OverBudget::Spent),
            "2100 + 600 > 2500"
        );
        assert!(b.charge_stream(t3, 400, &l).is_ok(), "what is left");
        assert!(b.spent(t3, &l));
    }

    #[test]
    fn rates_are_counted_per_second_and_reset() {
        let t0 = epoch();
        let b = UserBudget::new(t0);
        let l = limits(10, 0, 0);
        let passed = (0..25).filter(|_| b.charge(t0, 100, &l).is_ok()).count();
        assert_eq!(passed, 10);
        assert_eq!(b.dropped(), 15);
        let t1 = t0 + Duration::from_millis(1000);
        assert!(b.charge(t1, 100, &l).is_ok(), "a new window");
        let l = limits(0, 1000, 0);
        let b = UserBudget::new(t0);
        assert!(b.charge(t0, 600, &l).is_ok());
        assert_eq!(b.charge(t0, 600, &l), Err(OverBudget::Rate));
    }

    #[test]
    fn the_period_budget_is_spent_then_rolls_over() {
        let t0 = epoch();
        let b = UserBudget::new(t0);
        let l = limits(0, 0, 1000);
        assert!(b.charge(t0, 600, &l).is_ok());
        assert_eq!(b.charge(t0, 600, &l), Err(OverBudget::Spent));
        assert!(b.charge(t0, 400, &l).is_ok(), "exactly what is left");
        assert!(b.spent(t0, &l));
        assert_eq!(b.period_bytes(), 1000);
        let later = t0 + Duration::from_secs(61);
        assert!(!b.spent(later, &l), "a new period");
        assert!(b.charge(later, 600, &l).is_ok());
    }
}
