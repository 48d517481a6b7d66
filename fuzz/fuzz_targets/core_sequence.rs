//! The TURN core (`turnpike_proto::TurnServer`) driven by an arbitrary sequence of client
//! packets, peer events, reconfigures and time steps, with its invariants checked after
//! every step and no leak at the end (see `src/core/mod.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/core/mod.rs"]
mod turn_core;

fuzz_target!(|data: &[u8]| {
    turn_core::sequence::core_sequence(data);
});
