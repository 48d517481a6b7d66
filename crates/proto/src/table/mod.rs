//! `AllocationTable`: every allocation of one core, addressed by [`AllocationId`], with
//! the indexes the packet path looks up (by 5-tuple, by relay) and the last answer per
//! 5-tuple kept for retransmissions (RFC 8489 §6.3.4).
//!
//! The table owns the slots and keeps its indexes consistent: an allocation enters every
//! index when it is inserted and leaves them all when it is removed, moved to another
//! 5-tuple or loses a relay. The rules of TURN live in [`crate::server`]; this is storage.

use core::ops::{Index, IndexMut};
use std::time::Instant;

use turnpike_stun::{Method, TransactionId};

use crate::HashMap;
use crate::allocation::{Allocation, Cached, FiveTuple, family_index};
use crate::host::{Family, RelayId};

use self::index::TupleIndex;

mod index;

/// Most answers kept for 5-tuples without an allocation (each ~200 bytes with its key
/// and map slack, for 40 s): the memory an authenticated request flood can hold.
pub const MAX_STRANGER_ANSWERS: usize = 65_536;

/// Names an allocation in its `AllocationTable` (its slot). An id outlives nothing: once
/// its allocation is removed, the slot may be reused by the next one, so ids are only held
/// within one call into the core, or next to a check of the allocation they name (a
/// mobility ticket is compared with the ticket stored in the slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocationId(pub(crate) u32);

impl AllocationId {
    /// The slot number (what a mobility ticket names).
    pub(crate) fn slot(self) -> u32 {
        self.0
    }
}

/// The smallest step the slab grows by.
const SLAB_MIN_GROWTH: usize = 16;

/// Tables this small are never shrunk.
pub(crate) const TRIM_FLOOR: usize = 64;

/// The allocations of one core and their indexes.
pub(crate) struct AllocationTable {
    slots: Vec<Option<Allocation>>,
    free: Vec<u32>,
    by_five_tuple: TupleIndex,
    by_relay: HashMap<RelayId, AllocationId>,
    /// The last answer to 5-tuples that have no allocation (those that have one keep it
    /// in the allocation, see [`Allocation::cached`]).
    answers: HashMap<FiveTuple, Cached>,
}

impl Default for AllocationTable {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_five_tuple: TupleIndex::new(),
            by_relay: HashMap::default(),
            answers: HashMap::default(),
        }
    }
}

impl Index<AllocationId> for AllocationTable {
    type Output = Allocation;

    /// The allocation `id` names. Panics on an id whose allocation is gone: ids come from
    /// this table's lookups within the same call, so that is a bug, never bad input.
    fn index(&self, id: AllocationId) -> &Allocation {
        self.get(id).unwrap_or_else(|| unreachable!("stale {id:?}"))
    }
}

impl IndexMut<AllocationId> for AllocationTable {
    fn index_mut(&mut self, id: AllocationId) -> &mut Allocation {
        self.get_mut(id)
            .unwrap_or_else(|| unreachable!("stale {id:?}"))
    }
}

impl AllocationTable {
    /// Allocations held.
    pub(crate) fn len(&self) -> usize {
        self.by_five_tuple.len()
    }

    /// The allocation `id` names, if it is still there.
    pub(crate) fn get(&self, id: AllocationId) -> Option<&Allocation> {
        self.slots.get(id.0 as usize)?.as_ref()
    }

    /// [`Self::get`], mutable.
    pub(crate) fn get_mut(&mut self, id: AllocationId) -> Option<&mut Allocation> {
        self.slots.get_mut(id.0 as usize)?.as_mut()
    }

    /// The allocation on a 5-tuple.
    pub(crate) fn by_five_tuple(&self, tuple: &FiveTuple) -> Option<AllocationId> {
        self.by_five_tuple.get(tuple, &self.slots).map(AllocationId)
    }

    /// The allocation a relay belongs to.
    pub(crate) fn by_relay(&self, relay: RelayId) -> Option<AllocationId> {
        self.by_relay.get(&relay).copied()
    }

    /// The id [`Self::insert`] will give the next allocation (a mobility ticket minted
    /// before the insert names it).
    pub(crate) fn next_id(&self) -> AllocationId {
        AllocationId(self.free.last().copied().unwrap_or(self.slots.len() as u32))
    }

    /// Stores an allocation and indexes it by its 5-tuple and relays; the caller knows
    /// no other allocation is on that 5-tuple.
    pub(crate) fn insert(&mut self, alloc: Allocation) -> AllocationId {
        let five_tuple = alloc.five_tuple;
        let relays = alloc.relays;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(alloc);
                s
            }
            None => {
                // Grow the slab by an eighth, not by doubling: it holds every allocation
                // inline, so doubling would leave up to half of it (on average a quarter)
                // unused. Large blocks are remapped rather than copied by the system
                // allocator, so the extra growth steps cost little.
                if self.slots.len() == self.slots.capacity() {
                    self.slots
                        .reserve_exact((self.slots.len() / 8).max(SLAB_MIN_GROWTH));
                }
                self.slots.push(Some(alloc));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_five_tuple.insert(&five_tuple, slot, &self.slots);
        let id = AllocationId(slot);
        for &relay in relays.iter().flatten() {
            self.by_relay.insert(relay, id);
        }
        id
    }

    /// Takes an allocation out of the table and every index. What it held outside the
    /// core (relays, quota, peer connections) is the caller's to release.
    pub(crate) fn remove(&mut self, id: AllocationId) -> Option<Allocation> {
        let alloc = self.slots.get_mut(id.0 as usize).and_then(Option::take)?;
        self.free.push(id.0);
        self.by_five_tuple.remove(&alloc.five_tuple, id.0);
        for relay in alloc.relays.iter().flatten() {
            self.by_relay.remove(relay);
        }
        Some(alloc)
    }

    /// Takes one family's relay from an allocation (one half of a dual allocation goes,
    /// RFC 8656 §8.1) and out of the relay index.
    pub(crate) fn remove_relay(&mut self, id: AllocationId, family: Family) -> Option<RelayId> {
        let relay = self.get_mut(id)?.relays[family_index(family)].take()?;
        self.by_relay.remove(&relay);
        Some(relay)
    }

    /// Moves an allocation to another 5-tuple (RFC 8016); false if it is there already.
    /// The caller knows no allocation is on `to`. The last answer stays with the old
    /// 5-tuple, which it was sent to.
    pub(crate) fn move_to(&mut self, id: AllocationId, to: FiveTuple) -> bool {
        let Some(alloc) = self.get_mut(id) else {
            return false;
        };
        if alloc.five_tuple == to {
            return false;
        }
        let old = core::mem::replace(&mut alloc.five_tuple, to);
        let cached = alloc.cached.take();
        self.by_five_tuple.remove(&old, id.0);
        self.by_five_tuple.insert(&to, id.0, &self.slots);
        if let Some(c) = cached {
            self.answers.insert(old, *c);
        }
        true
    }

    /// The ids of every allocation, for a sweep (collected: the sweep removes some).
    pub(crate) fn ids(&self) -> impl Iterator<Item = AllocationId> + use<> {
        let ids: Vec<AllocationId> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| AllocationId(i as u32))
            .collect();
        ids.into_iter()
    }

    /// The answer kept for a retransmission of `tid` (same method, RFC 8489 §6.3) from
    /// `tuple`, if it is still kept at `now` and fits in `room` bytes.
    pub(crate) fn answer(
        &self,
        tuple: &FiveTuple,
        tid: TransactionId,
        method: Method,
        now: Instant,
        room: usize,
    ) -> Option<&[u8]> {
        let hit = |c: &&Cached| c.matches(tid, method, now) && c.bytes.len() <= room;
        let with_allocation = self
            .by_five_tuple(tuple)
            .and_then(|id| self.get(id))
            .and_then(|a| a.cached.as_deref());
        with_allocation
            .filter(hit)
            .or_else(|| self.answers.get(tuple).filter(hit))
            .map(|c| &*c.bytes)
    }

    /// Keeps the last answer to `tuple` (see [`MAX_STRANGER_ANSWERS`]): with its allocation when it has one (a box of 8
    /// bytes in the slab, none once expired, where a map entry would cost ~200 bytes with
    /// its key and the map's slack), else in the map. Only the last answer per 5-tuple is
    /// kept.
    pub(crate) fn remember(&mut self, tuple: FiveTuple, answer: Cached) {
        match self.by_five_tuple(&tuple) {
            Some(id) => {
                self[id].cached = Some(Box::new(answer));
                self.answers.remove(&tuple);
            }
            // A 5-tuple without an allocation (an authenticated request that failed, a
            // stream's ConnectionBind): kept only while the map is under its bound, so
            // a flood of authenticated requests from many ports cannot grow memory past
            // ~13 MB; past it, a retransmission is processed again (idempotent: nothing
            // changed for it the first time).
            None if self.answers.len() < MAX_STRANGER_ANSWERS
                || self.answers.contains_key(&tuple) =>
            {
                self.answers.insert(tuple, answer);
            }
            None => {}
        }
    }

    /// Answers kept for 5-tuples without an allocation.
    pub(crate) fn stranger_answers(&self) -> usize {
        self.answers.len()
    }

    /// Forgets the answer kept for a 5-tuple without an allocation (its connection closed).
    pub(crate) fn forget_answer(&mut self, tuple: &FiveTuple) {
        self.answers.remove(tuple);
    }

    /// Drops answers kept past their time.
    pub(crate) fn expire_answers(&mut self, now: Instant) {
        self.answers.retain(|_, c| c.until > now);
    }

    /// Whether the table holds anything a sweep must look at.
    pub(crate) fn is_idle(&self) -> bool {
        self.by_five_tuple.is_empty() && self.answers.is_empty()
    }

    /// Gives memory back: the slab's empty tail, and tables that are mostly empty (after
    /// a mass expiry or a busy minute of transactions; maps and vectors keep their
    /// capacity otherwise).
    pub(crate) fn trim(&mut self) {
        // Pop first, then drop the popped indices from the free list once: retaining
        // after every pop made a mass expiry (n allocations at once) cost O(n²).
        let before = self.slots.len();
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        if self.slots.len() < before {
            let len = self.slots.len() as u32;
            self.free.retain(|&s| s < len);
        }
        trim_vec(&mut self.slots);
        trim_vec(&mut self.free);
        self.by_five_tuple.trim(&self.slots);
        trim_map(&mut self.by_relay);
        trim_map(&mut self.answers);
    }
}

/// Halves (or more) a map that is less than a quarter full; the hysteresis keeps an
/// oscillating size from rehashing on every sweep.
pub(crate) fn trim_map<K: Eq + core::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > TRIM_FLOOR && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

/// [`trim_map`] for a vector.
fn trim_vec<T>(v: &mut Vec<T>) {
    if v.capacity() > TRIM_FLOOR && v.len() < v.capacity() / 4 {
        v.shrink_to(v.len() * 2);
    }
}
