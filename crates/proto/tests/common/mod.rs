//! The simulation harness of the TURN core's tests (quinn `tests/util.rs`, str0m style):
//! a [`Sim`] holds one [`TurnServer`], a [`FakeHost`] and a virtual clock; [`TestClient`]s
//! build real STUN requests with `MessageWriter`, do the 401 dance and sign with the
//! long-term key; peers are plain `SocketAddr`s whose datagrams go through
//! `handle_peer` in a buffer with the headroom and tailroom the core needs.
//!
//! Time is virtual: [`Sim::advance`] moves the clock and calls `handle_timeout` at every
//! sweep deadline it crosses, so a 10-minute lifetime runs in microseconds.
//!
//! Every helper checks the core's output contract as it goes (ranges inside the buffers,
//! replies that parse as STUN), so each test also exercises those invariants.

#![allow(dead_code, unreachable_pub)]

mod kernel;
pub use kernel::FakeKernel;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use turnpike_proto::auth::rest::mint;
use turnpike_proto::policy::Cidr;
use turnpike_proto::quota::{QuotaExceeded, QuotaLedger, Quotas};
use turnpike_proto::server::offload::ChannelRoute;
use turnpike_proto::server::tcp_relay::TCP_MESSAGE_MAX;
use turnpike_proto::server::{PEER_HEADROOM, PEER_TAILROOM};
use turnpike_proto::{
    BoundRelay, Claim, ClientAction, ClientTransport, ConnectionId, CoreSetup, Family, FiveTuple,
    Host, PeerAction, PortRequest, RelayError, RelayId, Reservations, StaticUser, TimeBase,
    Transmit, TurnConfig, TurnServer, Usage,
};
use turnpike_stun::attr::{
    AddressErrorCode, AlternateDomain, AlternateServer, ErrorCodeAttr, Icmp, Lifetime,
    MobilityTicket, Nonce, PasswordAlgorithm, PasswordAlgorithmId, Realm, ReservationToken,
    UnknownAttributes, Userhash, Username, XorMappedAddress, XorPeerAddress, XorRelayedAddress,
};
use turnpike_stun::{
    AttrType, ChannelData, Class, EncodeError, IntegrityKind, LongTermKey, Message, MessageType,
    MessageWriter, Method, TransactionId, encode_channel_data, userhash,
};

/// Unix time at the start of every simulation.
pub const START_UNIX: u64 = 1_700_000_000;
/// The realm of every simulation.
pub const REALM: &str = "turnpike.test";
/// The REST shared secret configured by [`config`].
pub const SECRET: &[u8] = b"rest-shared-secret";
/// Static users configured by [`config`].
pub const ALICE: (&str, &str) = ("alice", "alice-password");
/// Another static user.
pub const BOB: (&str, &str) = ("bob", "bob-password");

/// The server address clients send to.
pub fn server_addr() -> SocketAddr {
    "198.51.100.1:3478".parse().unwrap()
}

/// Shorthand for parsing a socket address.
pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Shorthand for parsing an IP address.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Shorthand for parsing a CIDR.
pub fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

/// Public-looking peers: the default policy relays to them.
pub fn peer_v4() -> SocketAddr {
    sa("8.8.8.8:5000")
}
/// A second IPv4 peer.
pub fn peer_v4_b() -> SocketAddr {
    sa("1.1.1.1:6000")
}
/// An IPv6 peer.
pub fn peer_v6() -> SocketAddr {
    sa("[2606:4700::1111]:7000")
}

/// A 5-tuple over UDP from `client`.
pub fn udp(client: &str) -> FiveTuple {
    FiveTuple {
        client: sa(client),
        server: server_addr(),
        transport: ClientTransport::Udp,
    }
}

/// A 5-tuple over TCP from `client`.
pub fn tcp(client: &str) -> FiveTuple {
    FiveTuple {
        client: sa(client),
        server: server_addr(),
        transport: ClientTransport::Tcp,
    }
}

/// A 5-tuple over TLS from `client`.
pub fn tls(client: &str) -> FiveTuple {
    FiveTuple {
        client: sa(client),
        server: server_addr(),
        transport: ClientTransport::Tls,
    }
}

// ----- the host ------------------------------------------------------------------------

/// A `Host` made of plain maps: relay ids from a counter, relay ports from 49152 up,
/// relay addresses 192.0.2.1 / [2001:db8::1], an optional limit on live relay sockets
/// (port exhaustion), and the real `QuotaLedger`.
#[derive(Debug)]
pub struct FakeHost {
    /// IPv4 relays can be bound.
    pub v4: bool,
    /// IPv6 relays can be bound.
    pub v6: bool,
    /// Live relay sockets allowed at once (ports of the range).
    pub port_limit: usize,
    next_id: u32,
    next_port: u32,
    /// Relay sockets bound and not yet released.
    pub live: BTreeMap<RelayId, SocketAddr>,
    /// Relay sockets released, in order.
    pub released: Vec<RelayId>,
    /// Releases of a relay that was not live (a core bug if ever non-zero).
    pub bad_releases: u32,
    /// Every `bind_relay` call.
    pub binds: Vec<(Family, PortRequest)>,
    /// The allocation ledger.
    pub ledger: QuotaLedger,
    /// Slots taken (`acquire_allocation` that succeeded).
    pub acquired: u64,
    /// Slots given back.
    pub given_back: u64,
    held: HashMap<String, u32>,
    /// Releases of a slot the user did not hold (a core bug if ever non-zero).
    pub bad_allocation_releases: u32,
    /// TCP relays (RFC 6062) are supported.
    pub tcp: bool,
    /// Relay ids that are TCP listeners.
    pub tcp_relays: Vec<RelayId>,
    /// `connect_peer` fails to start.
    pub connect_fails: bool,
    /// Every `connect_peer` that started: (relay, peer, id).
    pub connects: Vec<(RelayId, SocketAddr, ConnectionId)>,
    /// Every `close_peer_connection`, in order.
    pub closed_connections: Vec<ConnectionId>,
    next_connection: u32,
    /// Relays reserved by EVEN-PORT's R bit (the host keeps them, as a runtime does).
    pub reservations: Reservations,
    /// Connection ids name their core in the top byte (as a runtime with several cores).
    pub sharded_connections: bool,
    /// The in-kernel fast path, when the test turns it on.
    pub kernel: Option<FakeKernel>,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self {
            v4: true,
            v6: true,
            port_limit: usize::MAX,
            next_id: 1,
            next_port: 0,
            live: BTreeMap::new(),
            released: Vec::new(),
            bad_releases: 0,
            binds: Vec::new(),
            ledger: QuotaLedger::default(),
            acquired: 0,
            given_back: 0,
            held: HashMap::new(),
            bad_allocation_releases: 0,
            tcp: true,
            tcp_relays: Vec::new(),
            connect_fails: false,
            connects: Vec::new(),
            closed_connections: Vec::new(),
            next_connection: 0x1000,
            reservations: Reservations::default(),
            sharded_connections: false,
            kernel: None,
        }
    }
}

impl FakeHost {
    fn new_relay(&mut self, family: Family, port: u16) -> (RelayId, SocketAddr) {
        let id = RelayId(self.next_id);
        self.next_id += 1;
        let ip: IpAddr = match family {
            Family::V4 => "192.0.2.1".parse().unwrap(),
            Family::V6 => "2001:db8::1".parse().unwrap(),
        };
        let addr = SocketAddr::new(ip, port);
        self.live.insert(id, addr);
        (id, addr)
    }

    fn port(&self, n: u32) -> u16 {
        (49152 + n % 16384) as u16
    }

    /// The relay bound to `addr`.
    pub fn relay_of(&self, addr: SocketAddr) -> RelayId {
        *self
            .live
            .iter()
            .find(|(_, a)| **a == addr)
            .unwrap_or_else(|| panic!("no live relay at {addr}"))
            .0
    }

    /// Allocations the ledger holds.
    pub fn slots_held(&self) -> u64 {
        self.acquired - self.given_back
    }

    /// The fake kernel; the core calls it only when [`Host::offloads`] said yes.
    pub fn kernel_mut(&mut self) -> &mut FakeKernel {
        self.kernel
            .as_mut()
            .expect("the core used the fast path of a host without one")
    }

    /// A fresh connection id, as a runtime would name an accepted peer connection.
    pub fn new_connection_id(&mut self) -> ConnectionId {
        self.next_connection += 1;
        ConnectionId(self.next_connection)
    }
}

impl Host for FakeHost {
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

    fn bind_relay(&mut self, family: Family, port: PortRequest) -> Result<BoundRelay, RelayError> {
        self.binds.push((family, port));
        let supported = match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        };
        if !supported {
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
        if even && self.port(n) % 2 == 1 {
            n += 1;
        }
        let (relay, addr) = self.new_relay(family, self.port(n));
        let reserved = reserve.then(|| self.new_relay(family, self.port(n + 1)));
        self.next_port = n + needed as u32;
        Ok(BoundRelay {
            relay,
            addr,
            reserved,
        })
    }

    fn release_relay(&mut self, relay: RelayId) {
        if self.live.remove(&relay).is_none() {
            self.bad_releases += 1;
        }
        self.released.push(relay);
    }

    fn supports(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }

    fn acquire_allocation(&mut self, quotas: &Quotas, user: &str) -> Result<(), QuotaExceeded> {
        self.ledger.acquire(quotas, user)?;
        self.acquired += 1;
        *self.held.entry(user.to_owned()).or_insert(0) += 1;
        Ok(())
    }

    fn release_allocation(&mut self, user: &str) {
        match self.held.get_mut(user) {
            Some(n) if *n > 0 => *n -= 1,
            _ => self.bad_allocation_releases += 1,
        }
        self.given_back += 1;
        self.ledger.release(user);
    }

    fn user_budget(
        &mut self,
        user: &str,
        now: Instant,
        period: Duration,
    ) -> Option<Arc<turnpike_proto::budget::UserBudget>> {
        let kernel = self.kernel.as_ref();
        let make = || {
            kernel
                .and_then(|k| k.new_budget(now))
                .unwrap_or_else(|| turnpike_proto::budget::UserBudget::new(now))
        };
        Some(self.ledger.budget_with(user, now, period, make))
    }

    fn supports_tcp_relay(&self) -> bool {
        self.tcp
    }

    fn bind_tcp_relay(&mut self, family: Family) -> Result<BoundRelay, RelayError> {
        let bound = self.bind_relay(family, PortRequest::Any)?;
        self.tcp_relays.push(bound.relay);
        Ok(bound)
    }

    fn connect_peer(
        &mut self,
        relay: RelayId,
        peer: SocketAddr,
    ) -> Result<ConnectionId, RelayError> {
        assert!(
            self.tcp_relays.contains(&relay),
            "connect from {relay:?}, not a TCP relay"
        );
        assert!(self.live.contains_key(&relay), "connect from a dead relay");
        if self.connect_fails {
            return Err(RelayError::Exhausted);
        }
        let id = self.new_connection_id();
        self.connects.push((relay, peer, id));
        Ok(id)
    }

    fn close_peer_connection(&mut self, connection: ConnectionId) {
        self.closed_connections.push(connection);
    }

    fn offloads(&self) -> bool {
        self.kernel.is_some()
    }

    fn offload_allocation(&mut self, allocation: u64, bytes_per_sec: u64) {
        self.kernel_mut()
            .offload_allocation(allocation, bytes_per_sec);
    }

    fn offload_route(&mut self, route: &ChannelRoute) {
        self.kernel_mut().offload_route(route);
    }

    fn withdraw_route(&mut self, route: &ChannelRoute) {
        self.kernel_mut().withdraw_route(route);
    }

    fn end_offload(&mut self, allocation: u64) -> Option<(Usage, Usage)> {
        self.kernel_mut().end_offload(allocation)
    }

    fn shard_of(&self, connection: ConnectionId) -> Option<u8> {
        self.sharded_connections
            .then_some((connection.0 >> 24) as u8)
    }
}

// ----- the simulation ------------------------------------------------------------------

/// The default test configuration: static users alice and bob, one REST secret, the
/// default (safe) peer policy and quotas.
pub fn config() -> TurnConfig {
    let mut c = TurnConfig::default();
    c.turn.realm = REALM.into();
    c.turn.users = [ALICE, BOB]
        .iter()
        .map(|(name, password)| StaticUser::with_password(*name, *password))
        .collect();
    c.turn.secrets = vec![String::from_utf8(SECRET.to_vec()).expect("a UTF-8 secret")];
    c
}

/// The test core's keys and time: a fixed nonce secret (tests compare nonces across
/// simulations), wall-clock time [`START_UNIX`] at `start`.
pub fn setup(start: Instant) -> CoreSetup {
    CoreSetup::new(
        [0x5Au8; 32],
        TimeBase {
            instant: start,
            unix_secs: START_UNIX,
        },
    )
}

/// The one real clock reading of a simulation: its epoch.
#[allow(clippy::disallowed_methods)] // the epoch of virtual time; nothing reads it again
pub fn epoch() -> Instant {
    Instant::now()
}

/// What the server did with a client packet, copied out of the buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing.
    None,
    /// Not this core's: hand the packet to the core of that shard.
    Forward(u8),
    /// A reply to the client.
    Reply(Resp),
    /// A Binding reply under RFC 5780, sent from `from` to `to`.
    ReplyFrom {
        /// The response.
        reply: Resp,
        /// The server address it leaves from.
        from: SocketAddr,
        /// The client address it goes to.
        to: SocketAddr,
    },
    /// A datagram to a peer.
    ToPeer {
        /// The relay socket.
        relay: RelayId,
        /// The peer.
        peer: SocketAddr,
        /// The payload.
        payload: Vec<u8>,
        /// The range of the payload in the client's packet.
        range: Range<usize>,
        /// DF.
        dont_fragment: bool,
    },
    /// ConnectionBind succeeded: the response, then raw piping to `connection`.
    BindData {
        /// The success response.
        reply: Resp,
        /// The peer data connection.
        connection: ConnectionId,
    },
}

impl Outcome {
    /// The reply; panics otherwise.
    #[track_caller]
    pub fn reply(self) -> Resp {
        match self {
            Self::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    /// The payload sent to a peer, with relay, peer and DF; panics otherwise.
    #[track_caller]
    pub fn datagram(self) -> (RelayId, SocketAddr, Vec<u8>, bool) {
        match self {
            Self::ToPeer {
                relay,
                peer,
                payload,
                dont_fragment,
                ..
            } => (relay, peer, payload, dont_fragment),
            other => panic!("expected a datagram to a peer, got {other:?}"),
        }
    }

    /// The response and connection of a successful ConnectionBind; panics otherwise.
    #[track_caller]
    pub fn bind_data(self) -> (Resp, ConnectionId) {
        match self {
            Self::BindData { reply, connection } => (reply, connection),
            other => panic!("expected BindData, got {other:?}"),
        }
    }
}

/// A datagram the server sends to a client on behalf of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The client's 5-tuple.
    pub to: FiveTuple,
    /// The framed bytes (`buf[range]`).
    pub bytes: Vec<u8>,
    /// Where they were in the buffer.
    pub range: Range<usize>,
    /// Where the payload was in the buffer.
    pub payload: Range<usize>,
}

impl Delivered {
    /// Decodes a ChannelData message: (channel number, data). Panics otherwise.
    #[track_caller]
    pub fn channel_data(&self) -> (u16, Vec<u8>) {
        let cd = ChannelData::new_checked(&self.bytes[..]).expect("ChannelData");
        (cd.channel().value(), cd.data().to_vec())
    }

    /// Decodes a Data indication: (XOR-PEER-ADDRESS, DATA). Panics otherwise.
    #[track_caller]
    pub fn data_indication(&self) -> (SocketAddr, Vec<u8>) {
        let msg = Message::new_checked(&self.bytes[..]).expect("a STUN message");
        assert_eq!(
            msg.message_type(),
            MessageType::new(Method::DATA, Class::Indication)
        );
        let peer = msg
            .get::<XorPeerAddress>()
            .unwrap()
            .expect("XOR-PEER-ADDRESS")
            .0;
        let data = msg.raw(AttrType::DATA).expect("DATA").value.to_vec();
        (peer, data)
    }

    /// Decodes an ICMP Data indication: (XOR-PEER-ADDRESS, ICMP). Panics otherwise,
    /// including when it carries DATA (RFC 8656 §11.5: XOR-PEER-ADDRESS and ICMP).
    #[track_caller]
    pub fn icmp_indication(&self) -> (SocketAddr, Icmp) {
        let msg = Message::new_checked(&self.bytes[..]).expect("a STUN message");
        assert_eq!(
            msg.message_type(),
            MessageType::new(Method::DATA, Class::Indication)
        );
        assert!(msg.raw(AttrType::DATA).is_none(), "no DATA with ICMP");
        let peer = msg
            .get::<XorPeerAddress>()
            .unwrap()
            .expect("XOR-PEER-ADDRESS")
            .0;
        let icmp = msg.get::<Icmp>().unwrap().expect("ICMP");
        (peer, icmp)
    }
}

/// A server, a host and a virtual clock.
pub struct Sim {
    /// The core under test.
    pub server: TurnServer,
    /// Its host.
    pub host: FakeHost,
    /// The epoch of virtual time.
    pub start: Instant,
    /// Virtual time since the epoch.
    pub elapsed: Duration,
    /// Sweeps run by `advance`.
    pub sweeps: u64,
}

impl Sim {
    /// A simulation with the default [`config`].
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// A simulation with the default config changed by `f`.
    pub fn with(f: impl FnOnce(&mut TurnConfig)) -> Self {
        Self::with_setup(|c, _| f(c))
    }

    /// A simulation with the default config and core setup changed by `f`.
    pub fn with_setup(f: impl FnOnce(&mut TurnConfig, &mut CoreSetup)) -> Self {
        let start = epoch();
        let (mut c, mut s) = (config(), setup(start));
        f(&mut c, &mut s);
        Self::from_parts(start, c, s)
    }

    /// A simulation with `config` whose time base is `start`.
    pub fn from_config(start: Instant, config: TurnConfig) -> Self {
        Self::from_parts(start, config, setup(start))
    }

    /// A simulation with `config` and `setup` (whose time base must be `start`).
    pub fn from_parts(start: Instant, config: TurnConfig, setup: CoreSetup) -> Self {
        Self {
            server: TurnServer::new(Arc::new(config), setup).expect("valid config"),
            host: FakeHost::default(),
            start,
            elapsed: Duration::ZERO,
            sweeps: 0,
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.start + self.elapsed
    }

    /// Unix seconds now.
    pub fn unix_now(&self) -> u64 {
        START_UNIX + self.elapsed.as_secs()
    }

    /// Moves time forward by `d`, running `handle_timeout` at each sweep deadline crossed
    /// (at the deadline itself, as a runtime's timer would).
    pub fn advance(&mut self, d: Duration) {
        let target = self.elapsed + d;
        while let Some(t) = self.server.poll_timeout() {
            let at = t.saturating_duration_since(self.start).max(self.elapsed);
            if at > target {
                break;
            }
            self.elapsed = at;
            self.server
                .handle_timeout(t.max(self.now()), &mut self.host);
            self.sweeps += 1;
            assert!(
                self.server.poll_timeout().is_none_or(|n| n > t),
                "the sweep deadline must move forward"
            );
        }
        self.elapsed = target;
    }

    /// Shorthand for `advance(Duration::from_secs(secs))`.
    pub fn advance_secs(&mut self, secs: u64) {
        self.advance(Duration::from_secs(secs));
    }

    /// Hands a client packet to the server and checks the output contract.
    pub fn client_send(&mut self, from: FiveTuple, packet: &[u8]) -> Outcome {
        let mut out = vec![0u8; 1500];
        let now = self.now();
        let action = self
            .server
            .handle_client(now, from, packet, &mut out, &mut self.host);
        match action {
            ClientAction::None => Outcome::None,
            ClientAction::Reply(n) => {
                assert!(n <= out.len(), "reply longer than the output buffer");
                let resp = Resp(out[..n].to_vec());
                Message::new_checked(&resp.0[..]).expect("every reply is a valid STUN message");
                Outcome::Reply(resp)
            }
            ClientAction::ReplyFrom { len, from: src, to } => {
                assert!(len <= out.len(), "reply longer than the output buffer");
                assert_eq!(
                    to.ip(),
                    from.client.ip().to_canonical(),
                    "a reply never goes to another IP"
                );
                assert!(!from.transport.is_stream(), "ReplyFrom on a stream");
                let resp = Resp(out[..len].to_vec());
                Message::new_checked(&resp.0[..]).expect("every reply is a valid STUN message");
                Outcome::ReplyFrom {
                    reply: resp,
                    from: src,
                    to,
                }
            }
            ClientAction::Forward { shard } => Outcome::Forward(shard),
            ClientAction::BindData { reply, connection } => {
                assert!(reply <= out.len(), "reply longer than the output buffer");
                assert!(from.transport.is_stream(), "BindData on a datagram 5-tuple");
                let resp = Resp(out[..reply].to_vec());
                Message::new_checked(&resp.0[..]).expect("every reply is a valid STUN message");
                Outcome::BindData {
                    reply: resp,
                    connection,
                }
            }
            ClientAction::ToPeer {
                relay,
                peer,
                payload,
                dont_fragment,
            } => {
                assert!(
                    payload.start <= payload.end && payload.end <= packet.len(),
                    "payload range {payload:?} outside a {}-byte packet",
                    packet.len()
                );
                assert!(
                    self.host.live.contains_key(&relay),
                    "sent from relay {relay:?} that is not live"
                );
                Outcome::ToPeer {
                    relay,
                    peer,
                    payload: packet[payload.clone()].to_vec(),
                    range: payload,
                    dont_fragment,
                }
            }
        }
    }

    /// A peer at `from` sends `payload` to relay `relay`. The buffer has exactly the
    /// headroom and tailroom the core asks for, filled with junk so in-place writes show.
    pub fn peer_send(
        &mut self,
        relay: RelayId,
        from: SocketAddr,
        payload: &[u8],
    ) -> Option<Delivered> {
        let mut buf = vec![0xEE; PEER_HEADROOM + payload.len() + PEER_TAILROOM];
        let range = PEER_HEADROOM..PEER_HEADROOM + payload.len();
        buf[range.clone()].copy_from_slice(payload);
        let now = self.now();
        match self
            .server
            .handle_peer(now, relay, from, &mut buf, range.clone())
        {
            PeerAction::None => None,
            PeerAction::ToClient { to, range: out } => {
                assert!(
                    out.start <= out.end && out.end <= buf.len(),
                    "range {out:?} outside a {}-byte buffer",
                    buf.len()
                );
                assert_eq!(
                    &buf[range.clone()],
                    payload,
                    "the payload is never moved or changed"
                );
                Some(Delivered {
                    to,
                    bytes: buf[out.clone()].to_vec(),
                    range: out,
                    payload: range,
                })
            }
        }
    }
}

impl Sim {
    /// The runtime reports that the client connection `ft` (TCP/TLS) closed.
    pub fn connection_closed(&mut self, ft: FiveTuple) {
        let now = self.now();
        self.server
            .handle_connection_closed(now, ft, &mut self.host);
    }

    /// An ICMP error about a datagram relay `relay` sent to `peer`; checks the output
    /// contract (the message fits the documented maximum).
    pub fn icmp(
        &mut self,
        relay: RelayId,
        peer: SocketAddr,
        icmp_type: u8,
        code: u8,
        error_data: u32,
    ) -> Option<Delivered> {
        let mut buf = vec![0xEE; turnpike_proto::server::ICMP_INDICATION_MAX];
        let now = self.now();
        match self.server.handle_peer_icmp(
            now,
            relay,
            peer,
            Icmp {
                icmp_type,
                code,
                error_data,
            },
            &mut buf,
        ) {
            PeerAction::None => None,
            PeerAction::ToClient { to, range } => {
                assert!(range.end <= buf.len(), "range {range:?} outside the buffer");
                Some(Delivered {
                    to,
                    bytes: buf[range.clone()].to_vec(),
                    range,
                    payload: 0..0,
                })
            }
        }
    }

    /// The host reports the outcome of the connection it opened for a Connect: the
    /// message for the client (the Connect response), if any.
    pub fn peer_connected(
        &mut self,
        id: ConnectionId,
        connected: bool,
    ) -> Option<(FiveTuple, Resp)> {
        let mut out = vec![0u8; TCP_MESSAGE_MAX];
        let now = self.now();
        match self
            .server
            .handle_peer_connected(now, id, connected, &mut out)
        {
            PeerAction::None => None,
            PeerAction::ToClient { to, range } => {
                let resp = Resp(out[range].to_vec());
                Message::new_checked(&resp.0[..]).expect("valid STUN");
                Some((to, resp))
            }
        }
    }

    /// A peer connects to TCP relay `relay`: the id the runtime gave the connection and
    /// the ConnectionAttempt indication for the client, if the core keeps it.
    pub fn peer_connects(
        &mut self,
        relay: RelayId,
        peer: SocketAddr,
    ) -> (ConnectionId, Option<(FiveTuple, Resp)>) {
        let id = self.host.new_connection_id();
        let mut out = vec![0u8; TCP_MESSAGE_MAX];
        let now = self.now();
        let got = match self
            .server
            .handle_peer_connection(now, relay, peer, id, &mut out)
        {
            PeerAction::None => None,
            PeerAction::ToClient { to, range } => {
                let resp = Resp(out[range].to_vec());
                Message::new_checked(&resp.0[..]).expect("valid STUN");
                Some((to, resp))
            }
        };
        (id, got)
    }

    /// Every message the core queued, parsed.
    pub fn transmits(&mut self) -> Vec<(FiveTuple, Resp)> {
        let mut v = Vec::new();
        while let Some(Transmit { to, message }) = self.server.poll_transmit() {
            Message::new_checked(&message[..]).expect("valid STUN");
            v.push((to, Resp(message)));
        }
        v
    }
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

// ----- responses -------------------------------------------------------------------------

/// A response, owned.
#[derive(Clone, PartialEq, Eq)]
pub struct Resp(pub Vec<u8>);

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let msg = self.msg();
        write!(f, "{:?}", msg.message_type())?;
        if let Some(code) = self.error_code() {
            write!(f, " {code}")?;
        }
        let attrs: Vec<AttrType> = msg.attributes().map(|a| a.ty).collect();
        write!(f, " {attrs:?}")
    }
}

impl Resp {
    /// The message view.
    pub fn msg(&self) -> Message<&[u8]> {
        Message::new_checked(&self.0[..]).expect("valid STUN")
    }

    /// The message type.
    pub fn ty(&self) -> MessageType {
        self.msg().message_type()
    }

    /// The transaction ID.
    pub fn tid(&self) -> TransactionId {
        self.msg().transaction_id()
    }

    /// Whether it is a success response.
    pub fn is_success(&self) -> bool {
        self.ty().class == Class::Success
    }

    /// The ERROR-CODE, if any.
    pub fn error_code(&self) -> Option<u16> {
        self.error().map(|(code, _)| code)
    }

    /// The ERROR-CODE's reason phrase, if there is one.
    pub fn error_reason(&self) -> Option<String> {
        self.error().map(|(_, reason)| reason)
    }

    /// The ERROR-CODE's number and reason phrase.
    fn error(&self) -> Option<(u16, String)> {
        let msg = self.msg();
        let attr = msg.get::<ErrorCodeAttr>().ok().flatten()?;
        Some((attr.code.code(), attr.reason.to_owned()))
    }

    /// Asserts a success response and returns self.
    #[track_caller]
    pub fn success(self) -> Self {
        assert!(self.is_success(), "expected success, got {self:?}");
        self
    }

    /// Asserts an error response with `code`.
    #[track_caller]
    pub fn assert_error(&self, code: u16) {
        assert_eq!(
            self.ty().class,
            Class::Error,
            "expected error {code}, got {self:?}"
        );
        assert_eq!(self.error_code(), Some(code), "{self:?}");
    }

    /// Every XOR-RELAYED-ADDRESS, in order.
    pub fn relayed(&self) -> Vec<SocketAddr> {
        self.msg()
            .get_all::<XorRelayedAddress>()
            .map(|a| a.unwrap().0)
            .collect()
    }

    /// XOR-MAPPED-ADDRESS.
    pub fn mapped(&self) -> Option<SocketAddr> {
        self.msg().get::<XorMappedAddress>().unwrap().map(|a| a.0)
    }

    /// LIFETIME.
    pub fn lifetime(&self) -> Option<u32> {
        self.msg().get::<Lifetime>().unwrap().map(|l| l.0)
    }

    /// RESERVATION-TOKEN.
    pub fn token(&self) -> Option<[u8; 8]> {
        self.msg().get::<ReservationToken>().unwrap().map(|t| t.0)
    }

    /// NONCE.
    pub fn nonce(&self) -> Option<String> {
        self.msg().get::<Nonce>().unwrap().map(|n| n.0.to_owned())
    }

    /// REALM.
    pub fn realm(&self) -> Option<String> {
        self.msg().get::<Realm>().unwrap().map(|n| n.0.to_owned())
    }

    /// UNKNOWN-ATTRIBUTES.
    pub fn unknown_attributes(&self) -> Vec<u16> {
        self.msg()
            .get::<UnknownAttributes>()
            .unwrap()
            .map(|u| u.iter().map(|t| t.0).collect())
            .unwrap_or_default()
    }

    /// ADDRESS-ERROR-CODE: (family, code).
    pub fn address_error(&self) -> Option<(u8, u16)> {
        self.msg()
            .get::<AddressErrorCode>()
            .unwrap()
            .map(|a| (a.family.0, a.code.code()))
    }

    /// Every ALTERNATE-SERVER, in order.
    pub fn alternate_servers(&self) -> Vec<SocketAddr> {
        self.msg()
            .get_all::<AlternateServer>()
            .map(|a| a.unwrap().0)
            .collect()
    }

    /// ALTERNATE-DOMAIN.
    pub fn alternate_domain(&self) -> Option<String> {
        self.msg()
            .get::<AlternateDomain>()
            .unwrap()
            .map(|d| d.0.to_owned())
    }

    /// MOBILITY-TICKET.
    pub fn ticket(&self) -> Option<Vec<u8>> {
        self.msg()
            .get::<MobilityTicket>()
            .unwrap()
            .map(|t| t.0.to_vec())
    }

    /// CONNECTION-ID.
    pub fn connection_id(&self) -> Option<ConnectionId> {
        self.msg().get::<ConnectionId>().unwrap()
    }

    /// XOR-PEER-ADDRESS.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.msg().get::<XorPeerAddress>().unwrap().map(|a| a.0)
    }

    /// The raw value of an attribute that counts.
    pub fn raw(&self, ty: AttrType) -> Option<Vec<u8>> {
        self.msg().raw(ty).map(|a| a.value.to_vec())
    }

    /// Whether an attribute is present anywhere in the message.
    pub fn has(&self, ty: AttrType) -> bool {
        self.msg().attributes().any(|a| a.ty == ty)
    }

    /// Checks the response's integrity with `key`.
    pub fn verify(&self, key: &LongTermKey) -> Option<IntegrityKind> {
        self.msg().verify_integrity(&key.integrity_key()).ok()
    }
}

// ----- requests ---------------------------------------------------------------------------

/// An attribute of a request, kept as data so a request can be rebuilt (new transaction
/// ID, new nonce) after a 401 or 438.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum A {
    /// REQUESTED-TRANSPORT with this protocol number.
    Transport(u8),
    /// LIFETIME.
    Lifetime(u32),
    /// XOR-PEER-ADDRESS.
    Peer(SocketAddr),
    /// CHANNEL-NUMBER with any 16-bit value (out-of-range ones included).
    Channel(u16),
    /// EVEN-PORT with the R bit.
    EvenPort(bool),
    /// RESERVATION-TOKEN.
    Token([u8; 8]),
    /// REQUESTED-ADDRESS-FAMILY with a raw family byte.
    RequestedFamily(u8),
    /// ADDITIONAL-ADDRESS-FAMILY with a raw family byte.
    AdditionalFamily(u8),
    /// DONT-FRAGMENT.
    DontFragment,
    /// DATA.
    Data(Vec<u8>),
    /// MOBILITY-TICKET with this value (empty to ask for mobility).
    Ticket(Vec<u8>),
    /// CONNECTION-ID.
    Connection(u32),
    /// Anything, raw.
    Raw(u16, Vec<u8>),
}

impl A {
    fn put(&self, w: &mut MessageWriter<'_>) -> Result<(), EncodeError> {
        match self {
            Self::Transport(p) => w.put_raw(AttrType::REQUESTED_TRANSPORT, &[*p, 0, 0, 0]),
            Self::Lifetime(l) => w.put(&Lifetime(*l)),
            Self::Peer(p) => w.put(&XorPeerAddress(*p)),
            Self::Channel(n) => {
                let b = n.to_be_bytes();
                w.put_raw(AttrType::CHANNEL_NUMBER, &[b[0], b[1], 0, 0])
            }
            Self::EvenPort(r) => w.put_raw(AttrType::EVEN_PORT, &[if *r { 0x80 } else { 0 }]),
            Self::Token(t) => w.put(&ReservationToken(*t)),
            Self::RequestedFamily(f) => {
                w.put_raw(AttrType::REQUESTED_ADDRESS_FAMILY, &[*f, 0, 0, 0])
            }
            Self::AdditionalFamily(f) => {
                w.put_raw(AttrType::ADDITIONAL_ADDRESS_FAMILY, &[*f, 0, 0, 0])
            }
            Self::DontFragment => w.put_raw(AttrType::DONT_FRAGMENT, &[]),
            Self::Data(d) => w.put_raw(AttrType::DATA, d),
            Self::Ticket(t) => w.put(&MobilityTicket(t)),
            Self::Connection(c) => w.put(&ConnectionId(*c)),
            Self::Raw(t, v) => w.put_raw(AttrType(*t), v),
        }
    }
}

/// REQUESTED-TRANSPORT UDP.
pub const UDP: A = A::Transport(17);
/// REQUESTED-TRANSPORT TCP (RFC 6062).
pub const TCP: A = A::Transport(6);

/// Which password-algorithm attributes a signed request carries (RFC 8489 §9.2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlgAttrs {
    /// MD5: none (a classic RFC 5389 client); SHA-256: PASSWORD-ALGORITHMS as received
    /// plus PASSWORD-ALGORITHM.
    Auto,
    /// Both, with PASSWORD-ALGORITHMS as received.
    Both,
    /// Only PASSWORD-ALGORITHMS (as received).
    ListOnly,
    /// Only PASSWORD-ALGORITHM.
    ChosenOnly,
    /// PASSWORD-ALGORITHM plus this (altered) PASSWORD-ALGORITHMS list.
    AlteredList(Vec<u16>),
}

/// A TURN client: one 5-tuple, one credential.
#[derive(Debug, Clone)]
pub struct TestClient {
    /// Its 5-tuple.
    pub ft: FiveTuple,
    /// USERNAME.
    pub username: String,
    /// Password.
    pub password: String,
    /// REALM learnt from a 401.
    pub realm: Option<String>,
    /// NONCE learnt from a 401 or 438.
    pub nonce: Option<String>,
    /// PASSWORD-ALGORITHMS as the server offered it (raw value).
    pub offered: Option<Vec<u8>>,
    /// The password algorithm (MD5 unless changed).
    pub algorithm: PasswordAlgorithmId,
    /// Which algorithm attributes to send.
    pub alg_attrs: AlgAttrs,
    /// Sign with MESSAGE-INTEGRITY-SHA256 instead of MESSAGE-INTEGRITY (default: when
    /// the algorithm is SHA-256).
    pub sha256_integrity: Option<bool>,
    /// Send USERHASH instead of USERNAME.
    pub userhash: bool,
    /// Add FINGERPRINT.
    pub fingerprint: bool,
    tid_seed: u64,
    tid_counter: u64,
}

impl TestClient {
    /// A client on `ft` with a username and password.
    pub fn new(ft: FiveTuple, username: &str, password: &str) -> Self {
        let seed = match ft.client {
            SocketAddr::V4(a) => u64::from(u32::from(*a.ip())) << 16 | u64::from(a.port()),
            SocketAddr::V6(a) => (u128::from(*a.ip()) as u64) << 16 | u64::from(a.port()),
        };
        Self {
            ft,
            username: username.into(),
            password: password.into(),
            realm: None,
            nonce: None,
            offered: None,
            algorithm: PasswordAlgorithmId::MD5,
            alg_attrs: AlgAttrs::Auto,
            sha256_integrity: None,
            userhash: false,
            fingerprint: false,
            tid_seed: seed,
            tid_counter: 0,
        }
    }

    /// Static user alice on a UDP 5-tuple from `client`.
    pub fn alice(client: &str) -> Self {
        Self::new(udp(client), ALICE.0, ALICE.1)
    }

    /// Static user bob on a UDP 5-tuple from `client`.
    pub fn bob(client: &str) -> Self {
        Self::new(udp(client), BOB.0, BOB.1)
    }

    /// A REST credential for `user` expiring at `expiry`, minted with `secret`.
    pub fn rest(ft: FiveTuple, secret: &[u8], user: &str, expiry: u64) -> Self {
        let (u, p) = mint(secret, user, expiry);
        Self::new(ft, &u, &p)
    }

    /// A fresh transaction ID, unique in the whole test binary (two clients on one
    /// 5-tuple must never share one, or the retransmission cache would answer).
    pub fn next_tid(&mut self) -> TransactionId {
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        self.tid_counter += 1;
        let global = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&(self.tid_seed as u32).to_be_bytes());
        t[4..].copy_from_slice(&global.to_be_bytes());
        TransactionId(t)
    }

    /// The long-term key this client signs with.
    pub fn key(&self) -> LongTermKey {
        let realm = self.realm.as_deref().unwrap_or(REALM);
        LongTermKey::derive(self.algorithm, &self.username, realm, &self.password)
            .expect("derivable key")
    }

    /// Builds a request without authentication attributes.
    pub fn build_unsigned(&self, method: Method, tid: TransactionId, attrs: &[A]) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let mut w =
            MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), tid).unwrap();
        for a in attrs {
            a.put(&mut w).unwrap();
        }
        if self.fingerprint {
            w.put_fingerprint().unwrap();
        }
        let n = w.finish();
        buf.truncate(n);
        buf
    }

    /// Builds a request signed with the current realm and nonce.
    pub fn build_signed(&self, method: Method, tid: TransactionId, attrs: &[A]) -> Vec<u8> {
        let realm = self.realm.clone().unwrap_or_else(|| REALM.to_owned());
        let nonce = self.nonce.clone().expect("a nonce: do the 401 dance first");
        let mut buf = vec![0u8; 2048];
        let mut w =
            MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), tid).unwrap();
        for a in attrs {
            a.put(&mut w).unwrap();
        }
        if self.userhash {
            let h = userhash(&self.username, &realm).unwrap();
            w.put(&Userhash(&h)).unwrap();
        } else {
            w.put(&Username(&self.username)).unwrap();
        }
        w.put(&Realm(&realm)).unwrap();
        w.put(&Nonce(&nonce)).unwrap();
        let offered = self.offered.clone().unwrap_or_default();
        let chosen = PasswordAlgorithm::new(self.algorithm);
        let sha256 = self.algorithm == PasswordAlgorithmId::SHA256;
        let (list, alg): (Option<Vec<u8>>, bool) = match &self.alg_attrs {
            AlgAttrs::Auto if sha256 => (Some(offered), true),
            AlgAttrs::Auto => (None, false),
            AlgAttrs::Both => (Some(offered), true),
            AlgAttrs::ListOnly => (Some(offered), false),
            AlgAttrs::ChosenOnly => (None, true),
            AlgAttrs::AlteredList(ids) => {
                let mut v = Vec::new();
                for id in ids {
                    v.extend_from_slice(&id.to_be_bytes());
                    v.extend_from_slice(&[0, 0]);
                }
                (Some(v), true)
            }
        };
        if let Some(list) = list {
            w.put_raw(AttrType::PASSWORD_ALGORITHMS, &list).unwrap();
        }
        if alg {
            w.put(&chosen).unwrap();
        }
        let key = self.key().integrity_key();
        if self.sha256_integrity.unwrap_or(sha256) {
            w.put_integrity_sha256(&key, 32).unwrap();
        } else {
            w.put_integrity(&key).unwrap();
        }
        if self.fingerprint {
            w.put_fingerprint().unwrap();
        }
        let n = w.finish();
        buf.truncate(n);
        buf
    }

    /// Sends raw bytes from this client's 5-tuple.
    pub fn send_raw(&self, sim: &mut Sim, packet: &[u8]) -> Outcome {
        sim.client_send(self.ft, packet)
    }

    /// Whether this request, unsigned, gets the 401 challenge: always over TCP and TLS;
    /// over UDP only a well-formed Allocate or a Refresh with a MOBILITY-TICKET.
    pub fn gets_challenged(&self, method: Method, attrs: &[A]) -> bool {
        self.ft.transport != ClientTransport::Udp
            || match method {
                Method::ALLOCATE => attrs.iter().any(|a| matches!(a, A::Transport(_))),
                Method::REFRESH => attrs.iter().any(|a| matches!(a, A::Ticket(_))),
                _ => false,
            }
    }

    /// Learns REALM, NONCE and PASSWORD-ALGORITHMS from a 401 or 438.
    pub fn learn(&mut self, resp: &Resp) {
        if let Some(r) = resp.realm() {
            self.realm = Some(r);
        }
        if let Some(n) = resp.nonce() {
            self.nonce = Some(n);
        }
        if let Some(o) = resp.raw(AttrType::PASSWORD_ALGORITHMS) {
            self.offered = Some(o);
        }
    }

    /// Sends an unsigned request and returns the answer (normally a 401 challenge, which
    /// is learnt from).
    #[track_caller]
    pub fn challenge(&mut self, sim: &mut Sim, method: Method, attrs: &[A]) -> Resp {
        let tid = self.next_tid();
        let packet = self.build_unsigned(method, tid, attrs);
        let resp = self.send_raw(sim, &packet).reply();
        assert_eq!(resp.tid(), tid);
        if resp.error_code() == Some(401) {
            self.learn(&resp);
        }
        resp
    }

    /// Sends one signed request (no retry) and returns the answer.
    #[track_caller]
    pub fn signed_once(&mut self, sim: &mut Sim, method: Method, attrs: &[A]) -> Resp {
        let tid = self.next_tid();
        let packet = self.build_signed(method, tid, attrs);
        let resp = self.send_raw(sim, &packet).reply();
        assert_eq!(resp.tid(), tid);
        resp
    }

    /// A request with the whole dance: an unsigned first try when no nonce is known
    /// (learning from the 401), then signed; one retry after a 438.
    #[track_caller]
    pub fn request(&mut self, sim: &mut Sim, method: Method, attrs: &[A]) -> Resp {
        if self.nonce.is_none() && !self.gets_challenged(method, attrs) {
            // Over UDP only a well-formed Allocate (or a moved client's Refresh) is
            // challenged unsigned: learn the nonce the way a real client does.
            self.challenge(sim, Method::ALLOCATE, &[UDP])
                .assert_error(401);
        }
        if self.nonce.is_none() {
            let first = self.challenge(sim, method, attrs);
            if first.error_code() != Some(401) {
                return first;
            }
        }
        let resp = self.signed_once(sim, method, attrs);
        if resp.error_code() == Some(438) {
            self.learn(&resp);
            return self.signed_once(sim, method, attrs);
        }
        resp
    }

    /// A signed request that may get no answer right away (an RFC 6062 Connect) or a
    /// `BindData` (ConnectionBind): the 401 dance first if no nonce is known, then the
    /// signed request; returns its transaction ID and what the server did.
    #[track_caller]
    pub fn send(&mut self, sim: &mut Sim, method: Method, attrs: &[A]) -> (TransactionId, Outcome) {
        if self.nonce.is_none() {
            let (m, a): (Method, &[A]) = if self.gets_challenged(method, attrs) {
                (method, attrs)
            } else {
                (Method::ALLOCATE, &[UDP])
            };
            self.challenge(sim, m, a).assert_error(401);
        }
        let tid = self.next_tid();
        let packet = self.build_signed(method, tid, attrs);
        (tid, self.send_raw(sim, &packet))
    }

    /// Allocate with REQUESTED-TRANSPORT TCP (RFC 6062) and `extra`.
    #[track_caller]
    pub fn allocate_tcp(&mut self, sim: &mut Sim, extra: &[A]) -> Resp {
        let mut attrs = vec![TCP];
        attrs.extend_from_slice(extra);
        self.request(sim, Method::ALLOCATE, &attrs)
    }

    /// Allocate with REQUESTED-TRANSPORT UDP and `extra`.
    #[track_caller]
    pub fn allocate(&mut self, sim: &mut Sim, extra: &[A]) -> Resp {
        let mut attrs = vec![UDP];
        attrs.extend_from_slice(extra);
        self.request(sim, Method::ALLOCATE, &attrs)
    }

    /// Allocate that must succeed; returns the response and its first relay's id.
    #[track_caller]
    pub fn allocate_ok(&mut self, sim: &mut Sim) -> (Resp, RelayId) {
        let resp = self.allocate(sim, &[]).success();
        let relay = sim.host.relay_of(resp.relayed()[0]);
        (resp, relay)
    }

    /// Refresh with an optional LIFETIME and `extra`.
    #[track_caller]
    pub fn refresh(&mut self, sim: &mut Sim, lifetime: Option<u32>, extra: &[A]) -> Resp {
        let mut attrs: Vec<A> = lifetime.map(A::Lifetime).into_iter().collect();
        attrs.extend_from_slice(extra);
        self.request(sim, Method::REFRESH, &attrs)
    }

    /// CreatePermission for `peers`.
    #[track_caller]
    pub fn create_permission(&mut self, sim: &mut Sim, peers: &[SocketAddr]) -> Resp {
        let attrs: Vec<A> = peers.iter().copied().map(A::Peer).collect();
        self.request(sim, Method::CREATE_PERMISSION, &attrs)
    }

    /// ChannelBind of `number` to `peer`.
    #[track_caller]
    pub fn channel_bind(&mut self, sim: &mut Sim, number: u16, peer: SocketAddr) -> Resp {
        self.request(
            sim,
            Method::CHANNEL_BIND,
            &[A::Channel(number), A::Peer(peer)],
        )
    }

    /// A Send indication to `peer` with `data` and `extra` attributes.
    pub fn send_indication(
        &mut self,
        sim: &mut Sim,
        peer: SocketAddr,
        data: &[u8],
        extra: &[A],
    ) -> Outcome {
        let tid = self.next_tid();
        let mut buf = vec![0u8; 2048 + data.len()];
        let ty = MessageType::new(Method::SEND, Class::Indication);
        let mut w = MessageWriter::new(&mut buf, ty, tid).unwrap();
        w.put(&XorPeerAddress(peer)).unwrap();
        for a in extra {
            a.put(&mut w).unwrap();
        }
        w.put_raw(AttrType::DATA, data).unwrap();
        if self.fingerprint {
            w.put_fingerprint().unwrap();
        }
        let n = w.finish();
        buf.truncate(n);
        self.send_raw(sim, &buf)
    }

    /// A ChannelData message on `number`, padded on stream transports.
    pub fn channel_data(&self, sim: &mut Sim, number: u16, data: &[u8]) -> Outcome {
        let mut buf = vec![0u8; 4 + data.len() + 3];
        let n = encode_channel_data(
            &mut buf,
            turnpike_stun::ChannelNumber::new(number).expect("a valid channel number"),
            data,
            self.ft.transport.is_stream(),
        )
        .unwrap();
        buf.truncate(n);
        self.send_raw(sim, &buf)
    }
}

/// An allocated alice on UDP from `client`: the client and its relay.
#[track_caller]
pub fn allocated_alice(sim: &mut Sim, client: &str) -> (TestClient, RelayId) {
    let mut c = TestClient::alice(client);
    let (_, relay) = c.allocate_ok(sim);
    (c, relay)
}
