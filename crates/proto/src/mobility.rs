//! RFC 8016 mobility: the MOBILITY-TICKET that lets a Refresh from a new 5-tuple take
//! over an allocation.
//!
//! # Protocol
//!
//! - An Allocate that carries MOBILITY-TICKET (empty, RFC 8016 §3.1) asks for mobility.
//!   With [`crate::TurnSection::mobility`] off it is refused with 405 (Mobility
//!   Forbidden, RFC 8016 §3.4); a non-empty value in an Allocate is a 400. Otherwise the
//!   success response carries a ticket.
//! - A Refresh that carries MOBILITY-TICKET names its allocation by the ticket, not by
//!   the 5-tuple it arrives on. It must authenticate with the username that created the
//!   allocation (441 otherwise, like any request on someone else's allocation). If it
//!   comes from a new 5-tuple, the allocation moves there: the old 5-tuple no longer
//!   names anything (437), peers' data goes to the new one, and permissions, channels,
//!   relays and quota stay as they were. The response carries a new ticket; the one used
//!   is dead from then on, so a captured ticket cannot be replayed. A Refresh with a
//!   ticket while mobility is off is a 405. A ticket that is malformed, forged, stale
//!   (already used) or whose allocation is gone is a 400; moving onto a 5-tuple that
//!   holds another allocation is a 437; moving a TCP allocation onto UDP is a 400.
//!
//! # The ticket
//!
//! RFC 8016 §3.3: "The value of the MOBILITY-TICKET is encrypted and is of variable
//! length." Ours is [`TICKET_LEN`] = 32 bytes, encrypt-then-MAC with two keys derived
//! from the configured nonce secret under their own labels (so no other token of the
//! server verifies as a ticket):
//!
//! ```text
//! nonce (8) ‖ (slot ‖ generation) XOR HMAC-SHA256(enc key, nonce)[..8] ‖ HMAC-SHA256(mac key, the first 16 bytes)[..16]
//! ```
//!
//! The nonce comes from the core's random numbers and makes every ticket different; the
//! MAC makes tickets unforgeable even if those numbers were predictable; the encryption
//! (the HMAC of the nonce as a one-time pad, a PRF-based stream cipher) hides which slot
//! and how many moves an allocation has had. Opening one is the MAC check (stateless: a
//! forged ticket costs one HMAC and touches no allocation), then a constant-time
//! comparison with the single ticket stored on the allocation the slot names: a ticket
//! of a deleted allocation, of an earlier generation, or of another allocation that
//! reused the slot never matches. Nothing about the user or the client address is in it.
//!
//! The slot field names the core too: its top 8 bits are the issuing core's
//! [`shard`](crate::CoreSetup::shard), the low 24 the slot in that core's table. A moved
//! client's Refresh may reach another core of the runtime (the kernel spreads 5-tuples
//! over workers); a core that opens a genuine ticket of another shard answers
//! [`ClientAction::Forward`](crate::ClientAction::Forward) and the runtime hands the
//! request to the core that issued it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use turnpike_stun::ct_eq;

/// Length of a MOBILITY-TICKET this server issues.
pub const TICKET_LEN: usize = 32;

/// Slots a ticket can name in one core (the low 24 bits of its slot field).
pub(crate) const TICKET_SLOTS: u32 = 1 << 24;

/// The slot field of a ticket: the issuing core's shard and its slot there.
pub(crate) fn ticket_place(shard: u8, slot: u32) -> Option<u32> {
    (slot < TICKET_SLOTS).then_some(u32::from(shard) << 24 | slot)
}

/// The shard and slot a ticket's slot field names.
pub(crate) fn ticket_subject(place: u32) -> (u8, u32) {
    ((place >> 24) as u8, place & (TICKET_SLOTS - 1))
}

/// Mints and opens tickets.
#[derive(Clone)]
pub(crate) struct TicketKey {
    enc: Hmac<Sha256>,
    mac: Hmac<Sha256>,
}

impl core::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

fn labelled(secret: &[u8], label: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(label);
    mac
}

fn prf(key: &Hmac<Sha256>, input: &[u8]) -> [u8; 32] {
    let mut mac = key.clone();
    mac.update(input);
    mac.finalize().into_bytes().into()
}

impl TicketKey {
    pub(crate) fn new(secret: &[u8]) -> Self {
        Self {
            enc: labelled(secret, b"mobility-ticket-encryption"),
            mac: labelled(secret, b"mobility-ticket-authentication"),
        }
    }

    /// A ticket for the allocation in `slot`.
    pub(crate) fn mint(&self, slot: u32, generation: u32, nonce: u64) -> [u8; TICKET_LEN] {
        let mut t = [0u8; TICKET_LEN];
        t[..8].copy_from_slice(&nonce.to_be_bytes());
        t[8..12].copy_from_slice(&slot.to_be_bytes());
        t[12..16].copy_from_slice(&generation.to_be_bytes());
        let pad = prf(&self.enc, &t[..8]);
        for (b, p) in t[8..16].iter_mut().zip(pad) {
            *b ^= p;
        }
        let tag = prf(&self.mac, &t[..16]);
        t[16..].copy_from_slice(&tag[..16]);
        t
    }

    /// The slot a genuine ticket names; `None` for anything this key did not mint.
    /// Whether it is still the current ticket of that slot is for the caller to check.
    pub(crate) fn open(&self, ticket: &[u8]) -> Option<u32> {
        let ticket: &[u8; TICKET_LEN] = ticket.try_into().ok()?;
        let tag = prf(&self.mac, &ticket[..16]);
        if !ct_eq(&tag[..16], &ticket[16..]) {
            return None;
        }
        let pad = prf(&self.enc, &ticket[..8]);
        let mut slot = [0u8; 4];
        for (i, b) in slot.iter_mut().enumerate() {
            *b = ticket[8 + i] ^ pad[i];
        }
        Some(u32::from_be_bytes(slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_ticket_opens_and_a_changed_one_does_not() {
        let key = TicketKey::new(b"secret");
        let t = key.mint(7, 1, 42);
        assert_eq!(key.open(&t), Some(7));
        for i in 0..TICKET_LEN {
            let mut bad = t;
            bad[i] ^= 1;
            assert_eq!(key.open(&bad), None, "byte {i}");
        }
        assert_eq!(key.open(&t[..31]), None);
        assert_eq!(TicketKey::new(b"other").open(&t), None);
        assert_ne!(key.mint(7, 1, 43), t, "the nonce changes the ticket");
        // Slot and generation are not in the clear.
        let other = key.mint(8, 2, 42);
        assert_eq!(other[..8], t[..8], "same nonce");
        assert_ne!(other[8..16], [0, 0, 0, 8, 0, 0, 0, 2]);
        assert_eq!(key.open(&other), Some(8));
        assert_eq!(key.open(&key.mint(u32::MAX, 0, 0)), Some(u32::MAX));
    }
}
