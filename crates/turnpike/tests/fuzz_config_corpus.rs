//! Replays the committed corpus of the `config_parse` fuzz target
//! (`fuzz/corpus/config_parse/`) through its body (`fuzz/src/config_parse.rs`) on stable
//! Rust. The binary has no library, so its `config.rs` is compiled here with #[path],
//! exactly as the fuzz target compiles it.

#[path = "../src/config.rs"]
#[allow(dead_code)]
mod config;
#[path = "../../../fuzz/src/config_parse.rs"]
mod config_parse;

use std::fs;
use std::path::PathBuf;

#[test]
fn replay_config_parse_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config_parse");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|p| {
            let bytes = fs::read(p).expect("readable");
            std::panic::catch_unwind(|| config_parse::config_parse(&bytes)).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(failed.is_empty(), "config_parse panicked on {failed:?}");
    // The seeds mean something: the shipped file and the empty one are accepted.
    let accepted = files
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .filter(|t| config::parse(t, config_parse::FILE).is_ok())
        .count();
    assert!(accepted >= 2, "only {accepted} seeds parse");
}
