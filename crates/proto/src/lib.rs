//! # turnpike-proto
//!
//! The sans-IO protocol core: it takes bytes, addresses and the current time, and returns
//! what to send. It never touches a socket, a clock or a global RNG, so tests drive it
//! deterministically; `clippy.toml` forbids `Instant::now` and `SystemTime::now` here.
//!
//! - [`server::TurnServer`]: TURN (RFC 8656, RFC 6156) with the Binding service built
//!   in; see its docs for the order in which a runtime calls it. Also ALTERNATE-SERVER
//!   redirection (RFC 8489 §10), mobility ([`mobility`], RFC 8016), ICMP relaying
//!   (RFC 8656 §11.5) and the protocol core of TCP relays ([`server::tcp_relay`],
//!   RFC 6062).
//! - [`config`]: the configuration sections the core reads ([`TurnConfig`]), the same
//!   types the runtime reads from `turnserver.toml` (with the `serde` feature).
//! - [`auth`]: long-term credentials, TURN REST secrets, stateless nonces.
//! - [`policy`]: which peers may be relayed to (safe by default).
//! - [`quota`]: allocation quotas and the bandwidth cap.
//! - [`host`]: what the core asks of its runtime (relay sockets, reservations, the quota
//!   ledger).
//! - [`table`]: the allocations of one core, addressed by [`table::AllocationId`].
//! - [`allocation`]: the state of one allocation.
//! - [`binding`]: the STUN Binding service on its own, with opt-in RFC 5780 NAT behaviour
//!   discovery ([`binding::Rfc5780Addresses`]).

#![forbid(unsafe_code)]

pub mod addr_syntax;
pub mod allocation;
pub mod auth;
pub mod binding;
pub mod budget;
pub mod config;
pub mod host;
pub mod mobility;
pub mod policy;
pub mod quota;
pub mod server;
pub mod table;

pub use allocation::{ClientTransport, FiveTuple, Usage};
pub use binding::{Rfc5780Addresses, Rfc5780Error};
pub use config::{
    Alternates, CoreSetup, Md5Key, StaticUser, TimeBase, TurnConfig, TurnSection, UserCredential,
};
pub use host::{BoundRelay, Claim, Family, Host, PortRequest, RelayError, RelayId, Reservations};
pub use server::{
    AllocationRecord, ClientAction, EndReason, Event, PeerAction, Reject, Transmit, TurnServer,
};
pub use turnpike_stun as stun;
pub use turnpike_stun::attr::ConnectionId;

/// The hash map of the data path (the core's, and the runtime's relays, listeners and
/// stream clients): foldhash instead of SipHash, several times cheaper on the small keys
/// looked up per datagram (relay ids, 5-tuples, addresses), and seeded at random per map,
/// so keys a remote party chooses (its source address) cannot be aimed at one bucket.
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
