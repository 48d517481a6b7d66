//! [`TurnConfig`]: what the core is configured with.

use core::net::SocketAddr;
use core::time::Duration;
use std::time::Instant;

use crate::allocation::ClientTransport;
use crate::binding::Rfc5780Addresses;
use crate::policy::PeerPolicy;
use crate::quota::Quotas;

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
    /// This core's index among the cores of one runtime (0 to 255; 0 by default). It goes
    /// into MOBILITY-TICKETs, so a ticket that reaches another core is sent back to this
    /// one ([`ClientAction::Forward`](crate::ClientAction::Forward)).
    pub shard: u8,
    /// Where a 300 Try Alternate sends clients, per client transport (RFC 8489 §10).
    /// Empty lists (the default): never redirect.
    pub alternates: Alternates,
    /// ALTERNATE-DOMAIN sent with a 300 to TLS clients (RFC 8489 §14.16): the name the
    /// alternates' certificates are for. None by default.
    pub alternate_domain: Option<String>,
    /// Redirect every new Allocate to an alternate (draining); see also
    /// [`TurnServer::set_redirect`](crate::TurnServer::set_redirect). Off by default.
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
            shard: 0,
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
