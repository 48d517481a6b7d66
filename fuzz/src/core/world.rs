//! [`World`]: one core, its host, a virtual clock and the cast, with every call to the
//! core wrapped in the checks of its output contract, and the invariants checked after
//! every operation ([`World::check`]) and at the end ([`World::finish`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use turnpike_proto::auth::rest::{mint, parse_rest_username};
use turnpike_proto::server::tcp_relay::TCP_MESSAGE_MAX;
use turnpike_proto::server::{ICMP_INDICATION_MAX, PEER_HEADROOM, PEER_TAILROOM, SessionFilter};
use turnpike_proto::stun::attr::{
    ConnectionId, ErrorCodeAttr, Icmp, MobilityTicket, ReservationToken,
};
use turnpike_proto::stun::{Class, Demux, Message, Method, demux};
use turnpike_proto::{
    ClientAction, CoreSetup, FiveTuple, PeerAction, RelayId, TimeBase, TurnConfig, TurnServer,
};

use super::client::{Attr, Client, Learnt, Signing, build};
use super::host::FuzzHost;
use super::setup::{ConfigChoice, SECRET, START_UNIX, USERS, cast, peers};

/// Most learnt values of each kind kept (tokens, tickets, connection ids, packets).
const KEEP: usize = 16;
/// Bytes of the output buffer for client answers (as the runtime's).
const OUT_LEN: usize = 2048;

/// The epoch of virtual time: the one clock reading of a run.
#[allow(clippy::disallowed_methods)] // virtual time starts here; nothing reads the clock again
fn epoch() -> Instant {
    Instant::now()
}

fn keep<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if v.contains(&item) {
        return;
    }
    if v.len() >= KEEP {
        v.remove(0);
    }
    v.push(item);
}

/// The error code of a STUN message, if it is an error response.
pub fn error_code(msg: &Message<&[u8]>) -> Option<u16> {
    if msg.message_type().class != Class::Error {
        return None;
    }
    msg.get::<ErrorCodeAttr>()
        .ok()
        .flatten()
        .map(|e| e.code.code())
}

/// How deep a run went: what the core did, counted (for corpus depth reports).
#[derive(Debug, Default, Clone, Copy)]
pub struct Depth {
    /// Most allocations alive at once.
    pub allocations: usize,
    /// Success answers.
    pub successes: u64,
    /// Datagrams relayed to peers (ChannelData and Send).
    pub to_peer: u64,
    /// Peer datagrams delivered to clients.
    pub to_client: u64,
    /// ConnectionBind successes (RFC 6062 pipes).
    pub binds: u64,
    /// Peer connections the host started for Connects.
    pub connects: u64,
}

/// One core, its host and everything the harness remembers.
pub struct World {
    /// What the core did.
    pub depth: Depth,
    /// The core.
    pub server: TurnServer,
    /// Its host.
    pub host: FuzzHost,
    /// The epoch.
    pub start: Instant,
    /// Virtual time since the epoch.
    pub elapsed: Duration,
    /// The clients ([`cast`]).
    pub clients: Vec<Client>,
    /// The peer table ([`peers`]).
    pub peers: Vec<SocketAddr>,
    /// (5-tuple, username) from which a request signed with that user's genuine
    /// credential was sent (built here, or replayed unchanged).
    pub authenticated: HashSet<(FiveTuple, String)>,
    /// RESERVATION-TOKENs seen in answers.
    pub tokens: Vec<[u8; 8]>,
    /// MOBILITY-TICKETs seen in answers.
    pub tickets: Vec<Vec<u8>>,
    /// CONNECTION-IDs seen in answers and indications.
    pub connections: Vec<ConnectionId>,
    /// Signed packets sent: bytes, username, whether the credential was genuine.
    pub signed: Vec<(Vec<u8>, String, bool)>,
    /// Connections the host started for a Connect whose outcome was not reported yet.
    pub connecting: BTreeSet<u32>,
    /// Client data connections piped to a peer connection (after a ConnectionBind).
    pub piped: HashMap<FiveTuple, ConnectionId>,
}

impl World {
    /// A world with the configuration `choice`; REST credentials expire `rest_expiry`
    /// seconds after the start (negative: already expired).
    pub fn new(choice: &ConfigChoice, rest_expiry: i16) -> Self {
        let start = epoch();
        let config = Arc::new(choice.build());
        let mut setup = CoreSetup::new(
            [0x5A; 32],
            TimeBase {
                instant: start,
                unix_secs: START_UNIX,
            },
        );
        setup.rng_seed = 7;
        let server = TurnServer::new(Arc::clone(&config), setup).expect("valid static users");
        let expiry = START_UNIX.saturating_add_signed(i64::from(rest_expiry) * 8);
        let (rest_user, rest_pw) = mint(SECRET.as_bytes(), "user1", expiry);
        let clients = cast()
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let (user, pw, genuine) = match c.who {
                    0 => (USERS[0].0, USERS[0].1, true),
                    1 => (USERS[1].0, USERS[1].1, true),
                    2 => (rest_user.as_str(), rest_pw.as_str(), true),
                    _ => (USERS[0].0, "not-alice-pw", false),
                };
                Client::new(c.ft, user, pw, genuine, i as u64 + 1)
            })
            .collect();
        Self {
            depth: Depth::default(),
            server,
            host: FuzzHost::new(config),
            start,
            elapsed: Duration::ZERO,
            clients,
            peers: peers(),
            authenticated: HashSet::new(),
            tokens: Vec::new(),
            tickets: Vec::new(),
            connections: Vec::new(),
            signed: Vec::new(),
            connecting: BTreeSet::new(),
            piped: HashMap::new(),
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.start + self.elapsed
    }

    /// The index of a client.
    pub fn client_index(&self, i: u8) -> usize {
        usize::from(i) % self.clients.len()
    }

    /// A peer of the table.
    pub fn peer(&self, i: u8) -> SocketAddr {
        self.peers[usize::from(i) % self.peers.len()]
    }

    /// A relay id: one live in the host, or (one time in a few) one that is not.
    pub fn relay(&self, i: u8) -> RelayId {
        let live: Vec<RelayId> = self.host.live.keys().copied().collect();
        let n = usize::from(i) % (live.len() + 1);
        live.get(n)
            .copied()
            .unwrap_or_else(|| RelayId(u32::from(i) + 10_000))
    }

    fn configure_host(&mut self) {
        self.host.config = Arc::clone(self.server.config());
    }

    /// Swaps in a new configuration; the policy check follows it.
    pub fn reconfigure(&mut self, config: TurnConfig) {
        self.server
            .reconfigure(Arc::new(config))
            .expect("valid static users");
        self.configure_host();
        // A new policy drops the permissions and channels it refuses.
        let policy = &self.server.config().peers;
        for s in self.server.sessions(self.now(), &SessionFilter::default()) {
            for ip in &s.permissions {
                assert!(
                    policy.verdict(*ip).is_ok(),
                    "permission for {ip} survived a policy that refuses it"
                );
            }
            for (n, peer) in &s.channels {
                assert!(
                    policy.check(*peer).is_ok(),
                    "channel {n:#x} to {peer} survived a policy that refuses it"
                );
            }
        }
        // RFC 6062 connections to refused peers are closed by a sweep the reconfiguration
        // makes due at once: the runtime's timer fires now, as it would.
        let now = self.now();
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.timeout(now);
        }
    }

    // ----- client side ----------------------------------------------------------------

    /// Hands `packet` from client `ci` to the core and checks the output. `auth` names the
    /// username whose genuine credential signed the packet, if any. Returns the answer.
    pub fn client_send(&mut self, ci: usize, packet: &[u8], auth: Option<&str>) -> Option<Vec<u8>> {
        let ft = self.clients[ci].ft;
        if self.piped.contains_key(&ft) {
            // A data connection carries raw bytes to its peer; the core never sees them.
            return None;
        }
        if let Some(user) = auth {
            self.authenticated.insert((ft, user.to_owned()));
        }
        let mut out = vec![0u8; OUT_LEN];
        let now = self.now();
        let action = self
            .server
            .handle_client(now, ft, packet, &mut out, &mut self.host);
        // Connections the host started for a Connect wait for their outcome.
        self.depth.connects += self.host.started.len() as u64;
        self.connecting
            .extend(self.host.started.drain(..).map(|c| c.0));
        match action {
            ClientAction::None => None,
            ClientAction::Reply(n) | ClientAction::ReplyFrom { len: n, .. } => {
                assert!(n <= out.len(), "answer longer than the buffer");
                let reply = out[..n].to_vec();
                self.check_answer(ci, packet, &reply, auth.is_some());
                Some(reply)
            }
            ClientAction::ToPeer {
                relay,
                peer,
                payload,
                dont_fragment: _,
            } => {
                assert!(
                    payload.start <= payload.end && payload.end <= packet.len(),
                    "payload {payload:?} outside a {}-byte packet",
                    packet.len()
                );
                if demux(packet) == Demux::ChannelData {
                    // The payload is the data, never the padding (RFC 8656 §12.5).
                    let len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
                    assert_eq!(payload, 4..4 + len, "ChannelData payload range");
                }
                self.check_to_peer(ft, relay, peer);
                self.depth.to_peer += 1;
                None
            }
            ClientAction::Forward { shard } => {
                panic!("one core (shard 0), yet a packet was forwarded to shard {shard}")
            }
            ClientAction::BindData { reply, connection } => {
                assert!(ft.transport.is_stream(), "BindData on a datagram 5-tuple");
                assert!(reply <= out.len(), "answer longer than the buffer");
                let msg = Message::new_checked(&out[..reply]).expect("a STUN answer");
                assert_eq!(msg.message_type().class, Class::Success);
                assert!(
                    self.host.open_connections.contains_key(&connection.0),
                    "bound to connection {connection:?}, which the host does not have open"
                );
                self.piped.insert(ft, connection);
                self.depth.binds += 1;
                None
            }
        }
    }

    fn check_answer(&mut self, ci: usize, packet: &[u8], reply: &[u8], authenticated: bool) {
        let msg = Message::new_checked(reply).expect("every answer is a valid STUN message");
        let code = error_code(&msg);
        if msg.message_type().class == Class::Success {
            self.depth.successes += 1;
        }
        let client = &self.clients[ci];
        let binding = msg.message_type().method == Method::BINDING;
        if !client.is_stream() && !authenticated && !binding {
            // RFC 8656 §7 / RFC 8489 §6.3: the source may be spoofed; only the challenge
            // (needed by every new client) may be larger than twice the request.
            assert!(
                reply.len() <= 2 * packet.len() || code == Some(401),
                "a {}-byte answer ({code:?}) to {} unauthenticated bytes over UDP",
                reply.len(),
                packet.len()
            );
        }
        if matches!(code, Some(401 | 438)) {
            self.clients[ci].learn(&msg);
        }
        self.learn(&msg);
    }

    /// Remembers tokens, tickets and connection ids the server handed out.
    fn learn(&mut self, msg: &Message<&[u8]>) {
        if let Ok(Some(t)) = msg.get::<ReservationToken>() {
            keep(&mut self.tokens, t.0);
        }
        if let Ok(Some(t)) = msg.get::<MobilityTicket>() {
            if !t.0.is_empty() {
                keep(&mut self.tickets, t.0.to_vec());
            }
        }
        if let Ok(Some(c)) = msg.get::<ConnectionId>() {
            keep(&mut self.connections, c);
        }
    }

    fn check_to_peer(&self, ft: FiveTuple, relay: RelayId, peer: SocketAddr) {
        let addr = self
            .host
            .live
            .get(&relay)
            .unwrap_or_else(|| panic!("relayed from {relay:?}, which is not live"));
        assert!(
            self.server.config().peers.check(peer).is_ok(),
            "relayed to {peer}, which the peer policy refuses"
        );
        let filter = SessionFilter::default();
        let sessions = self.server.sessions(self.now(), &filter);
        let session = sessions
            .iter()
            .find(|s| s.five_tuple == ft)
            .expect("relayed for a 5-tuple without a live allocation");
        assert!(
            session.relayed.contains(addr),
            "relayed from {addr}, not a relay of the sender's allocation"
        );
    }

    /// A request from client `ci`, with the 401 dance first when no nonce is known and
    /// one retry after a 438 (as a real client does). `mutate` flips bits of the signed
    /// request before it is sent (it must then not authenticate).
    pub fn request(
        &mut self,
        ci: usize,
        method: Method,
        attrs: &[Attr],
        signing: Option<Signing>,
        mutate: Option<(u16, u8)>,
    ) {
        if signing.is_some() && self.clients[ci].nonce.is_none() {
            let first = self.send_built(ci, Method::ALLOCATE, &[Attr::TransportUdp], None, None);
            if first.is_none() {
                return;
            }
        }
        let reply = self.send_built(ci, method, attrs, signing, mutate);
        let stale = reply
            .as_deref()
            .and_then(|r| Message::new_checked(r).ok().and_then(|m| error_code(&m)))
            == Some(438);
        if stale && signing.is_some() {
            self.send_built(ci, method, attrs, signing, mutate);
        }
    }

    fn send_built(
        &mut self,
        ci: usize,
        method: Method,
        attrs: &[Attr],
        signing: Option<Signing>,
        mutate: Option<(u16, u8)>,
    ) -> Option<Vec<u8>> {
        let learnt = Learnt {
            peers: &self.peers,
            tokens: &self.tokens,
            tickets: &self.tickets,
            connections: &self.connections,
        };
        let client = &mut self.clients[ci];
        let (mut packet, signed) = build(client, method, Class::Request, attrs, &learnt, signing);
        let genuine = signed && client.genuine;
        let user = client.username.clone();
        if signed {
            keep(&mut self.signed, (packet.clone(), user.clone(), genuine));
        }
        // Flip bits the integrity covers: everything but a trailing FINGERPRINT, which a
        // flip may turn into an unknown attribute after the integrity, to be ignored
        // (RFC 8489 §14.5), leaving a genuine request.
        let trailer = if signing.is_some_and(|s| s.fingerprint) {
            8
        } else {
            0
        };
        let covered = packet.len().saturating_sub(trailer);
        let mutated = match mutate {
            Some((at, bits)) if bits != 0 && covered > 0 => {
                packet[usize::from(at) % covered] ^= bits;
                true
            }
            _ => false,
        };
        let auth = (genuine && !mutated).then_some(user.as_str());
        self.client_send(ci, &packet, auth)
    }

    /// Sends a signed packet sent before (unchanged) from client `ci`.
    pub fn replay(&mut self, packet: u8, ci: usize) {
        if self.signed.is_empty() {
            return;
        }
        let (bytes, user, genuine) = self.signed[usize::from(packet) % self.signed.len()].clone();
        let auth = genuine.then_some(user.as_str());
        self.client_send(ci, &bytes, auth);
    }

    // ----- peer side ------------------------------------------------------------------

    /// A datagram of `len` bytes from `peer` to `relay`.
    pub fn peer_datagram(&mut self, relay: RelayId, peer: SocketAddr, len: usize) {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut buf = vec![0xEE; PEER_HEADROOM + len + PEER_TAILROOM];
        let range = PEER_HEADROOM..PEER_HEADROOM + len;
        buf[range.clone()].copy_from_slice(&payload);
        let now = self.now();
        let action = self
            .server
            .handle_peer(now, relay, peer, &mut buf, range.clone());
        let PeerAction::ToClient { to, range: out } = action else {
            return;
        };
        assert!(
            out.start <= out.end && out.end <= buf.len(),
            "range {out:?} outside the buffer"
        );
        assert_eq!(&buf[range], &payload[..], "the payload is never moved");
        let bytes = &buf[out];
        super::stream::check_peer_output(to, peer, bytes, &payload);
        self.depth.to_client += 1;
        let sessions = self.server.sessions(now, &SessionFilter::default());
        let session = sessions
            .iter()
            .find(|s| s.five_tuple == to)
            .expect("delivered to a 5-tuple without a live allocation");
        let relay_addr = self.host.live.get(&relay).expect("a live relay");
        assert!(
            session.relayed.contains(relay_addr),
            "delivered by another allocation's relay"
        );
        let ip = turnpike_proto::policy::normalise(peer.ip());
        assert!(
            session.permissions.contains(&ip),
            "delivered from {peer} without a permission"
        );
    }

    /// An ICMP error about a datagram `relay` sent to `peer`.
    pub fn icmp(&mut self, relay: RelayId, peer: SocketAddr, icmp: Icmp) {
        let mut buf = vec![0xEE; ICMP_INDICATION_MAX];
        let now = self.now();
        if let PeerAction::ToClient { range, .. } = self
            .server
            .handle_peer_icmp(now, relay, peer, icmp, &mut buf)
        {
            assert!(range.end <= buf.len(), "range {range:?} outside the buffer");
            let msg = Message::new_checked(&buf[range]).expect("a STUN Data indication");
            assert_eq!(msg.message_type().method, Method::DATA);
            assert!(
                matches!(msg.get::<Icmp>(), Ok(Some(_))),
                "no ICMP attribute"
            );
        }
    }

    fn peer_message(&mut self, action: PeerAction, out: &[u8]) -> bool {
        let PeerAction::ToClient { to, range } = action else {
            return false;
        };
        assert!(range.end <= out.len(), "range {range:?} outside the buffer");
        assert!(
            to.transport.is_stream(),
            "an RFC 6062 message to a UDP client"
        );
        let msg = Message::new_checked(&out[range]).expect("a STUN message");
        self.learn(&msg);
        true
    }

    /// A peer connects to TCP relay `relay`, with a fresh connection id or one in use.
    pub fn peer_connects(&mut self, relay: RelayId, peer: SocketAddr, reuse: Option<u8>) {
        let open: Vec<u32> = self.host.open_connections.keys().copied().collect();
        let id = match reuse {
            Some(i) if !open.is_empty() => ConnectionId(open[usize::from(i) % open.len()]),
            _ => self.host.new_connection_id(),
        };
        let mut out = vec![0u8; TCP_MESSAGE_MAX];
        let now = self.now();
        let action = self
            .server
            .handle_peer_connection(now, relay, peer, id, &mut out);
        let kept = self.peer_message(action, &out);
        if kept {
            self.host.open_connections.insert(id.0, peer);
        }
    }

    /// The host reports the outcome of a connection it opened for a Connect.
    pub fn peer_connected(&mut self, i: u8, connected: bool) {
        let pending: Vec<u32> = self.connecting.iter().copied().collect();
        let id = if pending.is_empty() {
            ConnectionId(u32::from(i))
        } else {
            ConnectionId(pending[usize::from(i) % pending.len()])
        };
        self.connecting.remove(&id.0);
        let mut out = vec![0u8; TCP_MESSAGE_MAX];
        let now = self.now();
        let action = self
            .server
            .handle_peer_connected(now, id, connected, &mut out);
        let answered = self.peer_message(action, &out);
        if !answered || !connected {
            // The core does not want it (or it failed): the runtime closes it.
            self.host.open_connections.remove(&id.0);
        }
    }

    /// A peer data connection closes; the runtime closes the client side bound to it.
    pub fn peer_connection_closed(&mut self, i: u8) {
        let open: Vec<u32> = self.host.open_connections.keys().copied().collect();
        let Some(&raw) = open.get(usize::from(i) % open.len().max(1)) else {
            return;
        };
        let id = ConnectionId(raw);
        self.host.open_connections.remove(&raw);
        self.connecting.remove(&raw);
        let now = self.now();
        self.server.handle_peer_connection_closed(now, id);
        let bound: Vec<FiveTuple> = self
            .piped
            .iter()
            .filter(|(_, c)| **c == id)
            .map(|(ft, _)| *ft)
            .collect();
        for ft in bound {
            self.piped.remove(&ft);
            self.server
                .handle_connection_closed(now, ft, &mut self.host);
        }
    }

    /// Client `ci`'s TCP or TLS connection closes.
    pub fn connection_closed(&mut self, ci: usize) {
        let ft = self.clients[ci].ft;
        if !ft.transport.is_stream() {
            return;
        }
        self.piped.remove(&ft);
        let now = self.now();
        self.server
            .handle_connection_closed(now, ft, &mut self.host);
    }

    // ----- time -----------------------------------------------------------------------

    fn timeout(&mut self, at: Instant) {
        self.server.handle_timeout(at, &mut self.host);
        assert!(
            self.server.poll_timeout().is_none_or(|t| t > at),
            "after handle_timeout the next deadline must be later"
        );
    }

    /// Moves time on by `d`, running `handle_timeout` at every deadline crossed.
    pub fn advance(&mut self, d: Duration) {
        let target = self.elapsed + d;
        while let Some(t) = self.server.poll_timeout() {
            let at = t.saturating_duration_since(self.start).max(self.elapsed);
            if at > target {
                break;
            }
            self.elapsed = at;
            self.timeout(self.now());
            self.drain();
        }
        self.elapsed = target;
    }

    /// Moves time on by `d` as a runtime that slept through its deadlines does: one
    /// `handle_timeout` at the end, if a deadline passed.
    pub fn advance_late(&mut self, d: Duration) {
        self.elapsed += d;
        if self.server.poll_timeout().is_some_and(|t| t <= self.now()) {
            self.timeout(self.now());
            self.drain();
        }
    }

    /// `handle_timeout` called when no deadline is due (a runtime may do that).
    pub fn spurious_timeout(&mut self) {
        self.timeout(self.now());
    }

    /// Takes what the core queued: messages (checked) and events.
    pub fn drain(&mut self) {
        while let Some(t) = self.server.poll_transmit() {
            assert!(
                t.to.transport.is_stream(),
                "a queued message for a UDP client"
            );
            let msg = Message::new_checked(&t.message[..]).expect("a STUN message");
            assert_eq!(msg.message_type().method, Method::CONNECT);
        }
        while self.server.poll_event().is_some() {}
    }

    // ----- invariants -------------------------------------------------------------------

    /// Checks the invariants that hold between any two operations.
    pub fn check(&mut self) {
        self.drain();
        let now = self.now();
        let count = self.server.allocation_count();
        self.depth.allocations = self.depth.allocations.max(count);
        let sessions = self.server.sessions(now, &SessionFilter::default());
        for s in &sessions {
            assert!(
                self.authenticated
                    .contains(&(s.five_tuple, s.username.to_string())),
                "an allocation for {:?} as {:?}, which never authenticated there",
                s.five_tuple,
                s.username
            );
        }
        assert_eq!(
            u64::from(self.host.ledger.total()),
            count as u64,
            "the quota ledger and the table disagree"
        );
        // A kernel route still in force belongs to a live allocation's 5-tuple and one of
        // its channels, and a peer the policy allows.
        for r in self.host.routes.iter().filter(|r| r.until > now) {
            let s = sessions.iter().find(|s| s.id == r.allocation);
            let s = s.unwrap_or_else(|| panic!("a route in force for a gone allocation: {r:?}"));
            assert_eq!(s.five_tuple, r.client, "a route for another 5-tuple");
            assert!(
                s.channels.contains(&(r.channel.value(), r.peer)),
                "a route in force for a channel the allocation does not have: {r:?}"
            );
            assert!(
                s.permissions.contains(&r.peer.ip()),
                "a route in force without a permission: {r:?}"
            );
        }
        assert_eq!(
            self.host.slots_held(),
            count as u64,
            "slots held by the host"
        );
        if sessions.len() == count {
            let relays: usize = sessions.iter().map(|s| s.relayed.len()).sum();
            assert_eq!(
                self.host.live.len(),
                relays + self.host.reservations.len(),
                "relays live in the host vs the allocations' and the reservations"
            );
            let mut per_user: HashMap<&str, u32> = HashMap::new();
            for s in &sessions {
                let user = parse_rest_username(&s.username).map_or(&*s.username, |r| r.user);
                *per_user.entry(user).or_insert(0) += 1;
            }
            for (user, n) in &per_user {
                assert_eq!(self.host.held.get(*user), Some(n), "slots of {user}");
            }
        }
        let holds = count > 0
            || self.server.peer_connection_count() > 0
            || !self.host.reservations.is_empty();
        match self.server.poll_timeout() {
            Some(t) => assert!(t > now, "a deadline in the past"),
            None => assert!(!holds, "the core holds state that expires, but no deadline"),
        }
    }

    /// Lets everything run out: reports every connect the host never heard back about
    /// as failed (a runtime always learns the outcome), moves time on past every
    /// lifetime, and checks that nothing is left anywhere.
    pub fn finish(&mut self) {
        while !self.connecting.is_empty() {
            self.peer_connected(0, false);
        }
        self.check();
        // Longest lifetime: 16 minutes; nonces do not matter, reservations (30 s),
        // answers (40 s) and RFC 6062 timeouts (30 s) are shorter. A late runtime: the
        // first sweep removes everything, the second finds nothing and stops the timer.
        self.advance_late(Duration::from_secs(3600));
        self.advance_late(Duration::from_secs(3600));
        self.check();
        assert_eq!(self.server.allocation_count(), 0, "allocations left");
        assert_eq!(
            self.server.peer_connection_count(),
            0,
            "peer connections left"
        );
        assert!(
            self.host.live.is_empty(),
            "relays left: {:?}",
            self.host.live
        );
        assert!(self.host.reservations.is_empty(), "reservations left");
        assert!(
            self.host.routes.is_empty(),
            "kernel routes left: {:?}",
            self.host.routes
        );
        assert!(
            self.host.kernel_allocations.is_empty(),
            "kernel allocation state left"
        );
        assert_eq!(self.host.ledger.total(), 0, "quota slots left");
        assert!(
            self.host.held.is_empty(),
            "quota slots left: {:?}",
            self.host.held
        );
        assert!(
            self.host.open_connections.is_empty(),
            "peer connections left open: {:?}",
            self.host.open_connections
        );
        assert!(self.server.poll_timeout().is_none(), "a timer left");
    }
}
