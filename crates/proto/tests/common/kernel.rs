//! A fake in-kernel fast path for [`super::FakeHost`]: what the core installed, withdrew
//! and ended, and counters a test fills as if the kernel had relayed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use turnpike_proto::Usage;
use turnpike_proto::budget::{BudgetCells, SharedCells, UserBudget};
use turnpike_proto::server::offload::ChannelRoute;

/// The kernel's maps as the core left them, and every call it made.
#[derive(Debug, Default)]
pub struct FakeKernel {
    /// Routes installed now.
    pub routes: Vec<ChannelRoute>,
    /// Allocations with kernel state: (bandwidth cap, to peer, to client).
    pub allocations: BTreeMap<u64, (u64, Usage, Usage)>,
    /// Every `offload_route`, in order.
    pub installs: Vec<ChannelRoute>,
    /// Every `withdraw_route`, in order.
    pub withdrawals: Vec<ChannelRoute>,
    /// Every `end_offload`, in order.
    pub ended: Vec<u64>,
    /// Calls that broke the contract (a route of an allocation without kernel state, a
    /// withdrawal of nothing, an end with routes left).
    pub misuse: Vec<String>,
    /// Whether users' budgets are made in counters this kernel shares ([`FakeCells`]).
    pub shares_budgets: bool,
    /// The budget slots handed out so far.
    pub budget_slots: Arc<AtomicU32>,
}

/// Budget counters "the kernel shares": their own memory, a slot number, and a clock
/// counting from `epoch`.
#[derive(Debug)]
pub struct FakeCells {
    pub cells: BudgetCells,
    pub slot: u32,
    pub epoch: Instant,
}

impl SharedCells for FakeCells {
    fn cells(&self) -> &BudgetCells {
        &self.cells
    }

    fn ns(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn slot(&self) -> u32 {
        self.slot
    }
}

impl FakeKernel {
    /// A new budget in counters this kernel shares, when it does.
    pub fn new_budget(&self, now: Instant) -> Option<UserBudget> {
        if !self.shares_budgets {
            return None;
        }
        let slot = self.budget_slots.fetch_add(1, Ordering::Relaxed);
        let cells = FakeCells {
            cells: Default::default(),
            slot,
            epoch: now,
        };
        Some(UserBudget::shared(now, Box::new(cells)))
    }

    pub fn offload_allocation(&mut self, allocation: u64, rate: u64) {
        self.allocations
            .entry(allocation)
            .and_modify(|a| a.0 = rate)
            .or_insert_with(|| (rate, Usage::default(), Usage::default()));
    }

    pub fn offload_route(&mut self, route: &ChannelRoute) {
        if !self.allocations.contains_key(&route.allocation) {
            self.misuse.push(format!(
                "route of allocation {} without state",
                route.allocation
            ));
        }
        self.installs.push(*route);
        self.routes.retain(|r| !r.same_path(route));
        self.routes.push(*route);
    }

    pub fn withdraw_route(&mut self, route: &ChannelRoute) {
        self.withdrawals.push(*route);
        let before = self.routes.len();
        self.routes.retain(|r| !r.same_path(route));
        if self.routes.len() == before {
            self.misuse
                .push(format!("withdrew {route:?}, not installed"));
        }
    }

    pub fn end_offload(&mut self, allocation: u64) -> Option<(Usage, Usage)> {
        self.ended.push(allocation);
        if self.routes.iter().any(|r| r.allocation == allocation) {
            self.misuse
                .push(format!("allocation {allocation} ended with routes left"));
        }
        self.allocations
            .remove(&allocation)
            .map(|(_, to_peer, to_client)| (to_peer, to_client))
    }

    /// Counts what the kernel relayed for `allocation`, as the program would.
    pub fn relayed(&mut self, allocation: u64, to_peer: Usage, to_client: Usage) {
        let a = self
            .allocations
            .get_mut(&allocation)
            .expect("relayed for an allocation the kernel has");
        a.1.absorb(to_peer);
        a.2.absorb(to_client);
    }

    /// The one route installed now.
    pub fn only_route(&self) -> ChannelRoute {
        assert_eq!(self.routes.len(), 1, "routes: {:?}", self.routes);
        self.routes[0]
    }
}
