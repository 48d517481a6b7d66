//! Any bytes as one ChannelData datagram: `ChannelData::new_checked`, its accessors and
//! re-encoding (padded and unpadded).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    turnpike_fuzz::channel_data_decode(data);
});
