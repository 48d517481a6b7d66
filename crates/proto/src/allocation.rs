//! The state of one allocation (RFC 8656 §2.2, §5): its relayed addresses, lifetime,
//! permissions and channel bindings. Plain data; the rules live in [`crate::server`], the
//! storage in [`crate::table`].

use core::hash::{Hash, Hasher};
use core::net::{IpAddr, SocketAddr};
use std::time::Instant;

use turnpike_stun::attr::ConnectionId;
use turnpike_stun::{ChannelNumber, Method, TransactionId};

use crate::host::{Family, RelayId};
use crate::mobility::TICKET_LEN;
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
    /// Every transport, in label order.
    pub const ALL: [Self; 3] = [Self::Udp, Self::Tcp, Self::Tls];

    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }

    /// Its index in [`ClientTransport::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::Udp => 0,
            Self::Tcp => 1,
            Self::Tls => 2,
        }
    }

    /// Streams pad ChannelData to 4 bytes (RFC 8656 §12.5).
    pub fn is_stream(self) -> bool {
        !matches!(self, Self::Udp)
    }
}

/// The 5-tuple that names an allocation (RFC 8656 §2.2): client address, server address
/// and transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiveTuple {
    /// The client's address as the server sees it.
    pub client: SocketAddr,
    /// The server address the client sent to.
    pub server: SocketAddr,
    /// The transport.
    pub transport: ClientTransport,
}

/// Three integer writes instead of the derived field-by-field walk (per address: the enum
/// tag, the IP, the port, and for IPv6 the IP as a length-prefixed byte slice plus the flow
/// label and scope; then the transport's tag): the 5-tuple is hashed for every datagram a
/// client sends. Equal 5-tuples still hash alike, since everything hashed is part of what
/// `==` compares.
impl Hash for FiveTuple {
    fn hash<H: Hasher>(&self, state: &mut H) {
        fn ip_bits(addr: &SocketAddr) -> u128 {
            match addr.ip() {
                IpAddr::V4(ip) => u128::from(ip.to_bits()),
                IpAddr::V6(ip) => ip.to_bits(),
            }
        }
        state.write_u128(ip_bits(&self.client));
        state.write_u128(ip_bits(&self.server));
        state.write_u64(
            u64::from(self.client.port()) << 32
                | u64::from(self.server.port()) << 16
                | self.transport as u64,
        );
    }
}

/// The last answer to a 5-tuple, kept for retransmissions (RFC 8489 §6.3.4).
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) tid: TransactionId,
    /// The request's method: a response always has the method of its request (RFC 8489
    /// §6.3), so a new request that reuses the transaction ID with another method is not
    /// a retransmission and must not get this answer.
    pub(crate) method: Method,
    pub(crate) bytes: Box<[u8]>,
    pub(crate) until: Instant,
}

impl Cached {
    /// Whether this answers a retransmission of `tid` with `method` at `now`.
    pub(crate) fn matches(&self, tid: TransactionId, method: Method, now: Instant) -> bool {
        self.tid == tid && self.method == method && self.until > now
    }
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

/// One relayed address of an allocation, while it is being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Relay {
    pub(crate) id: RelayId,
    pub(crate) addr: SocketAddr,
}

/// RFC 8016 state of an allocation created with mobility.
#[derive(Debug)]
pub(crate) struct Mobility {
    /// The one MOBILITY-TICKET currently valid for this allocation. Replaced on every
    /// use, so a ticket works once.
    pub(crate) ticket: [u8; TICKET_LEN],
    /// How many tickets were issued (goes into the next one).
    pub(crate) generation: u32,
}

/// Datagrams and bytes relayed one way (payload bytes, without TURN framing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Datagrams (or RFC 6062 connections' worth of nothing: datagrams only).
    pub packets: u64,
    /// Payload bytes.
    pub bytes: u64,
}

impl Usage {
    /// Adds another count to this one.
    pub fn absorb(&mut self, other: Self) {
        self.packets += other.packets;
        self.bytes += other.bytes;
    }

    /// Counts one datagram of `len` payload bytes.
    pub(crate) fn add(&mut self, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
    }
}

/// An allocation.
#[derive(Debug)]
pub(crate) struct Allocation {
    pub(crate) five_tuple: FiveTuple,
    /// The USERNAME that made it. The name the quota ledger counts (the user part of a
    /// REST username) is derived from it again on release rather than kept twice.
    pub(crate) username: Box<str>,
    /// The relay sockets, index 0: IPv4, index 1: IPv6. Their addresses are only needed
    /// in the Allocate response, so they are not kept.
    pub(crate) relays: [Option<RelayId>; 2],
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
    /// RFC 8016: the ticket state, if it was created with mobility (boxed: most
    /// allocations have none, and the slab holds every allocation inline).
    pub(crate) mobility: Option<Box<Mobility>>,
    /// The last answer to a request on its 5-tuple, kept for retransmissions until the
    /// sweep drops it (RFC 8489 §6.3.4).
    pub(crate) cached: Option<Box<Cached>>,
    /// ICMP Data indications allowed (RFC 8656 §11.5), in messages per second.
    pub(crate) icmp_bucket: TokenBucket,
    /// When it was made.
    pub(crate) created: Instant,
    /// Its relayed addresses as the client was told them (IPv4, IPv6), for its record.
    pub(crate) relayed: [Option<SocketAddr>; 2],
    /// Relayed from the client to peers.
    pub(crate) to_peer: Usage,
    /// Relayed from peers to the client.
    pub(crate) to_client: Usage,
    /// Its number for operators ([`crate::server::Session::id`]): unique in the process
    /// (the core's shard in the top 8 bits, a counter below).
    pub(crate) serial: u64,
    /// Its user's traffic budget, shared with the user's other allocations (only when a
    /// per-user limit is configured).
    pub(crate) budget: Option<std::sync::Arc<crate::budget::UserBudget>>,
    /// What it has in the kernel's fast path, once it had a route there.
    pub(crate) offloaded: Option<Box<crate::server::offload::Offloaded>>,
}

impl Allocation {
    /// Whether the allocation is still alive at `now`: neither its lifetime nor (with
    /// `strict_expiry`) its credential has run out. The sweep removes dead allocations
    /// once a second; every use checks this too, so a late sweep never extends one.
    pub(crate) fn is_live(&self, now: Instant) -> bool {
        self.expires > now && self.credential_expires.is_none_or(|c| c > now)
    }

    pub(crate) fn relay(&self, family: Family) -> Option<RelayId> {
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

/// Pushes onto a per-allocation list, growing it 1, 2, 4, 8… elements: most allocations
/// hold one permission and one channel, and `Vec`'s own first growth reserves room for
/// four (160 and 224 bytes where 40 and 56 are used).
pub(crate) fn push_lean<T>(list: &mut Vec<T>, item: T) {
    if list.len() == list.capacity() {
        list.reserve_exact(list.len().max(1));
    }
    list.push(item);
}

pub(crate) fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

    fn hash(t: &FiveTuple) -> u64 {
        BuildHasherDefault::<DefaultHasher>::default().hash_one(t)
    }

    /// The hand-written hash agrees with `==` and feeds every part of the 5-tuple in.
    #[test]
    fn five_tuple_hash_covers_every_part() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let base = FiveTuple {
            client: sa("203.0.113.10:40000"),
            server: sa("192.0.2.1:3478"),
            transport: ClientTransport::Udp,
        };
        assert_eq!(hash(&base), hash(&base.clone()));
        let others = [
            FiveTuple {
                client: sa("203.0.113.11:40000"),
                ..base
            },
            FiveTuple {
                client: sa("203.0.113.10:40001"),
                ..base
            },
            FiveTuple {
                client: sa("[2001:db8::10]:40000"),
                ..base
            },
            FiveTuple {
                server: sa("192.0.2.2:3478"),
                ..base
            },
            FiveTuple {
                server: sa("192.0.2.1:3479"),
                ..base
            },
            FiveTuple {
                server: sa("[2001:db8::1]:3478"),
                ..base
            },
            FiveTuple {
                transport: ClientTransport::Tcp,
                ..base
            },
            FiveTuple {
                transport: ClientTransport::Tls,
                ..base
            },
            // Client and server swapped.
            FiveTuple {
                client: base.server,
                server: base.client,
                ..base
            },
        ];
        for other in others {
            assert_ne!(other, base);
            assert_ne!(hash(&other), hash(&base), "{other:?}");
        }
    }
}
