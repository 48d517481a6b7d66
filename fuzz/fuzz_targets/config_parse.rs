//! Any text through the binary's configuration parser (`crates/turnpike/src/config.rs`,
//! compiled here with #[path]): no panic, accepted means valid, errors located in the
//! text (see `src/config_parse.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/turnpike/src/config.rs"]
#[allow(dead_code)]
mod config;
#[path = "../src/config_parse.rs"]
mod config_parse;

fuzz_target!(|data: &[u8]| {
    config_parse::config_parse(data);
});
