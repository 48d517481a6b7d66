//! Replays the committed corpus of the core fuzz targets (`fuzz/corpus/core_sequence/`,
//! `fuzz/corpus/stream_session/`) through their bodies (`fuzz/src/core/`, included
//! below) on stable Rust, so `cargo test` runs every seed and every input a fuzzing run
//! kept, without nightly or cargo-fuzz.
//!
//! `FUZZ_INPUT=path cargo test -p turnpike-proto --test fuzz_core_corpus -- --ignored
//! --nocapture one_input` runs one file (a crash artifact, say) and prints the
//! operations it decodes to.

#[path = "../../../fuzz/src/core/mod.rs"]
mod turn_core;

use std::fs;
use std::path::PathBuf;

use arbitrary::Unstructured;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

/// Runs `body` on every file; reports every file that panicked, not only the first.
fn replay(target: &str, body: fn(&[u8])) -> usize {
    let files = corpus(target);
    let failed: Vec<&str> = files
        .iter()
        .filter(|(_, bytes)| std::panic::catch_unwind(|| body(bytes)).is_err())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(failed.is_empty(), "{target}: panicked on {failed:?}");
    files.len()
}

#[test]
fn replay_core_sequence_corpus() {
    let n = replay("core_sequence", turn_core::sequence::core_sequence);
    // The corpus is meaningful: most inputs decode to operations.
    let decoded = corpus("core_sequence")
        .iter()
        .filter(|(_, b)| {
            Unstructured::new(b)
                .arbitrary::<turn_core::sequence::Input>()
                .is_ok_and(|i| !i.ops.is_empty())
        })
        .count();
    assert!(
        decoded * 2 >= n,
        "only {decoded} of {n} inputs decode to operations"
    );
}

#[test]
fn replay_stream_session_corpus() {
    replay("stream_session", turn_core::stream::stream_session);
}

/// One input from `FUZZ_INPUT`, its decoded operations printed.
#[test]
#[ignore = "a debugging aid: set FUZZ_INPUT"]
fn one_input() {
    let path = std::env::var("FUZZ_INPUT").expect("FUZZ_INPUT=file");
    let bytes = fs::read(&path).expect("readable input");
    let target = std::env::var("FUZZ_TARGET").unwrap_or_else(|_| "core_sequence".into());
    if target == "stream_session" {
        let input = Unstructured::new(&bytes).arbitrary::<turn_core::stream::StreamInput>();
        println!("{input:#?}");
        turn_core::stream::stream_session(&bytes);
    } else {
        let input = Unstructured::new(&bytes).arbitrary::<turn_core::sequence::Input>();
        println!("{input:#?}");
        turn_core::sequence::core_sequence(&bytes);
    }
}
