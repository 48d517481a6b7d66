//! The bodies of the fuzz targets that drive the sans-IO TURN core
//! ([`turnpike_proto::TurnServer`]): `core_sequence` ([`sequence::core_sequence`]) and
//! `stream_session` ([`stream::stream_session`]).
//!
//! A [`World`] is one core, its [`host::FuzzHost`], a virtual clock and a fixed cast of
//! clients and peers ([`setup`]). The fuzzer's bytes are decoded with `arbitrary` into
//! a configuration and a sequence of operations; after every operation [`World::check`]
//! asserts the core's invariants, and [`World::finish`] lets everything expire and asserts
//! that nothing leaked. The invariants:
//!
//! - no panic, and every output within its buffer and well framed (answers parse as
//!   STUN; ChannelData to a stream client padded to 4 bytes, RFC 8656 §12.5);
//! - an allocation only exists for a 5-tuple from which a request signed with a genuine
//!   credential of its username was sent (mutated or unsigned bytes never authenticate);
//! - nothing is relayed (ChannelData, Send, RFC 6062 Connect) to a peer that
//!   `PeerPolicy::check` of the configuration in force refuses, and after a reconfigure
//!   no permission or channel the new policy refuses is left;
//! - the quota ledger never exceeds its limits when a slot is taken, and always holds as
//!   many slots as the core has allocations; relays live in the host are those of the
//!   allocations plus the reservations;
//! - over UDP, an answer to bytes that did not authenticate is at most twice their size
//!   unless it is the 401 challenge (RFC 8656 §7 amplification);
//! - timers: after `handle_timeout(now)` the next deadline is later than `now`, and while
//!   the core holds anything that expires, there is a deadline;
//! - after everything expired and the final sweeps: no allocation, relay, reservation,
//!   quota slot or peer connection is left, and no timer.
//!
//! This directory is compiled both as a module of the `turnpike-fuzz` library and as a
//! module of `crates/proto/tests/fuzz_core_corpus.rs`, which replays the committed corpus
//! on stable Rust: keep it free of `crate::` paths.

#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod client;
pub mod host;
pub mod sequence;
pub mod setup;
pub mod stream;
pub mod world;

pub use self::world::{Depth, World};
