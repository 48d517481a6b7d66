//! The body of the `config_parse` fuzz target: any text through the binary's
//! configuration parser (`crates/turnpike/src/config.rs`, included by the caller as the
//! sibling module `config`).
//!
//! It must never panic; a configuration it accepts must pass `Config::validate` again
//! (what the binary relies on before it binds anything); each problem of an error must name the file,
//! a line and column inside the text in file order (1-based, the column at most one past the line's
//! end), and a reason.
//!
//! Compiled in `fuzz_targets/config_parse.rs` and in
//! `crates/turnpike/tests/fuzz_config_corpus.rs`; keep it free of `crate::` paths.

#![allow(unreachable_pub)]

use super::config::{ConfigError, parse};

/// The name the text is parsed under.
pub const FILE: &str = "fuzz.toml";

/// Parses `data` (if UTF-8, as the binary reads files) and checks the outcome.
pub fn config_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text, FILE) {
        Ok(config) => {
            if let Err(invalid) = config.validate() {
                panic!("accepted, yet invalid: {invalid:?}");
            }
        }
        Err(e) => check_error(text, &e),
    }
}

fn check_error(text: &str, e: &ConfigError) {
    assert_eq!(e.file, FILE);
    assert!(!e.problems.is_empty(), "an error without a problem");
    let shown = e.to_string();
    assert_eq!(shown.lines().count(), e.problems.len(), "{shown}");
    let lines: Vec<&str> = text.split('\n').collect();
    let mut last = None;
    for (p, shown) in e.problems.iter().zip(shown.lines()) {
        assert!(!p.reason.is_empty(), "a problem without a reason");
        assert!(shown.starts_with(FILE), "{shown}");
        if let Some((line, col)) = p.position {
            assert!(
                line >= 1 && line <= lines.len(),
                "line {line} of {}",
                lines.len()
            );
            let len = lines[line - 1].len();
            assert!(
                col >= 1 && col <= len + 1,
                "column {col} of a {len}-byte line"
            );
            assert!(
                last <= Some((line, col)),
                "problems out of file order: {shown}"
            );
            last = Some((line, col));
        }
    }
}
