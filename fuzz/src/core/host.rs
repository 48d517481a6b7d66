//! The [`Host`] of the core fuzz targets: relay sockets, reservations, the quota ledger and
//! RFC 6062 peer connections kept in plain maps, with every promise the core makes to its
//! host checked where the host sees it (a relay released twice, a slot given back that was
//! never taken, a connection opened from a dead relay or to a peer the policy refuses, a
//! quota exceeded when a slot is taken). It has the in-kernel fast path: every route the
//! core installs must come from a live UDP relay, for a UDP client and a peer the policy
//! allows, after its allocation's kernel state, and be withdrawn before that state ends.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use turnpike_proto::quota::{QuotaExceeded, QuotaLedger, Quotas};
use turnpike_proto::server::offload::ChannelRoute;
use turnpike_proto::{
    BoundRelay, Claim, ClientTransport, ConnectionId, Family, Host, PortRequest, RelayError,
    RelayId, Reservations, TurnConfig, Usage,
};

/// First relay port; the host hands out ports from here, wrapping in the range.
pub const RELAY_PORT_MIN: u16 = 49152;
/// Last relay port.
pub const RELAY_PORT_MAX: u16 = 65535;

/// The host's IPv4 relay address.
pub const RELAY_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// The host's IPv6 relay address.
pub const RELAY_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

/// A host made of maps. The harness reads its fields to check the core's bookkeeping.
#[derive(Debug)]
pub struct FuzzHost {
    /// The configuration in force (the harness updates it with every reconfigure), for
    /// the policy check of [`Host::connect_peer`].
    pub config: Arc<TurnConfig>,
    /// IPv4 relays can be bound.
    pub v4: bool,
    /// IPv6 relays can be bound.
    pub v6: bool,
    /// TCP relays (RFC 6062) are supported.
    pub tcp: bool,
    /// Live relay sockets allowed at once.
    pub port_limit: usize,
    /// `connect_peer` fails to start.
    pub connect_fails: bool,
    next_id: u32,
    next_port: u32,
    /// Relay sockets bound and not released.
    pub live: BTreeMap<RelayId, SocketAddr>,
    /// Which live relays are TCP listeners.
    pub tcp_relays: BTreeSet<RelayId>,
    /// Reservations (EVEN-PORT's R bit).
    pub reservations: Reservations,
    /// The ledger the core takes slots from.
    pub ledger: QuotaLedger,
    /// Slots held per quota user, as the host saw them taken and given back.
    pub held: HashMap<String, u32>,
    /// Peer connections open (by CONNECTION-ID value): opened by `connect_peer` (connecting) or reported by the
    /// harness as accepted, and not yet closed by the core or the harness.
    pub open_connections: BTreeMap<u32, SocketAddr>,
    /// Connections `connect_peer` started since the harness last looked.
    pub started: Vec<ConnectionId>,
    next_connection: u32,
    /// The in-kernel fast path's routes, as the core installed and withdrew them.
    pub routes: Vec<ChannelRoute>,
    /// Allocations (session numbers) with kernel state.
    pub kernel_allocations: BTreeSet<u64>,
}

impl FuzzHost {
    /// A host with everything supported and no limit.
    pub fn new(config: Arc<TurnConfig>) -> Self {
        Self {
            config,
            v4: true,
            v6: true,
            tcp: true,
            port_limit: usize::MAX,
            connect_fails: false,
            next_id: 1,
            next_port: 0,
            live: BTreeMap::new(),
            tcp_relays: BTreeSet::new(),
            reservations: Reservations::default(),
            ledger: QuotaLedger::default(),
            held: HashMap::new(),
            open_connections: BTreeMap::new(),
            started: Vec::new(),
            next_connection: 0x100,
            routes: Vec::new(),
            kernel_allocations: BTreeSet::new(),
        }
    }

    fn port(n: u32) -> u16 {
        let span = u32::from(RELAY_PORT_MAX - RELAY_PORT_MIN) + 1;
        RELAY_PORT_MIN + (n % span) as u16
    }

    fn new_relay(&mut self, family: Family, port: u16) -> (RelayId, SocketAddr) {
        let id = RelayId(self.next_id);
        self.next_id += 1;
        let ip = match family {
            Family::V4 => RELAY_V4,
            Family::V6 => RELAY_V6,
        };
        let addr = SocketAddr::new(ip, port);
        self.live.insert(id, addr);
        (id, addr)
    }

    /// A fresh connection id, as a runtime names an accepted peer connection.
    pub fn new_connection_id(&mut self) -> ConnectionId {
        self.next_connection += 1;
        ConnectionId(self.next_connection)
    }

    /// Slots held in total, as the host counted them.
    pub fn slots_held(&self) -> u64 {
        self.held.values().map(|&n| u64::from(n)).sum()
    }
}

impl Host for FuzzHost {
    fn bind_relay(&mut self, family: Family, port: PortRequest) -> Result<BoundRelay, RelayError> {
        if !self.supports(family) {
            return Err(RelayError::FamilyUnavailable);
        }
        let (even, reserve) = match port {
            PortRequest::Any => (false, false),
            PortRequest::Even { reserve_next } => (true, reserve_next),
        };
        let needed = 1 + usize::from(reserve);
        if self.live.len() + needed > self.port_limit {
            return Err(RelayError::Exhausted);
        }
        let mut n = self.next_port;
        if even && Self::port(n) % 2 == 1 {
            n += 1;
        }
        let (relay, addr) = self.new_relay(family, Self::port(n));
        let reserved = reserve.then(|| self.new_relay(family, Self::port(n + 1)));
        self.next_port = n + needed as u32;
        Ok(BoundRelay {
            relay,
            addr,
            reserved,
        })
    }

    fn release_relay(&mut self, relay: RelayId) {
        assert!(
            self.live.remove(&relay).is_some(),
            "the core released relay {relay:?}, which is not live"
        );
        self.tcp_relays.remove(&relay);
    }

    fn supports(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }

    fn hold_reservation(
        &mut self,
        token: [u8; 8],
        relay: RelayId,
        addr: SocketAddr,
        until: Instant,
    ) {
        assert!(self.live.contains_key(&relay), "reserving a dead relay");
        self.reservations.hold(token, relay, addr, until);
    }

    fn claim_reservation(&mut self, token: [u8; 8], now: Instant) -> Option<(RelayId, SocketAddr)> {
        match self.reservations.claim(token, now) {
            Claim::Held(relay, addr) => Some((relay, addr)),
            Claim::Expired(relay) => {
                self.release_relay(relay);
                None
            }
            Claim::Unknown => None,
        }
    }

    fn expire_reservations(&mut self, now: Instant) {
        for relay in self.reservations.expire(now) {
            self.release_relay(relay);
        }
    }

    fn acquire_allocation(&mut self, quotas: &Quotas, user: &str) -> Result<(), QuotaExceeded> {
        self.ledger.acquire(quotas, user)?;
        let held = self.held.entry(user.to_owned()).or_insert(0);
        *held += 1;
        // The ledger never goes over the limits in force when a slot is taken.
        if quotas.allocations_per_user != 0 {
            assert!(
                *held <= quotas.allocations_per_user,
                "per-user quota exceeded"
            );
        }
        if quotas.allocations_total != 0 {
            assert!(
                self.ledger.total() <= quotas.allocations_total,
                "total quota exceeded"
            );
        }
        Ok(())
    }

    fn release_allocation(&mut self, user: &str) {
        match self.held.get_mut(user) {
            Some(n) if *n > 0 => {
                *n -= 1;
                if *n == 0 {
                    self.held.remove(user);
                }
            }
            _ => panic!("the core gave back a slot of {user:?}, which holds none"),
        }
        self.ledger.release(user);
    }

    fn supports_tcp_relay(&self) -> bool {
        self.tcp
    }

    fn bind_tcp_relay(&mut self, family: Family) -> Result<BoundRelay, RelayError> {
        let bound = self.bind_relay(family, PortRequest::Any)?;
        self.tcp_relays.insert(bound.relay);
        Ok(bound)
    }

    fn connect_peer(
        &mut self,
        relay: RelayId,
        peer: SocketAddr,
    ) -> Result<ConnectionId, RelayError> {
        assert!(self.live.contains_key(&relay), "connect from a dead relay");
        assert!(
            self.tcp_relays.contains(&relay),
            "connect from {relay:?}, which is not a TCP relay"
        );
        assert!(
            self.config.peers.check(peer).is_ok(),
            "connect to {peer}, which the peer policy refuses"
        );
        if self.connect_fails {
            return Err(RelayError::Exhausted);
        }
        let id = self.new_connection_id();
        self.open_connections.insert(id.0, peer);
        self.started.push(id);
        Ok(id)
    }

    fn close_peer_connection(&mut self, connection: ConnectionId) {
        // Must tolerate ids already closed (the trait says so).
        self.open_connections.remove(&connection.0);
    }

    // The fast path: every route must be one the data path would relay the same way.
    fn offloads(&self) -> bool {
        true
    }

    fn offload_allocation(&mut self, allocation: u64, _bytes_per_sec: u64) {
        self.kernel_allocations.insert(allocation);
    }

    fn offload_route(&mut self, route: &ChannelRoute) {
        assert!(
            self.kernel_allocations.contains(&route.allocation),
            "a route of allocation {} before its kernel state",
            route.allocation
        );
        assert!(
            self.live.contains_key(&route.relay),
            "a route from a dead relay"
        );
        assert!(
            !self.tcp_relays.contains(&route.relay),
            "a route from an RFC 6062 relay"
        );
        assert_eq!(
            route.client.transport,
            ClientTransport::Udp,
            "a route for a stream client"
        );
        assert!(
            self.config.peers.check(route.peer).is_ok(),
            "a route to {}, which the peer policy refuses",
            route.peer
        );
        self.routes.retain(|r| !r.same_path(route));
        self.routes.push(*route);
    }

    fn withdraw_route(&mut self, route: &ChannelRoute) {
        let before = self.routes.len();
        self.routes.retain(|r| !r.same_path(route));
        assert_eq!(
            before,
            self.routes.len() + 1,
            "withdrew {route:?}, not installed"
        );
    }

    fn end_offload(&mut self, allocation: u64) -> Option<(Usage, Usage)> {
        assert!(
            !self.routes.iter().any(|r| r.allocation == allocation),
            "allocation {allocation} ended with routes left"
        );
        assert!(
            self.kernel_allocations.remove(&allocation),
            "allocation {allocation} ended twice in the kernel"
        );
        Some((Usage::default(), Usage::default()))
    }
}
