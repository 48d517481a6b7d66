//! Any bytes as a TCP/TLS stream (first byte: chunking seed): `framing::next_frame` in a
//! reassembly loop, fed in random-sized chunks, byte by byte and whole; the splits must agree.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    turnpike_fuzz::stream_framing(data);
});
