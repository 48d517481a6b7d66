//! Property test: arbitrary sequences of operations under fake time never panic the core
//! and keep its bookkeeping straight.
//!
//! Operations: arbitrary bytes (raw, STUN-shaped, ChannelData-shaped) from a small pool
//! of client 5-tuples over UDP, TCP and TLS; valid signed requests (UDP and TCP
//! allocations, mobility tickets, Connect, ConnectionBind); valid requests with bytes
//! flipped, cut or inserted; ChannelData and Send indications; peer datagrams on live or
//! made-up relays with arbitrary buffers and ranges; ICMP errors; peer TCP connections
//! opening, failing and closing; client connections closing; redirection on and off;
//! time steps, large jumps with a late sweep, and early `handle_timeout` calls.
//!
//! After every operation: every reply parses as STUN, every payload range lies in its
//! packet, every peer→client range lies in its buffer and parses as a Data indication or
//! ChannelData carrying the payload (or, for ICMP, XOR-PEER-ADDRESS and ICMP); every
//! queued message parses and goes to a known client; the quota ledger, the host's slot
//! count and the core's allocation count agree; no relay or slot is released twice; the
//! core only closes peer connections the host opened or accepted. At the end, a jump
//! past every lifetime leaves nothing behind, peer connections included.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use turnpike_proto::server::{PEER_HEADROOM, PEER_TAILROOM};
use turnpike_proto::{ClientTransport, ConnectionId, FiveTuple, PeerAction, RelayId};
use turnpike_stun::attr::{Icmp, PasswordAlgorithmId, XorPeerAddress};
use turnpike_stun::{ChannelData, Class, Message, MessageType, Method};

const PEERS: [&str; 8] = [
    "8.8.8.8:5000",
    "8.8.8.8:5001",
    "1.1.1.1:6000",
    "[2606:4700::1111]:7000",
    "[::ffff:8.8.8.8]:5000",
    "10.0.0.1:1",
    "127.0.0.1:9",
    "[64:ff9b::808:808]:53",
];

fn clients() -> Vec<TestClient> {
    let expiry = START_UNIX + 2_000;
    let mut v = vec![
        TestClient::alice("203.0.113.10:40000"),
        TestClient::bob("203.0.113.10:40000"), // the same 5-tuple as alice
        TestClient::new(tcp("203.0.113.11:40001"), ALICE.0, ALICE.1),
        TestClient::new(tls("[2001:db8:1::1]:40002"), BOB.0, BOB.1),
        TestClient::rest(udp("203.0.113.12:40003"), SECRET, "carol", expiry),
        TestClient::rest(udp("[2001:db8:1::2]:40004"), SECRET, "carol", expiry),
        // Data connections (RFC 6062) and mobility targets.
        TestClient::new(tcp("203.0.113.11:40101"), ALICE.0, ALICE.1),
        TestClient::new(tls("[2001:db8:1::1]:40102"), BOB.0, BOB.1),
    ];
    v[2].algorithm = PasswordAlgorithmId::SHA256;
    v[3].userhash = true;
    v[4].fingerprint = true;
    v
}

#[derive(Debug, Clone)]
enum Req {
    Allocate {
        transport: u8,
        even: Option<bool>,
        family: Option<u8>,
        additional: Option<u8>,
        lifetime: Option<u32>,
        token: bool,
        df: bool,
        /// MOBILITY-TICKET: empty (true) or junk (false).
        mobile: Option<bool>,
    },
    /// LIFETIME, REQUESTED-ADDRESS-FAMILY, MOBILITY-TICKET (a remembered one by index).
    Refresh(Option<u32>, Option<u8>, Option<usize>),
    Permission(Vec<usize>),
    Bind(u16, usize),
    Connect(usize),
    /// A known connection id by index, or a made-up one.
    ConnectionBind(Option<usize>, u32),
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Length(u16),
}

#[derive(Debug, Clone)]
enum Op {
    Bytes {
        client: usize,
        bytes: Vec<u8>,
    },
    Request {
        client: usize,
        req: Req,
    },
    Mutated {
        client: usize,
        req: Req,
        mutation: Mutation,
    },
    ChannelData {
        client: usize,
        number: u16,
        len: usize,
    },
    Send {
        client: usize,
        peer: usize,
        len: usize,
    },
    Peer {
        relay: Option<usize>,
        made_up: u32,
        peer: usize,
        buf_len: usize,
        start: usize,
        end: usize,
    },
    /// Allocate, permit `peer` and bind a channel to it, in one go.
    Setup {
        client: usize,
        peer: usize,
    },
    Advance(u64),
    Jump(u64),
    Timeout,
    Icmp {
        relay: Option<usize>,
        made_up: u32,
        peer: usize,
        icmp_type: u8,
        code: u8,
        error_data: u32,
    },
    /// A client's connection closed (meaningful for TCP/TLS ones).
    Closed(usize),
    /// A Connect's peer connection succeeded or failed (index into the host's).
    PeerConnected(usize, bool),
    /// A peer connects to a relay.
    PeerConnects {
        relay: Option<usize>,
        made_up: u32,
        peer: usize,
    },
    /// A known peer connection closed.
    PeerClosed(usize),
    Redirect(bool),
    /// A TCP allocation (RFC 6062) on `client`, a permission for `peer`, and a Connect
    /// to it.
    SetupTcp {
        client: usize,
        peer: usize,
    },
    /// A mobile allocation on `from`, then a Refresh with its ticket from `to`.
    Move {
        from: usize,
        to: usize,
    },
}

/// `None` four times out of five, so most generated requests are valid.
fn sometimes<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![4 => Just(None), 1 => s.prop_map(Some)]
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        3 => (
            prop_oneof![8 => Just(17u8), 3 => Just(6u8), 1 => any::<u8>()],
            sometimes(any::<bool>()),
            sometimes(prop_oneof![Just(1u8), Just(2u8), any::<u8>()]),
            sometimes(prop_oneof![3 => Just(2u8), 1 => any::<u8>()]),
            sometimes(prop_oneof![Just(0u32), 0..4000u32, any::<u32>()]),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![2 => Just(None), 2 => Just(Some(true)), 1 => Just(Some(false))],
        )
            .prop_map(
                |(transport, even, family, additional, lifetime, token, df, mobile)| {
                    Req::Allocate {
                        transport,
                        even,
                        family,
                        additional,
                        lifetime,
                        token,
                        df,
                        mobile,
                    }
                },
            ),
        2 => (
            proptest::option::of(prop_oneof![Just(0u32), 0..4000u32]),
            proptest::option::of(1u8..=2),
            sometimes(any::<usize>()),
        )
            .prop_map(|(l, f, t)| Req::Refresh(l, f, t)),
        2 => likely_peer().prop_map(Req::Connect),
        2 => (sometimes(any::<usize>()), any::<u32>())
            .prop_map(|(i, made_up)| Req::ConnectionBind(i.or(Some(made_up as usize)), made_up)),
        2 => proptest::collection::vec(0..PEERS.len(), 0..4).prop_map(Req::Permission),
        2 => (prop_oneof![0x4000u16..0x4004, any::<u16>()], 0..PEERS.len())
            .prop_map(|(n, p)| Req::Bind(n, p)),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, x)| Mutation::Flip(at, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
        any::<u16>().prop_map(Mutation::Length),
    ]
}

/// Bytes shaped like a STUN message (valid header, consistent length, random body) or
/// ChannelData, or anything at all.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    let stun = (
        any::<u16>(),
        any::<[u8; 12]>(),
        proptest::collection::vec(any::<u8>(), 0..24),
    )
        .prop_map(|(ty, tid, words)| {
            let body: Vec<u8> = words.iter().flat_map(|w| [*w, 0, 0, *w]).collect();
            let mut v = Vec::with_capacity(20 + body.len());
            v.extend_from_slice(&(ty & 0x3FFF).to_be_bytes());
            v.extend_from_slice(&(body.len() as u16).to_be_bytes());
            v.extend_from_slice(&0x2112_A442u32.to_be_bytes());
            v.extend_from_slice(&tid);
            v.extend_from_slice(&body);
            v
        });
    let channel = (
        0x40u8..0x80,
        any::<u8>(),
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(a, b, len, data)| {
            let mut v = vec![a, b];
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(&data);
            v
        });
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..64), stun, channel,]
}

/// Mostly small offsets (so ranges often fit the buffer), and the values that break
/// careless arithmetic.
fn edge_usize() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0..200usize,
        4 => 40..80usize,
        1 => Just(usize::MAX),
        1 => (0..4usize).prop_map(|d| usize::MAX - d),
        1 => any::<usize>(),
    ]
}

/// Mostly a live relay (by index), sometimes a made-up id.
fn likely_relay() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![9 => (0..8usize).prop_map(Some), 1 => Just(None)]
}

/// Mostly the peers `Setup` gives permissions to.
fn likely_peer() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0..3usize, 1 => 0..PEERS.len()]
}

fn op() -> impl Strategy<Value = Op> {
    let n = clients().len();
    prop_oneof![
        3 => (0..n, bytes()).prop_map(|(client, bytes)| Op::Bytes { client, bytes }),
        3 => (0..n, prop_oneof![3 => 0..3usize, 1 => 0..5usize])
            .prop_map(|(client, peer)| Op::Setup { client, peer }),
        6 => (0..n, req()).prop_map(|(client, req)| Op::Request { client, req }),
        3 => (0..n, req(), mutation())
            .prop_map(|(client, req, mutation)| Op::Mutated { client, req, mutation }),
        2 => (0..n, 0x4000u16..0x4004, 0..300usize)
            .prop_map(|(client, number, len)| Op::ChannelData { client, number, len }),
        2 => (0..n, likely_peer(), 0..300usize)
            .prop_map(|(client, peer, len)| Op::Send { client, peer, len }),
        // A well-formed buffer: exactly the headroom and tailroom the core asks for.
        4 => (
            likely_relay(),
            any::<u32>(),
            likely_peer(),
            0..300usize,
        )
            .prop_map(|(relay, made_up, peer, len)| Op::Peer {
                relay,
                made_up,
                peer,
                buf_len: PEER_HEADROOM + len + PEER_TAILROOM,
                start: PEER_HEADROOM,
                end: PEER_HEADROOM + len,
            }),
        // Any buffer and range, reversed and overflowing ones included.
        3 => (
            likely_relay(),
            any::<u32>(),
            likely_peer(),
            0..200usize,
            edge_usize(),
            edge_usize(),
        )
            .prop_map(|(relay, made_up, peer, buf_len, start, end)| Op::Peer {
                relay,
                made_up,
                peer,
                buf_len,
                start,
                end,
            }),
        3 => (0..70_000u64).prop_map(Op::Advance),
        1 => prop_oneof![0..700u64, 0..7_200u64].prop_map(Op::Jump),
        1 => Just(Op::Timeout),
        2 => (
            likely_relay(),
            any::<u32>(),
            likely_peer(),
            prop_oneof![Just(3u8), Just(11u8), Just(1u8), Just(2u8), any::<u8>()],
            any::<u8>(),
            any::<u32>(),
        )
            .prop_map(|(relay, made_up, peer, icmp_type, code, error_data)| Op::Icmp {
                relay,
                made_up,
                peer,
                icmp_type,
                code,
                error_data,
            }),
        1 => (0..n).prop_map(Op::Closed),
        2 => (any::<usize>(), prop_oneof![3 => Just(true), 1 => Just(false)])
            .prop_map(|(i, ok)| Op::PeerConnected(i, ok)),
        2 => (likely_relay(), any::<u32>(), likely_peer())
            .prop_map(|(relay, made_up, peer)| Op::PeerConnects { relay, made_up, peer }),
        1 => any::<usize>().prop_map(Op::PeerClosed),
        1 => any::<bool>().prop_map(Op::Redirect),
        2 => (0..n, likely_peer()).prop_map(|(client, peer)| Op::SetupTcp { client, peer }),
        2 => (0..n, 0..n).prop_map(|(from, to)| Op::Move { from, to }),
    ]
}

fn attrs_of(
    req: &Req,
    token: Option<[u8; 8]>,
    tickets: &[Vec<u8>],
    connections: &[ConnectionId],
) -> (Method, Vec<A>) {
    match req {
        Req::Allocate {
            transport,
            even,
            family,
            additional,
            lifetime,
            token: use_token,
            df,
            mobile,
        } => {
            let mut v = vec![A::Transport(*transport)];
            match mobile {
                Some(true) => v.push(A::Ticket(Vec::new())),
                Some(false) => v.push(A::Ticket(vec![7; 32])),
                None => {}
            }
            if let Some(r) = even {
                v.push(A::EvenPort(*r));
            }
            if let Some(f) = family {
                v.push(A::RequestedFamily(*f));
            }
            if let Some(f) = additional {
                v.push(A::AdditionalFamily(*f));
            }
            if let Some(l) = lifetime {
                v.push(A::Lifetime(*l));
            }
            if let (true, Some(t)) = (use_token, token) {
                v.push(A::Token(t));
            }
            if *df {
                v.push(A::DontFragment);
            }
            (Method::ALLOCATE, v)
        }
        Req::Refresh(l, f, t) => {
            let mut v: Vec<A> = l.map(A::Lifetime).into_iter().collect();
            if let Some(f) = f {
                v.push(A::RequestedFamily(*f));
            }
            if let Some(i) = t {
                let ticket = match tickets {
                    [] => vec![1; 32],
                    _ => tickets[i % tickets.len()].clone(),
                };
                v.push(A::Ticket(ticket));
            }
            (Method::REFRESH, v)
        }
        Req::Connect(p) => (Method::CONNECT, vec![A::Peer(sa(PEERS[*p]))]),
        Req::ConnectionBind(i, made_up) => {
            let id = match (i, connections) {
                (Some(i), [_, ..]) => connections[i % connections.len()].0,
                _ => *made_up,
            };
            (Method::CONNECTION_BIND, vec![A::Connection(id)])
        }
        Req::Permission(peers) => (
            Method::CREATE_PERMISSION,
            peers.iter().map(|&p| A::Peer(sa(PEERS[p]))).collect(),
        ),
        Req::Bind(n, p) => (
            Method::CHANNEL_BIND,
            vec![A::Channel(*n), A::Peer(sa(PEERS[*p]))],
        ),
    }
}

fn mutate(mut packet: Vec<u8>, m: &Mutation) -> Vec<u8> {
    match m {
        Mutation::Flip(at, x) => {
            if !packet.is_empty() {
                let i = at % packet.len();
                packet[i] ^= x;
            }
        }
        Mutation::Truncate(at) => packet.truncate(at % (packet.len() + 1)),
        Mutation::Insert(at, bytes) => {
            let i = at % (packet.len() + 1);
            packet.splice(i..i, bytes.iter().copied());
        }
        Mutation::Length(len) => {
            if packet.len() >= 4 {
                packet[2..4].copy_from_slice(&len.to_be_bytes());
            }
        }
    }
    packet
}

struct World {
    sim: Sim,
    clients: Vec<TestClient>,
    token: Option<[u8; 8]>,
    /// MOBILITY-TICKETs seen in responses.
    tickets: Vec<Vec<u8>>,
    /// Peer connections the host accepted (the ones it opened are in `host.connects`).
    accepted: Vec<ConnectionId>,
}

impl World {
    fn new() -> Self {
        let sim = Sim::with(|c| {
            c.quotas.allocations_per_user = 3;
            c.quotas.allocations_total = 5;
            c.quotas.permissions_per_allocation = 3;
            c.quotas.channels_per_allocation = 2;
            c.quotas.bandwidth_bytes_per_sec = 20_000;
            c.turn.strict_expiry = true;
            c.turn.nonce_lifetime = Duration::from_secs(300);
            c.turn.max_lifetime = Duration::from_secs(3600);
            c.turn.mobility = true;
            c.turn.tcp_relay = true;
            c.quotas.tcp_connections_per_allocation = 3;
            c.turn.icmp_per_second = 3;
            c.alternates.udp = vec![sa("198.51.100.20:3478"), sa("[2001:db8:20::1]:3478")];
            c.alternates.tls = vec![sa("198.51.100.40:5349")];
            c.alternates.domain = Some("alt.example".into());
        });
        let mut w = Self {
            sim,
            clients: clients(),
            token: None,
            tickets: Vec::new(),
            accepted: Vec::new(),
        };
        w.sim.host.port_limit = 6;
        w
    }

    fn client_ft(&self, i: usize) -> FiveTuple {
        self.clients[i].ft
    }

    fn check(&self) {
        let count = self.sim.server.allocation_count();
        assert_eq!(
            self.sim.host.ledger.total() as usize,
            count,
            "ledger vs core"
        );
        assert_eq!(
            self.sim.host.slots_held() as usize,
            count,
            "host slots vs core"
        );
        assert!(
            self.sim.host.live.len() >= count,
            "every allocation has a relay"
        );
        assert_eq!(self.sim.host.bad_releases, 0, "a relay released twice");
        assert_eq!(
            self.sim.host.bad_allocation_releases, 0,
            "a slot released twice"
        );
        if count == 0 {
            // Only unredeemed reservations may hold sockets then.
            assert!(self.sim.host.live.len() <= 6);
            assert_eq!(self.sim.server.peer_connection_count(), 0);
        }
        for id in &self.sim.host.closed_connections {
            assert!(
                self.sim.host.connects.iter().any(|c| c.2 == *id) || self.accepted.contains(id),
                "closed {id:?}, which the host never opened or accepted"
            );
        }
    }

    /// Every id the host knows, opened or accepted.
    fn connection_ids(&self) -> Vec<ConnectionId> {
        let mut v: Vec<ConnectionId> = self.sim.host.connects.iter().map(|c| c.2).collect();
        v.extend_from_slice(&self.accepted);
        v
    }

    fn known(&self, to: FiveTuple) -> bool {
        self.clients.iter().any(|c| c.ft == to)
    }

    /// Drains the queued messages: each parses and goes to a known client.
    fn drain(&mut self) {
        for (to, resp) in self.sim.transmits() {
            assert!(self.known(to), "queued for an unknown 5-tuple");
            assert_eq!(resp.ty().method, Method::CONNECT);
            resp.assert_error(447);
        }
    }

    fn pick_relay(&self, relay: Option<usize>, made_up: u32) -> RelayId {
        match relay {
            Some(i) if !self.sim.host.live.is_empty() => *self
                .sim
                .host
                .live
                .keys()
                .nth(i % self.sim.host.live.len())
                .unwrap(),
            _ => RelayId(made_up),
        }
    }

    /// Moves time like a runtime whose timer fires late: one sweep at the new time.
    fn late(&mut self, d: Duration) {
        self.sim.elapsed += d;
        let now = self.sim.now();
        if self.sim.server.poll_timeout().is_some_and(|t| t <= now) {
            self.sim.server.handle_timeout(now, &mut self.sim.host);
        }
    }

    fn note_token(&mut self, resp: &Resp) {
        if let Some(t) = resp.token() {
            self.token = Some(t);
        }
        if let Some(t) = resp.ticket() {
            self.tickets.push(t);
        }
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Bytes { client, bytes } => {
                let ft = self.client_ft(*client);
                self.sim.client_send(ft, bytes);
            }
            Op::Request { client, req } => {
                let ids = self.connection_ids();
                let (method, attrs) = attrs_of(req, self.token, &self.tickets, &ids);
                let c = &mut self.clients[*client];
                let resp = if matches!(method, Method::CONNECT | Method::CONNECTION_BIND) {
                    match c.send(&mut self.sim, method, &attrs).1 {
                        Outcome::Reply(r) => r,
                        Outcome::None => {
                            // A Connect waits for its peer; over UDP (where RFC 6062 has no
                            // place) a client without an allocation gets silence.
                            assert!(
                                method == Method::CONNECT
                                    || c.ft.transport == ClientTransport::Udp,
                                "only a Connect waits"
                            );
                            return;
                        }
                        Outcome::BindData { reply, .. } => {
                            assert_eq!(method, Method::CONNECTION_BIND);
                            reply.success()
                        }
                        other => panic!("{other:?}"),
                    }
                } else {
                    c.request(&mut self.sim, method, &attrs)
                };
                assert_eq!(resp.ty().method, method);
                assert_ne!(resp.ty().class, Class::Request);
                assert_ne!(resp.error_code(), Some(500));
                if resp.error_code() == Some(300) {
                    assert_eq!(resp.alternate_servers().len(), 1);
                }
                self.note_token(&resp);
            }
            Op::Mutated {
                client,
                req,
                mutation,
            } => {
                let ids = self.connection_ids();
                let (method, attrs) = attrs_of(req, self.token, &self.tickets, &ids);
                let c = &mut self.clients[*client];
                if c.nonce.is_none() {
                    // Any request learns the nonce (over UDP an unsigned one is
                    // challenged only as an Allocate with REQUESTED-TRANSPORT).
                    let (m, a): (Method, &[A]) = if c.gets_challenged(method, &attrs) {
                        (method, &attrs)
                    } else {
                        (Method::ALLOCATE, &[UDP])
                    };
                    c.challenge(&mut self.sim, m, a);
                }
                let tid = c.next_tid();
                let packet = mutate(c.build_signed(method, tid, &attrs), mutation);
                let ft = c.ft;
                if let Outcome::Reply(r) = self.sim.client_send(ft, &packet) {
                    self.note_token(&r);
                }
            }
            Op::ChannelData {
                client,
                number,
                len,
            } => {
                let data = vec![0x5A; *len];
                let c = &self.clients[*client];
                if let Outcome::ToPeer { payload, .. } =
                    c.channel_data(&mut self.sim, *number, &data)
                {
                    assert_eq!(payload, data);
                }
            }
            Op::Send { client, peer, len } => {
                let data = vec![0xA5; *len];
                let c = &mut self.clients[*client];
                if let Outcome::ToPeer { payload, .. } =
                    c.send_indication(&mut self.sim, sa(PEERS[*peer]), &data, &[])
                {
                    assert_eq!(payload, data);
                }
            }
            Op::Peer {
                relay,
                made_up,
                peer,
                buf_len,
                start,
                end,
            } => {
                let relay = self.pick_relay(*relay, *made_up);
                self.peer(relay, sa(PEERS[*peer]), *buf_len, *start..*end);
            }
            Op::Setup { client, peer } => {
                let peer = sa(PEERS[*peer]);
                let number = 0x4000 + *client as u16;
                let c = &mut self.clients[*client];
                c.allocate(&mut self.sim, &[]);
                c.create_permission(&mut self.sim, &[peer]);
                c.channel_bind(&mut self.sim, number, peer);
            }
            Op::Advance(ms) => self.late(Duration::from_millis(*ms)),
            Op::Jump(secs) => self.late(Duration::from_secs(*secs)),
            Op::Timeout => {
                let now = self.sim.now();
                self.sim.server.handle_timeout(now, &mut self.sim.host);
            }
            Op::Icmp {
                relay,
                made_up,
                peer,
                icmp_type,
                code,
                error_data,
            } => {
                let relay = self.pick_relay(*relay, *made_up);
                if let Some(got) =
                    self.sim
                        .icmp(relay, sa(PEERS[*peer]), *icmp_type, *code, *error_data)
                {
                    assert!(self.known(got.to));
                    let (_, icmp): (SocketAddr, Icmp) = got.icmp_indication();
                    assert_eq!((icmp.icmp_type, icmp.code), (*icmp_type, *code));
                }
            }
            Op::Closed(i) => {
                let ft = self.client_ft(*i);
                self.sim.connection_closed(ft);
            }
            Op::PeerConnected(i, ok) => {
                let connects = &self.sim.host.connects;
                if connects.is_empty() {
                    return;
                }
                let id = connects[i % connects.len()].2;
                if let Some((to, resp)) = self.sim.peer_connected(id, *ok) {
                    assert!(self.known(to));
                    assert_eq!(resp.ty().method, Method::CONNECT);
                    if *ok {
                        assert_eq!(resp.connection_id(), Some(id));
                    } else {
                        resp.assert_error(447);
                    }
                }
            }
            Op::PeerConnects {
                relay,
                made_up,
                peer,
            } => {
                let relay = self.pick_relay(*relay, *made_up);
                let (id, got) = self.sim.peer_connects(relay, sa(PEERS[*peer]));
                self.accepted.push(id);
                if let Some((to, ind)) = got {
                    assert!(self.known(to));
                    assert_eq!(ind.connection_id(), Some(id));
                    if ind.ty().method == Method::CONNECT {
                        // A Connect to this very peer was under way: this connection
                        // answers it (simultaneous open).
                        assert!(ind.is_success());
                    } else {
                        assert_eq!(ind.ty().method, Method::CONNECTION_ATTEMPT);
                        assert!(ind.msg().get::<XorPeerAddress>().unwrap().is_some());
                    }
                }
            }
            Op::PeerClosed(i) => {
                let ids = self.connection_ids();
                if ids.is_empty() {
                    return;
                }
                let now = self.sim.now();
                self.sim
                    .server
                    .handle_peer_connection_closed(now, ids[i % ids.len()]);
            }
            Op::Redirect(on) => self.sim.server.set_redirect(*on),
            Op::SetupTcp { client, peer } => {
                let peer = sa(PEERS[*peer]);
                let c = &mut self.clients[*client];
                c.allocate_tcp(&mut self.sim, &[]);
                c.create_permission(&mut self.sim, &[peer]);
                let (_, outcome) = c.send(&mut self.sim, Method::CONNECT, &[A::Peer(peer)]);
                if let Outcome::Reply(r) = outcome {
                    assert_eq!(r.ty().class, Class::Error);
                }
            }
            Op::Move { from, to } => {
                let resp = self.clients[*from].allocate(&mut self.sim, &[A::Ticket(Vec::new())]);
                self.note_token(&resp);
                if let Some(t) = resp.ticket() {
                    let resp = self.clients[*to].refresh(&mut self.sim, Some(600), &[A::Ticket(t)]);
                    self.note_token(&resp);
                }
            }
        }
        self.drain();
    }

    fn peer(
        &mut self,
        relay: RelayId,
        from: SocketAddr,
        buf_len: usize,
        range: std::ops::Range<usize>,
    ) {
        let mut buf: Vec<u8> = (0..buf_len).map(|i| i as u8).collect();
        let original = buf.clone();
        let now = self.sim.now();
        let action = self
            .sim
            .server
            .handle_peer(now, relay, from, &mut buf, range.clone());
        let PeerAction::ToClient { to, range: out } = action else {
            return;
        };
        assert!(
            out.start <= out.end && out.end <= buf.len(),
            "{out:?} in {buf_len}"
        );
        assert!(range.start <= range.end && range.end <= buf.len());
        assert_eq!(
            &buf[range.clone()],
            &original[range.clone()],
            "payload untouched"
        );
        assert!(self.clients.iter().any(|c| c.ft == to), "to a known client");
        let bytes = &buf[out];
        let payload = &original[range];
        if let Ok(msg) = Message::new_checked(bytes) {
            assert_eq!(
                msg.message_type(),
                MessageType::new(Method::DATA, Class::Indication)
            );
            let data = msg.raw(turnpike_stun::AttrType::DATA).expect("DATA");
            assert_eq!(data.value, payload);
        } else {
            let cd = ChannelData::new_checked(bytes).expect("STUN or ChannelData");
            assert_eq!(cd.data(), payload);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_operations_never_panic_and_keep_the_books(ops in proptest::collection::vec(op(), 1..64)) {
        let mut w = World::new();
        for op in &ops {
            w.run(op);
            w.check();
        }
        // Past every lifetime, reservation and cache entry: nothing is left.
        w.late(Duration::from_secs(3 * 3600));
        w.drain();
        w.check();
        prop_assert_eq!(w.sim.server.allocation_count(), 0);
        prop_assert_eq!(w.sim.server.peer_connection_count(), 0);
        prop_assert!(w.sim.host.live.is_empty(), "live relays left: {:?}", w.sim.host.live);
        prop_assert_eq!(w.sim.host.ledger.total(), 0);
        prop_assert_eq!(w.sim.server.poll_timeout(), None);
    }
}
