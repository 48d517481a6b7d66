//! The state of one allocation (RFC 8656 §2.2, §5): its relayed addresses, lifetime,
//! permissions and channel bindings. Plain data; the rules live in [`crate::server`].

use core::net::{IpAddr, SocketAddr};
use std::time::Instant;

use turnpike_stun::ChannelNumber;
use turnpike_stun::attr::ConnectionId;

use crate::host::{Family, RelayId};
use crate::quota::TokenBucket;

/// How a client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientTransport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl ClientTransport {
    /// Streams pad ChannelData to 4 bytes (RFC 8656 §12.5).
    pub fn is_stream(self) -> bool {
        !matches!(self, Self::Udp)
    }
}

/// The 5-tuple that names an allocation (RFC 8656 §2.2): client address, server address
/// and transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// The client's address as the server sees it.
    pub client: SocketAddr,
    /// The server address the client sent to.
    pub server: SocketAddr,
    /// The transport.
    pub transport: ClientTransport,
}

/// A permission: which peer IP may send to the relayed address (RFC 8656 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Permission {
    pub(crate) ip: IpAddr,
    pub(crate) expires: Instant,
}

/// A channel binding (RFC 8656 §12). After `expires` it is inactive but still blocks the
/// number and the peer from being bound differently for 5 more minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChannelBinding {
    pub(crate) number: ChannelNumber,
    pub(crate) peer: SocketAddr,
    pub(crate) expires: Instant,
}

/// One relayed address of an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Relay {
    pub(crate) id: RelayId,
    pub(crate) addr: SocketAddr,
}

/// An allocation.
#[derive(Debug)]
pub(crate) struct Allocation {
    pub(crate) five_tuple: FiveTuple,
    pub(crate) username: Box<str>,
    /// The name the quota ledger counts (the user part of a REST username).
    pub(crate) quota_user: Box<str>,
    /// Index 0: IPv4, index 1: IPv6.
    pub(crate) relays: [Option<Relay>; 2],
    pub(crate) expires: Instant,
    /// With `strict_expiry`, when the credential that created it runs out.
    pub(crate) credential_expires: Option<Instant>,
    pub(crate) permissions: Vec<Permission>,
    pub(crate) channels: Vec<ChannelBinding>,
    pub(crate) bucket: TokenBucket,
    pub(crate) dont_fragment: bool,
    /// RFC 6062: the relayed addresses are TCP listeners, not UDP sockets.
    pub(crate) tcp: bool,
    /// RFC 6062: the peer data connections of a TCP allocation, pending or bound (their
    /// state lives in the server's connection table).
    pub(crate) connections: Vec<ConnectionId>,
    /// RFC 8016: the one MOBILITY-TICKET currently valid for this allocation, if it was
    /// created with mobility. Replaced on every use, so a ticket works once.
    pub(crate) ticket: Option<[u8; crate::server::mobility::TICKET_LEN]>,
    /// RFC 8016: how many tickets were issued (goes into the next one).
    pub(crate) ticket_generation: u32,
    /// ICMP Data indications allowed (RFC 8656 §11.5), in messages per second.
    pub(crate) icmp_bucket: TokenBucket,
}

impl Allocation {
    /// Whether the allocation is still alive at `now`: neither its lifetime nor (with
    /// `strict_expiry`) its credential has run out. The sweep removes dead allocations
    /// once a second; every use checks this too, so a late sweep never extends one.
    pub(crate) fn is_live(&self, now: Instant) -> bool {
        self.expires > now && self.credential_expires.is_none_or(|c| c > now)
    }

    pub(crate) fn relay(&self, family: Family) -> Option<Relay> {
        self.relays[family_index(family)]
    }

    pub(crate) fn has_permission(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions
            .iter()
            .any(|p| p.ip == ip && p.expires > now)
    }

    pub(crate) fn active_channel(
        &self,
        number: ChannelNumber,
        now: Instant,
    ) -> Option<&ChannelBinding> {
        self.channels
            .iter()
            .find(|c| c.number == number && c.expires > now)
    }

    pub(crate) fn channel_for_peer(&self, peer: SocketAddr, now: Instant) -> Option<ChannelNumber> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
            .map(|c| c.number)
    }
}

pub(crate) fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}
