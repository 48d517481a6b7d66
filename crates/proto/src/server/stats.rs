//! What a core counts, for metrics: plain counters bumped where the event happens, and
//! gauges computed on request by walking the table ([`TurnServer::gauges`]).
//!
//! The packet path pays one increment per datagram (the totals in [`Stats`]); bytes and
//! packets by transport come from the allocations' own [`Usage`] counters, which the
//! path keeps anyway for the accounting record: those of live allocations are summed
//! when asked ([`Gauges`]), those of ended ones are added to [`Stats`] at their end. A
//! runtime with several cores sums each core's figures ([`Stats::absorb`],
//! [`Gauges::absorb`]) when it is scraped.

use std::time::Instant;

use super::{EndReason, Reject, TurnServer};
use crate::allocation::{Allocation, Usage};
use crate::auth::AuthFailure;
use crate::policy::DenyRule;

/// Upper bounds (seconds) of the allocation-lifetime histogram's buckets.
pub const LIFETIME_BOUNDS_SECS: [u64; 10] = [10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400];

/// Upper bounds (bytes, both directions) of the allocation-volume histogram's buckets.
pub const VOLUME_BOUNDS_BYTES: [u64; 10] = [
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
];

/// The relayed address families of an allocation, a metric label: IPv4, IPv6, or both
/// (RFC 8656 §7.2, ADDITIONAL-ADDRESS-FAMILY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayFamilies {
    /// An IPv4 relayed address.
    Ipv4,
    /// An IPv6 relayed address.
    Ipv6,
    /// One of each.
    Dual,
}

impl RelayFamilies {
    /// Every value, in label order.
    pub const ALL: [Self; 3] = [Self::Ipv4, Self::Ipv6, Self::Dual];

    /// A short label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Dual => "dual",
        }
    }

    fn of(alloc: &Allocation) -> Self {
        match alloc.relays {
            [Some(_), Some(_)] => Self::Dual,
            [None, Some(_)] => Self::Ipv6,
            _ => Self::Ipv4,
        }
    }
}

/// A histogram with fixed bounds: `buckets[i]` counts observations in
/// `(bounds[i-1], bounds[i]]`; those above the last bound are in `count` only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative).
    pub buckets: [u64; 10],
    /// Observations.
    pub count: u64,
    /// Their sum.
    pub sum: u64,
}

impl Histogram {
    /// Counts one observation.
    pub fn observe(&mut self, bounds: &[u64; 10], value: u64) {
        if let Some(i) = bounds.iter().position(|&b| value <= b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
    }

    /// Adds another histogram with the same bounds.
    pub fn absorb(&mut self, other: &Self) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
    }
}

/// A core's counters (they only grow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Allocations created.
    pub allocations_created: u64,
    /// Allocations ended (any reason).
    pub allocations_closed: u64,
    /// Allocations created, by client transport ([`crate::ClientTransport::index`]) and
    /// relayed families ([`RelayFamilies::ALL`] order).
    pub created: [[u64; 3]; 3],
    /// Allocations ended, indexed as `created`.
    pub ended: [[u64; 3]; 3],
    /// Allocations ended, by [`EndReason::ALL`] order.
    pub ended_by_reason: [u64; EndReason::ALL.len()],
    /// Datagrams relayed client→peer.
    pub to_peer: u64,
    /// Datagrams relayed peer→client.
    pub to_client: u64,
    /// What ended allocations relayed client→peer, by client transport.
    pub ended_to_peer: [Usage; 3],
    /// What ended allocations relayed peer→client, by client transport.
    pub ended_to_client: [Usage; 3],
    /// Datagrams dropped for lack of permission or channel.
    pub dropped_no_permission: u64,
    /// Datagrams dropped by the bandwidth cap.
    pub dropped_bandwidth: u64,
    /// Datagrams dropped by a user's traffic budget (`[quotas] user_*`).
    pub dropped_user_budget: u64,
    /// Answers to unproven UDP sources held back by `[quotas]
    /// unauthenticated_bytes_per_sec`.
    pub unproven_over_budget: u64,
    /// Allocate requests answered with 300 Try Alternate.
    pub redirected: u64,
    /// Allocations moved to a new 5-tuple with a MOBILITY-TICKET.
    pub mobility_moves: u64,
    /// ICMP Data indications sent.
    pub icmp_relayed: u64,
    /// ICMP errors dropped (no permission, bad type, over the rate).
    pub icmp_dropped: u64,
    /// Peer TCP connections that became pending data connections (Connect success or
    /// ConnectionAttempt).
    pub peer_connections: u64,
    /// Error answers after authentication, by [`Reject::ALL`] order (a 300 that found
    /// no alternate counts as the 508 it became).
    pub refused: [u64; Reject::ALL.len()],
    /// Credentials refused, by [`AuthFailure::ALL`] order.
    pub auth_failures: [u64; AuthFailure::ALL.len()],
    /// Peer addresses refused by policy, by [`DenyRule::ALL`] order.
    pub peer_denied: [u64; DenyRule::ALL.len()],
    /// Lifetimes of ended allocations, seconds ([`LIFETIME_BOUNDS_SECS`]).
    pub lifetime: Histogram,
    /// Payload bytes (both directions) of ended allocations ([`VOLUME_BOUNDS_BYTES`]).
    pub volume: Histogram,
}

impl Stats {
    /// Adds another core's counters.
    pub fn absorb(&mut self, o: &Self) {
        fn add<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        self.allocations_created += o.allocations_created;
        self.allocations_closed += o.allocations_closed;
        for t in 0..3 {
            add(&mut self.created[t], &o.created[t]);
            add(&mut self.ended[t], &o.ended[t]);
            self.ended_to_peer[t].absorb(o.ended_to_peer[t]);
            self.ended_to_client[t].absorb(o.ended_to_client[t]);
        }
        add(&mut self.ended_by_reason, &o.ended_by_reason);
        self.to_peer += o.to_peer;
        self.to_client += o.to_client;
        self.dropped_no_permission += o.dropped_no_permission;
        self.dropped_bandwidth += o.dropped_bandwidth;
        self.dropped_user_budget += o.dropped_user_budget;
        self.unproven_over_budget += o.unproven_over_budget;
        self.redirected += o.redirected;
        self.mobility_moves += o.mobility_moves;
        self.icmp_relayed += o.icmp_relayed;
        self.icmp_dropped += o.icmp_dropped;
        self.peer_connections += o.peer_connections;
        add(&mut self.refused, &o.refused);
        add(&mut self.auth_failures, &o.auth_failures);
        add(&mut self.peer_denied, &o.peer_denied);
        self.lifetime.absorb(&o.lifetime);
        self.volume.absorb(&o.volume);
    }

    /// Refusals with `reject`.
    pub fn refused(&self, reject: Reject) -> u64 {
        self.refused[reject.index()]
    }

    /// Credentials refused for `reason`.
    pub fn auth_failures(&self, reason: AuthFailure) -> u64 {
        self.auth_failures[reason.index()]
    }

    /// Peers refused by `rule`.
    pub fn peer_denied(&self, rule: DenyRule) -> u64 {
        self.peer_denied[rule.index()]
    }

    /// Counts an allocation's end.
    pub(crate) fn record_end(&mut self, alloc: &Allocation, reason: EndReason, now: Instant) {
        let t = alloc.five_tuple.transport.index();
        let f = RelayFamilies::of(alloc) as usize;
        self.allocations_closed += 1;
        self.ended[t][f] += 1;
        self.ended_by_reason[reason.index()] += 1;
        self.ended_to_peer[t].absorb(alloc.to_peer);
        self.ended_to_client[t].absorb(alloc.to_client);
        let secs = now.saturating_duration_since(alloc.created).as_secs();
        self.lifetime.observe(&LIFETIME_BOUNDS_SECS, secs);
        let bytes = alloc.to_peer.bytes.saturating_add(alloc.to_client.bytes);
        self.volume.observe(&VOLUME_BOUNDS_BYTES, bytes);
    }

    /// Counts an allocation's creation.
    pub(crate) fn record_created(&mut self, alloc: &Allocation) {
        self.allocations_created += 1;
        self.created[alloc.five_tuple.transport.index()][RelayFamilies::of(alloc) as usize] += 1;
    }
}

/// What a core holds right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Live allocations, indexed as [`Stats::created`].
    pub allocations: [[u64; 3]; 3],
    /// Permissions installed (not yet expired).
    pub permissions: u64,
    /// Channels bound (not yet expired).
    pub channels: u64,
    /// RFC 6062 peer data connections, pending or bound.
    pub peer_connections: u64,
    /// What live allocations relayed client→peer so far, by client transport.
    pub live_to_peer: [Usage; 3],
    /// What live allocations relayed peer→client so far, by client transport.
    pub live_to_client: [Usage; 3],
    /// Users and usernames revoked.
    pub revocations: u64,
    /// Answers kept for retransmissions to 5-tuples without an allocation (at most
    /// [`crate::table::MAX_STRANGER_ANSWERS`]).
    pub stranger_answers: u64,
}

impl Gauges {
    /// Adds another core's gauges (revocations are the same list on every core: the
    /// largest is kept).
    pub fn absorb(&mut self, o: &Self) {
        for t in 0..3 {
            for f in 0..3 {
                self.allocations[t][f] += o.allocations[t][f];
            }
            self.live_to_peer[t].absorb(o.live_to_peer[t]);
            self.live_to_client[t].absorb(o.live_to_client[t]);
        }
        self.permissions += o.permissions;
        self.channels += o.channels;
        self.peer_connections += o.peer_connections;
        self.revocations = self.revocations.max(o.revocations);
        self.stranger_answers += o.stranger_answers;
    }
}

impl TurnServer {
    /// This core's counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// What this core holds at `now` (walks every allocation: for a scrape, not for the
    /// packet path).
    pub fn gauges(&self, now: Instant) -> Gauges {
        let mut g = Gauges {
            peer_connections: self.connections.len() as u64,
            revocations: self.revoked.len() as u64,
            stranger_answers: self.table.stranger_answers() as u64,
            ..Gauges::default()
        };
        for id in self.table.ids() {
            let Some(a) = self.table.get(id) else {
                continue;
            };
            let t = a.five_tuple.transport.index();
            g.allocations[t][RelayFamilies::of(a) as usize] += 1;
            g.permissions += a.permissions.iter().filter(|p| p.expires > now).count() as u64;
            g.channels += a.channels.iter().filter(|c| c.expires > now).count() as u64;
            g.live_to_peer[t].absorb(a.to_peer);
            g.live_to_client[t].absorb(a.to_client);
        }
        g
    }
}

impl EndReason {
    /// Every reason, in label order.
    pub const ALL: [Self; 6] = [
        Self::Deleted,
        Self::Expired,
        Self::CredentialExpired,
        Self::ConnectionClosed,
        Self::Ended,
        Self::Revoked,
    ];

    /// Its index in [`EndReason::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}
