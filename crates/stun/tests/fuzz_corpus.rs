//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz target
//! bodies (`fuzz/src/lib.rs`, included below) on stable Rust, so CI exercises every seed
//! and every input a fuzzing run added, without nightly or cargo-fuzz.
//!
//! The seeds are written by the ignored test `regenerate_fuzz_corpus`:
//!
//! ```text
//! cargo test -p turnpike-stun --test fuzz_corpus -- --ignored regenerate_fuzz_corpus
//! ```

mod common;
#[path = "../../../fuzz/src/lib.rs"]
mod fuzz_bodies;
mod support;

use std::fs;
use std::path::PathBuf;

use turnpike_stun::framing::{Framing, next_frame};
use turnpike_stun::{ChannelData, IntegrityKey, Message};

const TARGETS: [&str; 3] = ["message_decode", "channel_data_decode", "stream_framing"];

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Every file of a target's corpus, sorted by name. Fails on an empty or missing directory,
/// so the replay cannot pass vacuously.
fn corpus(target: &str) -> Files {
    let dir = corpus_dir(target);
    let entries = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (regenerate the corpus?)", dir.display()));
    let mut files: Files = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p
                .file_name()
                .expect("file name")
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
fn replay(target: &str, body: fn(&[u8])) -> Files {
    let files = corpus(target);
    let failed: Vec<&str> = files
        .iter()
        .filter(|(_, bytes)| std::panic::catch_unwind(|| body(bytes)).is_err())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(failed.is_empty(), "{target}: panicked on {failed:?}");
    files
}

#[test]
fn replay_message_decode_corpus() {
    let files = replay("message_decode", |b| {
        let _ = fuzz_bodies::message_decode(b);
    });
    // The seeds are meaningful: most are valid messages, and each integrity key verifies
    // at least one of them (so the HMAC paths run on real data, not only on mismatches).
    let parsed: Vec<Message<&[u8]>> = files
        .iter()
        .filter_map(|(_, b)| Message::new_checked(&b[..]).ok())
        .collect();
    assert!(parsed.len() >= 20, "only {} seeds parse", parsed.len());
    for key in fuzz_bodies::KEYS {
        let key = IntegrityKey::new(key);
        assert!(
            parsed.iter().any(|m| m.verify_integrity(&key).is_ok()),
            "no seed verifies with one of the keys"
        );
    }
    assert!(parsed.iter().any(|m| m.verify_fingerprint() == Ok(true)));
    assert!(
        files
            .iter()
            .any(|(_, b)| Message::new_checked(&b[..]).is_err())
    );
}

#[test]
fn replay_channel_data_decode_corpus() {
    let files = replay("channel_data_decode", fuzz_bodies::channel_data_decode);
    let ok = files
        .iter()
        .filter(|(_, b)| ChannelData::new_checked(&b[..]).is_ok())
        .count();
    assert!(ok >= 5, "only {ok} seeds decode");
}

#[test]
fn replay_stream_framing_corpus() {
    let files = replay("stream_framing", fuzz_bodies::stream_framing);
    let most = files
        .iter()
        .map(|(_, b)| {
            fuzz_bodies::split_stream(&b[1..], || usize::MAX)
                .frames
                .len()
        })
        .max()
        .unwrap_or(0);
    assert!(most >= 10, "no seed holds many frames ({most})");
    assert!(files.iter().any(|(_, b)| {
        fuzz_bodies::split_stream(&b[1..], || usize::MAX).end == Framing::Garbage
    }));
}

#[test]
fn corpus_seeds_are_present() {
    // The generated seeds themselves, whatever else a fuzzing run added.
    for (target, seeds) in seeds() {
        let dir = corpus_dir(target);
        for (name, bytes) in seeds {
            let path = dir.join(&name);
            let on_disk = fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (regenerate the corpus?)", path.display()));
            // Generated messages depend only on the codec's encoding, which is fixed by
            // the RFCs: a difference means the writer changed its output.
            assert_eq!(
                on_disk,
                bytes,
                "{} is stale: cargo test -p turnpike-stun --test fuzz_corpus -- --ignored",
                path.display()
            );
        }
    }
}

/// Writes the seed corpus. Existing files with other names (inputs a fuzzing run added)
/// are left alone.
#[test]
#[ignore = "writes fuzz/corpus; run with --ignored to regenerate the seeds"]
fn regenerate_fuzz_corpus() {
    for (target, seeds) in seeds() {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).expect("create corpus directory");
        for (name, bytes) in seeds {
            fs::write(dir.join(name), bytes).expect("write seed");
        }
    }
}

/// Appends a raw attribute after the last one and fixes the header length.
fn append(b: &[u8], ty: u16, value: &[u8]) -> Vec<u8> {
    let mut out = b.to_vec();
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
    let len = (out.len() - 20) as u16;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    out
}

/// The seeds of every target: `(target, [(file name, bytes)])`.
/// Named files.
type Files = Vec<(String, Vec<u8>)>;

fn seeds() -> Vec<(&'static str, Files)> {
    let samples = support::samples();
    let frames = support::channel_frames();
    let by_name = |name: &str| {
        samples
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no sample {name}"))
            .bytes
            .clone()
    };
    let bin = |name: &str| format!("{name}.bin");

    // message_decode: every sample, the published B.1, and a few near misses.
    let mut messages: Files = samples
        .iter()
        .map(|s| (bin(s.name), s.bytes.clone()))
        .collect();
    messages.push((
        bin("rfc8489-b1-published"),
        support::published_b1().to_vec(),
    ));
    let request = by_name("rfc5769-2.1-request");
    messages.push((bin("bad-truncated"), request[..60].to_vec()));
    messages.push((
        bin("bad-after-fingerprint"),
        append(&request, 0x8022, b"late"),
    ));
    let empty = by_name("binding-request-empty");
    messages.push((
        bin("bad-integrity-length"),
        append(&empty, 0x0008, &[0; 16]),
    ));
    let mut overflow = by_name("allocate-request");
    overflow[22..24].copy_from_slice(&0x00FFu16.to_be_bytes());
    messages.push((bin("bad-attribute-length"), overflow));

    // channel_data_decode: every frame, and frames just outside the rules.
    let mut channel: Files = frames.iter().map(|(n, f, _)| (bin(n), f.clone())).collect();
    let five = frames[3].1.clone();
    channel.push((bin("bad-truncated"), five[..7].to_vec()));
    let mut bad_channel = five.clone();
    bad_channel[0] = 0x80;
    channel.push((bin("bad-channel-number"), bad_channel));
    let mut long = five;
    long[2..4].copy_from_slice(&0x0100u16.to_be_bytes());
    channel.push((bin("bad-length"), long));

    // stream_framing: a chunking seed byte, then concatenated frames.
    let padded: Vec<Vec<u8>> = frames
        .iter()
        .filter(|(_, _, pad)| *pad)
        .map(|(_, f, _)| f.clone())
        .collect();
    let mut mixed = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        mixed.push(s.bytes.clone());
        mixed.push(padded[i % padded.len()].clone());
    }
    let vectors: Vec<u8> = support::vectors()
        .iter()
        .flat_map(|s| s.bytes.clone())
        .collect();
    let stream = |seed: u8, parts: &[Vec<u8>]| {
        let mut s = vec![seed];
        for p in parts {
            s.extend_from_slice(p);
        }
        s
    };
    let mut partial = stream(7, &mixed[..6]);
    partial.extend_from_slice(&mixed[6][..mixed[6].len() / 2]);
    // HTTP after TURN frames: 'G' (0x47) opens an RFC 5766 ChannelData header.
    let mut http = stream(9, &mixed[..4]);
    http.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let mut garbage = stream(11, &mixed[..4]);
    garbage.extend_from_slice(&[0x80, 0x01, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef]);
    let mut tls = vec![3u8];
    tls.extend_from_slice(&[0x16, 0x03, 0x01, 0x00, 0x2a]);
    tls.extend_from_slice(&[0; 42]);
    let streams = vec![
        (bin("vectors"), stream(1, std::slice::from_ref(&vectors))),
        (bin("mixed-all"), stream(0x2a, &mixed)),
        (bin("mixed-head"), stream(0xff, &mixed[..8])),
        (bin("channel-only"), stream(5, &padded)),
        (bin("partial-tail"), partial),
        (bin("http-after-frames"), http),
        (bin("garbage-after-frames"), garbage),
        (bin("tls-hello"), tls),
        (bin("empty"), vec![0]),
    ];
    // Sanity: the streams cut as intended.
    assert_eq!(
        next_frame(&streams[1].1[1..]),
        Framing::Frame(turnpike_stun::framing::Frame::Stun(mixed[0].len()))
    );

    vec![
        ("message_decode", messages),
        ("channel_data_decode", channel),
        ("stream_framing", streams),
    ]
}

#[test]
fn every_target_has_a_corpus_and_a_fuzz_target() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let manifest = fs::read_to_string(fuzz.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for target in TARGETS {
        assert!(corpus_dir(target).is_dir(), "no corpus for {target}");
        let source = fuzz.join("fuzz_targets").join(format!("{target}.rs"));
        let body =
            fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(
            body.contains(&format!("turnpike_fuzz::{target}(")),
            "{target}.rs does not call its body in fuzz/src/lib.rs"
        );
        assert!(manifest.contains(&format!("name = \"{target}\"")));
    }
}
