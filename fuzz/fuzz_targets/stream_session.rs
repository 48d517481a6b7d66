//! TCP/TLS stream sessions of the TURN core without sockets: arbitrary chunks through
//! `next_frame` into the core, every answer and relayed message framed (RFC 8656 §12.5;
//! see `src/core/stream.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/core/mod.rs"]
mod turn_core;

fuzz_target!(|data: &[u8]| {
    turn_core::stream::stream_session(data);
});
