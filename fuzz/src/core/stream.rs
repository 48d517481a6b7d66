//! `stream_session`: the server side of TCP/TLS stream sessions, without sockets.
//!
//! The runtime's loop (`crates/server/src/stream.rs`, `read_loop`) is async and needs a
//! worker's `Shared` state (tokio, relay sockets), so it cannot be driven here. This
//! harness does what that loop does with the same pieces: bytes arrive in arbitrary
//! chunks, `framing::next_frame` cuts frames (closing the connection on garbage or a
//! frame over 20 + 65535 bytes, as the runtime does), each frame goes to
//! `TurnServer::handle_client` on the stream 5-tuple, and after a ConnectionBind success
//! the connection stops carrying STUN. Besides the invariants of [`World`], it checks:
//!
//! - every answer is exactly one frame, and what the server writes to a stream client
//!   (answers, ChannelData and Data indications from peers, RFC 6062 messages) is a
//!   sequence of whole frames a client can cut with `next_frame`, nothing left over;
//! - ChannelData to a stream client is padded to a multiple of 4 (RFC 8656 §12.5), the
//!   padding is zero and not part of the data; payload relayed to a peer never includes
//!   the client's padding.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use turnpike_proto::server::PEER_HEADROOM;
use turnpike_proto::stun::attr::XorPeerAddress;
use turnpike_proto::stun::framing::{Frame, Framing, next_frame};
use turnpike_proto::stun::{AttrType, ChannelData, Class, Demux, Message, Method, demux};
use turnpike_proto::{FiveTuple, PeerAction};

use super::World;
use super::client::{Attr, Learnt, Signing, build};
use super::sequence::MethodPick;
use super::setup::ConfigChoice;

/// The largest frame a stream may carry (as the runtime's `MAX_FRAME`).
pub const MAX_FRAME: usize = 20 + 65_535;
/// Most operations decoded from one input.
pub const MAX_OPS: usize = 200;

/// Checks a message the core wrote for a peer's datagram of `payload` from `peer`.
pub fn check_peer_output(to: FiveTuple, peer: SocketAddr, bytes: &[u8], payload: &[u8]) {
    let stream = to.transport.is_stream();
    match demux(bytes) {
        Demux::ChannelData => {
            let cd = ChannelData::new_checked(bytes).expect("valid ChannelData");
            assert_eq!(cd.data(), payload, "ChannelData carries the payload");
            if stream {
                // RFC 8656 §12.5: over TCP and TLS, padded to a multiple of 4 bytes.
                assert_eq!(bytes.len(), (4 + payload.len()).next_multiple_of(4));
                assert!(
                    bytes[4 + payload.len()..].iter().all(|&b| b == 0),
                    "padding"
                );
            } else {
                assert_eq!(bytes.len(), 4 + payload.len(), "no padding over UDP");
            }
        }
        Demux::Stun => {
            let msg = Message::new_checked(bytes).expect("a valid Data indication");
            let ty = msg.message_type();
            assert_eq!((ty.method, ty.class), (Method::DATA, Class::Indication));
            let from = msg
                .get::<XorPeerAddress>()
                .ok()
                .flatten()
                .expect("XOR-PEER-ADDRESS");
            let want = SocketAddr::new(turnpike_proto::policy::normalise(peer.ip()), peer.port());
            assert_eq!(from.0, want, "XOR-PEER-ADDRESS names the peer");
            let data = msg.raw(AttrType::DATA).expect("DATA");
            assert_eq!(data.value, payload, "DATA carries the payload");
        }
        Demux::Other => panic!("neither STUN nor ChannelData to a client"),
    }
    if stream {
        assert_eq!(
            whole_frames(bytes),
            Some(1),
            "one frame per message to a stream client"
        );
    }
}

/// How many whole frames `bytes` is, or `None` if it is not a sequence of whole frames.
pub fn whole_frames(mut bytes: &[u8]) -> Option<usize> {
    let mut n = 0;
    while !bytes.is_empty() {
        match next_frame(bytes) {
            Framing::Frame(Frame::Stun(len) | Frame::ChannelData(len)) => {
                bytes = &bytes[len..];
                n += 1;
            }
            _ => return None,
        }
    }
    Some(n)
}

/// One operation of a stream session.
#[derive(Debug, Clone, Arbitrary)]
pub enum StreamOp {
    /// A relaying session set up in one step (so the fuzzer starts from deep state
    /// cheaply): Allocate (UDP relay), CreatePermission and ChannelBind for `peer`, a
    /// padded ChannelData, all delivered, then a datagram back from the peer.
    Session {
        /// Connection.
        conn: u8,
        /// Peer index.
        peer: u8,
        /// Channel 0x4000 + this (low 4 bits).
        channel: u8,
    },
    /// Queue any bytes on a connection's wire.
    Bytes {
        /// Connection (a stream client of the cast).
        conn: u8,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Queue a well-formed request (signed after the 401 dance when asked).
    Request {
        /// Connection.
        conn: u8,
        /// Method.
        method: MethodPick,
        /// Attributes.
        attrs: Vec<Attr>,
        /// Signed.
        signing: Option<Signing>,
    },
    /// Queue a ChannelData message, padded or not.
    ChannelData {
        /// Connection.
        conn: u8,
        /// Channel 0x4000 + this (low 4 bits).
        channel: u8,
        /// Payload length.
        len: u16,
        /// Padded (RFC 8656 §12.5 requires it on streams).
        pad: bool,
    },
    /// Deliver the next `n` queued bytes of a connection to the server.
    Deliver {
        /// Connection.
        conn: u8,
        /// How many bytes.
        n: u16,
    },
    /// Deliver everything queued on a connection.
    Flush {
        /// Connection.
        conn: u8,
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
    /// A connection closes.
    Close {
        /// Connection.
        conn: u8,
    },
    /// Time moves on by seconds (one late `handle_timeout`).
    Advance(u16),
}

/// One stream connection: what is queued on the wire and what the server has read.
#[derive(Default)]
struct Conn {
    wire: Vec<u8>,
    read: Vec<u8>,
    /// Everything the server wrote to this client, in order.
    written: Vec<u8>,
}

struct Session {
    world: World,
    /// Cast indices of the stream clients.
    streams: Vec<usize>,
    conns: HashMap<usize, Conn>,
}

impl Session {
    fn client(&self, conn: u8) -> usize {
        self.streams[usize::from(conn) % self.streams.len()]
    }

    fn queue(&mut self, ci: usize, bytes: &[u8]) {
        self.conns
            .entry(ci)
            .or_default()
            .wire
            .extend_from_slice(bytes);
    }

    /// Delivers `n` bytes and serves every whole frame, as the runtime's read loop.
    fn deliver(&mut self, ci: usize, n: usize) {
        let ft = self.world.clients[ci].ft;
        let conn = self.conns.entry(ci).or_default();
        let n = n.min(conn.wire.len());
        let chunk: Vec<u8> = conn.wire.drain(..n).collect();
        if self.world.piped.contains_key(&ft) {
            // A data connection: raw bytes to the peer, not the core's.
            return;
        }
        conn.read.extend_from_slice(&chunk);
        loop {
            let conn = self.conns.entry(ci).or_default();
            let len = match next_frame(&conn.read) {
                Framing::Frame(Frame::Stun(len) | Frame::ChannelData(len)) => len,
                Framing::NeedMore(need) if need > MAX_FRAME => return self.close(ci),
                Framing::NeedMore(_) => return,
                Framing::Garbage => return self.close(ci),
            };
            let frame: Vec<u8> = conn.read.drain(..len).collect();
            let reply = self.world.client_send(ci, &frame, None);
            if let Some(reply) = reply {
                assert_eq!(whole_frames(&reply), Some(1), "an answer is one frame");
                self.conns
                    .entry(ci)
                    .or_default()
                    .written
                    .extend_from_slice(&reply);
            }
            if self.world.piped.contains_key(&ft) {
                // ConnectionBind succeeded: what follows is the peer's.
                self.conns.entry(ci).or_default().read.clear();
                return;
            }
        }
    }

    fn close(&mut self, ci: usize) {
        self.world.connection_closed(ci);
        self.check_written(ci);
        self.conns.remove(&ci);
    }

    fn check_written(&self, ci: usize) {
        if let Some(conn) = self.conns.get(&ci) {
            assert!(
                whole_frames(&conn.written).is_some(),
                "the server's bytes to a stream client are not whole frames"
            );
        }
    }

    fn peer_datagram(&mut self, relay: u8, peer: u8, len: usize) {
        let (relay, peer) = (self.world.relay(relay), self.world.peer(peer));
        // The world checks the message; here it joins its connection's byte stream.
        let payload: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0x5A).collect();
        let mut buf = vec![0xEE; PEER_HEADROOM + len + 3];
        let range = PEER_HEADROOM..PEER_HEADROOM + len;
        buf[range.clone()].copy_from_slice(&payload);
        let now = self.world.now();
        let action = self
            .world
            .server
            .handle_peer(now, relay, peer, &mut buf, range);
        if let PeerAction::ToClient { to, range } = action {
            assert!(range.end <= buf.len(), "range outside the buffer");
            check_peer_output(to, peer, &buf[range.clone()], &payload);
            self.world.depth.to_client += 1;
            let ci = self.world.clients.iter().position(|c| c.ft == to);
            if let Some(ci) = ci.filter(|_| to.transport.is_stream()) {
                let conn = self.conns.entry(ci).or_default();
                conn.written.extend_from_slice(&buf[range]);
            }
        }
    }
}

/// The input: configuration, then operations.
#[derive(Debug)]
pub struct StreamInput {
    /// The configuration.
    pub config: ConfigChoice,
    /// The operations.
    pub ops: Vec<StreamOp>,
}

impl<'a> Arbitrary<'a> for StreamInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let config = u.arbitrary()?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(u.arbitrary()?);
        }
        Ok(Self { config, ops })
    }
}

/// The `stream_session` target: any bytes.
pub fn stream_session(data: &[u8]) {
    let Ok(input) = Unstructured::new(data).arbitrary::<StreamInput>() else {
        return;
    };
    run(&input);
}

/// Runs a decoded input; returns how deep it went.
pub fn run(input: &StreamInput) -> super::world::Depth {
    let world = World::new(&input.config, 1000);
    let streams = (0..world.clients.len())
        .filter(|&i| world.clients[i].is_stream())
        .collect();
    let mut s = Session {
        world,
        streams,
        conns: HashMap::new(),
    };
    for op in &input.ops {
        apply(&mut s, op);
        s.world.check();
        let cis: Vec<usize> = s.conns.keys().copied().collect();
        for ci in cis {
            s.check_written(ci);
        }
    }
    let cis: Vec<usize> = s.conns.keys().copied().collect();
    for ci in cis {
        s.deliver(ci, usize::MAX);
        s.check_written(ci);
    }
    s.world.finish();
    s.world.depth
}

fn apply(s: &mut Session, op: &StreamOp) {
    match op {
        StreamOp::Session {
            conn,
            peer,
            channel,
        } => {
            let signing = Some(Signing {
                sha256: false,
                fingerprint: false,
            });
            let steps = [
                (MethodPick::Allocate, vec![Attr::TransportUdp]),
                (MethodPick::CreatePermission, vec![Attr::Peer(*peer)]),
                (
                    MethodPick::ChannelBind,
                    vec![Attr::GoodChannel(*channel), Attr::Peer(*peer)],
                ),
            ];
            for (method, attrs) in steps {
                let conn = *conn;
                apply(
                    s,
                    &StreamOp::Request {
                        conn,
                        method,
                        attrs,
                        signing,
                    },
                );
            }
            let (conn, channel) = (*conn, *channel);
            apply(
                s,
                &StreamOp::ChannelData {
                    conn,
                    channel,
                    len: 13,
                    pad: true,
                },
            );
            apply(s, &StreamOp::Flush { conn });
            if let Some(&relay) = s.world.host.live.keys().next_back() {
                let relay = s.world.host.live.keys().position(|r| *r == relay);
                let relay = relay.and_then(|r| u8::try_from(r).ok()).unwrap_or(0);
                s.peer_datagram(relay, *peer, 21);
            }
        }
        StreamOp::Bytes { conn, bytes } => {
            let ci = s.client(*conn);
            s.queue(ci, bytes);
        }
        StreamOp::Request {
            conn,
            method,
            attrs,
            signing,
        } => {
            let ci = s.client(*conn);
            if signing.is_some() && s.world.clients[ci].nonce.is_none() {
                // The 401 dance on this connection, delivered at once.
                queue_built(s, ci, Method::ALLOCATE, &[Attr::TransportUdp], None);
                s.deliver(ci, usize::MAX);
            }
            queue_built(s, ci, method.method(), attrs, *signing);
        }
        StreamOp::ChannelData {
            conn,
            channel,
            len,
            pad,
        } => {
            let ci = s.client(*conn);
            let len = usize::from(*len % 1500);
            let mut frame = vec![0x40, channel & 0x0F];
            frame.extend_from_slice(&(len as u16).to_be_bytes());
            frame.extend((0..len).map(|i| i as u8));
            if *pad {
                frame.resize(frame.len().next_multiple_of(4), 0);
            }
            s.queue(ci, &frame);
        }
        StreamOp::Deliver { conn, n } => {
            let ci = s.client(*conn);
            s.deliver(ci, usize::from(*n));
        }
        StreamOp::Flush { conn } => {
            let ci = s.client(*conn);
            s.deliver(ci, usize::MAX);
        }
        StreamOp::PeerDatagram { relay, peer, len } => {
            s.peer_datagram(*relay, *peer, usize::from(*len % 1500));
        }
        StreamOp::Close { conn } => {
            let ci = s.client(*conn);
            s.close(ci);
        }
        StreamOp::Advance(secs) => s.world.advance_late(Duration::from_secs(u64::from(*secs))),
    }
}

/// Builds a request and queues it; a genuine signature counts as authenticating the
/// connection's 5-tuple once queued (it may still be cut off by garbage before it).
fn queue_built(s: &mut Session, ci: usize, method: Method, attrs: &[Attr], sign: Option<Signing>) {
    let w = &mut s.world;
    let learnt = Learnt {
        peers: &w.peers,
        tokens: &w.tokens,
        tickets: &w.tickets,
        connections: &w.connections,
    };
    let client = &mut w.clients[ci];
    let (packet, signed) = build(client, method, Class::Request, attrs, &learnt, sign);
    if signed && client.genuine {
        let user = client.username.clone();
        w.authenticated.insert((client.ft, user));
    }
    s.queue(ci, &packet);
}
