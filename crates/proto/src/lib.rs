//! # turnpike-proto
//!
//! The sans-IO protocol core: it takes bytes, addresses and (later) the current time, and
//! returns what to send. It never touches a socket, a clock or a global RNG, so tests drive
//! it deterministically; `clippy.toml` forbids `Instant::now` and `SystemTime::now` here.
//!
//! Today it holds the STUN Binding service ([`binding`]); TURN allocations, permissions,
//! channels and authentication come next and follow the same contract.

#![forbid(unsafe_code)]

pub mod binding;

pub use turnpike_stun as stun;
