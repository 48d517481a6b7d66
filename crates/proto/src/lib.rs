//! # turnpike-proto
//!
//! The sans-IO protocol core: it takes bytes, addresses and the current time, and returns
//! what to send. It never touches a socket, a clock or a global RNG, so tests drive it
//! deterministically; `clippy.toml` forbids `Instant::now` and `SystemTime::now` here.
//!
//! - [`server::TurnServer`]: TURN over UDP relays (RFC 8656, RFC 6156) with the Binding
//!   service built in; see its docs for the order in which a runtime calls it.
//! - [`auth`]: long-term credentials, TURN REST secrets, stateless nonces.
//! - [`policy`]: which peers may be relayed to (safe by default).
//! - [`quota`]: allocation quotas and the bandwidth cap.
//! - [`host`]: what the core asks of its runtime (relay sockets, the quota ledger).
//! - [`binding`]: the STUN Binding service on its own.

#![forbid(unsafe_code)]

pub mod allocation;
pub mod auth;
pub mod binding;
pub mod host;
pub mod policy;
pub mod quota;
pub mod server;

pub use allocation::{ClientTransport, FiveTuple};
pub use host::{BoundRelay, Family, Host, PortRequest, RelayError, RelayId};
pub use server::{ClientAction, PeerAction, Reject, TimeBase, TurnConfig, TurnServer};
pub use turnpike_stun as stun;
