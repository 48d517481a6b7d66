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
//! hands it out. Relay sockets, TCP connections and allocation slots are obtained
//! through the [`Host`] passed in.
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

use core::net::{IpAddr, SocketAddr};
use core::ops::Range;
use core::time::Duration;
use std::time::Instant;

use std::collections::VecDeque;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use turnpike_stun::attr::{
    AdditionalAddressFamily, AddressErrorCode, AddressFamily, AlternateDomain, AlternateServer,
    ConnectionId, DontFragment, ErrorCodeAttr, EvenPort, Icmp, Lifetime, MobilityTicket, Nonce,
    PasswordAlgorithms, Realm, RequestedAddressFamily, RequestedTransport, ReservationToken,
    Software, TransportProtocol, UnknownAttributes, XorMappedAddress, XorPeerAddress,
    XorRelayedAddress,
};
use turnpike_stun::{
    AttrType, ChannelData, ChannelNumber, Class, Demux, EncodeError, ErrorCode, IntegrityKey,
    IntegrityKind, LongTermKey, Message, MessageType, MessageWriter, Method, TransactionId, ct_eq,
    demux, write_channel_data_header,
};

use crate::HashMap;
use crate::allocation::{
    Allocation, ChannelBinding, ClientTransport, FiveTuple, Mobility, Permission, Relay,
    family_index, push_lean,
};
use crate::auth::rest::parse_rest_username;
use crate::auth::{AuthReject, Authenticated, BadUser, Credentials, OFFERED_ALGORITHMS};
use crate::binding::{BindingConfig, BindingService, Response, Rfc5780Addresses};
use crate::host::{Family, Host, PortRequest, RelayError, RelayId};
use crate::policy::{PeerPolicy, normalise};
use crate::quota::{QuotaExceeded, Quotas, TokenBucket};

use self::index::TupleIndex;
use self::mobility::{TICKET_LEN, TicketKey};
use self::tcp_relay::PeerConnection;

mod index;
pub mod mobility;
pub mod tcp_relay;

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

/// A wall-clock anchor: `unix_secs` was the time at `instant`. The core derives the
/// current unix time (for REST credential expiry and nonces) from `now`.
#[derive(Debug, Clone, Copy)]
pub struct TimeBase {
    /// A monotonic instant.
    pub instant: Instant,
    /// Unix seconds at that instant.
    pub unix_secs: u64,
}

/// Configuration of the TURN server core.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// REALM (RFC 8489 §14.9).
    pub realm: String,
    /// TURN REST shared secrets; all are accepted (rotation).
    pub secrets: Vec<Vec<u8>>,
    /// Static users: (username, password).
    pub users: Vec<(String, String)>,
    /// Key of the stateless nonces; random per process unless a fleet shares it.
    pub nonce_secret: Vec<u8>,
    /// How long a nonce stays valid.
    pub nonce_lifetime: Duration,
    /// Longest allocation lifetime granted.
    pub max_lifetime: Duration,
    /// End an allocation when its REST credential expires.
    pub strict_expiry: bool,
    /// Refuse channel numbers above 0x4FFF with 400, as RFC 8656 §12 says. Off by default:
    /// RFC 5766 allowed 0x4000..=0x7FFF and deployed clients (coturn's `turnutils_uclient`)
    /// still pick numbers there.
    pub strict_channel_numbers: bool,
    /// Which peers may be relayed to.
    pub peer_policy: PeerPolicy,
    /// Quotas and bandwidth.
    pub quotas: Quotas,
    /// SOFTWARE in responses; none by default.
    pub software: Option<String>,
    /// Wall-clock anchor.
    pub time_base: TimeBase,
    /// Seed of the core's random numbers (transaction IDs of Data indications).
    pub rng_seed: u64,
    /// Where a 300 Try Alternate sends clients, per client transport (RFC 8489 §10).
    /// Empty lists (the default): never redirect.
    pub alternates: Alternates,
    /// ALTERNATE-DOMAIN sent with a 300 to TLS clients (RFC 8489 §14.16): the name the
    /// alternates' certificates are for. None by default.
    pub alternate_domain: Option<String>,
    /// Redirect every new Allocate to an alternate (draining); see also
    /// [`TurnServer::set_redirect`]. Off by default.
    pub redirect: bool,
    /// RFC 8016 mobility: hand out MOBILITY-TICKETs and let a Refresh carrying one move
    /// its allocation to a new 5-tuple. Off by default (405 Mobility Forbidden).
    pub mobility: bool,
    /// RFC 6062 TCP relays (REQUESTED-TRANSPORT TCP, Connect, ConnectionBind), when the
    /// host supports them too ([`Host::supports_tcp_relay`]). Off by default (442).
    pub tcp_relay: bool,
    /// Peer TCP connections, pending or bound, per TCP allocation (0 = unlimited). Over
    /// it, Connect gets 508 and inbound peer connections are closed.
    pub tcp_connections_per_allocation: u32,
    /// ICMP Data indications relayed per allocation per second (RFC 8656 §11.5); the
    /// excess is dropped. 0 = unlimited.
    pub icmp_per_second: u32,
    /// RFC 5780 NAT behaviour discovery for Binding requests received on these addresses
    /// (see [`crate::binding`]); answers that leave from another of them or go to
    /// another port come out as [`ClientAction::ReplyFrom`]. `None` (the default): off,
    /// CHANGE-REQUEST and RESPONSE-PORT get 420.
    pub rfc5780: Option<Rfc5780Addresses>,
}

/// ALTERNATE-SERVER targets, per client transport: a UDP client is redirected to a UDP
/// address, a TLS client to a TLS one. Each list may hold IPv4 and IPv6 addresses; a
/// client only ever gets one of its own family (RFC 8489 §10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alternates {
    /// For clients over UDP.
    pub udp: Vec<SocketAddr>,
    /// For clients over TCP.
    pub tcp: Vec<SocketAddr>,
    /// For clients over TLS.
    pub tls: Vec<SocketAddr>,
}

impl Alternates {
    /// The list for a client transport.
    pub fn for_transport(&self, transport: ClientTransport) -> &[SocketAddr] {
        match transport {
            ClientTransport::Udp => &self.udp,
            ClientTransport::Tcp => &self.tcp,
            ClientTransport::Tls => &self.tls,
        }
    }
}

/// A message the core queued for a client (today only the 447 answer to a Connect whose
/// peer connection timed out); see [`TurnServer::poll_transmit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The client's 5-tuple (its control connection).
    pub to: FiveTuple,
    /// The framed STUN message.
    pub message: Vec<u8>,
}

impl TurnConfig {
    /// A configuration with defaults for everything but the realm and time.
    pub fn new(realm: impl Into<String>, time_base: TimeBase) -> Self {
        Self {
            realm: realm.into(),
            secrets: Vec::new(),
            users: Vec::new(),
            nonce_secret: vec![0x5A; 32],
            nonce_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            strict_expiry: false,
            strict_channel_numbers: false,
            peer_policy: PeerPolicy::default(),
            quotas: Quotas::default(),
            software: None,
            time_base,
            rng_seed: 0,
            alternates: Alternates::default(),
            alternate_domain: None,
            redirect: false,
            mobility: false,
            tcp_relay: false,
            tcp_connections_per_allocation: 64,
            icmp_per_second: 10,
            rfc5780: None,
        }
    }
}

/// What to do after a client packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum ClientAction {
    /// Nothing.
    None,
    /// Send `out[..n]` back to the client.
    Reply(usize),
    /// A Binding answer under RFC 5780 ([`TurnConfig::rfc5780`], UDP only): send
    /// `out[..len]` from the server address `from` (one of
    /// [`Rfc5780Addresses::listen_addresses`]: use the socket bound there, which may
    /// not be the one the request arrived on) to `to` (the client's IP, with its port or
    /// the RESPONSE-PORT it asked for). Both are canonical (IPv4 as IPv4, never
    /// IPv4-mapped). An answer from the receiving address to the client's own address
    /// stays [`ClientAction::Reply`].
    ReplyFrom {
        /// Length of the response in `out`.
        len: usize,
        /// The server address to send from.
        from: SocketAddr,
        /// The client address to send to.
        to: SocketAddr,
    },
    /// Send `packet[payload]` from relay `relay` to `peer`.
    ToPeer {
        /// The relay socket.
        relay: RelayId,
        /// The peer.
        peer: SocketAddr,
        /// The payload's range in the packet that was handled.
        payload: Range<usize>,
        /// Set DF (DONT-FRAGMENT, RFC 8656 §18.9).
        dont_fragment: bool,
    },
    /// A ConnectionBind succeeded (RFC 6062 §5.4): send `out[..reply]` (the success
    /// response) on this connection, then stop reading STUN from it and pipe its bytes,
    /// as they come, to and from the peer data connection `connection` (with whatever the
    /// peer sent meanwhile first). Report its end with
    /// [`TurnServer::handle_connection_closed`].
    BindData {
        /// Length of the response in `out`.
        reply: usize,
        /// The peer data connection.
        connection: ConnectionId,
    },
}

/// What to do after a peer datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum PeerAction {
    /// Nothing (no permission, over the bandwidth cap, unknown relay).
    None,
    /// Send `buf[range]` to the client of `to`.
    ToClient {
        /// The allocation's 5-tuple.
        to: FiveTuple,
        /// The framed message in the buffer that was handled.
        range: Range<usize>,
    },
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Allocations created.
    pub allocations_created: u64,
    /// Allocations deleted (refresh 0 or expiry).
    pub allocations_closed: u64,
    /// Datagrams relayed client→peer.
    pub to_peer: u64,
    /// Datagrams relayed peer→client.
    pub to_client: u64,
    /// Datagrams dropped for lack of permission or channel.
    pub dropped_no_permission: u64,
    /// Datagrams dropped by the bandwidth cap.
    pub dropped_bandwidth: u64,
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
}

/// A reason to refuse a request, mapped to its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// 300: go to an alternate server (the answer carries ALTERNATE-SERVER).
    TryAlternate,
    /// 400.
    BadRequest,
    /// 400: the channel number is bound (or cooling down) to another peer (RFC 8656
    /// §11.2). Its own reason phrase, because a client that picks numbers at random
    /// (coturn's `turnutils_uclient` does) can hit it by chance and should be able to tell.
    ChannelNumberInUse,
    /// 400: the peer is bound (or cooling down) to another channel number (RFC 8656
    /// §11.2).
    PeerOnAnotherChannel,
    /// 403: peer not allowed by policy.
    Forbidden,
    /// 405: mobility is not enabled (RFC 8016 §3.4).
    MobilityForbidden,
    /// 437: no allocation for this 5-tuple, or one exists already.
    AllocationMismatch,
    /// 440.
    AddressFamilyNotSupported,
    /// 441: not the username that made the allocation.
    WrongCredentials,
    /// 442.
    UnsupportedTransportProtocol,
    /// 443.
    PeerAddressFamilyMismatch,
    /// 446: a connection to that peer exists or is being made (RFC 6062 §5.2).
    ConnectionAlreadyExists,
    /// 447: the connection to the peer failed or timed out (RFC 6062 §5.2).
    ConnectionTimeoutOrFailure,
    /// 486.
    AllocationQuotaReached,
    /// 508.
    InsufficientCapacity,
}

impl Reject {
    /// The STUN error code.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::TryAlternate => ErrorCode::TRY_ALTERNATE,
            Self::BadRequest | Self::ChannelNumberInUse | Self::PeerOnAnotherChannel => {
                ErrorCode::BAD_REQUEST
            }
            Self::Forbidden => ErrorCode::FORBIDDEN,
            Self::MobilityForbidden => ErrorCode::MOBILITY_FORBIDDEN,
            Self::AllocationMismatch => ErrorCode::ALLOCATION_MISMATCH,
            Self::AddressFamilyNotSupported => ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED,
            Self::WrongCredentials => ErrorCode::WRONG_CREDENTIALS,
            Self::UnsupportedTransportProtocol => ErrorCode::UNSUPPORTED_TRANSPORT_PROTOCOL,
            Self::PeerAddressFamilyMismatch => ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH,
            Self::ConnectionAlreadyExists => ErrorCode::CONNECTION_ALREADY_EXISTS,
            Self::ConnectionTimeoutOrFailure => ErrorCode::CONNECTION_TIMEOUT_OR_FAILURE,
            Self::AllocationQuotaReached => ErrorCode::ALLOCATION_QUOTA_REACHED,
            Self::InsufficientCapacity => ErrorCode::INSUFFICIENT_CAPACITY,
        }
    }

    /// The reason phrase: the code's usual one, or what exactly went wrong where the code
    /// alone would leave a client guessing.
    pub fn reason(self) -> &'static str {
        match self {
            Self::ChannelNumberInUse => "Channel number bound to another peer",
            Self::PeerOnAnotherChannel => "Peer bound to another channel number",
            other => other.code().reason(),
        }
    }
}

impl From<turnpike_stun::DecodeError> for Reject {
    fn from(_: turnpike_stun::DecodeError) -> Self {
        Self::BadRequest
    }
}

/// The last answer to a 5-tuple, kept for retransmissions.
#[derive(Debug)]
pub(crate) struct Cached {
    tid: TransactionId,
    /// The request's method: a response always has the method of its request (RFC 8489
    /// §6.3), so a new request that reuses the transaction ID with another method is not
    /// a retransmission and must not get this answer.
    method: Method,
    bytes: Box<[u8]>,
    until: Instant,
}

struct Reservation {
    relay: RelayId,
    addr: SocketAddr,
    until: Instant,
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
}

/// The key and framing to sign an answer with: the request's, kept for an answer that
/// is written later (RFC 6062 Connect).
#[derive(Clone, Copy)]
pub(crate) struct Signer {
    pub(crate) key: LongTermKey,
    pub(crate) kind: IntegrityKind,
    pub(crate) fingerprint: bool,
}

impl core::fmt::Debug for Signer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("Signer")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The TURN server core.
pub struct TurnServer {
    credentials: Credentials,
    binding: BindingService,
    max_lifetime: Duration,
    strict_expiry: bool,
    strict_channel_numbers: bool,
    policy: PeerPolicy,
    quotas: Quotas,
    software: Option<String>,
    time_base: TimeBase,
    token_key: Hmac<Sha256>,
    ticket_key: TicketKey,
    rng: u64,
    alternates: Alternates,
    alternate_domain: Option<String>,
    redirect: bool,
    alternate_turn: u64,
    mobility: bool,
    tcp_relay: bool,
    tcp_connections_per_allocation: u32,
    icmp_per_second: u32,
    /// RFC 6062 peer data connections by id, pending or bound.
    connections: HashMap<ConnectionId, PeerConnection>,
    /// RFC 6062 client data connections (bound by ConnectionBind) and their peer side.
    data_clients: HashMap<FiveTuple, ConnectionId>,
    transmits: VecDeque<Transmit>,
    slots: Vec<Option<Allocation>>,
    free: Vec<u32>,
    by_five_tuple: TupleIndex,
    by_relay: HashMap<RelayId, u32>,
    reservations: HashMap<[u8; 8], Reservation>,
    cache: HashMap<FiveTuple, Cached>,
    next_sweep: Option<Instant>,
    stats: Stats,
}

impl core::fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TurnServer")
            .field("allocations", &self.by_five_tuple.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl TurnServer {
    /// A server from its configuration.
    ///
    /// # Errors
    ///
    /// A static user whose password cannot be prepared.
    pub fn new(config: TurnConfig) -> Result<Self, BadUser> {
        let credentials = Credentials::new(
            config.realm,
            config.secrets,
            &config.users,
            &config.nonce_secret,
            config.nonce_lifetime.as_secs().min(u64::from(u32::MAX)) as u32,
        )?;
        let mut token_key = <Hmac<Sha256> as Mac>::new_from_slice(&config.nonce_secret)
            .unwrap_or_else(|_| unreachable!());
        token_key.update(b"reservation-token");
        Ok(Self {
            credentials,
            binding: BindingService::new(BindingConfig {
                software: config.software.clone(),
                rfc5780: config.rfc5780,
            }),
            max_lifetime: config.max_lifetime,
            strict_expiry: config.strict_expiry,
            strict_channel_numbers: config.strict_channel_numbers,
            policy: config.peer_policy,
            quotas: config.quotas,
            software: config.software,
            time_base: config.time_base,
            token_key,
            ticket_key: TicketKey::new(&config.nonce_secret),
            rng: config.rng_seed ^ 0x9E37_79B9_7F4A_7C15,
            alternates: config.alternates,
            alternate_domain: config.alternate_domain,
            redirect: config.redirect,
            alternate_turn: 0,
            mobility: config.mobility,
            tcp_relay: config.tcp_relay,
            tcp_connections_per_allocation: config.tcp_connections_per_allocation,
            icmp_per_second: config.icmp_per_second,
            connections: HashMap::default(),
            data_clients: HashMap::default(),
            transmits: VecDeque::new(),
            slots: Vec::new(),
            free: Vec::new(),
            by_five_tuple: TupleIndex::new(),
            by_relay: HashMap::default(),
            reservations: HashMap::default(),
            cache: HashMap::default(),
            next_sweep: None,
            stats: Stats::default(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Allocations alive.
    pub fn allocation_count(&self) -> usize {
        self.by_five_tuple.len()
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
        self.time_base.unix_secs
            + now
                .saturating_duration_since(self.time_base.instant)
                .as_secs()
    }

    fn next_random(&mut self) -> u64 {
        // SplitMix64: deterministic from the seed, good enough for transaction IDs.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
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
            Demux::Stun => self.client_stun(now, from, packet, out, host),
            Demux::Other => ClientAction::None,
        }
    }

    fn client_channel_data(
        &mut self,
        now: Instant,
        from: FiveTuple,
        packet: &[u8],
    ) -> ClientAction {
        let Ok(frame) = ChannelData::new_checked(packet) else {
            return ClientAction::None;
        };
        let Some(slot) = self.by_five_tuple.get(&from, &self.slots) else {
            return ClientAction::None;
        };
        let rate = self.quotas.bandwidth_bytes_per_sec;
        let Some(alloc) = datagram_relay(&mut self.slots, slot, now) else {
            return ClientAction::None;
        };
        let Some(channel) = alloc.active_channel(frame.channel(), now).copied() else {
            self.stats.dropped_no_permission += 1;
            return ClientAction::None;
        };
        let len = frame.data().len();
        let Some(relay) = alloc.relay(Family::of(channel.peer)) else {
            return ClientAction::None;
        };
        if !alloc.has_permission(channel.peer.ip(), now) {
            self.stats.dropped_no_permission += 1;
            return ClientAction::None;
        }
        if !alloc.bucket.take(now, rate, len) {
            self.stats.dropped_bandwidth += 1;
            return ClientAction::None;
        }
        self.stats.to_peer += 1;
        ClientAction::ToPeer {
            relay,
            peer: channel.peer,
            payload: 4..4 + len,
            dont_fragment: alloc.dont_fragment,
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

    /// Send indication (RFC 8656 §11.2): no authentication; relayed only with a permission.
    fn send_indication(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<&[u8]>,
    ) -> ClientAction {
        let Some(slot) = self.by_five_tuple.get(&from, &self.slots) else {
            return ClientAction::None;
        };
        let (Ok(Some(peer)), Some(data)) = (msg.get::<XorPeerAddress>(), msg.raw(AttrType::DATA))
        else {
            return ClientAction::None;
        };
        let peer = normalise_addr(peer.0);
        let df = msg.raw(AttrType::DONT_FRAGMENT).is_some();
        let rate = self.quotas.bandwidth_bytes_per_sec;
        let Some(alloc) = datagram_relay(&mut self.slots, slot, now) else {
            return ClientAction::None;
        };
        let Some(relay) = alloc.relay(Family::of(peer)) else {
            return ClientAction::None;
        };
        if !alloc.has_permission(peer.ip(), now) {
            self.stats.dropped_no_permission += 1;
            return ClientAction::None;
        }
        let start = data.offset + 4;
        if !alloc.bucket.take(now, rate, data.value.len()) {
            self.stats.dropped_bandwidth += 1;
            return ClientAction::None;
        }
        self.stats.to_peer += 1;
        ClientAction::ToPeer {
            relay,
            peer,
            payload: start..start + data.value.len(),
            dont_fragment: df || alloc.dont_fragment,
        }
    }

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
        let fingerprint = msg.has_fingerprint();

        // A retransmission gets the very same answer (RFC 8489 §6.3.4): the one kept
        // with the 5-tuple's allocation, else the one in the map.
        let hit = |c: &&Cached| {
            c.tid == tid && c.method == ty.method && c.until > now && c.bytes.len() <= out.len()
        };
        let with_allocation = self
            .by_five_tuple
            .get(&from, &self.slots)
            .and_then(|slot| self.slots[slot as usize].as_ref())
            .and_then(|a| a.cached.as_deref());
        if let Some(c) = with_allocation
            .filter(hit)
            .or_else(|| self.cache.get(&from).filter(hit))
        {
            out[..c.bytes.len()].copy_from_slice(&c.bytes);
            return ClientAction::Reply(c.bytes.len());
        }

        let unix_now = self.unix_now(now);
        let auth = match self.credentials.authenticate(msg, from.client, unix_now) {
            Ok(a) => a,
            Err(reject) => {
                return match self.auth_error(
                    out,
                    ty,
                    tid,
                    fingerprint,
                    from.client,
                    unix_now,
                    reject,
                ) {
                    Ok(n) => ClientAction::Reply(n),
                    Err(_) => ClientAction::None,
                };
            }
        };

        // RFC 8489 §6.3.1.1: after authentication, unknown comprehension-required
        // attributes are answered with 420.
        let mut unknown = [AttrType(0); 8];
        let mut n_unknown = 0;
        for t in msg.unknown_comprehension_required() {
            if n_unknown < unknown.len() && !unknown[..n_unknown].contains(&t) {
                unknown[n_unknown] = t;
                n_unknown += 1;
            }
        }
        let written = if n_unknown > 0 {
            let list = &unknown[..n_unknown];
            self.write_response(out, ty.error(), tid, fingerprint, &auth, |w| {
                w.put(&ErrorCodeAttr::new(ErrorCode::UNKNOWN_ATTRIBUTE))?;
                w.put(&UnknownAttributes::List(list))
            })
        } else {
            let handled = match ty.method {
                Method::ALLOCATE => self
                    .allocate(now, from, msg, &auth, out, host)
                    .map(Outcome::Reply),
                Method::REFRESH => self
                    .refresh(now, from, msg, &auth, out, host)
                    .map(Outcome::Reply),
                Method::CREATE_PERMISSION => self
                    .create_permission(now, from, msg, &auth, out)
                    .map(Outcome::Reply),
                Method::CHANNEL_BIND => self
                    .channel_bind(now, from, msg, &auth, out)
                    .map(Outcome::Reply),
                Method::CONNECT => self.connect(now, from, msg, &auth, host),
                Method::CONNECTION_BIND => self.connection_bind(now, from, msg, &auth, out),
                _ => Err(Reject::BadRequest),
            };
            match handled {
                Ok(Outcome::Reply(n)) => Ok(n),
                // Nothing to send or cache yet: the answer comes with the peer
                // connection's outcome. Streams do not retransmit (RFC 8489 §6.2.2).
                Ok(Outcome::Deferred) => return ClientAction::None,
                // The connection turns into a raw pipe: nothing to cache either.
                Ok(Outcome::BindData(reply, connection)) => {
                    return ClientAction::BindData { reply, connection };
                }
                Err(Reject::TryAlternate) => match self.next_alternate(&from) {
                    Some(alternate) => {
                        self.stats.redirected += 1;
                        let domain = (from.transport == ClientTransport::Tls)
                            .then_some(self.alternate_domain.as_deref())
                            .flatten();
                        self.write_response(out, ty.error(), tid, fingerprint, &auth, |w| {
                            w.put(&ErrorCodeAttr::new(ErrorCode::TRY_ALTERNATE))?;
                            w.put(&AlternateServer(alternate))?;
                            match domain {
                                Some(d) => w.put(&AlternateDomain(d)),
                                None => Ok(()),
                            }
                        })
                    }
                    None => self.write_response(out, ty.error(), tid, fingerprint, &auth, |w| {
                        w.put(&ErrorCodeAttr::new(ErrorCode::INSUFFICIENT_CAPACITY))
                    }),
                },
                Err(reject) => self.write_response(out, ty.error(), tid, fingerprint, &auth, |w| {
                    w.put(&ErrorCodeAttr {
                        code: reject.code(),
                        reason: reject.reason(),
                    })
                }),
            }
        };
        match written {
            Ok(n) => {
                let cached = Cached {
                    tid,
                    method: ty.method,
                    bytes: out[..n].into(),
                    until: now + TRANSACTION_CACHE,
                };
                // Kept with the allocation when the 5-tuple has one (a box of 8 bytes in
                // the slab, none once expired, where a map entry would cost ~200 bytes
                // with its key and the map's slack), else in the map. Either way only
                // the last answer per 5-tuple is kept.
                let alloc = match self.by_five_tuple.get(&from, &self.slots) {
                    Some(slot) => self.slots[slot as usize].as_mut(),
                    None => None,
                };
                match alloc {
                    Some(a) => {
                        a.cached = Some(Box::new(cached));
                        self.cache.remove(&from);
                    }
                    None => {
                        self.cache.insert(from, cached);
                    }
                }
                self.schedule_sweep(now);
                ClientAction::Reply(n)
            }
            Err(_) => ClientAction::None,
        }
    }

    /// The alternate server for a client, round-robin over those of its transport and
    /// address family (RFC 8489 §10: the ALTERNATE-SERVER "MUST contain an IP address of
    /// the same address family as the source IP address of the request message").
    fn next_alternate(&mut self, from: &FiveTuple) -> Option<SocketAddr> {
        let v4 = from.client.ip().to_canonical().is_ipv4();
        let list = self.alternates.for_transport(from.transport);
        let same = |a: &&SocketAddr| a.ip().to_canonical().is_ipv4() == v4;
        let count = list.iter().filter(same).count();
        if count == 0 {
            return None;
        }
        let pick = (self.alternate_turn % count as u64) as usize;
        self.alternate_turn = self.alternate_turn.wrapping_add(1);
        list.iter().filter(same).nth(pick).copied()
    }

    /// Whether a 300 could be sent to this client.
    fn has_alternate(&self, from: &FiveTuple) -> bool {
        let v4 = from.client.ip().to_canonical().is_ipv4();
        self.alternates
            .for_transport(from.transport)
            .iter()
            .any(|a| a.ip().to_canonical().is_ipv4() == v4)
    }

    /// Writes a response signed with the request's key: `body`, SOFTWARE, the integrity
    /// attribute the client used, and FINGERPRINT if the request had one.
    fn write_response(
        &self,
        out: &mut [u8],
        ty: MessageType,
        tid: TransactionId,
        fingerprint: bool,
        auth: &Authenticated,
        body: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError> {
        self.write_with_key(out, ty, tid, &auth.integrity, auth.kind, fingerprint, body)
    }

    /// [`Self::write_response`] with a kept [`Signer`].
    fn write_signed(
        &self,
        out: &mut [u8],
        ty: MessageType,
        tid: TransactionId,
        signer: &Signer,
        body: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError> {
        let key = signer.key.integrity_key();
        self.write_with_key(out, ty, tid, &key, signer.kind, signer.fingerprint, body)
    }

    /// Writes a response signed with a prepared key.
    #[allow(clippy::too_many_arguments)]
    fn write_with_key(
        &self,
        out: &mut [u8],
        ty: MessageType,
        tid: TransactionId,
        key: &IntegrityKey,
        kind: IntegrityKind,
        fingerprint: bool,
        body: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError> {
        let mut w = MessageWriter::new(out, ty, tid)?;
        body(&mut w)?;
        if let Some(s) = &self.software {
            w.put(&Software(s))?;
        }
        match kind {
            IntegrityKind::Sha1 => w.put_integrity(key)?,
            IntegrityKind::Sha256 { .. } => w.put_integrity_sha256(key, 32)?,
        }
        if fingerprint {
            w.put_fingerprint()?;
        }
        Ok(w.finish())
    }

    /// 401 / 438 / 400 to a request that did not authenticate. 401 and 438 carry REALM,
    /// a fresh NONCE and PASSWORD-ALGORITHMS (RFC 8489 §9.2.4); nothing is signed.
    #[allow(clippy::too_many_arguments)]
    fn auth_error(
        &self,
        out: &mut [u8],
        ty: MessageType,
        tid: TransactionId,
        fingerprint: bool,
        client: SocketAddr,
        unix_now: u64,
        reject: AuthReject,
    ) -> Result<usize, EncodeError> {
        let code = match reject {
            AuthReject::Challenge | AuthReject::Unauthenticated => ErrorCode::UNAUTHENTICATED,
            AuthReject::StaleNonce => ErrorCode::STALE_NONCE,
            AuthReject::BadRequest => ErrorCode::BAD_REQUEST,
        };
        let mut w = MessageWriter::new(out, ty.error(), tid)?;
        w.put(&ErrorCodeAttr::new(code))?;
        if reject != AuthReject::BadRequest {
            w.put(&Realm(self.credentials.realm()))?;
            let nonce = self.credentials.issue_nonce(client, unix_now);
            w.put(&Nonce(&nonce))?;
            w.put(&PasswordAlgorithms::List(&OFFERED_ALGORITHMS))?;
        }
        if let Some(s) = &self.software {
            w.put(&Software(s))?;
        }
        if fingerprint {
            w.put_fingerprint()?;
        }
        Ok(w.finish())
    }

    fn allocation_for(
        &self,
        now: Instant,
        from: &FiveTuple,
        auth: &Authenticated,
    ) -> Result<u32, Reject> {
        let slot = self
            .by_five_tuple
            .get(from, &self.slots)
            .ok_or(Reject::AllocationMismatch)?;
        // An allocation past its lifetime is gone (RFC 8656 §2.2) even if the sweep has
        // not removed it yet: 437, never a refresh that revives it.
        let alloc = self.slots[slot as usize]
            .as_ref()
            .filter(|a| a.is_live(now))
            .ok_or(Reject::AllocationMismatch)?;
        if *alloc.username != *auth.username {
            return Err(Reject::WrongCredentials);
        }
        Ok(slot)
    }

    /// The lifetime to grant for a requested one (RFC 8656 §7.2 step "LIFETIME"): the
    /// smaller of the request and the maximum, but never below the default.
    fn granted_lifetime(&self, requested: Option<Lifetime>) -> Duration {
        let max = self.max_lifetime;
        let desired = requested.map_or(DEFAULT_LIFETIME, |l| Duration::from_secs(u64::from(l.0)));
        desired.min(max).max(DEFAULT_LIFETIME.min(max))
    }

    /// Allocate (RFC 8656 §7.2, RFC 6156 §4.2; TCP relays RFC 6062 §5.1; mobility
    /// RFC 8016 §3.1; redirection RFC 8489 §10).
    fn allocate(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<&[u8]>,
        auth: &Authenticated,
        out: &mut [u8],
        host: &mut impl Host,
    ) -> Handled {
        if let Some(slot) = self.by_five_tuple.get(&from, &self.slots) {
            if self.slots[slot as usize]
                .as_ref()
                .is_some_and(|a| a.is_live(now))
            {
                return Err(Reject::AllocationMismatch);
            }
            // Expired but not yet swept: it is gone, so the 5-tuple is free again.
            self.remove(slot, host);
        }
        // A 5-tuple that is an RFC 6062 client data connection carries no more STUN; one
        // that got here anyway must not also become a control connection.
        if self.data_clients.contains_key(&from) {
            return Err(Reject::BadRequest);
        }
        // Draining: every new allocation goes elsewhere (after authentication, so the
        // signed 300 can be trusted, RFC 8489 §10).
        if self.redirect && self.has_alternate(&from) {
            return Err(Reject::TryAlternate);
        }
        let transport = msg.get::<RequestedTransport>()?.ok_or(Reject::BadRequest)?;
        let dont_fragment = msg.get::<DontFragment>()?.is_some();
        let token = msg.get::<ReservationToken>()?;
        let even = msg.get::<EvenPort>()?;
        let requested = msg.get::<RequestedAddressFamily>()?;
        let additional = msg.get::<AdditionalAddressFamily>()?;
        let lifetime_req = msg.get::<Lifetime>()?;
        let tcp = match transport.0 {
            TransportProtocol::UDP => false,
            // RFC 6062 §5.1, in its order: a protocol other than UDP or TCP is 442 (and
            // so is TCP while TCP relaying is off); TCP from a client that is not on
            // TCP or TLS is 400; DONT-FRAGMENT, EVEN-PORT and RESERVATION-TOKEN make no
            // sense for a TCP relay: 400.
            TransportProtocol::TCP if self.tcp_relay && host.supports_tcp_relay() => {
                if !from.transport.is_stream() {
                    return Err(Reject::BadRequest);
                }
                if dont_fragment || even.is_some() || token.is_some() {
                    return Err(Reject::BadRequest);
                }
                true
            }
            _ => return Err(Reject::UnsupportedTransportProtocol),
        };
        // RFC 8016 §3.1: an empty MOBILITY-TICKET asks for mobility.
        let wants_mobility = match msg.get::<MobilityTicket>()? {
            None => false,
            Some(_) if !self.mobility => return Err(Reject::MobilityForbidden),
            Some(t) if !t.0.is_empty() => return Err(Reject::BadRequest),
            Some(_) => true,
        };

        // RFC 8656 §7.2: RESERVATION-TOKEN excludes EVEN-PORT, REQUESTED-ADDRESS-FAMILY
        // and ADDITIONAL-ADDRESS-FAMILY; the two family attributes exclude each other;
        // ADDITIONAL-ADDRESS-FAMILY may only ask for IPv6.
        if token.is_some() && (even.is_some() || requested.is_some() || additional.is_some()) {
            return Err(Reject::BadRequest);
        }
        if requested.is_some() && additional.is_some() {
            return Err(Reject::BadRequest);
        }
        if additional.is_some_and(|a| a.0 != AddressFamily::IPV6) {
            return Err(Reject::BadRequest);
        }
        // A reserved port pair cannot span two families (RFC 8656 §7.2: EVEN-PORT with the
        // R bit and ADDITIONAL-ADDRESS-FAMILY together are a 400).
        if even.is_some_and(|e| e.reserve) && additional.is_some() {
            return Err(Reject::BadRequest);
        }
        let family = match requested.map(|r| r.0) {
            None | Some(AddressFamily::IPV4) => Family::V4,
            Some(AddressFamily::IPV6) => Family::V6,
            Some(_) => return Err(Reject::AddressFamilyNotSupported),
        };
        if token.is_none() && !host.supports(family) {
            return Err(Reject::AddressFamilyNotSupported);
        }

        let quota_user = quota_user(&auth.username);
        match host.acquire_allocation(&self.quotas, quota_user) {
            Ok(()) => {}
            Err(QuotaExceeded::User) => return Err(Reject::AllocationQuotaReached),
            // The server is full: another one may not be (RFC 8656 §7.2: the server may
            // reject an Allocate with 300 Try Alternate to redirect the client).
            Err(QuotaExceeded::Total) if self.has_alternate(&from) => {
                return Err(Reject::TryAlternate);
            }
            Err(QuotaExceeded::Total) => return Err(Reject::InsufficientCapacity),
        }

        // Bind the relay(s). On any failure, give the quota slot back.
        let mut reservation_token = None;
        let primary = if let Some(token) = token {
            match self.reservations.remove(&token.0) {
                Some(r) if r.until > now => Ok(Relay {
                    id: r.relay,
                    addr: r.addr,
                }),
                Some(r) => {
                    host.release_relay(r.relay);
                    Err(Reject::InsufficientCapacity)
                }
                None => Err(Reject::InsufficientCapacity),
            }
        } else {
            let port = match even {
                Some(e) => PortRequest::Even {
                    reserve_next: e.reserve,
                },
                None => PortRequest::Any,
            };
            let bound = if tcp {
                host.bind_tcp_relay(family)
            } else {
                host.bind_relay(family, port)
            };
            match bound {
                Ok(bound) => {
                    if let Some((relay, addr)) = bound.reserved {
                        if tcp {
                            // Not asked for: a TCP relay has no port pair.
                            host.release_relay(relay);
                        } else {
                            let t = self.new_token();
                            self.reservations.insert(
                                t,
                                Reservation {
                                    relay,
                                    addr,
                                    until: now + RESERVATION_LIFETIME,
                                },
                            );
                            reservation_token = Some(t);
                        }
                    }
                    Ok(Relay {
                        id: bound.relay,
                        addr: bound.addr,
                    })
                }
                Err(RelayError::FamilyUnavailable) => Err(Reject::AddressFamilyNotSupported),
                Err(RelayError::Exhausted) if self.has_alternate(&from) => {
                    Err(Reject::TryAlternate)
                }
                Err(RelayError::Exhausted) => Err(Reject::InsufficientCapacity),
            }
        };
        let primary = match primary {
            Ok(r) => r,
            Err(e) => {
                host.release_allocation(quota_user);
                return Err(e);
            }
        };
        let mut relays = [None, None];
        relays[family_index(Family::of(primary.addr))] = Some(primary);
        // Dual allocation (RFC 8656 §7.2, ADDITIONAL-ADDRESS-FAMILY): the IPv6 part may
        // fail on its own; the answer then carries ADDRESS-ERROR-CODE for it.
        let mut additional_error = None;
        if additional.is_some() {
            let bound = if tcp {
                host.bind_tcp_relay(Family::V6)
            } else {
                host.bind_relay(Family::V6, PortRequest::Any)
            };
            match bound {
                Ok(b) => {
                    relays[1] = Some(Relay {
                        id: b.relay,
                        addr: b.addr,
                    })
                }
                Err(RelayError::FamilyUnavailable) => {
                    additional_error = Some(ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED);
                }
                Err(RelayError::Exhausted) => {
                    additional_error = Some(ErrorCode::INSUFFICIENT_CAPACITY);
                }
            }
        }

        let mut lifetime = self.granted_lifetime(lifetime_req);
        let credential_expires = self.credential_deadline(now, auth);
        if let Some(deadline) = credential_expires {
            lifetime = lifetime.min(deadline.saturating_duration_since(now));
        }
        // The slot `insert` will use (the last free one, else a new one): the ticket
        // names it.
        let slot = self.free.last().copied().unwrap_or(self.slots.len() as u32);
        let ticket = wants_mobility.then(|| {
            let nonce = self.next_random();
            self.ticket_key.mint(slot, 0, nonce)
        });
        let ty = msg.message_type().success();
        let tid = msg.transaction_id();
        let client = from.client;
        let written = self.write_response(out, ty, tid, msg.has_fingerprint(), auth, |w| {
            for relay in relays.iter().flatten() {
                w.put(&XorRelayedAddress(relay.addr))?;
            }
            if let Some(code) = additional_error {
                w.put(&AddressErrorCode {
                    family: AddressFamily::IPV6,
                    code,
                    reason: code.reason(),
                })?;
            }
            w.put(&Lifetime(lifetime.as_secs() as u32))?;
            if let Some(t) = reservation_token {
                w.put(&ReservationToken(t))?;
            }
            if let Some(t) = &ticket {
                w.put(&MobilityTicket(t))?;
            }
            w.put(&XorMappedAddress(SocketAddr::new(
                client.ip().to_canonical(),
                client.port(),
            )))
        });
        let Ok(n) = written else {
            // Could not even answer: undo, so no orphan allocation stays behind.
            for relay in relays.iter().flatten() {
                host.release_relay(relay.id);
            }
            if let Some(t) = reservation_token {
                if let Some(r) = self.reservations.remove(&t) {
                    host.release_relay(r.relay);
                }
            }
            host.release_allocation(quota_user);
            return Err(Reject::InsufficientCapacity);
        };
        let inserted = self.insert(Allocation {
            five_tuple: from,
            username: auth.username.as_str().into(),
            relays: relays.map(|r| r.map(|r| r.id)),
            expires: now + lifetime,
            credential_expires,
            permissions: Vec::new(),
            channels: Vec::new(),
            bucket: TokenBucket::new(now, self.quotas.bandwidth_bytes_per_sec),
            dont_fragment,
            tcp,
            connections: Vec::new(),
            cached: None,
            mobility: ticket.map(|ticket| {
                Box::new(Mobility {
                    ticket,
                    generation: 0,
                })
            }),
            icmp_bucket: TokenBucket::new(now, u64::from(self.icmp_per_second)),
        });
        debug_assert_eq!(inserted, slot, "the ticket names the slot used");
        self.stats.allocations_created += 1;
        self.schedule_sweep(now);
        Ok(n)
    }

    fn credential_deadline(&self, now: Instant, auth: &Authenticated) -> Option<Instant> {
        if !self.strict_expiry {
            return None;
        }
        let expiry = auth.expiry?;
        let left = expiry.saturating_sub(self.unix_now(now));
        Some(now + Duration::from_secs(left))
    }

    fn new_token(&mut self) -> [u8; 8] {
        let mut mac = self.token_key.clone();
        mac.update(&self.next_random().to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut t = [0u8; 8];
        t.copy_from_slice(&full[..8]);
        t
    }

    fn insert(&mut self, alloc: Allocation) -> u32 {
        let five_tuple = alloc.five_tuple;
        let relays = alloc.relays;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(alloc);
                s
            }
            None => {
                // Grow the slab by an eighth, not by doubling: it holds every
                // allocation inline, so doubling would leave up to half of it (on average
                // a quarter) unused. Large blocks are remapped rather than copied by the
                // system allocator, so the extra growth steps cost little.
                if self.slots.len() == self.slots.capacity() {
                    self.slots
                        .reserve_exact((self.slots.len() / 8).max(SLAB_MIN_GROWTH));
                }
                self.slots.push(Some(alloc));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_five_tuple.insert(&five_tuple, slot, &self.slots);
        for &relay in relays.iter().flatten() {
            self.by_relay.insert(relay, slot);
        }
        slot
    }

    fn remove(&mut self, slot: u32, host: &mut impl Host) {
        let Some(alloc) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        self.by_five_tuple.remove(&alloc.five_tuple, slot);
        // RFC 6062 §5.5: "If the allocation associated with a data connection expires,
        // the data connection MUST be closed."
        for id in &alloc.connections {
            self.forget_connection(*id);
            host.close_peer_connection(*id);
        }
        for &relay in alloc.relays.iter().flatten() {
            self.by_relay.remove(&relay);
            host.release_relay(relay);
        }
        host.release_allocation(quota_user(&alloc.username));
        self.stats.allocations_closed += 1;
    }

    /// Refresh (RFC 8656 §8.2): a new lifetime, or 0 to delete; with
    /// REQUESTED-ADDRESS-FAMILY on a dual allocation, 0 deletes that family only; with
    /// MOBILITY-TICKET (RFC 8016), the allocation the ticket names, moved to this
    /// 5-tuple.
    fn refresh(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<&[u8]>,
        auth: &Authenticated,
        out: &mut [u8],
        host: &mut impl Host,
    ) -> Handled {
        let ticket = msg.get::<MobilityTicket>()?;
        let slot = match ticket {
            None => self.allocation_for(now, &from, auth)?,
            Some(_) if !self.mobility => return Err(Reject::MobilityForbidden),
            Some(t) => self.allocation_for_ticket(now, &from, t.0, auth)?,
        };
        let requested = msg.get::<Lifetime>()?;
        let delete = requested.is_some_and(|l| l.0 == 0);
        let mut only_family = None;
        if let Some(family) = msg.get::<RequestedAddressFamily>()? {
            // RFC 8656 §8.2: a family the allocation does not have is a mismatch.
            let fam = match family.0 {
                AddressFamily::IPV4 => Family::V4,
                AddressFamily::IPV6 => Family::V6,
                _ => return Err(Reject::PeerAddressFamilyMismatch),
            };
            let alloc = self.slots[slot as usize]
                .as_ref()
                .ok_or(Reject::AllocationMismatch)?;
            if alloc.relay(fam).is_none() {
                return Err(Reject::PeerAddressFamilyMismatch);
            }
            // RFC 8656 §8.1: on a dual allocation, the family names the half to refresh
            // or delete. Deleting one half leaves the other's permissions and channels.
            if alloc.relays.iter().flatten().count() > 1 {
                only_family = Some(fam);
            }
        }
        // Everything is checked: now the allocation may move (RFC 8016 §3.2).
        let mut new_ticket = None;
        if ticket.is_some() {
            self.move_allocation(slot, from);
            new_ticket = (!delete).then(|| self.rotate_ticket(slot)).flatten();
        }
        let lifetime = match (delete, only_family) {
            (true, Some(fam)) => {
                self.remove_family(slot, fam, host);
                Duration::ZERO
            }
            (true, None) => {
                self.remove(slot, host);
                Duration::ZERO
            }
            // A refresh of one half of a dual allocation refreshes both: the allocation
            // has one lifetime (a simplification RFC 8656 §8.1 does not forbid, since the
            // client refreshes every half it keeps).
            (false, _) => {
                let mut lifetime = self.granted_lifetime(requested);
                let alloc = self.slots[slot as usize]
                    .as_mut()
                    .ok_or(Reject::AllocationMismatch)?;
                if let Some(deadline) = alloc.credential_expires {
                    lifetime = lifetime.min(deadline.saturating_duration_since(now));
                }
                alloc.expires = now + lifetime;
                lifetime
            }
        };
        let ty = msg.message_type().success();
        self.write_response(
            out,
            ty,
            msg.transaction_id(),
            msg.has_fingerprint(),
            auth,
            |w| {
                w.put(&Lifetime(lifetime.as_secs() as u32))?;
                match &new_ticket {
                    Some(t) => w.put(&MobilityTicket(t)),
                    None => Ok(()),
                }
            },
        )
        .map_err(|_| Reject::BadRequest)
    }

    /// The allocation a MOBILITY-TICKET names (RFC 8016 §3.2), checked: genuine and
    /// current (400 otherwise), live (400: the ticket names nothing any more), the same
    /// user (441), and a move that is possible (437 onto another allocation's 5-tuple,
    /// 400 for a TCP allocation onto UDP).
    fn allocation_for_ticket(
        &self,
        now: Instant,
        from: &FiveTuple,
        ticket: &[u8],
        auth: &Authenticated,
    ) -> Result<u32, Reject> {
        let slot = self.ticket_key.open(ticket).ok_or(Reject::BadRequest)?;
        let alloc = self
            .slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .filter(|a| a.is_live(now))
            .filter(|a| {
                a.mobility
                    .as_ref()
                    .is_some_and(|m| ct_eq(&m.ticket, ticket))
            })
            .ok_or(Reject::BadRequest)?;
        if *alloc.username != *auth.username {
            return Err(Reject::WrongCredentials);
        }
        if alloc.five_tuple != *from {
            if self.by_five_tuple.contains(from, &self.slots)
                || self.data_clients.contains_key(from)
            {
                return Err(Reject::AllocationMismatch);
            }
            if alloc.tcp && !from.transport.is_stream() {
                return Err(Reject::BadRequest);
            }
        }
        Ok(slot)
    }

    /// Moves an allocation to a new 5-tuple (a no-op if it is there already).
    fn move_allocation(&mut self, slot: u32, to: FiveTuple) {
        let Some(alloc) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if alloc.five_tuple == to {
            return;
        }
        let old = core::mem::replace(&mut alloc.five_tuple, to);
        // The last answer belongs to the old 5-tuple: it stays with it.
        if let Some(c) = alloc.cached.take() {
            self.cache.insert(old, *c);
        }
        self.by_five_tuple.remove(&old, slot);
        self.by_five_tuple.insert(&to, slot, &self.slots);
        self.stats.mobility_moves += 1;
    }

    /// Replaces an allocation's ticket with a new one, which it returns: the old one is
    /// dead from now on.
    fn rotate_ticket(&mut self, slot: u32) -> Option<[u8; TICKET_LEN]> {
        let nonce = self.next_random();
        let alloc = self.slots.get_mut(slot as usize).and_then(Option::as_mut)?;
        let m = alloc.mobility.get_or_insert_with(|| {
            Box::new(Mobility {
                ticket: [0; TICKET_LEN],
                generation: 0,
            })
        });
        m.generation = m.generation.wrapping_add(1);
        m.ticket = self.ticket_key.mint(slot, m.generation, nonce);
        Some(m.ticket)
    }

    /// Deletes one half of a dual allocation: its relay, and the permissions, channels
    /// and peer connections of its family (RFC 8656 §8.1).
    fn remove_family(&mut self, slot: u32, family: Family, host: &mut impl Host) {
        let Some(alloc) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(relay) = alloc.relays[family_index(family)].take() else {
            return;
        };
        let of_family = |ip: IpAddr| Family::of(SocketAddr::new(ip, 0)) == family;
        alloc.permissions.retain(|p| !of_family(p.ip));
        alloc.channels.retain(|c| !of_family(c.peer.ip()));
        let mut gone = Vec::new();
        alloc.connections.retain(|id| {
            let same = self
                .connections
                .get(id)
                .is_some_and(|c| of_family(c.peer.ip()));
            if same {
                gone.push(*id);
            }
            !same
        });
        self.by_relay.remove(&relay);
        host.release_relay(relay);
        for id in gone {
            self.forget_connection(id);
            host.close_peer_connection(id);
        }
    }

    /// Checks a peer address for a permission or channel: policy (403) and family (443).
    fn check_peer(&self, slot: u32, peer: SocketAddr) -> Result<SocketAddr, Reject> {
        let peer = normalise_addr(peer);
        let alloc = self.slots[slot as usize]
            .as_ref()
            .ok_or(Reject::AllocationMismatch)?;
        if alloc.relay(Family::of(peer)).is_none() {
            return Err(Reject::PeerAddressFamilyMismatch);
        }
        if !self.policy.permits(peer.ip()) {
            return Err(Reject::Forbidden);
        }
        Ok(peer)
    }

    /// Installs or refreshes permissions for `ips` all together, or none.
    fn install_permissions(
        &mut self,
        slot: u32,
        ips: &[IpAddr],
        now: Instant,
    ) -> Result<(), Reject> {
        let max = self.quotas.permissions_per_allocation as usize;
        let alloc = self.slots[slot as usize]
            .as_mut()
            .ok_or(Reject::AllocationMismatch)?;
        let new = ips
            .iter()
            .enumerate()
            .filter(|(i, ip)| {
                !alloc.permissions.iter().any(|p| p.ip == **ip) && !ips[..*i].contains(ip)
            })
            .count();
        if max != 0 && alloc.permissions.len() + new > max {
            return Err(Reject::InsufficientCapacity);
        }
        for &ip in ips {
            match alloc.permissions.iter_mut().find(|p| p.ip == ip) {
                Some(p) => p.expires = now + PERMISSION_LIFETIME,
                None => push_lean(
                    &mut alloc.permissions,
                    Permission {
                        ip,
                        expires: now + PERMISSION_LIFETIME,
                    },
                ),
            }
        }
        Ok(())
    }

    /// CreatePermission (RFC 8656 §9.2): every XOR-PEER-ADDRESS is checked before any is
    /// installed.
    fn create_permission(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<&[u8]>,
        auth: &Authenticated,
        out: &mut [u8],
    ) -> Handled {
        let slot = self.allocation_for(now, &from, auth)?;
        let mut ips: Vec<IpAddr> = Vec::new();
        for peer in msg.get_all::<XorPeerAddress>() {
            let peer = self.check_peer(slot, peer?.0)?;
            ips.push(peer.ip());
            if ips.len() > 64 {
                return Err(Reject::BadRequest);
            }
        }
        if ips.is_empty() {
            return Err(Reject::BadRequest);
        }
        self.install_permissions(slot, &ips, now)?;
        let ty = msg.message_type().success();
        self.write_response(
            out,
            ty,
            msg.transaction_id(),
            msg.has_fingerprint(),
            auth,
            |_| Ok(()),
        )
        .map_err(|_| Reject::BadRequest)
    }

    /// ChannelBind (RFC 8656 §11.2): binds or refreshes a channel and the peer's
    /// permission.
    fn channel_bind(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<&[u8]>,
        auth: &Authenticated,
        out: &mut [u8],
    ) -> Handled {
        let slot = self.allocation_for(now, &from, auth)?;
        // Channels carry datagrams; a TCP allocation (RFC 6062) relays none.
        if self.slots[slot as usize].as_ref().is_some_and(|a| a.tcp) {
            return Err(Reject::BadRequest);
        }
        let number = msg.get::<ChannelNumber>()?.ok_or(Reject::BadRequest)?;
        if self.strict_channel_numbers && !number.is_rfc8656() {
            return Err(Reject::BadRequest);
        }
        let peer = msg.get::<XorPeerAddress>()?.ok_or(Reject::BadRequest)?;
        let peer = self.check_peer(slot, peer.0)?;
        let max = self.quotas.channels_per_allocation as usize;
        {
            let alloc = self.slots[slot as usize]
                .as_ref()
                .ok_or(Reject::AllocationMismatch)?;
            // Rebind rules: a number (even one cooling down after expiry) stays with its
            // peer, and a peer with its number. One pass checks both and counts the
            // bindings still held, for the quota a new number would count against.
            let (mut held, mut exists) = (0, false);
            for c in alloc
                .channels
                .iter()
                .filter(|c| c.expires + CHANNEL_COOLDOWN > now)
            {
                match (c.number == number, c.peer == peer) {
                    (true, false) => return Err(Reject::ChannelNumberInUse),
                    (false, true) => return Err(Reject::PeerOnAnotherChannel),
                    (same_number, _) => exists |= same_number,
                }
                held += 1;
            }
            if !exists && max != 0 && held >= max {
                return Err(Reject::InsufficientCapacity);
            }
        }
        self.install_permissions(slot, &[peer.ip()], now)?;
        let alloc = self.slots[slot as usize]
            .as_mut()
            .ok_or(Reject::AllocationMismatch)?;
        alloc
            .channels
            .retain(|c| c.expires + CHANNEL_COOLDOWN > now);
        match alloc.channels.iter_mut().find(|c| c.number == number) {
            Some(c) => c.expires = now + CHANNEL_LIFETIME,
            None => push_lean(
                &mut alloc.channels,
                ChannelBinding {
                    number,
                    peer,
                    expires: now + CHANNEL_LIFETIME,
                },
            ),
        }
        let ty = msg.message_type().success();
        self.write_response(
            out,
            ty,
            msg.transaction_id(),
            msg.has_fingerprint(),
            auth,
            |_| Ok(()),
        )
        .map_err(|_| Reject::BadRequest)
    }

    // ----- peer side --------------------------------------------------------------------

    /// Handles a datagram a relay socket received from `from`. The payload is
    /// `buf[payload]`; the buffer must have [`PEER_HEADROOM`] bytes before it and
    /// [`PEER_TAILROOM`] after, so the ChannelData or Data indication header is written in
    /// place and the payload is never moved.
    pub fn handle_peer(
        &mut self,
        now: Instant,
        relay: RelayId,
        from: SocketAddr,
        buf: &mut [u8],
        payload: Range<usize>,
    ) -> PeerAction {
        // The range comes from the runtime, not the wire, but a bad one must not panic
        // (`end + TAILROOM` could overflow) nor yield a reversed output range.
        let fits = payload
            .end
            .checked_add(PEER_TAILROOM)
            .is_some_and(|end| end <= buf.len());
        if payload.start < PEER_HEADROOM || payload.start > payload.end || !fits {
            return PeerAction::None;
        }
        let Some(&slot) = self.by_relay.get(&relay) else {
            return PeerAction::None;
        };
        let rate = self.quotas.bandwidth_bytes_per_sec;
        let Some(alloc) = datagram_relay(&mut self.slots, slot, now) else {
            return PeerAction::None;
        };
        let from = normalise_addr(from);
        if !alloc.has_permission(from.ip(), now) {
            self.stats.dropped_no_permission += 1;
            return PeerAction::None;
        }
        let len = payload.len();
        if !alloc.bucket.take(now, rate, len) {
            self.stats.dropped_bandwidth += 1;
            return PeerAction::None;
        }
        let to = alloc.five_tuple;
        let channel = alloc.channel_for_peer(from, now);
        self.stats.to_client += 1;
        if let Some(number) = channel {
            let start = payload.start - 4;
            let mut end = payload.end;
            if write_channel_data_header(&mut buf[start..], number, len).is_err() {
                return PeerAction::None;
            }
            if to.transport.is_stream() {
                let padded = start + (4 + len).next_multiple_of(4);
                buf[end..padded].fill(0);
                end = padded;
            }
            return PeerAction::ToClient {
                to,
                range: start..end,
            };
        }
        // Data indication (RFC 8656 §11.3): header, XOR-PEER-ADDRESS, DATA header, all
        // written in front of the payload.
        let addr_len = if from.is_ipv4() { 8 } else { 20 };
        let start = payload.start - (20 + 4 + addr_len + 4);
        let mut tid = [0u8; 12];
        tid[..8].copy_from_slice(&self.next_random().to_be_bytes());
        tid[8..].copy_from_slice(&(self.next_random() as u32).to_be_bytes());
        let ty = MessageType::new(Method::DATA, Class::Indication);
        let written =
            MessageWriter::new(&mut buf[start..], ty, TransactionId(tid)).and_then(|mut w| {
                w.put(&XorPeerAddress(from))?;
                w.put_with(AttrType::DATA, len, |_| {})?;
                Ok(w.finish())
            });
        match written {
            Ok(n) => PeerAction::ToClient {
                to,
                range: start..start + n,
            },
            Err(_) => PeerAction::None,
        }
    }

    // ----- time -------------------------------------------------------------------------

    /// Expires allocations, permissions, channels, reservations and cached responses.
    pub fn handle_timeout(&mut self, now: Instant, host: &mut impl Host) {
        match self.next_sweep {
            Some(t) if t <= now => {}
            _ => return,
        }
        for slot in 0..self.slots.len() as u32 {
            let expired = match &mut self.slots[slot as usize] {
                Some(a) => {
                    a.permissions.retain(|p| p.expires > now);
                    a.channels.retain(|c| c.expires + CHANNEL_COOLDOWN > now);
                    if a.cached.as_ref().is_some_and(|c| c.until <= now) {
                        a.cached = None;
                    }
                    !a.is_live(now)
                }
                None => false,
            };
            if expired {
                self.remove(slot, host);
            }
        }
        let gone: Vec<[u8; 8]> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.until <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in gone {
            if let Some(r) = self.reservations.remove(&t) {
                host.release_relay(r.relay);
            }
        }
        self.cache.retain(|_, c| c.until > now);
        self.sweep_connections(now, host);
        // Shrink the slab's tail so an idle server holds nothing. Pop first, then drop
        // the popped indices from the free list once: retaining after every pop made a
        // mass expiry (n allocations at once) cost O(n²) in a single sweep.
        let before = self.slots.len();
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        if self.slots.len() < before {
            let len = self.slots.len() as u32;
            self.free.retain(|&s| s < len);
        }
        // Give memory back once a table is mostly empty (after a mass expiry or a busy
        // minute of transactions): maps and vectors keep their capacity otherwise.
        trim_vec(&mut self.slots);
        trim_vec(&mut self.free);
        self.by_five_tuple.trim(&self.slots);
        trim_map(&mut self.by_relay);
        trim_map(&mut self.cache);
        trim_map(&mut self.reservations);
        trim_map(&mut self.connections);
        trim_map(&mut self.data_clients);
        let busy = !self.by_five_tuple.is_empty()
            || !self.reservations.is_empty()
            || !self.cache.is_empty()
            || !self.connections.is_empty();
        self.next_sweep = busy.then(|| now + SWEEP_INTERVAL);
    }
}

/// The smallest step the allocation slab grows by.
const SLAB_MIN_GROWTH: usize = 16;

/// Tables this small are never shrunk.
const TRIM_FLOOR: usize = 64;

/// Halves (or more) a map that is less than a quarter full; the hysteresis keeps an
/// oscillating size from rehashing on every sweep.
fn trim_map<K: Eq + core::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > TRIM_FLOOR && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

/// [`trim_map`] for a vector.
fn trim_vec<T>(v: &mut Vec<T>) {
    if v.capacity() > TRIM_FLOOR && v.len() < v.capacity() / 4 {
        v.shrink_to(v.len() * 2);
    }
}

/// The name a quota counts: the user part of a REST username, else the username.
fn quota_user(username: &str) -> &str {
    parse_rest_username(username).map_or(username, |r| r.user)
}

/// The allocation in `slot` if it may relay datagrams now: a dead allocation the sweep has
/// not reached yet relays nothing, and a TCP allocation (RFC 6062) relays no datagrams.
/// A free function over the slab, so callers can still update other fields of the server.
fn datagram_relay(
    slots: &mut [Option<Allocation>],
    slot: u32,
    now: Instant,
) -> Option<&mut Allocation> {
    slots
        .get_mut(slot as usize)?
        .as_mut()
        .filter(|a| a.is_live(now) && !a.tcp)
}

fn normalise_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(normalise(addr.ip()), addr.port())
}

impl TurnServer {
    /// A TCP or TLS client connection closed. If an allocation was made over it, the
    /// allocation is deleted, with its relays, its quota slot and its peer data
    /// connections (RFC 8656 §3.1 and §5: over TCP or TLS the allocation lives as long
    /// as the connection it was made on; RFC 6062 §5.5). If it was
    /// an RFC 6062 client data connection, its peer data connection is closed
    /// ([`Host::close_peer_connection`]). Anything else does nothing.
    pub fn handle_connection_closed(
        &mut self,
        now: Instant,
        five_tuple: FiveTuple,
        host: &mut impl Host,
    ) {
        let _ = now;
        if let Some(slot) = self.by_five_tuple.get(&five_tuple, &self.slots) {
            self.remove(slot, host);
        }
        if let Some(id) = self.data_clients.get(&five_tuple).copied() {
            self.forget_connection(id);
            host.close_peer_connection(id);
        }
        self.cache.remove(&five_tuple);
    }

    /// Handles an ICMP error about a datagram relay `relay` sent to `peer` (RFC 8656
    /// §11.5): the runtime read it from the relay socket's error queue and passes the
    /// destination of the failed datagram (`peer`, port 0 if the system did not say) and
    /// the ICMP type and code as received, of the family of `peer` (ICMPv4 for an IPv4 or
    /// IPv4-mapped peer, ICMPv6 otherwise). `error_data` is the next-hop MTU for
    /// "fragmentation needed" (ICMPv4 3/4) and "packet too big" (ICMPv6 2); it is sent as
    /// 0 for every other type, as RFC 8656 §18.13 requires.
    ///
    /// Only ICMPv4 types 3 (destination unreachable) and 11 (time exceeded) and ICMPv6
    /// types 1, 2 and 3 are relayed; the allocation needs a permission for the peer's
    /// IP (ports are not compared); and at most [`TurnConfig::icmp_per_second`] are
    /// relayed per allocation and second. The message is a Data indication with
    /// XOR-PEER-ADDRESS and ICMP and no DATA, always, channel or not (ChannelData cannot
    /// carry it). It is written at the start of `buf`, which needs
    /// [`ICMP_INDICATION_MAX`] bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_peer_icmp(
        &mut self,
        now: Instant,
        relay: RelayId,
        peer: SocketAddr,
        icmp_type: u8,
        icmp_code: u8,
        error_data: u32,
        buf: &mut [u8],
    ) -> PeerAction {
        let Some(&slot) = self.by_relay.get(&relay) else {
            return PeerAction::None;
        };
        let Some(alloc) = datagram_relay(&mut self.slots, slot, now) else {
            return PeerAction::None;
        };
        let peer = normalise_addr(peer);
        let v4 = peer.is_ipv4();
        // RFC 8656 §11.5: "the type is either 3 or 11 for an ICMPv4 [RFC0792] packet or
        // either 1, 2, or 3 for an ICMPv6 [RFC4443] packet".
        let relayable = if v4 {
            matches!(icmp_type, 3 | 11)
        } else {
            matches!(icmp_type, 1..=3)
        };
        let ours = alloc.relay(Family::of(peer)) == Some(relay);
        if !relayable || !ours || !alloc.has_permission(peer.ip(), now) {
            self.stats.icmp_dropped += 1;
            return PeerAction::None;
        }
        if !alloc
            .icmp_bucket
            .take(now, u64::from(self.icmp_per_second), 1)
        {
            self.stats.icmp_dropped += 1;
            return PeerAction::None;
        }
        let to = alloc.five_tuple;
        // RFC 8656 §18.13: the MTU for ICMPv6 "packet too big" and ICMPv4 "fragmentation
        // needed", otherwise "the Error Data field MUST be set to zero".
        let mtu = if v4 {
            icmp_type == 3 && icmp_code == 4
        } else {
            icmp_type == 2
        };
        let icmp = Icmp {
            icmp_type,
            code: icmp_code,
            error_data: if mtu { error_data } else { 0 },
        };
        let tid = self.random_tid();
        let ty = MessageType::new(Method::DATA, Class::Indication);
        let written = MessageWriter::new(buf, ty, tid).and_then(|mut w| {
            w.put(&XorPeerAddress(peer))?;
            w.put(&icmp)?;
            Ok(w.finish())
        });
        match written {
            Ok(n) => {
                self.stats.icmp_relayed += 1;
                PeerAction::ToClient { to, range: 0..n }
            }
            Err(_) => PeerAction::None,
        }
    }

    /// A transaction ID for an indication the server originates.
    fn random_tid(&mut self) -> TransactionId {
        let mut tid = [0u8; 12];
        tid[..8].copy_from_slice(&self.next_random().to_be_bytes());
        tid[8..].copy_from_slice(&(self.next_random() as u32).to_be_bytes());
        TransactionId(tid)
    }
}
