//! An optional budget of bytes per second answered to unproven UDP sources
//! (`[quotas] unauthenticated_bytes_per_sec`): Binding answers, challenges and the other
//! answers sent before a request authenticated. Each answer is already bounded in size
//! (`docs/THREAT_MODEL.md`); this bounds how many a source can draw, so a spoofer aiming
//! at one victim gets at most this many bytes a second reflected at it from each worker.
//!
//! Sources are counted in a fixed table of [`SLOTS`] one-second windows indexed by a keyed
//! hash of the source IP: memory is bounded (32 KiB, made on first use) however many
//! sources there are; two sources sharing a slot share its budget.

use core::net::IpAddr;
use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Slots in the table.
pub(super) const SLOTS: usize = 4096;

/// The per-source budget table.
pub(crate) struct UnprovenBudget {
    key: Hmac<Sha256>,
    base: Instant,
    /// Per slot: the second its count belongs to, and the bytes answered in it.
    slots: Box<[(u32, u32)]>,
}

impl UnprovenBudget {
    /// A table keyed with `secret` (so nobody can aim sources at one slot), its clock
    /// starting at `now`.
    pub(crate) fn new(secret: &[u8], now: Instant) -> Self {
        let key = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        Self {
            key,
            base: now,
            slots: vec![(0, 0); SLOTS].into_boxed_slice(),
        }
    }

    fn slot(&self, ip: IpAddr) -> usize {
        let mut mac = self.key.clone();
        match ip.to_canonical() {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        let tag = mac.finalize().into_bytes();
        usize::from(u16::from_be_bytes([tag[0], tag[1]])) % SLOTS
    }

    /// Whether `bytes` more may be answered to `ip` at `now` under `rate` bytes per
    /// second (counted if so).
    pub(crate) fn take(&mut self, ip: IpAddr, now: Instant, bytes: usize, rate: u64) -> bool {
        let second =
            u32::try_from(now.saturating_duration_since(self.base).as_secs()).unwrap_or(u32::MAX);
        let i = self.slot(ip);
        let (window, used) = &mut self.slots[i];
        if *window != second {
            *window = second;
            *used = 0;
        }
        let next = u64::from(*used).saturating_add(bytes as u64);
        if next > rate {
            return false;
        }
        *used = u32::try_from(next).unwrap_or(u32::MAX);
        true
    }
}
