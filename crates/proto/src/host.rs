//! What the core asks of its runtime: relay sockets and the allocation ledger. The core
//! never opens a socket itself; tests implement this trait with plain maps.

use core::net::SocketAddr;

use crate::quota::{QuotaExceeded, Quotas};

/// Names a relay socket the runtime bound. Chosen by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelayId(pub u32);

/// An address family of a relayed address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: SocketAddr) -> Self {
        if addr.is_ipv4() { Self::V4 } else { Self::V6 }
    }
}

/// What kind of relay port to bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRequest {
    /// Any port from the relay range.
    Any,
    /// An even port (EVEN-PORT, RFC 8656 §7.2); with `reserve_next`, also bind the next
    /// higher port and hand it back as a reservation.
    Even {
        /// The R bit.
        reserve_next: bool,
    },
}

/// A relay socket the runtime bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundRelay {
    /// Its id.
    pub relay: RelayId,
    /// The relayed transport address as clients and peers must see it (already mapped
    /// through the 1:1 NAT table, if any).
    pub addr: SocketAddr,
    /// The reserved next port when `reserve_next` was asked.
    pub reserved: Option<(RelayId, SocketAddr)>,
}

/// Why no relay could be bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayError {
    /// The family has no relay address configured: 440.
    FamilyUnavailable,
    /// Every port of the range is taken: 508.
    Exhausted,
}

/// The runtime side of the core.
pub trait Host {
    /// Binds a relay socket of `family`.
    ///
    /// # Errors
    ///
    /// [`RelayError`].
    fn bind_relay(&mut self, family: Family, port: PortRequest) -> Result<BoundRelay, RelayError>;

    /// Closes a relay socket (allocation gone, reservation expired).
    fn release_relay(&mut self, relay: RelayId);

    /// Whether relays of `family` can be bound at all.
    fn supports(&self, family: Family) -> bool;

    /// Takes an allocation slot for `user` from the (possibly shared) ledger.
    ///
    /// # Errors
    ///
    /// [`QuotaExceeded`].
    fn acquire_allocation(&mut self, quotas: &Quotas, user: &str) -> Result<(), QuotaExceeded>;

    /// Gives an allocation slot back.
    fn release_allocation(&mut self, user: &str);
}
