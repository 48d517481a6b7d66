//! What the admin interface reads from the workers: each worker's figures
//! ([`WorkerSnapshot`], taken between its packets) and their sum ([`MetricsSnapshot`]).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use turnpike_proto::server::{Gauges, Stats};

use crate::counters::RuntimeCounts;
use crate::relay::RelayConfig;
use crate::shared::Shared;

/// One worker's figures.
pub(crate) struct WorkerSnapshot {
    stats: Stats,
    gauges: Gauges,
    runtime: RuntimeCounts,
    /// Relay sockets (UDP and RFC 6062 listeners) by local IP.
    relays: Vec<(IpAddr, u64)>,
    redirecting: bool,
}

impl WorkerSnapshot {
    /// Reads a worker's figures (on that worker).
    pub(crate) fn take(shared: &Shared) -> Self {
        let core = shared.core.borrow();
        let host = shared.host.borrow();
        let mut relays: Vec<(IpAddr, u64)> = Vec::new();
        let locals = host
            .relays
            .values()
            .map(|r| r.local.ip())
            .chain(host.tcp_relays.values().map(|(_, local)| local.ip()));
        for ip in locals {
            match relays.iter_mut().find(|(i, _)| *i == ip) {
                Some((_, n)) => *n += 1,
                None => relays.push((ip, 1)),
            }
        }
        let mut gauges = core.gauges(Instant::now());
        // What the kernel relayed for this worker's live allocations (all UDP).
        if let Some(k) = &host.kernel {
            let (to_peer, to_client) = k.live();
            let udp = turnpike_proto::ClientTransport::Udp.index();
            gauges.live_to_peer[udp].absorb(to_peer);
            gauges.live_to_client[udp].absorb(to_client);
        }
        Self {
            stats: core.stats(),
            gauges,
            runtime: shared.counters.snapshot(),
            relays,
            redirecting: core.redirecting(),
        }
    }
}

/// Relay ports in use on one relay IP, and how many the range has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayPortUse {
    /// The local relay IP.
    pub ip: IpAddr,
    /// Ports held (relay sockets and RFC 6062 listeners).
    pub in_use: u64,
    /// Ports in `[relay] min_port..=max_port`.
    pub capacity: u64,
}

/// Every figure the metrics show, summed over the workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Workers that answered.
    pub workers: usize,
    /// The cores' counters.
    pub stats: Stats,
    /// What the cores hold now.
    pub gauges: Gauges,
    /// The runtime's counters.
    pub runtime: RuntimeCounts,
    /// TCP/TLS client connections open now.
    pub open_connections: u64,
    /// Relay port use by relay IP.
    pub relay_ports: Vec<RelayPortUse>,
    /// A drain is under way.
    pub draining: bool,
    /// New Allocates are redirected (`[alternates] redirect` or SIGUSR2).
    pub redirecting: bool,
    /// The TLS certificate's expiry (unix seconds), if one is configured and readable.
    pub cert_not_after: Option<u64>,
    /// The in-kernel fast path; `None` when `[offload]` is off.
    pub offload: Option<crate::kernel::OffloadStatus>,
}

impl MetricsSnapshot {
    /// Sums the workers' figures.
    pub(crate) fn sum(parts: &[WorkerSnapshot], relay: &RelayConfig) -> Self {
        let capacity = u64::from(relay.max_port.saturating_sub(relay.min_port)) + 1;
        let mut m = Self {
            workers: parts.len(),
            relay_ports: relay
                .ips
                .iter()
                .map(|&ip| RelayPortUse {
                    ip,
                    in_use: 0,
                    capacity,
                })
                .collect(),
            ..Self::default()
        };
        for p in parts {
            m.stats.absorb(&p.stats);
            m.gauges.absorb(&p.gauges);
            m.runtime.absorb(&p.runtime);
            m.redirecting |= p.redirecting;
            for &(ip, n) in &p.relays {
                match m.relay_ports.iter_mut().find(|u| u.ip == ip) {
                    Some(u) => u.in_use += n,
                    None => m.relay_ports.push(RelayPortUse {
                        ip,
                        in_use: n,
                        capacity,
                    }),
                }
            }
        }
        m
    }
}

/// How far a drain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainStatus {
    /// A drain is under way.
    pub draining: bool,
    /// Allocations left.
    pub allocations: usize,
    /// Since the drain started.
    pub since: Option<Duration>,
    /// Until the deadline.
    pub deadline_in: Option<Duration>,
}
