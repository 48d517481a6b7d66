//! Any bytes as one STUN datagram: `Message::new_checked` and every accessor, typed
//! decoding, integrity/FINGERPRINT against an independent computation, raw re-encoding.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = turnpike_fuzz::message_decode(data);
});
