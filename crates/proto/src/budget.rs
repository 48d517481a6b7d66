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
//!
//! With the in-kernel fast path the counters live where its program can charge them too
//! ([`SharedCells`], the runtime's; [`BudgetCells`] is their layout): the kernel's
//! datagrams and user space's then count against the one budget, with the same steps.

use core::fmt;
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

/// The counters of one budget and the limits they are charged against, in the layout the
/// kernel's fast path shares (`struct turn_user` in `crates/offload/bpf/turn_offload.h`),
/// indexed by [`cell`]. Times are ns on the budget's clock.
pub type BudgetCells = [AtomicU64; 10];

/// Indices of [`BudgetCells`].
pub mod cell {
    /// Start of the current one-second window.
    pub const WINDOW: usize = 0;
    /// Datagrams in it.
    pub const WINDOW_PACKETS: usize = 1;
    /// Payload bytes in it.
    pub const WINDOW_BYTES: usize = 2;
    /// Start of the current period.
    pub const PERIOD: usize = 3;
    /// Payload bytes in it.
    pub const PERIOD_BYTES: usize = 4;
    /// Datagrams dropped for this user.
    pub const DROPPED: usize = 5;
    /// The limits, as last published ([`super::UserBudget::publish_limits`]; 0 = none):
    /// datagrams per second, payload bytes per second, bytes per period, the period in ns.
    /// User space charges against the limits it is handed; the kernel reads these.
    pub const PACKETS_PER_SEC: usize = 6;
    /// See [`PACKETS_PER_SEC`].
    pub const BYTES_PER_SEC: usize = 7;
    /// See [`PACKETS_PER_SEC`].
    pub const BYTES_PER_PERIOD: usize = 8;
    /// See [`PACKETS_PER_SEC`].
    pub const PERIOD_NS: usize = 9;
}

/// Counters a budget keeps outside itself: in memory the kernel's fast path charges too.
pub trait SharedCells: Send + Sync + fmt::Debug {
    /// The counters.
    fn cells(&self) -> &BudgetCells;
    /// `now` on the clock the counters' times are on (the kernel's).
    fn ns(&self, now: Instant) -> u64;
    /// The key the kernel knows them by.
    fn slot(&self) -> u32;
}

#[derive(Debug)]
enum Store {
    /// Counters of its own; times are ns since `base`.
    Own { base: Instant, cells: BudgetCells },
    /// Counters the kernel's fast path shares.
    Shared(Box<dyn SharedCells>),
}

/// One user's consumption, shared by its allocations.
#[derive(Debug)]
pub struct UserBudget {
    store: Store,
}

const SECOND_NS: u64 = 1_000_000_000;

impl UserBudget {
    /// A fresh budget; its first window and period start at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            store: Store::Own {
                base: now,
                cells: Default::default(),
            },
        }
    }

    /// A fresh budget in `cells` (zeroed here), which the kernel's fast path charges too
    /// against the limits published in them ([`Self::publish_limits`]: the core does
    /// before it hands the kernel a route charging it); its first window and period start
    /// at `now`.
    pub fn shared(now: Instant, cells: Box<dyn SharedCells>) -> Self {
        let at = cells.ns(now);
        let c = cells.cells();
        for counter in c {
            counter.store(0, Ordering::Relaxed);
        }
        c[cell::WINDOW].store(at, Ordering::Relaxed);
        c[cell::PERIOD].store(at, Ordering::Relaxed);
        Self {
            store: Store::Shared(cells),
        }
    }

    /// Writes `limits` where the kernel's fast path reads them (a reload's new
    /// `[quotas]` reach it so: the core publishes them on its next sweep).
    pub fn publish_limits(&self, limits: &UserLimits) {
        let c = self.c();
        let period = u64::try_from(limits.period.as_nanos()).unwrap_or(u64::MAX);
        for (i, v) in [
            (cell::PACKETS_PER_SEC, limits.packets_per_sec),
            (cell::BYTES_PER_SEC, limits.bytes_per_sec),
            (cell::BYTES_PER_PERIOD, limits.bytes_per_period),
            (cell::PERIOD_NS, period),
        ] {
            c[i].store(v, Ordering::Relaxed);
        }
    }

    /// The key the kernel's fast path knows this budget by, if it shares it.
    pub fn kernel_slot(&self) -> Option<u32> {
        match &self.store {
            Store::Own { .. } => None,
            Store::Shared(s) => Some(s.slot()),
        }
    }

    fn c(&self) -> &BudgetCells {
        match &self.store {
            Store::Own { cells, .. } => cells,
            Store::Shared(s) => s.cells(),
        }
    }

    fn ns(&self, now: Instant) -> u64 {
        match &self.store {
            Store::Own { base, .. } => {
                u64::try_from(now.saturating_duration_since(*base).as_nanos()).unwrap_or(u64::MAX)
            }
            Store::Shared(s) => s.ns(now),
        }
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
            &self.c()[cell::PERIOD],
            &[&self.c()[cell::PERIOD_BYTES]],
            at,
            period.max(SECOND_NS),
        );
        let used = self.c()[cell::PERIOD_BYTES].fetch_add(len, Ordering::Relaxed);
        if used.saturating_add(len) > limits.bytes_per_period {
            self.c()[cell::PERIOD_BYTES].fetch_sub(len, Ordering::Relaxed);
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
            self.c()[cell::DROPPED].fetch_add(1, Ordering::Relaxed);
            return Err(OverBudget::Spent);
        }
        if limits.packets_per_sec != 0 || limits.bytes_per_sec != 0 {
            Self::roll(
                &self.c()[cell::WINDOW],
                &[
                    &self.c()[cell::WINDOW_PACKETS],
                    &self.c()[cell::WINDOW_BYTES],
                ],
                at,
                SECOND_NS,
            );
            let packets = self.c()[cell::WINDOW_PACKETS].fetch_add(1, Ordering::Relaxed) + 1;
            let bytes = self.c()[cell::WINDOW_BYTES].fetch_add(len, Ordering::Relaxed) + len;
            let over = (limits.packets_per_sec != 0 && packets > limits.packets_per_sec)
                || (limits.bytes_per_sec != 0 && bytes > limits.bytes_per_sec);
            if over {
                self.c()[cell::DROPPED].fetch_add(1, Ordering::Relaxed);
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
                &self.c()[cell::WINDOW],
                &[
                    &self.c()[cell::WINDOW_PACKETS],
                    &self.c()[cell::WINDOW_BYTES],
                ],
                at,
                SECOND_NS,
            );
            let packets = self.c()[cell::WINDOW_PACKETS].load(Ordering::Relaxed) + 1;
            let bytes = self.c()[cell::WINDOW_BYTES].load(Ordering::Relaxed) + len;
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
            self.c()[cell::WINDOW_PACKETS].fetch_add(1, Ordering::Relaxed);
            self.c()[cell::WINDOW_BYTES].fetch_add(len, Ordering::Relaxed);
        }
        Ok(())
    }

    /// How long from `now` until the current one-second rate window ends.
    pub fn next_window(&self, now: Instant) -> Duration {
        let into = self
            .ns(now)
            .saturating_sub(self.c()[cell::WINDOW].load(Ordering::Relaxed));
        Duration::from_nanos(SECOND_NS.saturating_sub(into).clamp(1_000_000, SECOND_NS))
    }

    /// Whether the period's bytes are spent at `now`.
    pub fn spent(&self, now: Instant, limits: &UserLimits) -> bool {
        if limits.bytes_per_period == 0 {
            return false;
        }
        let period = u64::try_from(limits.period.as_nanos()).unwrap_or(u64::MAX);
        Self::roll(
            &self.c()[cell::PERIOD],
            &[&self.c()[cell::PERIOD_BYTES]],
            self.ns(now),
            period.max(SECOND_NS),
        );
        self.c()[cell::PERIOD_BYTES].load(Ordering::Relaxed) >= limits.bytes_per_period
    }

    /// Counter or limit `i` of the budget's cells ([`cell`]), as it stands.
    pub fn cell(&self, i: usize) -> u64 {
        self.c().get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Payload bytes counted in the current period.
    pub fn period_bytes(&self) -> u64 {
        self.c()[cell::PERIOD_BYTES].load(Ordering::Relaxed)
    }

    /// Datagrams dropped for this user so far.
    pub fn dropped(&self) -> u64 {
        self.c()[cell::DROPPED].load(Ordering::Relaxed)
    }

    /// Whether the current period (of length `period`) has ended at `now`: a budget no
    /// allocation holds may then be forgotten.
    pub fn period_over(&self, now: Instant, period: Duration) -> bool {
        let period = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        self.ns(now)
            .saturating_sub(self.c()[cell::PERIOD].load(Ordering::Relaxed))
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

    /// Counters "the kernel shares": their own memory and a clock from `epoch`.
    #[derive(Debug)]
    struct Cells(BudgetCells, Instant);

    impl SharedCells for Cells {
        fn cells(&self) -> &BudgetCells {
            &self.0
        }
        fn ns(&self, now: Instant) -> u64 {
            u64::try_from(now.saturating_duration_since(self.1).as_nanos()).unwrap() + 7
        }
        fn slot(&self) -> u32 {
            3
        }
    }

    /// A budget in shared counters answers exactly as one of its own, starts its window
    /// and period at `now` on the shared clock, and publishes the limits where the
    /// kernel reads them.
    #[test]
    fn shared_counters_behave_as_own_ones() {
        let t0 = epoch();
        let l = limits(10, 0, 5000);
        let own = UserBudget::new(t0);
        let shared = UserBudget::shared(t0, Box::new(Cells(Default::default(), t0)));
        assert_eq!((own.kernel_slot(), shared.kernel_slot()), (None, Some(3)));
        assert_eq!(shared.cell(cell::WINDOW), 7);
        assert_eq!(shared.cell(cell::PERIOD), 7);
        for step in 0..40u64 {
            let t = t0 + Duration::from_millis(step * 90);
            assert_eq!(
                own.charge(t, 300, &l),
                shared.charge(t, 300, &l),
                "step {step}"
            );
        }
        assert_eq!(own.dropped(), shared.dropped());
        assert_eq!(own.period_bytes(), shared.period_bytes());
        shared.publish_limits(&l);
        assert_eq!(shared.cell(cell::PACKETS_PER_SEC), 10);
        assert_eq!(shared.cell(cell::BYTES_PER_SEC), 0);
        assert_eq!(shared.cell(cell::BYTES_PER_PERIOD), 5000);
        assert_eq!(shared.cell(cell::PERIOD_NS), 60_000_000_000);
        assert_eq!(shared.cell(99), 0);
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
