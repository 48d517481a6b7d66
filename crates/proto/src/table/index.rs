//! The allocations by 5-tuple, without a copy of the 5-tuple per entry.
//!
//! A `HashMap<FiveTuple, u32>` bucket is 72 bytes (a [`FiveTuple`] is 68, mostly two
//! `SocketAddr`s), and with the table's slack that was ~120 bytes per allocation, more
//! than a third of the rest of its state. This table holds only the slab index (4 bytes
//! a bucket) and compares against the 5-tuple in the slab, which a lookup reads next
//! anyway.
//!
//! Invariant: every index in the table names an occupied slot whose allocation has the
//! 5-tuple it was inserted under. So an allocation goes into the slab before its index
//! goes in here, and its index leaves here (by identity, which needs no slab) whenever
//! it leaves the slab or changes 5-tuple.

use core::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use crate::allocation::{Allocation, FiveTuple};

/// Slab indices by the 5-tuple of the allocation in the slot.
pub(crate) struct TupleIndex {
    table: HashTable<u32>,
    hasher: RandomState,
}

impl TupleIndex {
    pub(crate) fn new() -> Self {
        Self {
            table: HashTable::new(),
            hasher: RandomState::default(),
        }
    }

    /// Allocations indexed.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The slot of the allocation on `tuple`.
    pub(crate) fn get(&self, tuple: &FiveTuple, slots: &[Option<Allocation>]) -> Option<u32> {
        let hash = self.hasher.hash_one(tuple);
        self.table
            .find(hash, |&s| tuple_of(slots, s) == Some(tuple))
            .copied()
    }

    /// Indexes `slot`, whose allocation (already in `slots`) is on `tuple`; the caller
    /// knows no other allocation is.
    pub(crate) fn insert(&mut self, tuple: &FiveTuple, slot: u32, slots: &[Option<Allocation>]) {
        debug_assert_eq!(tuple_of(slots, slot), Some(tuple));
        let hash = self.hasher.hash_one(tuple);
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, slot, |&s| rehash(hasher, slots, s));
    }

    /// Drops `slot`, indexed under `tuple` (its allocation may be gone from the slab
    /// already, or on another 5-tuple now).
    pub(crate) fn remove(&mut self, tuple: &FiveTuple, slot: u32) {
        let hash = self.hasher.hash_one(tuple);
        if let Ok(entry) = self.table.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
    }

    /// Gives memory back once the table is less than a quarter full (see
    /// `super::trim_map`).
    pub(crate) fn trim(&mut self, slots: &[Option<Allocation>]) {
        if self.table.capacity() > super::TRIM_FLOOR && self.table.len() < self.table.capacity() / 4
        {
            let hasher = &self.hasher;
            self.table
                .shrink_to(self.table.len() * 2, |&s| rehash(hasher, slots, s));
        }
    }
}

fn tuple_of(slots: &[Option<Allocation>], slot: u32) -> Option<&FiveTuple> {
    slots
        .get(slot as usize)
        .and_then(Option::as_ref)
        .map(|a| &a.five_tuple)
}

/// The hash of an indexed slot's 5-tuple, when the table grows or shrinks. By the
/// invariant the slot is occupied; were it not, any value would only misplace that one
/// stale index, never break the table.
fn rehash(hasher: &RandomState, slots: &[Option<Allocation>], slot: u32) -> u64 {
    tuple_of(slots, slot).map_or(0, |t| hasher.hash_one(t))
}
