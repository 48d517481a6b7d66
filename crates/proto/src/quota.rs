//! Allocation quotas (per user, 486; in total, 508) and the per-allocation bandwidth cap.

use core::time::Duration;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::budget::{UserBudget, UserLimits};

/// Limits on what clients may hold (`[quotas]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Quotas {
    /// Allocations one username may hold at once (0 = unlimited); over it: 486.
    pub allocations_per_user: u32,
    /// Allocations the server holds at once (0 = unlimited); over it: 508.
    pub allocations_total: u32,
    /// Permissions per allocation; over it: 508.
    pub permissions_per_allocation: u32,
    /// Channel bindings per allocation; over it: 508.
    pub channels_per_allocation: u32,
    /// Relayed bytes per second per allocation, both directions together
    /// (0 = unlimited). Excess datagrams are dropped and counted.
    pub bandwidth_bytes_per_sec: u64,
    /// RFC 6062 peer TCP connections, pending or bound, per TCP allocation (0 =
    /// unlimited); over it, Connect gets 508 and inbound peer connections are closed.
    pub tcp_connections_per_allocation: u32,
    /// Datagrams per second one user may relay, all its allocations and both directions
    /// together (0 = unlimited); over it they are dropped and counted.
    pub user_packets_per_sec: u64,
    /// Payload bytes per second one user may relay, all its allocations and both
    /// directions together (0 = unlimited); over it they are dropped and counted.
    pub user_bytes_per_sec: u64,
    /// Payload bytes one user may relay per `user_budget_period_secs` (0 = unlimited);
    /// once spent its data is dropped and its Allocates and Refreshes get 486 until the
    /// period ends.
    pub user_bytes_per_period: u64,
    /// Bytes per second answered to one unproven UDP source IP per worker (Binding
    /// answers, challenges, anything sent before a request authenticated); 0 = unlimited
    /// (the default: each answer is bounded in size anyway, see `docs/THREAT_MODEL.md`).
    pub unauthenticated_bytes_per_sec: u64,
    /// The period of `user_bytes_per_period`. Default 86400 (a day).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "user_budget_period_secs", with = "crate::config::secs")
    )]
    pub user_budget_period: Duration,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            allocations_per_user: 100,
            allocations_total: 100_000,
            permissions_per_allocation: 64,
            channels_per_allocation: 64,
            bandwidth_bytes_per_sec: 0,
            tcp_connections_per_allocation: 64,
            user_packets_per_sec: 0,
            user_bytes_per_sec: 0,
            user_bytes_per_period: 0,
            unauthenticated_bytes_per_sec: 0,
            user_budget_period: Duration::from_secs(86_400),
        }
    }
}

/// Why an allocation slot was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaExceeded {
    /// This user holds its maximum: 486 Allocation Quota Reached.
    User,
    /// The server holds its maximum: 508 Insufficient Capacity.
    Total,
}

/// Counts allocations per user and in total. The runtime may share one ledger between
/// workers (behind its own lock, touched only on Allocate and on deletion).
#[derive(Debug, Default)]
pub struct QuotaLedger {
    per_user: HashMap<String, u32>,
    total: u32,
    /// Traffic budgets of users with allocations, or whose period has not ended.
    budgets: HashMap<String, Arc<UserBudget>>,
}

impl QuotaLedger {
    /// Takes a slot for `user`.
    ///
    /// # Errors
    ///
    /// Which limit is reached.
    pub fn acquire(&mut self, quotas: &Quotas, user: &str) -> Result<(), QuotaExceeded> {
        if quotas.allocations_total != 0 && self.total >= quotas.allocations_total {
            return Err(QuotaExceeded::Total);
        }
        let held = self.per_user.get(user).copied().unwrap_or(0);
        if quotas.allocations_per_user != 0 && held >= quotas.allocations_per_user {
            return Err(QuotaExceeded::User);
        }
        *self.per_user.entry(user.to_owned()).or_insert(0) += 1;
        self.total += 1;
        Ok(())
    }

    /// Gives back a slot of `user`.
    pub fn release(&mut self, user: &str) {
        if let Some(n) = self.per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(user);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    /// Allocations held in total.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// The traffic budget of `user`, shared by all its allocations (made at `now` if it
    /// has none). Budgets no allocation holds and whose period has ended are forgotten
    /// here, so the ledger holds at most the users of one period.
    pub fn budget(&mut self, user: &str, now: Instant, period: Duration) -> Arc<UserBudget> {
        self.budget_with(user, now, period, || UserBudget::new(now))
    }

    /// As [`Self::budget`], with `make` making a new one (the runtime's, in counters the
    /// kernel's fast path shares: [`UserBudget::shared`]).
    pub fn budget_with(
        &mut self,
        user: &str,
        now: Instant,
        period: Duration,
        make: impl FnOnce() -> UserBudget,
    ) -> Arc<UserBudget> {
        if self.budgets.len() >= 1024 && self.budgets.len().is_power_of_two() {
            self.budgets
                .retain(|_, b| Arc::strong_count(b) > 1 || !b.period_over(now, period));
        }
        Arc::clone(
            self.budgets
                .entry(user.to_owned())
                .or_insert_with(|| Arc::new(make())),
        )
    }
}

impl Quotas {
    /// The per-user traffic limits.
    pub fn user_limits(&self) -> UserLimits {
        UserLimits {
            packets_per_sec: self.user_packets_per_sec,
            bytes_per_sec: self.user_bytes_per_sec,
            bytes_per_period: self.user_bytes_per_period,
            period: self.user_budget_period,
        }
    }
}

/// A token bucket in bytes: `rate` bytes per second, bursts up to one second's worth.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    tokens: u64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(now: Instant, rate: u64) -> Self {
        Self {
            tokens: rate,
            last: now,
        }
    }

    /// Takes `bytes` if available.
    pub(crate) fn take(&mut self, now: Instant, rate: u64, bytes: usize) -> bool {
        if rate == 0 {
            return true;
        }
        // Only whole tokens are added, and `last` moves forward by exactly the time they
        // stand for: moving it to `now` on every call would throw the fraction away, so a
        // low rate (10 ICMP messages a second) called more often than once per token
        // would never refill.
        let elapsed = now.saturating_duration_since(self.last);
        let refill = (elapsed.as_micros() as u64).saturating_mul(rate) / 1_000_000;
        if refill > 0 {
            let sum = self.tokens.saturating_add(refill);
            if sum >= rate {
                self.tokens = rate;
                self.last = now;
            } else {
                self.tokens = sum;
                // `refill * 1e6 / rate` is at most `elapsed` in microseconds: no overflow.
                self.last += Duration::from_micros(refill.saturating_mul(1_000_000) / rate);
            }
        }
        let bytes = bytes as u64;
        if self.tokens >= bytes {
            self.tokens -= bytes;
            true
        } else {
            false
        }
    }
}
