//! # turnpike-proto
//!
//! The sans-IO TURN server core (RFC 8656): it takes bytes, addresses and the current
//! time, and returns what to send. It never touches a socket or a clock.
//!
//! This crate is the home of allocations, permissions, channels, authentication and peer
//! policy; the TURN issue fills it. Today it only re-exports the codec it builds on.

#![forbid(unsafe_code)]

pub use turnpike_stun as stun;
