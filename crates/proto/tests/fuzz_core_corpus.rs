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
fn replay(target: &str, body: fn(&[u8])) {
    let files = corpus(target);
    let failed: Vec<&str> = files
        .iter()
        .filter(|(_, bytes)| std::panic::catch_unwind(|| body(bytes)).is_err())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(failed.is_empty(), "{target}: panicked on {failed:?}");
}

/// How deep each input of a corpus goes, summed: inputs that made an allocation,
/// relayed to a peer, delivered to a client, bound an RFC 6062 pipe, started a Connect.
#[derive(Debug, Default, PartialEq, Eq)]
struct Reach {
    inputs: usize,
    allocated: usize,
    to_peer: usize,
    to_client: usize,
    binds: usize,
    connects: usize,
}

fn reach(files: &[(String, Vec<u8>)], run: fn(&[u8]) -> Option<turn_core::Depth>) -> Reach {
    let mut r = Reach::default();
    for (_, bytes) in files {
        let Some(d) = run(bytes) else { continue };
        r.inputs += 1;
        r.allocated += usize::from(d.allocations > 0);
        r.to_peer += usize::from(d.to_peer > 0);
        r.to_client += usize::from(d.to_client > 0);
        r.binds += usize::from(d.binds > 0);
        r.connects += usize::from(d.connects > 0);
    }
    r
}

fn sequence_depth(bytes: &[u8]) -> Option<turn_core::Depth> {
    let input = Unstructured::new(bytes)
        .arbitrary::<turn_core::sequence::Input>()
        .ok()?;
    Some(turn_core::sequence::run(&input))
}

fn stream_depth(bytes: &[u8]) -> Option<turn_core::Depth> {
    let input = Unstructured::new(bytes)
        .arbitrary::<turn_core::stream::StreamInput>()
        .ok()?;
    Some(turn_core::stream::run(&input))
}

#[test]
fn replay_core_sequence_corpus() {
    replay("core_sequence", turn_core::sequence::core_sequence);
    // The corpus reaches the deep paths: allocations, relaying both ways, RFC 6062.
    let r = reach(&corpus("core_sequence"), sequence_depth);
    assert!(
        r.allocated > 0 && r.to_peer > 0 && r.to_client > 0 && r.connects > 0,
        "{r:?}"
    );
}

#[test]
fn replay_stream_session_corpus() {
    replay("stream_session", turn_core::stream::stream_session);
    let r = reach(&corpus("stream_session"), stream_depth);
    assert!(r.allocated > 0, "{r:?}");
}

/// How deep the inputs in `FUZZ_DIR` (a fuzzing run's scratch corpus) go.
#[test]
#[ignore = "a measuring aid: set FUZZ_DIR (and FUZZ_TARGET=stream_session)"]
fn corpus_depth() {
    let dir = std::env::var("FUZZ_DIR").expect("FUZZ_DIR=directory");
    let files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .expect("a directory")
        .map(|e| e.expect("an entry").path())
        .map(|p| (p.display().to_string(), fs::read(&p).expect("readable")))
        .collect();
    let stream = std::env::var("FUZZ_TARGET").is_ok_and(|t| t == "stream_session");
    let r = if stream {
        reach(&files, stream_depth)
    } else {
        reach(&files, sequence_depth)
    };
    println!("{dir}: {} files, {r:?}", files.len());
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

/// The harness reaches the deep paths by construction: a hand-written sequence
/// allocates, installs a permission and a channel, relays both ways, and (over TCP)
/// connects to a peer and binds the data connection.
#[test]
fn a_handmade_sequence_relays_both_ways() {
    use turn_core::client::{Attr, Signing};
    use turn_core::sequence::{Input, MethodPick, Op, run};
    use turn_core::setup::ConfigChoice;

    let sign = Some(Signing {
        sha256: false,
        fingerprint: true,
    });
    let request = |client: u8, method: MethodPick, attrs: Vec<Attr>| Op::Request {
        client,
        method,
        attrs,
        signing: sign,
        mutate: None,
    };
    let config = ConfigChoice {
        allow: vec![],
        deny: vec![],
        loopback: false,
        own: true,
        per_user: 0,
        total: 0,
        permissions: 0,
        channels: 0,
        bandwidth: 0,
        tcp_connections: 0,
        max_lifetime_min: 60,
        nonce_secs: 600,
        strict_expiry: false,
        strict_channels: false,
        mobility: false,
        tcp_relay: true,
        icmp_per_second: 1,
        other_realm: false,
        alternates: None,
    };
    let ops = vec![
        request(0, MethodPick::Allocate, vec![Attr::TransportUdp]),
        request(0, MethodPick::CreatePermission, vec![Attr::Peer(0)]),
        Op::Indication {
            client: 0,
            send: None,
            attrs: vec![Attr::Peer(0), Attr::Data(10)],
        },
        request(
            0,
            MethodPick::ChannelBind,
            vec![Attr::GoodChannel(1), Attr::Peer(0)],
        ),
        Op::ChannelData {
            client: 0,
            channel: 1,
            len: 9,
            pad: false,
        },
        Op::PeerDatagram {
            relay: 0,
            peer: 0,
            len: 7,
        },
        // Client 3 is alice over TCP, client 4 her second TCP connection.
        request(3, MethodPick::Allocate, vec![Attr::TransportTcp]),
        request(3, MethodPick::Connect, vec![Attr::Peer(0)]),
        Op::PeerConnected {
            connection: 0,
            ok: true,
        },
        request(4, MethodPick::ConnectionBind, vec![Attr::Connection(0)]),
        Op::AdvanceSecs {
            secs: 100,
            late: false,
        },
    ];
    let depth = run(&Input {
        config,
        rest_expiry: 100,
        ops,
    });
    assert_eq!(depth.allocations, 2, "{depth:?}");
    assert_eq!(depth.to_peer, 2, "{depth:?}");
    assert_eq!(depth.to_client, 1, "{depth:?}");
    assert_eq!((depth.connects, depth.binds), (1, 1), "{depth:?}");
}

/// The `Session` operation sets up relaying both ways in one step.
#[test]
fn a_session_op_relays_both_ways() {
    use turn_core::sequence::{Input, Op, run};
    let mut input = Unstructured::new(&[0u8; 64])
        .arbitrary::<Input>()
        .expect("decodes");
    input.config.tcp_relay = true;
    input.ops = vec![
        Op::Session {
            client: 0,
            peer: 0,
            channel: 3,
        },
        Op::Session {
            client: 3,
            peer: 1,
            channel: 0,
        },
    ];
    let depth = run(&input);
    assert_eq!(depth.allocations, 2, "{depth:?}");
    assert_eq!((depth.to_peer, depth.to_client), (1, 1), "{depth:?}");
    assert_eq!((depth.connects, depth.binds), (1, 1), "{depth:?}");
}

/// The stream `Session` operation relays both ways over a stream connection.
#[test]
fn a_stream_session_op_relays_both_ways() {
    use turn_core::stream::{StreamInput, StreamOp, run};
    let mut input = Unstructured::new(&[0u8; 64])
        .arbitrary::<StreamInput>()
        .expect("decodes");
    input.ops = vec![StreamOp::Session {
        conn: 0,
        peer: 0,
        channel: 2,
    }];
    let depth = run(&input);
    assert_eq!(depth.allocations, 1, "{depth:?}");
    assert_eq!((depth.to_peer, depth.to_client), (1, 1), "{depth:?}");
}
