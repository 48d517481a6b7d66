//! `core_sequence`: the TURN core driven by an arbitrary sequence of operations (client
//! packets raw and well formed, signed or not, replayed or bit-flipped; peer datagrams,
//! ICMP, RFC 6062 peer connections and their outcomes; connection closes; reconfigures;
//! time steps small and large; operator actions), with [`World::check`] after each and
//! [`World::finish`] at the end.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use turnpike_proto::server::{Revocation, SessionFilter};
use turnpike_proto::stun::attr::Icmp;
use turnpike_proto::stun::{Class, Method};

use super::World;
use super::client::{Attr, Learnt, Signing, build};
use super::setup::{ConfigChoice, START_UNIX, USERS};

/// Most operations decoded from one input.
pub const MAX_OPS: usize = 200;

/// Which method a built request has.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum MethodPick {
    /// Allocate.
    Allocate,
    /// Refresh.
    Refresh,
    /// CreatePermission.
    CreatePermission,
    /// ChannelBind.
    ChannelBind,
    /// Connect (RFC 6062).
    Connect,
    /// ConnectionBind (RFC 6062).
    ConnectionBind,
    /// Binding.
    Binding,
    /// Any method number.
    Other(u16),
}

impl MethodPick {
    /// The method.
    pub fn method(self) -> Method {
        match self {
            Self::Allocate => Method::ALLOCATE,
            Self::Refresh => Method::REFRESH,
            Self::CreatePermission => Method::CREATE_PERMISSION,
            Self::ChannelBind => Method::CHANNEL_BIND,
            Self::Connect => Method::CONNECT,
            Self::ConnectionBind => Method::CONNECTION_BIND,
            Self::Binding => Method::BINDING,
            Self::Other(m) => Method::new(m & 0x0FFF).unwrap_or(Method::BINDING),
        }
    }
}

/// One operation.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    /// A whole client session set up in one step, so the fuzzer starts from deep state
    /// cheaply: Allocate, CreatePermission for `peer`, then over UDP a ChannelBind, a
    /// ChannelData and a datagram back from the peer; over TCP or TLS an RFC 6062
    /// allocation, a Connect to `peer`, its success and a ConnectionBind from the
    /// client's next connection.
    Session {
        /// Client index.
        client: u8,
        /// Peer index.
        peer: u8,
        /// Channel 0x4000 + this (low 4 bits).
        channel: u8,
    },
    /// Any bytes from a client.
    Raw {
        /// Client index.
        client: u8,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A well-formed request, signed (with the 401 dance first) or not, maybe with
    /// some bits flipped after signing.
    Request {
        /// Client index.
        client: u8,
        /// Method.
        method: MethodPick,
        /// Attributes.
        attrs: Vec<Attr>,
        /// Signed with the client's credential.
        signing: Option<Signing>,
        /// Flip `bits` at offset `at` (modulo the length).
        mutate: Option<(u16, u8)>,
    },
    /// A Send indication (or any indication) with these attributes.
    Indication {
        /// Client index.
        client: u8,
        /// A Send indication, else any method.
        send: Option<u16>,
        /// Attributes.
        attrs: Vec<Attr>,
    },
    /// A ChannelData message.
    ChannelData {
        /// Client index.
        client: u8,
        /// Channel 0x4000 + this.
        channel: u16,
        /// Payload length.
        len: u16,
        /// Padded to 4 bytes.
        pad: bool,
    },
    /// A signed packet sent before, again, from a client.
    Replay {
        /// Which packet.
        packet: u8,
        /// Client index.
        client: u8,
    },
    /// A peer datagram to a relay.
    PeerDatagram {
        /// Relay selector.
        relay: u8,
        /// Peer index.
        peer: u8,
        /// Payload length.
        len: u16,
    },
    /// An ICMP error about a datagram a relay sent.
    Icmp {
        /// Relay selector.
        relay: u8,
        /// Peer index.
        peer: u8,
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
        /// Error data.
        data: u32,
    },
    /// A peer connects to a TCP relay.
    PeerConnects {
        /// Relay selector.
        relay: u8,
        /// Peer index.
        peer: u8,
        /// Reuse a connection id in use.
        reuse: Option<u8>,
    },
    /// The outcome of a connection the host opened for a Connect.
    PeerConnected {
        /// Which pending connection.
        connection: u8,
        /// Whether it succeeded.
        ok: bool,
    },
    /// A peer data connection closes.
    PeerConnectionClosed {
        /// Which open connection.
        connection: u8,
    },
    /// A client's TCP or TLS connection closes.
    ConnectionClosed {
        /// Client index.
        client: u8,
    },
    /// A new configuration.
    Reconfigure(Box<ConfigChoice>),
    /// Time moves on by milliseconds.
    Advance(u16),
    /// Time moves on by seconds (up to 18 hours), with `handle_timeout` at every
    /// deadline, or (`late`) once at the end, as a runtime that slept through them.
    AdvanceSecs {
        /// Seconds.
        secs: u16,
        /// One late call instead of one per deadline.
        late: bool,
    },
    /// `handle_timeout` with no deadline due.
    Timeout,
    /// `set_redirect`.
    Redirect(bool),
    /// `set_draining`.
    Draining(bool),
    /// An operator revokes a user (for some seconds, or until lifted).
    Revoke {
        /// Which name.
        who: u8,
        /// For how long.
        secs: Option<u16>,
    },
    /// An operator lifts a revocation.
    Unrevoke {
        /// Which name.
        who: u8,
    },
    /// An operator ends sessions (all, or one user's).
    EndSessions {
        /// Which user, if any.
        who: Option<u8>,
    },
    /// The host changes: families, port range, TCP relays, connects that fail.
    Host {
        /// IPv4 relays.
        v4: bool,
        /// IPv6 relays.
        v6: bool,
        /// TCP relays.
        tcp: bool,
        /// Live relays allowed (0: unlimited).
        ports: u8,
        /// `connect_peer` fails.
        connect_fails: bool,
    },
}

/// The input: how the world starts, then the operations.
#[derive(Debug)]
pub struct Input {
    /// The configuration at start.
    pub config: ConfigChoice,
    /// REST credentials expire this many 8-second units after the start.
    pub rest_expiry: i16,
    /// The operations.
    pub ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let config = u.arbitrary()?;
        let rest_expiry = u.arbitrary()?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(u.arbitrary()?);
        }
        Ok(Self {
            config,
            rest_expiry,
            ops,
        })
    }
}

fn name(world: &World, who: u8) -> String {
    match who % 4 {
        0 => USERS[0].0.into(),
        1 => USERS[1].0.into(),
        2 => "user1".into(),
        // The REST username as sent.
        _ => world
            .clients
            .iter()
            .find(|c| c.username.contains(':'))
            .map_or_else(String::new, |c| c.username.clone()),
    }
}

fn session(world: &mut World, client: u8, peer: u8, channel: u8) {
    let ci = world.client_index(client);
    let sign = Some(Signing {
        sha256: false,
        fingerprint: false,
    });
    let stream = world.clients[ci].is_stream();
    let transport = if stream {
        Attr::TransportTcp
    } else {
        Attr::TransportUdp
    };
    world.request(ci, Method::ALLOCATE, &[transport], sign, None);
    world.request(
        ci,
        Method::CREATE_PERMISSION,
        &[Attr::Peer(peer)],
        sign,
        None,
    );
    if stream {
        world.request(ci, Method::CONNECT, &[Attr::Peer(peer)], sign, None);
        // The newest pending connect is the one just started: it succeeds.
        let Some(&id) = world.connecting.iter().next_back() else {
            return;
        };
        let last = world.connecting.len() - 1;
        world.peer_connected(u8::try_from(last).unwrap_or(u8::MAX), true);
        let data = world.client_index(client.wrapping_add(1));
        let bind = [Attr::RawConnection(id)];
        world.request(data, Method::CONNECTION_BIND, &bind, sign, None);
    } else {
        let attrs = [Attr::GoodChannel(channel), Attr::Peer(peer)];
        world.request(ci, Method::CHANNEL_BIND, &attrs, sign, None);
        apply(
            world,
            &Op::ChannelData {
                client,
                channel: u16::from(channel & 0x0F),
                len: 16,
                pad: false,
            },
        );
        let relay = world.host.live.keys().next_back().copied();
        if let Some(relay) = relay {
            let peer = world.peer(peer);
            world.peer_datagram(relay, peer, 16);
        }
    }
}

/// Applies one operation.
pub fn apply(world: &mut World, op: &Op) {
    match op {
        Op::Session {
            client,
            peer,
            channel,
        } => session(world, *client, *peer, *channel),
        Op::Raw { client, bytes } => {
            let ci = world.client_index(*client);
            world.client_send(ci, bytes, None);
        }
        Op::Request {
            client,
            method,
            attrs,
            signing,
            mutate,
        } => {
            let ci = world.client_index(*client);
            world.request(ci, method.method(), attrs, *signing, *mutate);
        }
        Op::Indication {
            client,
            send,
            attrs,
        } => {
            let ci = world.client_index(*client);
            let method = send.map_or(Method::SEND, |m| {
                Method::new(m & 0x0FFF).unwrap_or(Method::SEND)
            });
            let learnt = Learnt {
                peers: &world.peers,
                tokens: &world.tokens,
                tickets: &world.tickets,
                connections: &world.connections,
            };
            let (packet, _) = build(
                &mut world.clients[ci],
                method,
                Class::Indication,
                attrs,
                &learnt,
                None,
            );
            world.client_send(ci, &packet, None);
        }
        Op::ChannelData {
            client,
            channel,
            len,
            pad,
        } => {
            let ci = world.client_index(*client);
            let number = 0x4000u16.wrapping_add(*channel);
            let len = usize::from(*len % 1500);
            let mut packet = Vec::with_capacity(4 + len + 3);
            packet.extend_from_slice(&number.to_be_bytes());
            packet.extend_from_slice(&(len as u16).to_be_bytes());
            packet.extend((0..len).map(|i| i as u8));
            if *pad {
                packet.resize(packet.len().next_multiple_of(4), 0);
            }
            world.client_send(ci, &packet, None);
        }
        Op::Replay { packet, client } => {
            let ci = world.client_index(*client);
            world.replay(*packet, ci);
        }
        Op::PeerDatagram { relay, peer, len } => {
            let (relay, peer) = (world.relay(*relay), world.peer(*peer));
            world.peer_datagram(relay, peer, usize::from(*len % 1500));
        }
        Op::Icmp {
            relay,
            peer,
            icmp_type,
            code,
            data,
        } => {
            let (relay, peer) = (world.relay(*relay), world.peer(*peer));
            let icmp = Icmp {
                icmp_type: *icmp_type,
                code: *code,
                error_data: *data,
            };
            world.icmp(relay, peer, icmp);
        }
        Op::PeerConnects { relay, peer, reuse } => {
            let (relay, peer) = (world.relay(*relay), world.peer(*peer));
            world.peer_connects(relay, peer, *reuse);
        }
        Op::PeerConnected { connection, ok } => world.peer_connected(*connection, *ok),
        Op::PeerConnectionClosed { connection } => world.peer_connection_closed(*connection),
        Op::ConnectionClosed { client } => {
            let ci = world.client_index(*client);
            world.connection_closed(ci);
        }
        Op::Reconfigure(choice) => world.reconfigure(choice.build()),
        Op::Advance(ms) => world.advance(Duration::from_millis(u64::from(*ms))),
        Op::AdvanceSecs { secs, late: false } => {
            world.advance(Duration::from_secs(u64::from(*secs)));
        }
        Op::AdvanceSecs { secs, late: true } => {
            world.advance_late(Duration::from_secs(u64::from(*secs)));
        }
        Op::Timeout => world.spurious_timeout(),
        Op::Redirect(on) => world.server.set_redirect(*on),
        Op::Draining(on) => world.server.set_draining(*on),
        Op::Revoke { who, secs } => {
            let now = world.now();
            let unix = START_UNIX + world.elapsed.as_secs();
            let revocation = Revocation {
                name: name(world, *who),
                until: secs.map(|s| unix + u64::from(s)),
            };
            world.server.revoke(now, revocation, &mut world.host);
        }
        Op::Unrevoke { who } => {
            let n = name(world, *who);
            world.server.unrevoke(&n);
        }
        Op::EndSessions { who } => {
            let now = world.now();
            let filter = SessionFilter {
                user: who.map(|w| name(world, w)),
                ..SessionFilter::default()
            };
            world.server.end_sessions(now, &filter, &mut world.host);
        }
        Op::Host {
            v4,
            v6,
            tcp,
            ports,
            connect_fails,
        } => {
            world.host.v4 = *v4;
            world.host.v6 = *v6;
            world.host.tcp = *tcp;
            world.host.port_limit = if *ports == 0 {
                usize::MAX
            } else {
                usize::from(*ports % 8)
            };
            world.host.connect_fails = *connect_fails;
        }
    }
}

/// The `core_sequence` target: any bytes.
pub fn core_sequence(data: &[u8]) {
    let Ok(input) = Unstructured::new(data).arbitrary::<Input>() else {
        return;
    };
    run(&input);
}

/// Runs a decoded input: every operation, the invariants after each, then the end.
/// Returns how deep it went.
pub fn run(input: &Input) -> super::world::Depth {
    let mut world = World::new(&input.config, input.rest_expiry);
    world.check();
    for op in &input.ops {
        apply(&mut world, op);
        world.check();
    }
    world.finish();
    world.depth
}
