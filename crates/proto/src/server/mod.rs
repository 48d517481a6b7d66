//! [`TurnServer`]: the sans-IO TURN server (RFC 8656 for UDP relays, RFC 6156 address
//! families), with the STUN Binding service built in.
//!
//! # Driving it
//!
//! The runtime calls, in any order and always with a non-decreasing `now`:
//! - [`TurnServer::handle_client`] for every datagram or stream frame from a client;
//! - [`TurnServer::handle_peer`] for every datagram a relay socket receives;
//! - [`TurnServer::handle_timeout`] whenever [`TurnServer::poll_timeout`]'s deadline
//!   has passed, and then [`TurnServer::poll_transmit`] until it returns `None`;
//! - [`TurnServer::handle_connection_closed`] when a TCP or TLS client connection ends;
//! - [`TurnServer::handle_peer_icmp`] for an ICMP error about a datagram a relay sent
//!   (RFC 8656 §11.5);
//! - for TCP relays (RFC 6062, see [`tcp_relay`]): [`TurnServer::handle_peer_connected`]
//!   when a connection the host opened for a Connect succeeded or failed,
//!   [`TurnServer::handle_peer_connection`] when a peer connected to a TCP relay, and
//!   [`TurnServer::handle_peer_connection_closed`] when a peer data connection ended.
//!
//! Each handler returns what to send right away. The one output that is queued is a
//! Connect that timed out in a sweep (its 447 answer): [`TurnServer::poll_transmit`]
//! hands it out. Relay sockets, TCP connections, reservations and allocation slots are
//! obtained through the [`Host`] passed in.
//!
//! A runtime's loop, in outline, with a host that has no relay addresses (enough for the
//! Binding service; a real host binds relay sockets, see [`Host`]):
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! use turnpike_proto::host::{BoundRelay, Family, Host, PortRequest, RelayError, RelayId};
//! use turnpike_proto::quota::{QuotaExceeded, QuotaLedger, Quotas};
//! use turnpike_proto::{
//!     ClientAction, ClientTransport, CoreSetup, FiveTuple, PeerAction, TimeBase, TurnConfig,
//!     TurnServer,
//! };
//!
//! struct NoRelays(QuotaLedger);
//!
//! impl Host for NoRelays {
//!     fn bind_relay(&mut self, _: Family, _: PortRequest) -> Result<BoundRelay, RelayError> {
//!         Err(RelayError::FamilyUnavailable)
//!     }
//!     fn release_relay(&mut self, _: RelayId) {}
//!     fn supports(&self, _: Family) -> bool {
//!         false
//!     }
//!     fn hold_reservation(&mut self, _: [u8; 8], _: RelayId, _: SocketAddr, _: Instant) {}
//!     fn claim_reservation(&mut self, _: [u8; 8], _: Instant) -> Option<(RelayId, SocketAddr)> {
//!         None
//!     }
//!     fn expire_reservations(&mut self, _: Instant) {}
//!     fn acquire_allocation(&mut self, q: &Quotas, user: &str) -> Result<(), QuotaExceeded> {
//!         self.0.acquire(q, user)
//!     }
//!     fn release_allocation(&mut self, user: &str) {
//!         self.0.release(user);
//!     }
//! }
//!
//! // The runtime reads the clock (here once); the core never does.
//! let start = Instant::now();
//! let time_base = TimeBase { instant: start, unix_secs: 1_700_000_000 };
//! let config = Arc::new(TurnConfig::default()); // shared by every core
//! let setup = CoreSetup::new(*b"a random secret, 32 bytes long!!", time_base);
//! let mut core = TurnServer::new(config, setup).unwrap();
//! let mut host = NoRelays(QuotaLedger::default());
//!
//! // A datagram arrives from a client: a STUN Binding request.
//! let from = FiveTuple {
//!     client: "192.0.2.10:40000".parse().unwrap(),
//!     server: "198.51.100.1:3478".parse().unwrap(),
//!     transport: ClientTransport::Udp,
//! };
//! let request = [0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
//! let mut out = [0u8; 1500];
//! let now = start + Duration::from_millis(5);
//! match core.handle_client(now, from, &request, &mut out, &mut host) {
//!     // Send `out[..n]` back to `from.client` from `from.server`.
//!     ClientAction::Reply(n) => assert!(n > 20, "a Binding success with XOR-MAPPED-ADDRESS"),
//!     // Send `request[payload]` from relay `relay` to `peer`.
//!     ClientAction::ToPeer { .. } => unreachable!(),
//!     // RFC 5780 answers from another address, RFC 6062 pipes, another core's packet.
//!     _ => {}
//! }
//!
//! // A datagram arrives on relay `relay` from `peer` (with PEER_HEADROOM bytes in front
//! // of the payload in `buf`): `core.handle_peer(now, relay, peer, &mut buf, payload)`
//! // gives `PeerAction::ToClient { to, range }`: send `buf[range]` to `to`.
//! let _: Option<PeerAction> = None;
//!
//! // Timers: when `poll_timeout` has passed, sweep, then send what the sweep queued.
//! if core.poll_timeout().is_some_and(|t| t <= now) {
//!     core.handle_timeout(now, &mut host);
//! }
//! while let Some(transmit) = core.poll_transmit() {
//!     let _ = (transmit.to, transmit.message); // send to the client
//! }
//! ```
//!
//! # Where things are
//!
//! One module per method family, each handler taking one `Request` (time, 5-tuple,
//! message, authenticated user): [`allocate`](self) (Allocate: a typed request parsed
//! first, then applied, undone by a guard on failure), `refresh` (Refresh and mobility
//! moves), `permission` (CreatePermission, ChannelBind), `data` (ChannelData, Send and
//! Data indications, peer datagrams, ICMP), [`tcp_relay`] (RFC 6062), `sweep` (expiry
//! and teardown), `respond` (signing and error answers). The allocations themselves live
//! in an `AllocationTable` ([`crate::table`]).
//!
//! # Redirection
//!
//! With alternates configured ([`TurnConfig::alternates`]), an Allocate that would fail
//! for lack of capacity (508: the server's allocation quota, or no relay port left), or
//! every new Allocate while [`TurnServer::set_redirect`] is on, is answered with 300 Try
//! Alternate and an ALTERNATE-SERVER (RFC 8489 §10) of the client's address family,
//! round-robin over the list for the client's transport. The 300 is sent only after the
//! request authenticated and is signed like any other answer, so the client can trust it
//! (RFC 8489 §10, RFC 8656 §7.2); TLS clients also get ALTERNATE-DOMAIN (RFC 8489
//! §14.16) when one is configured.
//!
//! # RFC 5780
//!
//! With [`TurnConfig::rfc5780`], Binding requests received on the configured addresses
//! get NAT behaviour discovery (see [`crate::binding`]): the runtime listens on all four
//! (per family), passes the receiving address as [`FiveTuple::server`], and sends a
//! [`ClientAction::ReplyFrom`] with the socket bound to its `from` address.
//!
//! # Timers
//!
//! There is no timer per allocation, permission or channel: every expiry is checked
//! when the item is used, and a sweep once per second (driven by `handle_timeout`)
//! removes what has expired. Virtual time makes the sweep deterministic in tests.

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use turnpike_stun::attr::{
    ConnectionId, ErrorCodeAttr, Lifetime, MobilityTicket, RequestedTransport, UnknownAttributes,
};
use turnpike_stun::{
    AttrType, Class, Demux, ErrorCode, Message, MessageType, Method, TransactionId, demux,
};

use crate::HashMap;
use crate::allocation::{Cached, ClientTransport, FiveTuple};
use crate::auth::rest::parse_rest_username;
use crate::auth::{AuthFailure, AuthReject, Authenticated, BadUser, Credentials};
use crate::binding::{BindingConfig, BindingService, Response};
use crate::config::{CoreSetup, TimeBase, TurnConfig};
use crate::host::Host;
use crate::mobility::{TicketKey, ticket_subject};
use crate::policy::{DenyRule, normalise};
use crate::table::{AllocationId, AllocationTable};

use self::allocate::TokenKey;
use self::tcp_relay::PeerConnection;

pub use self::operator::{Revocation, Session, SessionFilter};
pub use self::output::{
    AllocationRecord, ClientAction, EndReason, Event, PeerAction, Reject, Transmit,
};
pub use self::stats::{
    Gauges, Histogram, LIFETIME_BOUNDS_SECS, RelayFamilies, Stats, VOLUME_BOUNDS_BYTES,
};

mod allocate;
mod data;
pub mod offload;
mod operator;
mod output;
mod permission;
mod refresh;
mod respond;
mod stats;
mod sweep;
pub mod tcp_relay;
mod unproven;

/// Most bytes an answer to an unauthenticated UDP request may be per byte of the request
/// (the source may be spoofed: the answer must not amplify). The Binding service keeps
/// to the same bound for its errors ([`crate::binding::MAX_ERROR_AMPLIFICATION`]).
pub const MAX_UNPROVEN_AMPLIFICATION: usize = 2;

/// Most [`Event::AuthFailed`] and [`Event::PeerDenied`] notices queued at once; more are
/// counted in [`Stats`] but not queued, so a flood of bad requests cannot grow memory.
pub const MAX_QUEUED_NOTICES: usize = 256;

/// Default allocation lifetime (RFC 8656 §3.2: 10 minutes).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
/// Permission lifetime (RFC 8656 §9: 300 seconds).
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Channel binding lifetime (RFC 8656 §12: 10 minutes).
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// After a channel binding expires, its number and peer stay reserved this long (RFC 8656
/// §12: "the channel number MUST NOT be rebound to a different transport address, and the
/// transport address MUST NOT be bound to a different channel, for 5 minutes").
pub const CHANNEL_COOLDOWN: Duration = Duration::from_secs(300);
/// How long a port reserved by EVEN-PORT's R bit waits for its RESERVATION-TOKEN
/// (RFC 8656 §7.2: about 30 seconds).
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);
/// How long a response is kept for retransmissions (RFC 8489 §6.3.4: 40 s covers Ti).
pub const TRANSACTION_CACHE: Duration = Duration::from_secs(40);
/// Sweep period.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes a peer datagram needs in front of its payload, for the longest header written
/// in place (a Data indication with an IPv6 XOR-PEER-ADDRESS).
pub const PEER_HEADROOM: usize = 48;
/// Bytes a peer datagram needs after its payload (padding to 4).
pub const PEER_TAILROOM: usize = 3;
/// Bytes [`TurnServer::handle_peer_icmp`] may write: a Data indication with an IPv6
/// XOR-PEER-ADDRESS and an ICMP attribute.
pub const ICMP_INDICATION_MAX: usize = 20 + 4 + 20 + 4 + 8;

/// One authenticated request, as every method handler sees it.
pub(crate) struct Request<'a> {
    /// The current time.
    pub(crate) now: Instant,
    /// Where it came from.
    pub(crate) from: FiveTuple,
    /// The request (integrity and fingerprint verified).
    pub(crate) msg: &'a Message<&'a [u8]>,
    /// Who sent it, and the key its answer is signed with.
    pub(crate) auth: &'a Authenticated,
}

impl Request<'_> {
    /// The request's transaction ID.
    pub(crate) fn tid(&self) -> TransactionId {
        self.msg.transaction_id()
    }

    /// The type of its success response.
    pub(crate) fn success(&self) -> MessageType {
        self.msg.message_type().success()
    }

    /// The type of its error response.
    pub(crate) fn error(&self) -> MessageType {
        self.msg.message_type().error()
    }
}

/// Outcome of a method handler: bytes written (success) or a reason to refuse.
type Handled = Result<usize, Reject>;

/// What a request led to, beyond "an answer of n bytes".
enum Outcome {
    /// `out[..n]` answers the request.
    Reply(usize),
    /// The answer comes later (a Connect waiting for its peer connection).
    Deferred,
    /// ConnectionBind succeeded: answer, then pipe.
    BindData(usize, ConnectionId),
    /// Another core's request: hand it there.
    Forward(u8),
}

/// The TURN server core.
pub struct TurnServer {
    /// The configuration, shared with the runtime's other cores; what is derived from it
    /// (credentials, the Binding service) is prepared in [`TurnServer::new`] and again
    /// in [`TurnServer::reconfigure`].
    config: Arc<TurnConfig>,
    credentials: Credentials,
    binding: BindingService,
    nonce_secret: Vec<u8>,
    token_key: TokenKey,
    ticket_key: TicketKey,
    time_base: TimeBase,
    /// This core's index among the runtime's (it goes into MOBILITY-TICKETs).
    shard: u8,
    rng: u64,
    /// Redirecting every new Allocate (draining); starts as configured.
    redirect: bool,
    alternate_turn: u64,
    table: AllocationTable,
    /// RFC 6062 peer data connections by id, pending or bound.
    connections: HashMap<ConnectionId, PeerConnection>,
    /// RFC 6062 client data connections (bound by ConnectionBind) and their peer side.
    data_clients: HashMap<FiveTuple, ConnectionId>,
    transmits: VecDeque<Transmit>,
    /// What the core reports ([`TurnServer::poll_event`]).
    events: VecDeque<Event>,
    /// Reservations this core handed to the host and has not seen expire (the sweep
    /// keeps running until the last one's deadline).
    reservations_until: Option<Instant>,
    next_sweep: Option<Instant>,
    stats: Stats,
    /// Revoked users and usernames, with when each lapses (unix seconds; `None`: until
    /// lifted). Kept across reconfigurations.
    revoked: HashMap<Box<str>, Option<u64>>,
    /// Refusing new Allocates to stop ([`TurnServer::set_draining`]).
    draining: bool,
    /// Session numbers handed out.
    serials: u64,
    /// Bytes answered to unproven sources, when `[quotas] unauthenticated_bytes_per_sec`
    /// is set (made on first use).
    unproven: Option<unproven::UnprovenBudget>,
}

impl core::fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TurnServer")
            .field("allocations", &self.table.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The credentials a configuration names, prepared (static users' keys derived).
///
/// The nonce key comes from the first REST secret when there is one, so every server of
/// a fleet sharing that secret accepts the others' nonces: a client redirected by a
/// draining server (300) goes on with the nonce it has instead of being told 438, which
/// Chromium takes as a failure after a redirect. Without a secret (static users only) it
/// is the process's own random key.
fn credentials(config: &TurnConfig, nonce_secret: &[u8]) -> Result<Credentials, BadUser> {
    let turn = &config.turn;
    let fleet_key = turn
        .secrets
        .first()
        .map(|secret| crate::auth::nonce::fleet_nonce_secret(secret.as_bytes()));
    Credentials::new(
        turn.realm.clone(),
        turn.secrets.iter().map(|s| s.as_bytes().to_vec()).collect(),
        &turn.users,
        fleet_key.as_ref().map_or(nonce_secret, |k| &k[..]),
        turn.nonce_lifetime.as_secs().min(u64::from(u32::MAX)) as u32,
    )
}

/// The Binding service a configuration describes.
fn binding(config: &TurnConfig) -> BindingService {
    BindingService::new(BindingConfig {
        software: config.stun.software().map(str::to_owned),
        rfc5780: config.rfc5780,
    })
}

impl TurnServer {
    /// A core with its configuration (shared with the runtime's other cores) and what
    /// the runtime gives it.
    ///
    /// # Errors
    ///
    /// A static user whose password cannot be prepared.
    pub fn new(config: Arc<TurnConfig>, setup: CoreSetup) -> Result<Self, BadUser> {
        Ok(Self {
            credentials: credentials(&config, &setup.nonce_secret)?,
            binding: binding(&config),
            token_key: TokenKey::new(&setup.nonce_secret),
            ticket_key: TicketKey::new(&setup.nonce_secret),
            nonce_secret: setup.nonce_secret,
            time_base: setup.time_base,
            shard: setup.shard,
            rng: setup.rng_seed ^ 0x9E37_79B9_7F4A_7C15,
            redirect: config.alternates.redirect,
            alternate_turn: 0,
            table: AllocationTable::default(),
            connections: HashMap::default(),
            data_clients: HashMap::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            reservations_until: None,
            next_sweep: None,
            stats: Stats::default(),
            revoked: HashMap::default(),
            draining: false,
            serials: 0,
            unproven: None,
            config,
        })
    }

    /// Swaps in a new configuration, leaving every allocation, permission, channel and
    /// connection as it is: from the next call on, requests are authenticated against
    /// the new realm, secrets and users, peers are checked against the new policy, and
    /// quotas, lifetimes, alternates and the Binding service follow the new values.
    /// Redirection follows the new `[alternates] redirect`. Nonces stay valid (same
    /// secret), except that a changed realm makes clients authenticate again (438).
    ///
    /// # Errors
    ///
    /// A static user whose password cannot be prepared; the old configuration stays.
    pub fn reconfigure(&mut self, config: Arc<TurnConfig>) -> Result<(), BadUser> {
        self.credentials = credentials(&config, &self.nonce_secret)?;
        self.binding = binding(&config);
        self.redirect = config.alternates.redirect;
        let policy_changed = config.peers != self.config.peers;
        // A new bandwidth cap, or new per-user limits the kernel reads from budgets it
        // shares (published by the sweep's `sync_offload`).
        let cap_changed = config.quotas.bandwidth_bytes_per_sec
            != self.config.quotas.bandwidth_bytes_per_sec
            || config.quotas.user_limits() != self.config.quotas.user_limits();
        self.config = config;
        if policy_changed {
            self.drop_refused_peers();
        }
        // RFC 6062 connections to refused peers are closed, and kernel routes to them
        // withdrawn (or their bandwidth cap or user limits changed), by the next sweep
        // (it needs the host): make it due at once.
        let offloaded = self
            .table
            .ids()
            .any(|id| self.table[id].offloaded.is_some());
        if (policy_changed && !self.connections.is_empty())
            || ((policy_changed || cap_changed) && offloaded)
        {
            self.next_sweep = Some(self.time_base.instant);
        }
        Ok(())
    }

    /// After a new peer policy: permissions and channels it refuses are removed, so the
    /// data paths (which rely on the permission) follow the policy in force.
    fn drop_refused_peers(&mut self) {
        let policy = &self.config.peers;
        for id in self.table.ids() {
            let a = &mut self.table[id];
            a.permissions.retain(|p| policy.verdict(p.ip).is_ok());
            a.channels.retain(|c| policy.check(c.peer).is_ok());
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Arc<TurnConfig> {
        &self.config
    }

    /// Allocations alive.
    pub fn allocation_count(&self) -> usize {
        self.table.len()
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        self.credentials.realm()
    }

    /// When [`TurnServer::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_sweep
    }

    /// The next message the core queued for a client, if any: call after
    /// [`TurnServer::handle_timeout`] until it returns `None`. The queue holds at most
    /// one message per pending RFC 6062 Connect, so it is bounded by the connection
    /// limits.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Starts (true) or stops (false) redirecting every new Allocate to an alternate
    /// server, e.g. to drain this one; existing allocations are untouched. Without an
    /// alternate of the client's transport and family, Allocates are served as usual.
    pub fn set_redirect(&mut self, redirect: bool) {
        self.redirect = redirect;
    }

    /// Whether every new Allocate is being redirected.
    pub fn redirecting(&self) -> bool {
        self.redirect
    }

    /// RFC 6062 peer data connections alive, pending or bound.
    pub fn peer_connection_count(&self) -> usize {
        self.connections.len()
    }

    fn unix_now(&self, now: Instant) -> u64 {
        let base = self.time_base;
        base.unix_secs + now.saturating_duration_since(base.instant).as_secs()
    }

    fn next_random(&mut self) -> u64 {
        // SplitMix64: deterministic from the seed, good enough for transaction IDs.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A transaction ID for an indication the server originates.
    fn random_tid(&mut self) -> TransactionId {
        let mut tid = [0u8; 12];
        tid[..8].copy_from_slice(&self.next_random().to_be_bytes());
        tid[8..].copy_from_slice(&(self.next_random() as u32).to_be_bytes());
        TransactionId(tid)
    }

    fn schedule_sweep(&mut self, now: Instant) {
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + SWEEP_INTERVAL);
        }
    }

    // ----- client side ------------------------------------------------------------------

    /// Handles a datagram (or stream frame) from a client. Responses are written into
    /// `out` (1500 bytes is plenty, except for an RFC 5780 Binding request with PADDING,
    /// whose answer is as long as the request plus
    /// [`RESPONSE_OVERHEAD`](crate::binding::RESPONSE_OVERHEAD) and SOFTWARE, see
    /// [`BindingConfig::max_response_len`]; one that does not fit gets no answer);
    /// relayed payloads point into `packet`. `from.server` must be the local address
    /// the packet arrived on for RFC 5780 to be served.
    pub fn handle_client(
        &mut self,
        now: Instant,
        from: FiveTuple,
        packet: &[u8],
        out: &mut [u8],
        host: &mut impl Host,
    ) -> ClientAction {
        match demux(packet) {
            Demux::ChannelData => self.client_channel_data(now, from, packet),
            Demux::Stun => {
                let action = self.client_stun(now, from, packet, out, host);
                self.within_unproven_budget(now, from, action)
            }
            Demux::Other => ClientAction::None,
        }
    }

    /// Holds back an answer to an unproven UDP source over its byte budget (see
    /// [`unproven`]); answers to sources with an allocation, and over streams, pass.
    fn within_unproven_budget(
        &mut self,
        now: Instant,
        from: FiveTuple,
        action: ClientAction,
    ) -> ClientAction {
        let rate = self.config.quotas.unauthenticated_bytes_per_sec;
        let (ClientAction::Reply(len) | ClientAction::ReplyFrom { len, .. }) = action else {
            return action;
        };
        if rate == 0
            || from.transport != ClientTransport::Udp
            || self.table.by_five_tuple(&from).is_some()
        {
            return action;
        }
        let budget = self
            .unproven
            .get_or_insert_with(|| unproven::UnprovenBudget::new(&self.nonce_secret, now));
        if budget.take(from.client.ip(), now, len, rate) {
            action
        } else {
            self.stats.unproven_over_budget += 1;
            ClientAction::None
        }
    }

    fn client_stun(
        &mut self,
        now: Instant,
        from: FiveTuple,
        packet: &[u8],
        out: &mut [u8],
        host: &mut impl Host,
    ) -> ClientAction {
        let Ok(msg) = Message::new_checked(packet) else {
            // Malformed: the Binding service applies the drop / 400-if-not-larger rule.
            return self.binding_answer(packet, from, out);
        };
        if msg.verify_fingerprint().is_err() {
            return ClientAction::None;
        }
        let ty = msg.message_type();
        match (ty.class, ty.method) {
            (_, Method::BINDING) => self.binding_answer(packet, from, out),
            (Class::Indication, Method::SEND) => self.send_indication(now, from, &msg),
            (Class::Request, _) => self.request(now, from, &msg, out, host),
            _ => ClientAction::None,
        }
    }

    fn binding_answer(&self, packet: &[u8], from: FiveTuple, out: &mut [u8]) -> ClientAction {
        match self.binding.handle_tuple(packet, from, out) {
            Response::Send(n) => ClientAction::Reply(n),
            Response::SendFrom { len, from, to } => ClientAction::ReplyFrom { len, from, to },
            Response::Ignore(_) => ClientAction::None,
        }
    }

    /// A request other than Binding: retransmission cache, authentication (RFC 8489
    /// §9.2), unknown attributes (§6.3.1.1), then the method's handler; the answer is
    /// kept for retransmissions.
    fn request(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<&[u8]>,
        out: &mut [u8],
        host: &mut impl Host,
    ) -> ClientAction {
        let ty = msg.message_type();
        let tid = msg.transaction_id();
        let udp = from.transport == ClientTransport::Udp;
        let request_len = msg.as_bytes().len();
        // A retransmission gets the very same answer (RFC 8489 §6.3.4) — over UDP only if
        // it does not amplify: a genuine retransmission is as large as the request that
        // was answered, a spoofed header with its transaction ID is not.
        if let Some(bytes) = self.table.answer(&from, tid, ty.method, now, out.len()) {
            if udp && bytes.len() > request_len * MAX_UNPROVEN_AMPLIFICATION {
                return ClientAction::None;
            }
            out[..bytes.len()].copy_from_slice(bytes);
            return ClientAction::Reply(bytes.len());
        }
        // Over UDP the source may be spoofed: an unsigned request is answered only when
        // it is what a new client starts with, a well-formed Allocate, or a moved client's
        // Refresh with its MOBILITY-TICKET (RFC 8016 §3.2); every other request of a
        // genuine client is signed (RFC 8656 §5), so anything else unsigned is silence
        // rather than a 401 several times its size.
        let signed = msg.has_integrity() || msg.has_integrity_sha256();
        let challengeable = is_challengeable(msg);
        if udp && !signed && !challengeable {
            return ClientAction::None;
        }
        // A stranger (no allocation on this 5-tuple) gets an answer to anything else only
        // once it proved its credentials, and then no larger than its request (the 437 of
        // RFC 8656 §7.3 / §9.2 / §11.2 is the answer it can expect).
        let stranger = udp && !challengeable && self.table.by_five_tuple(&from).is_none();
        // Only the TURN methods of a UDP client may be answered (a signed Allocate's 400,
        // the 437 a client that lost its allocation gets, or the 438 that precedes them);
        // any other method from a stranger is silence, before any HMAC is spent on it.
        if stranger
            && !matches!(
                ty.method,
                Method::ALLOCATE
                    | Method::REFRESH
                    | Method::CREATE_PERMISSION
                    | Method::CHANNEL_BIND
            )
        {
            return ClientAction::None;
        }
        let unix_now = self.unix_now(now);
        let nonce_for = nonce_scope(&from);
        let auth = match self.credentials.authenticate(msg, nonce_for, unix_now) {
            Ok(a) if self.is_revoked(&a.username, unix_now) => {
                Err(AuthReject::Unauthenticated(AuthFailure::Revoked))
            }
            other => other,
        };
        let auth = match auth {
            Ok(a) => a,
            Err(reject) => {
                if let Some(failure) = reject.failure() {
                    self.note_auth_failure(from, msg, failure);
                }
                // The challenge is never cut: a new client needs it, and its size is set
                // by the realm (84 bytes for the smallest Allocate with the shipped
                // defaults, see `docs/THREAT_MODEL.md`). The other refusals answer a
                // signed request, which carries REALM and NONCE itself: one larger than
                // twice its request is not a genuine client's, and gets silence.
                let cap = match (udp, reject) {
                    (false, _) | (true, AuthReject::Challenge) => usize::MAX,
                    // A stranger's signed request with a stale nonce (a client whose
                    // allocation and nonce ran out) gets its 438, never larger than it.
                    _ if stranger => request_len,
                    _ => request_len * MAX_UNPROVEN_AMPLIFICATION,
                };
                return match self.auth_error(out, msg, nonce_for, unix_now, reject) {
                    Ok(n) if n > cap => ClientAction::None,
                    Ok(n) => ClientAction::Reply(n),
                    Err(_) => ClientAction::None,
                };
            }
        };
        let req = Request {
            now,
            from,
            msg,
            auth: &auth,
        };
        let written = match self.dispatch(&req, out, host) {
            Ok(Outcome::Reply(n)) => Ok(n),
            // Nothing to send or cache yet: the answer comes with the peer connection's
            // outcome. Streams do not retransmit (RFC 8489 §6.2.2).
            Ok(Outcome::Deferred) => return ClientAction::None,
            // The connection turns into a raw pipe: nothing to cache either.
            Ok(Outcome::BindData(reply, connection)) => {
                return ClientAction::BindData { reply, connection };
            }
            // Nothing happened here: the core that owns the state answers.
            Ok(Outcome::Forward(shard)) => return ClientAction::Forward { shard },
            Err(reject) => self.refuse(&req, out, reject),
        };
        let Ok(n) = written else {
            return ClientAction::None;
        };
        if stranger && n > request_len {
            return ClientAction::None;
        }
        self.table.remember(
            from,
            Cached {
                tid,
                method: ty.method,
                bytes: out[..n].into(),
                until: now + TRANSACTION_CACHE,
            },
        );
        self.schedule_sweep(now);
        ClientAction::Reply(n)
    }

    /// Hands an authenticated request to its method's handler. RFC 8489 §6.3.1.1: after
    /// authentication, unknown comprehension-required attributes are answered with 420.
    fn dispatch(
        &mut self,
        req: &Request<'_>,
        out: &mut [u8],
        host: &mut impl Host,
    ) -> Result<Outcome, Reject> {
        let mut unknown = [AttrType(0); 8];
        let mut n_unknown = 0;
        for t in req.msg.unknown_comprehension_required() {
            if n_unknown < unknown.len() && !unknown[..n_unknown].contains(&t) {
                unknown[n_unknown] = t;
                n_unknown += 1;
            }
        }
        if n_unknown > 0 {
            let list = &unknown[..n_unknown];
            return self
                .write_answer(out, &self.answer(req, req.error()), |w| {
                    w.put(&ErrorCodeAttr::new(ErrorCode::UNKNOWN_ATTRIBUTE))?;
                    w.put(&UnknownAttributes::List(list))
                })
                .map(Outcome::Reply)
                .map_err(|_| Reject::BadRequest);
        }
        if let Some(shard) = self.owner_elsewhere(req, host) {
            return Ok(Outcome::Forward(shard));
        }
        match req.msg.message_type().method {
            Method::ALLOCATE => self.allocate(req, out, host).map(Outcome::Reply),
            Method::REFRESH | Method::CREATE_PERMISSION | Method::CHANNEL_BIND => {
                let n = match req.msg.message_type().method {
                    Method::REFRESH => self.refresh(req, out, host)?,
                    Method::CREATE_PERMISSION => self.create_permission(req, out)?,
                    _ => self.channel_bind(req, out)?,
                };
                // A route may have appeared or moved (a new deadline, a moved client).
                if let Some(id) = self.table.by_five_tuple(&req.from) {
                    self.sync_offload(id, req.now, host);
                }
                Ok(Outcome::Reply(n))
            }
            Method::CONNECT => self.connect(req, host),
            Method::CONNECTION_BIND => self.connection_bind(req, out),
            _ => Err(Reject::BadRequest),
        }
    }

    /// The other core that holds what a request names: the issuer of a Refresh's genuine
    /// MOBILITY-TICKET, or the maker of a ConnectionBind's CONNECTION-ID.
    fn owner_elsewhere(&self, req: &Request<'_>, host: &impl Host) -> Option<u8> {
        let shard = match req.msg.message_type().method {
            // A 5-tuple with an allocation here cannot take over another one (437,
            // answered here: the other core does not know this 5-tuple is taken).
            Method::REFRESH if self.table.by_five_tuple(&req.from).is_some() => return None,
            Method::REFRESH => {
                let ticket = req.msg.get::<MobilityTicket>().ok()??;
                let place = self.ticket_key.open(ticket.0)?;
                ticket_subject(place).0
            }
            Method::CONNECTION_BIND => {
                let id = req.msg.get::<ConnectionId>().ok()??;
                host.shard_of(id)?
            }
            _ => return None,
        };
        (shard != self.shard).then_some(shard)
    }

    /// The caller's live allocation on the request's 5-tuple: 437 if there is none (or
    /// it is past its lifetime: gone, RFC 8656 §2.2, even if the sweep has not removed
    /// it yet, so a refresh never revives it), 441 if another user made it.
    fn allocation_for(&self, req: &Request<'_>) -> Result<AllocationId, Reject> {
        let id = self
            .table
            .by_five_tuple(&req.from)
            .ok_or(Reject::AllocationMismatch)?;
        let alloc = self
            .table
            .get(id)
            .filter(|a| a.is_live(req.now))
            .ok_or(Reject::AllocationMismatch)?;
        if *alloc.username != *req.auth.username {
            return Err(Reject::WrongCredentials);
        }
        Ok(id)
    }

    /// The lifetime to grant for a requested one (RFC 8656 §7.2 step "LIFETIME"): the
    /// smaller of the request and the maximum, but never below the default.
    fn granted_lifetime(&self, requested: Option<Lifetime>) -> Duration {
        let max = self.config.turn.max_lifetime;
        let desired = requested.map_or(DEFAULT_LIFETIME, |l| Duration::from_secs(u64::from(l.0)));
        desired.min(max).max(DEFAULT_LIFETIME.min(max))
    }
}

/// What a nonce is bound to: a UDP client's transport address; for a client over TCP or
/// TLS, its IP alone (port 0, which no UDP source has), because RFC 6062 clients sign the
/// ConnectionBind on a new data connection with the nonce of their control connection
/// (coturn's `turnutils_uclient -T` does, and gives up on a 438). A nonce still works only
/// from the address it was issued to.
impl TurnServer {
    /// Counts a refused credential and queues its notice (within
    /// [`MAX_QUEUED_NOTICES`]).
    fn note_auth_failure(&mut self, from: FiveTuple, msg: &Message<&[u8]>, reason: AuthFailure) {
        self.stats.auth_failures[reason.index()] += 1;
        if self.events.len() >= MAX_QUEUED_NOTICES {
            return;
        }
        let username = msg
            .get::<turnpike_stun::attr::Username>()
            .ok()
            .flatten()
            .map(|u| {
                let mut end = u.0.len().min(64);
                while !u.0.is_char_boundary(end) {
                    end -= 1;
                }
                Box::from(&u.0[..end])
            });
        self.events.push_back(Event::AuthFailed {
            from,
            username,
            reason,
        });
    }

    /// Counts a peer refused by policy and queues its notice (within
    /// [`MAX_QUEUED_NOTICES`]).
    pub(crate) fn note_peer_denied(&mut self, from: FiveTuple, peer: SocketAddr, rule: DenyRule) {
        self.stats.peer_denied[rule.index()] += 1;
        if self.events.len() < MAX_QUEUED_NOTICES {
            self.events
                .push_back(Event::PeerDenied { from, peer, rule });
        }
    }
}

/// Whether an unsigned request gets the 401 challenge over UDP: an Allocate with the one
/// attribute RFC 8656 §7.2 requires, REQUESTED-TRANSPORT, or a Refresh with a
/// MOBILITY-TICKET (a client that moved, RFC 8016 §3.2).
fn is_challengeable(msg: &Message<&[u8]>) -> bool {
    match msg.message_type().method {
        Method::ALLOCATE => matches!(msg.get::<RequestedTransport>(), Ok(Some(_))),
        Method::REFRESH => matches!(msg.get::<MobilityTicket>(), Ok(Some(_))),
        _ => false,
    }
}

fn nonce_scope(from: &FiveTuple) -> SocketAddr {
    if from.transport.is_stream() {
        SocketAddr::new(from.client.ip(), 0)
    } else {
        from.client
    }
}

/// The name a quota counts: the user part of a REST username, else the username.
fn quota_user(username: &str) -> &str {
    parse_rest_username(username).map_or(username, |r| r.user)
}

fn normalise_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(normalise(addr.ip()), addr.port())
}
