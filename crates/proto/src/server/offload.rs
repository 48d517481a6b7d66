//! The core's share of the in-kernel ChannelData fast path: which channels a kernel
//! program may relay, told to the host as [`ChannelRoute`]s.
//!
//! User space stays the source of truth. The core works out, for every UDP allocation,
//! the channels that relay right now (bound, with a permission for the peer's IP, of a
//! live allocation), and hands each to the host ([`Host::offload_route`]) with the
//! instant it stops: the earliest of the channel's, the permission's, the allocation's
//! and (with `strict_expiry`) the credential's end. The program checks that deadline on
//! every packet, so an expiry stops the kernel path at once, not at the next sweep. The
//! routes are worked out again after every ChannelBind, CreatePermission and Refresh,
//! on every sweep (expiry, a reconfiguration's new peer policy or bandwidth cap), and
//! withdrawn ([`Host::withdraw_route`]) when they go; when the allocation ends, the host
//! hands back what the kernel relayed for it ([`Host::end_offload`]) and the core adds it
//! to the allocation's record, so its accounting line is the same with offload on or off.
//!
//! What the core never offloads: TCP and TLS allocations (and their RFC 6062
//! connections), allocations whose user has a traffic budget the kernel cannot charge
//! (one in user space's memory only; a budget in counters the kernel shares,
//! [`crate::budget::UserBudget::kernel_slot`], is charged by both paths alike), Send and
//! Data indications. A host without a fast path ([`Host::offloads`] false, the default)
//! costs one call per sweep and per request that could change a route.

use core::net::SocketAddr;
use std::time::Instant;

use turnpike_stun::ChannelNumber;

use super::TurnServer;
use crate::allocation::{ClientTransport, FiveTuple, Usage};
use crate::host::{Family, Host, RelayId};
use crate::table::AllocationId;

/// One channel the kernel may relay, both ways: ChannelData from `client` on `channel`
/// goes to `peer` from `relay`, and datagrams from `peer` to `relay` go to `client` as
/// ChannelData on `channel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelRoute {
    /// The allocation's number ([`crate::server::Session::id`]): the kernel's counters
    /// and bandwidth bucket are per allocation.
    pub allocation: u64,
    /// The client's UDP 5-tuple.
    pub client: FiveTuple,
    /// The channel number.
    pub channel: ChannelNumber,
    /// The relay socket the peer is reached from.
    pub relay: RelayId,
    /// The peer (normalised: an IPv4 peer is an IPv4 address).
    pub peer: SocketAddr,
    /// When the kernel must stop relaying it (the earliest of the channel's, the
    /// permission's, the allocation's and the credential's end).
    pub until: Instant,
    /// Whether datagrams to the peer carry IPv4 DF (the allocation's DONT-FRAGMENT).
    pub dont_fragment: bool,
    /// The user's traffic budget as the kernel knows it
    /// ([`crate::budget::UserBudget::kernel_slot`]), when the user has one.
    pub budget: Option<u32>,
}

impl ChannelRoute {
    /// Whether `other` is the same route (the same key both ways), whatever its deadline.
    pub fn same_path(&self, other: &Self) -> bool {
        self.client == other.client
            && self.channel == other.channel
            && self.relay == other.relay
            && self.peer == other.peer
    }
}

/// What an allocation has in the kernel.
#[derive(Debug, Default)]
pub(crate) struct Offloaded {
    /// The routes installed.
    routes: Vec<ChannelRoute>,
    /// The bandwidth cap the kernel's bucket was given (bytes per second, 0: none).
    rate: u64,
}

impl TurnServer {
    /// Works out allocation `id`'s routes again and tells the host what changed.
    pub(super) fn sync_offload(&mut self, id: AllocationId, now: Instant, host: &mut impl Host) {
        if !host.offloads() {
            return;
        }
        let rate = self.config.quotas.bandwidth_bytes_per_sec;
        let Some(a) = self.table.get_mut(id) else {
            return;
        };
        let budget = a.budget.as_ref().map(|b| b.kernel_slot());
        if let Some(b) = a.budget.as_ref().filter(|b| b.kernel_slot().is_some()) {
            b.publish_limits(&self.config.quotas.user_limits());
        }
        let eligible = a.five_tuple.transport == ClientTransport::Udp
            && !a.tcp
            && budget.is_none_or(|slot| slot.is_some())
            && a.is_live(now);
        let budget = budget.flatten();
        let mut wanted = Vec::new();
        if eligible {
            let end = a.credential_expires.map_or(a.expires, |c| c.min(a.expires));
            for c in a.channels.iter().filter(|c| c.expires > now) {
                let Some(p) = a
                    .permissions
                    .iter()
                    .find(|p| p.ip == c.peer.ip() && p.expires > now)
                else {
                    continue;
                };
                let Some(relay) = a.relay(Family::of(c.peer)) else {
                    continue;
                };
                wanted.push(ChannelRoute {
                    allocation: a.serial,
                    client: a.five_tuple,
                    channel: c.number,
                    relay,
                    peer: c.peer,
                    until: c.expires.min(p.expires).min(end),
                    dont_fragment: a.dont_fragment,
                    budget,
                });
            }
        }
        if wanted.is_empty() && a.offloaded.is_none() {
            return;
        }
        let state = a.offloaded.get_or_insert_with(|| {
            host.offload_allocation(a.serial, rate);
            Box::new(Offloaded {
                routes: Vec::new(),
                rate,
            })
        });
        if state.rate != rate {
            host.offload_allocation(a.serial, rate);
            state.rate = rate;
        }
        for old in &state.routes {
            if !wanted.iter().any(|w| w.same_path(old)) {
                host.withdraw_route(old);
            }
        }
        for new in &wanted {
            if !state.routes.contains(new) {
                host.offload_route(new);
            }
        }
        state.routes = wanted;
    }

    /// Takes an ending allocation's routes out of the kernel and returns what the kernel
    /// relayed for it (to the peer, to the client).
    pub(super) fn end_offload(
        offloaded: Option<Box<Offloaded>>,
        serial: u64,
        host: &mut impl Host,
    ) -> Option<(Usage, Usage)> {
        let state = offloaded?;
        for route in &state.routes {
            host.withdraw_route(route);
        }
        host.end_offload(serial)
    }
}
