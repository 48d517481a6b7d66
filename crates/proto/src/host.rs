//! What the core asks of its runtime: relay sockets, port reservations and the allocation
//! ledger. The core never opens a socket itself; tests implement this trait with plain
//! maps.
//!
//! Reservations (EVEN-PORT's R bit, RFC 8656 §7.2) are the host's because a client claims
//! one from its second socket, which a runtime with several cores may hand to another
//! core than the one that reserved the port: the host keeps reserved relays where every
//! core finds them. [`Reservations`] is the bookkeeping for a host that needs nothing
//! more.
//!
//! The RFC 6062 (TCP relay) methods have default implementations that say "not
//! supported", so a host with UDP relays only implements nothing more; see
//! [`crate::server::tcp_relay`] for what a host that does TCP relays must do.

use core::net::SocketAddr;
use std::time::Instant;

use turnpike_stun::attr::ConnectionId;

use crate::HashMap;
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

    /// Keeps `relay` (bound at `addr` for EVEN-PORT's R bit) reserved under the
    /// RESERVATION-TOKEN `token` until `until`, for an Allocate on any core of the
    /// runtime to claim ([`Host::claim_reservation`]). One not claimed by then is
    /// released (see [`Host::expire_reservations`]).
    fn hold_reservation(
        &mut self,
        token: [u8; 8],
        relay: RelayId,
        addr: SocketAddr,
        until: Instant,
    );

    /// The relay reserved under `token`, if there is one and its time has not run out at
    /// `now`; from then on it is this host's relay, for a new allocation. A reservation
    /// that had run out is released.
    fn claim_reservation(&mut self, token: [u8; 8], now: Instant) -> Option<(RelayId, SocketAddr)>;

    /// Releases every reservation whose time ran out by `now` (the core calls this from
    /// its sweep while it has reservations outstanding).
    fn expire_reservations(&mut self, now: Instant);

    /// Takes an allocation slot for `user` from the (possibly shared) ledger.
    ///
    /// # Errors
    ///
    /// [`QuotaExceeded`].
    fn acquire_allocation(&mut self, quotas: &Quotas, user: &str) -> Result<(), QuotaExceeded>;

    /// Gives an allocation slot back.
    fn release_allocation(&mut self, user: &str);

    /// The traffic budget `user`'s allocations share (`[quotas] user_*`), on every core
    /// alike ([`crate::quota::QuotaLedger::budget`]). Asked only when a per-user limit is
    /// set. Default: none (no per-user limit can be enforced).
    fn user_budget(
        &mut self,
        _user: &str,
        _now: Instant,
        _period: core::time::Duration,
    ) -> Option<std::sync::Arc<crate::budget::UserBudget>> {
        None
    }

    /// Whether this host can relay over TCP (RFC 6062): bind TCP relay listeners, open
    /// TCP connections to peers, and pipe bytes between a peer connection and a client
    /// data connection. Without it, REQUESTED-TRANSPORT TCP is refused with 442 whatever
    /// the configuration says. Default: no.
    fn supports_tcp_relay(&self) -> bool {
        false
    }

    /// Binds a TCP relay listener of `family` (RFC 6062 §5.1: "a TCP relayed transport
    /// address MUST be allocated instead of a UDP one"): the runtime accepts peer
    /// connections on it and reports each through
    /// [`crate::TurnServer::handle_peer_connection`]. It is released with
    /// [`Host::release_relay`] like a UDP relay. `reserved` must be `None`.
    ///
    /// # Errors
    ///
    /// [`RelayError`]. The default refuses every family.
    fn bind_tcp_relay(&mut self, family: Family) -> Result<BoundRelay, RelayError> {
        let _ = family;
        Err(RelayError::FamilyUnavailable)
    }

    /// Starts opening a TCP connection from the TCP relay `relay` to `peer` (RFC 6062
    /// §5.2) and returns the CONNECTION-ID that names it. The outcome comes back later
    /// through [`crate::TurnServer::handle_peer_connected`].
    ///
    /// The id must differ from every connection id of this core still alive, and should
    /// be hard to guess (the core also checks the username of a ConnectionBind); a
    /// runtime with several cores can encode the core in it to route a ConnectionBind.
    ///
    /// # Errors
    ///
    /// The attempt could not even start: the client gets 447. The default refuses.
    fn connect_peer(
        &mut self,
        relay: RelayId,
        peer: SocketAddr,
    ) -> Result<ConnectionId, RelayError> {
        let _ = (relay, peer);
        Err(RelayError::Exhausted)
    }

    /// Which core of the runtime made the connection id `connection` (its
    /// [`CoreSetup::shard`](crate::CoreSetup::shard)), for a runtime with several
    /// cores: a ConnectionBind that names another core's connection is handed there
    /// ([`ClientAction::Forward`](crate::ClientAction::Forward)). Default: `None`, one
    /// core.
    fn shard_of(&self, connection: ConnectionId) -> Option<u8> {
        let _ = connection;
        None
    }

    /// Closes a peer data connection (or abandons the attempt to open it) and the client
    /// data connection bound to it, if any (RFC 6062 §5.5). Called when its allocation
    /// goes, when no ConnectionBind came within 30 seconds, when a connect attempt timed
    /// out, and when the client data connection was reported closed. Must tolerate an id
    /// that is already closed. Default: nothing.
    fn close_peer_connection(&mut self, connection: ConnectionId) {
        let _ = connection;
    }

    /// Whether this host has an in-kernel ChannelData fast path
    /// ([`crate::server::offload`]): only then does the core work out routes and call
    /// the four methods below. Default: no.
    fn offloads(&self) -> bool {
        false
    }

    /// Creates the kernel's state of allocation `allocation` (its counters, and its
    /// bandwidth bucket of `bytes_per_sec`, 0 for none), or sets a new cap on it keeping
    /// its counters. Called before its first route and when the cap changes.
    fn offload_allocation(&mut self, allocation: u64, bytes_per_sec: u64) {
        let _ = (allocation, bytes_per_sec);
    }

    /// Installs `route` in the kernel, or replaces the one with the same path (a new
    /// deadline). A host that cannot (a full map, a peer that is one of its own relayed
    /// addresses) leaves it to user space, which relays everything the kernel does not.
    fn offload_route(&mut self, route: &crate::server::offload::ChannelRoute) {
        let _ = route;
    }

    /// Takes `route` out of the kernel (tolerating one that was never installed).
    fn withdraw_route(&mut self, route: &crate::server::offload::ChannelRoute) {
        let _ = route;
    }

    /// Removes allocation `allocation`'s kernel state, after its routes were withdrawn,
    /// and returns what the kernel relayed for it: (to the peer, to the client).
    fn end_offload(&mut self, allocation: u64) -> Option<(crate::Usage, crate::Usage)> {
        let _ = allocation;
        None
    }
}

/// Reservations kept in one map, for a host whose cores need no sharing (or that
/// shares it behind its own lock).
#[derive(Debug, Default)]
pub struct Reservations {
    held: HashMap<[u8; 8], (RelayId, SocketAddr, Instant)>,
}

/// What [`Reservations::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The relay, still reserved.
    Held(RelayId, SocketAddr),
    /// Its time had run out: release the relay.
    Expired(RelayId),
    /// No reservation under that token.
    Unknown,
}

impl Reservations {
    /// See [`Host::hold_reservation`].
    pub fn hold(&mut self, token: [u8; 8], relay: RelayId, addr: SocketAddr, until: Instant) {
        self.held.insert(token, (relay, addr, until));
    }

    /// Takes the reservation under `token`.
    pub fn claim(&mut self, token: [u8; 8], now: Instant) -> Claim {
        match self.held.remove(&token) {
            Some((relay, addr, until)) if until > now => Claim::Held(relay, addr),
            Some((relay, ..)) => Claim::Expired(relay),
            None => Claim::Unknown,
        }
    }

    /// Takes every reservation whose time ran out by `now`: release their relays.
    pub fn expire(&mut self, now: Instant) -> Vec<RelayId> {
        let mut gone = Vec::new();
        self.held.retain(|_, &mut (relay, _, until)| {
            let keep = until > now;
            if !keep {
                gone.push(relay);
            }
            keep
        });
        gone
    }

    /// Reservations held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that implements only what a UDP-only runtime implements.
    struct UdpOnly;

    impl Host for UdpOnly {
        fn bind_relay(&mut self, _: Family, _: PortRequest) -> Result<BoundRelay, RelayError> {
            Err(RelayError::Exhausted)
        }
        fn release_relay(&mut self, _: RelayId) {}
        fn supports(&self, _: Family) -> bool {
            true
        }
        fn hold_reservation(&mut self, _: [u8; 8], _: RelayId, _: SocketAddr, _: Instant) {}
        fn claim_reservation(&mut self, _: [u8; 8], _: Instant) -> Option<(RelayId, SocketAddr)> {
            None
        }
        fn expire_reservations(&mut self, _: Instant) {}
        fn acquire_allocation(&mut self, _: &Quotas, _: &str) -> Result<(), QuotaExceeded> {
            Ok(())
        }
        fn release_allocation(&mut self, _: &str) {}
    }

    #[test]
    fn the_tcp_relay_defaults_say_unsupported() {
        let mut h = UdpOnly;
        assert!(!h.supports_tcp_relay());
        assert_eq!(
            h.bind_tcp_relay(Family::V4),
            Err(RelayError::FamilyUnavailable)
        );
        let peer = SocketAddr::from(([8, 8, 8, 8], 80));
        assert!(h.connect_peer(RelayId(1), peer).is_err());
        h.close_peer_connection(ConnectionId(1));
    }
}
