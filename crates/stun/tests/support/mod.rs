//! Inputs shared by the malformed-input sweeps (`malformed.rs`), the property tests
//! (`roundtrip.rs`) and the fuzz corpus (`fuzz_corpus.rs`): the RFC 5769 / RFC 8489 B.1
//! vectors, and messages built with `MessageWriter` that together carry every typed
//! attribute, IPv4 and IPv6 addresses, both integrity attributes and FINGERPRINT.
//!
//! Test crates that use it declare `mod common;` and `mod fuzz_bodies;` (the fuzz target
//! bodies, `fuzz/src/lib.rs`) next to `mod support;`.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use turnpike_stun::attr::{
    AdditionalAddressFamily, AddressErrorCode, AddressFamily, AlternateDomain, AlternateServer,
    ChangeRequest, ConnectionId, Data, DontFragment, ErrorCodeAttr, EvenPort, IceControlled,
    IceControlling, Icmp, Lifetime, MappedAddress, MobilityTicket, Nonce, OtherAddress, Padding,
    PasswordAlgorithm, PasswordAlgorithmId, PasswordAlgorithms, Priority, Realm,
    RequestedAddressFamily, RequestedTransport, ReservationToken, ResponseOrigin, ResponsePort,
    Software, TransportProtocol, UnknownAttributes, UseCandidate, Userhash, Username,
    XorMappedAddress, XorPeerAddress, XorRelayedAddress,
};
use turnpike_stun::{
    AttrType, ChannelNumber, Class, EncodeError, ErrorCode, IntegrityKey, MessageType,
    MessageWriter, Method, TransactionId, encode_channel_data,
};

use crate::common::vectors::{
    RFC5769_IPV4_RESPONSE, RFC5769_IPV6_RESPONSE, RFC5769_LONG_TERM_REQUEST,
    RFC5769_LONG_TERM_REQUEST_KEY, RFC5769_PASSWORD, RFC5769_REQUEST, RFC8489_B1_KEY,
    RFC8489_B1_REQUEST, RFC8489_B1_REQUEST_PUBLISHED,
};
use crate::fuzz_bodies::FUZZ_KEY;

/// One valid STUN message.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Short name, also the corpus file name.
    pub name: &'static str,
    /// The message.
    pub bytes: Vec<u8>,
    /// The HMAC key its integrity attribute verifies with, if it has one.
    pub key: Option<Vec<u8>>,
}

impl Sample {
    /// The prepared integrity key.
    pub fn integrity_key(&self) -> Option<IntegrityKey> {
        self.key.as_deref().map(IntegrityKey::new)
    }
}

/// The RFC 5769 §2.1–§2.4 vectors and RFC 8489 B.1 as corrected by Errata 6268.
pub fn vectors() -> Vec<Sample> {
    let v = |name, bytes: &[u8], key: &[u8]| Sample {
        name,
        bytes: bytes.to_vec(),
        key: Some(key.to_vec()),
    };
    vec![
        v(
            "rfc5769-2.1-request",
            RFC5769_REQUEST,
            RFC5769_PASSWORD.as_bytes(),
        ),
        v(
            "rfc5769-2.2-ipv4-response",
            RFC5769_IPV4_RESPONSE,
            RFC5769_PASSWORD.as_bytes(),
        ),
        v(
            "rfc5769-2.3-ipv6-response",
            RFC5769_IPV6_RESPONSE,
            RFC5769_PASSWORD.as_bytes(),
        ),
        v(
            "rfc5769-2.4-long-term-request",
            RFC5769_LONG_TERM_REQUEST,
            &RFC5769_LONG_TERM_REQUEST_KEY,
        ),
        v("rfc8489-b1-request", RFC8489_B1_REQUEST, &RFC8489_B1_KEY),
    ]
}

/// RFC 8489 B.1 exactly as published: its length field counts the header, so it is not a
/// valid message (see the vectors file).
pub fn published_b1() -> &'static [u8] {
    RFC8489_B1_REQUEST_PUBLISHED
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn tid(seed: u8) -> TransactionId {
    let mut t = [0u8; 12];
    for (i, b) in t.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8 * 17) ^ 0x5A;
    }
    TransactionId(t)
}

fn ty(method: Method, class: Class) -> MessageType {
    MessageType::new(method, class)
}

/// Builds one message; `key` says whether `f` adds an integrity attribute with [`FUZZ_KEY`].
fn build(
    name: &'static str,
    ty: MessageType,
    seed: u8,
    padding: u8,
    key: bool,
    f: impl FnOnce(&mut MessageWriter<'_>, &IntegrityKey) -> Result<(), EncodeError>,
) -> Sample {
    let mut buf = vec![0u8; 4096];
    let mut w = MessageWriter::new(&mut buf, ty, tid(seed))
        .expect("header fits")
        .with_padding_byte(padding);
    f(&mut w, &IntegrityKey::new(FUZZ_KEY)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let len = w.finish();
    buf.truncate(len);
    Sample {
        name,
        bytes: buf,
        key: key.then(|| FUZZ_KEY.to_vec()),
    }
}

/// Messages built with `MessageWriter`: every typed attribute appears in at least one.
pub fn generated() -> Vec<Sample> {
    use Class::{Error, Indication, Request, Success};
    let v4 = addr("192.0.2.1:32853");
    let v4b = addr("203.0.113.77:3478");
    let v6 = addr("[2001:db8:1234:5678:11:2233:4455:6677]:32853");
    let v6b = addr("[fe80::1]:65535");
    let sha256 = PasswordAlgorithm::new(PasswordAlgorithmId::SHA256);
    let md5 = PasswordAlgorithm::new(PasswordAlgorithmId::MD5);
    let odd = PasswordAlgorithm {
        algorithm: PasswordAlgorithmId(0x1234),
        params: &[1, 2, 3],
    };
    let payload: Vec<u8> = (0u8..61).map(|i| i.wrapping_mul(7)).collect();
    let unknown = [AttrType(0x0002), AttrType(0x7FFF), AttrType(0x0030)];

    vec![
        build(
            "binding-request-empty",
            MessageType::BINDING_REQUEST,
            1,
            0,
            false,
            |_, _| Ok(()),
        ),
        build(
            "binding-indication-fingerprint",
            ty(Method::BINDING, Indication),
            2,
            0,
            false,
            |w, _| w.put_fingerprint(),
        ),
        build(
            "binding-request-ice",
            MessageType::BINDING_REQUEST,
            3,
            0,
            true,
            |w, k| {
                w.put(&Software("turnpike fuzz client"))?;
                w.put(&Priority(0x6e00_01ff))?;
                w.put(&IceControlling(0x0123_4567_89ab_cdef))?;
                w.put(&UseCandidate)?;
                w.put(&Username("alice:bob"))?;
                w.put_integrity(k)?;
                w.put_fingerprint()
            },
        ),
        build(
            "binding-success-ipv4",
            MessageType::BINDING_SUCCESS,
            4,
            0x20,
            true,
            |w, k| {
                w.put(&XorMappedAddress(v4))?;
                w.put(&MappedAddress(v4))?;
                w.put(&ResponseOrigin(v4b))?;
                w.put(&OtherAddress(v4b))?;
                w.put(&Software("turnpike"))?;
                w.put_integrity_sha256(k, 32)?;
                w.put_fingerprint()
            },
        ),
        build(
            "binding-success-ipv6",
            MessageType::BINDING_SUCCESS,
            5,
            0,
            true,
            |w, k| {
                w.put(&XorMappedAddress(v6))?;
                w.put(&MappedAddress(v6b))?;
                w.put(&ResponseOrigin(v6))?;
                w.put(&OtherAddress(v6b))?;
                w.put_integrity_sha256(k, 16)?;
                w.put_fingerprint()
            },
        ),
        build(
            "binding-request-nat-discovery",
            MessageType::BINDING_REQUEST,
            6,
            0x20,
            false,
            |w, _| {
                w.put(&ChangeRequest {
                    change_ip: true,
                    change_port: true,
                })?;
                w.put(&ResponsePort(4242))?;
                w.put(&Padding(&[0xAB; 7]))?;
                w.put(&IceControlled(u64::MAX))?;
                w.put_fingerprint()
            },
        ),
        build(
            "allocate-request",
            ty(Method::ALLOCATE, Request),
            7,
            0,
            true,
            |w, k| {
                w.put(&RequestedTransport(TransportProtocol::UDP))?;
                w.put(&Lifetime(600))?;
                w.put(&EvenPort { reserve: true })?;
                w.put(&DontFragment)?;
                w.put(&RequestedAddressFamily(AddressFamily::IPV6))?;
                w.put(&AdditionalAddressFamily(AddressFamily::IPV6))?;
                w.put(&Username("user"))?;
                w.put(&Realm("example.org"))?;
                w.put(&Nonce("obMatJos2AAABnonce-value"))?;
                w.put(&sha256)?;
                w.put_integrity(k)?;
                w.put_integrity_sha256(k, 24)?;
                w.put_fingerprint()
            },
        ),
        build(
            "allocate-request-userhash",
            ty(Method::ALLOCATE, Request),
            8,
            0,
            true,
            |w, k| {
                w.put(&Userhash(&[0x4a; 32]))?;
                w.put(&Nonce("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"))?;
                w.put(&Realm("example.org"))?;
                w.put(&md5)?;
                w.put(&RequestedTransport(TransportProtocol::TCP))?;
                w.put_integrity_sha256(k, 32)
            },
        ),
        build(
            "allocate-success",
            ty(Method::ALLOCATE, Success),
            9,
            0,
            true,
            |w, k| {
                w.put(&XorRelayedAddress(v4b))?;
                w.put(&XorRelayedAddress(v6))?;
                w.put(&XorMappedAddress(v4))?;
                w.put(&Lifetime(3600))?;
                w.put(&ReservationToken([1, 2, 3, 4, 5, 6, 7, 8]))?;
                w.put(&AddressErrorCode {
                    family: AddressFamily::IPV6,
                    code: ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED,
                    reason: "Address Family not Supported",
                })?;
                w.put(&Software("turnpike 0.1"))?;
                w.put_integrity(k)?;
                w.put_fingerprint()
            },
        ),
        build(
            "allocate-error-401",
            ty(Method::ALLOCATE, Error),
            10,
            0,
            false,
            |w, _| {
                w.put(&ErrorCodeAttr::new(ErrorCode::UNAUTHENTICATED))?;
                w.put(&Realm("example.org"))?;
                w.put(&Nonce("obMatJos2AAADabcdef"))?;
                w.put(&PasswordAlgorithms::List(&[md5, sha256, odd]))?;
                w.put(&Software("turnpike"))?;
                w.put_fingerprint()
            },
        ),
        build(
            "binding-error-420",
            MessageType::BINDING_ERROR,
            11,
            0,
            false,
            |w, _| {
                w.put(&ErrorCodeAttr {
                    code: ErrorCode::UNKNOWN_ATTRIBUTE,
                    reason: "Unknown Attribute",
                })?;
                w.put(&UnknownAttributes::List(&unknown))?;
                w.put_fingerprint()
            },
        ),
        build(
            "binding-error-300",
            MessageType::BINDING_ERROR,
            12,
            0,
            false,
            |w, _| {
                w.put(&ErrorCodeAttr {
                    code: ErrorCode::TRY_ALTERNATE,
                    reason: "",
                })?;
                w.put(&AlternateServer(v6))?;
                w.put(&AlternateDomain("turn.example.net"))
            },
        ),
        build(
            "create-permission",
            ty(Method::CREATE_PERMISSION, Request),
            13,
            0,
            true,
            |w, k| {
                w.put(&XorPeerAddress(v4))?;
                w.put(&XorPeerAddress(v6))?;
                w.put(&XorPeerAddress(v4b))?;
                w.put(&Username("user"))?;
                w.put_integrity(k)
            },
        ),
        build(
            "channel-bind",
            ty(Method::CHANNEL_BIND, Request),
            14,
            0,
            true,
            |w, k| {
                w.put(&ChannelNumber::new(0x4001).expect("in range"))?;
                w.put(&XorPeerAddress(v4b))?;
                w.put_integrity(k)?;
                w.put_fingerprint()
            },
        ),
        build(
            "send-indication",
            ty(Method::SEND, Indication),
            15,
            0,
            false,
            |w, _| {
                w.put(&XorPeerAddress(v6b))?;
                w.put(&DontFragment)?;
                w.put(&Data(&payload[..13]))
            },
        ),
        build(
            "data-indication-icmp",
            ty(Method::DATA, Indication),
            16,
            0,
            false,
            |w, _| {
                w.put(&XorPeerAddress(v4))?;
                w.put(&Icmp {
                    icmp_type: 3,
                    code: 4,
                    error_data: 1400,
                })?;
                w.put(&Data(&[]))
            },
        ),
        build(
            "data-indication",
            ty(Method::DATA, Indication),
            17,
            0,
            false,
            |w, _| {
                w.put(&XorPeerAddress(v6))?;
                w.put(&Data(&payload))
            },
        ),
        build(
            "connect",
            ty(Method::CONNECT, Request),
            18,
            0,
            true,
            |w, k| {
                w.put(&XorPeerAddress(v4b))?;
                w.put_integrity(k)
            },
        ),
        build(
            "connection-bind",
            ty(Method::CONNECTION_BIND, Request),
            19,
            0,
            true,
            |w, k| {
                w.put(&ConnectionId(0xdead_beef))?;
                w.put(&Username("user"))?;
                w.put_integrity_sha256(k, 20)?;
                w.put_fingerprint()
            },
        ),
        build(
            "refresh-mobility",
            ty(Method::REFRESH, Request),
            20,
            0,
            true,
            |w, k| {
                w.put(&Lifetime(0))?;
                w.put(&MobilityTicket(&payload[..21]))?;
                w.put_integrity_sha256(k, 28)
            },
        ),
        build(
            "unknown-attributes",
            MessageType::BINDING_REQUEST,
            21,
            0xFF,
            false,
            |w, _| {
                w.put_raw(AttrType(0x7F00), b"abc")?;
                w.put_raw(AttrType(0xC001), b"xyzw1")?;
                w.put_raw(AttrType(0x0000), &[])?;
                w.put(&Software("s"))?;
                w.put_fingerprint()
            },
        ),
        ignored_after_integrity(),
    ]
}

/// A message the writer refuses to produce: attributes after MESSAGE-INTEGRITY, which
/// RFC 8489 §14.5 says a receiver ignores (and which the HMAC does not cover).
fn ignored_after_integrity() -> Sample {
    let base = build(
        "ignored-after-integrity",
        MessageType::BINDING_REQUEST,
        22,
        0,
        true,
        |w, k| {
            w.put(&Username("before"))?;
            w.put_integrity(k)
        },
    );
    let mut bytes = base.bytes;
    // USERNAME "after" and an unknown comprehension-required attribute, both ignored.
    bytes.extend_from_slice(&[
        0x00, 0x06, 0x00, 0x05, b'a', b'f', b't', b'e', b'r', 0, 0, 0,
    ]);
    bytes.extend_from_slice(&[0x7F, 0x01, 0x00, 0x00]);
    let len = (bytes.len() - 20) as u16;
    bytes[2..4].copy_from_slice(&len.to_be_bytes());
    Sample { bytes, ..base }
}

/// Every sample message.
pub fn samples() -> Vec<Sample> {
    let mut all = vectors();
    all.extend(generated());
    all
}

/// ChannelData frames: `(name, frame, padded)`.
pub fn channel_frames() -> Vec<(&'static str, Vec<u8>, bool)> {
    let frame = |channel: u16, data: &[u8], pad: bool| {
        let mut buf = vec![0u8; data.len() + 8];
        let channel = ChannelNumber::new(channel).expect("in range");
        let n = encode_channel_data(&mut buf, channel, data, pad).expect("fits");
        buf.truncate(n);
        buf
    };
    let rtp: Vec<u8> = (0u8..100).map(|i| i ^ 0x80).collect();
    vec![
        ("channel-empty", frame(0x4000, &[], false), false),
        ("channel-empty-padded", frame(0x4000, &[], true), true),
        ("channel-1-padded", frame(0x4FFF, &[0x42], true), true),
        ("channel-5", frame(0x4001, b"hello", false), false),
        ("channel-13-padded", frame(0x4ABC, &rtp[..13], true), true),
        ("channel-64-padded", frame(0x4FFF, &rtp[..64], true), true),
        ("channel-100", frame(0x4123, &rtp, false), false),
        // RFC 5766's range, which RFC 8656 closed: the codec still takes it.
        (
            "channel-rfc5766-padded",
            frame(0x7FFF, &rtp[..9], true),
            true,
        ),
        ("channel-rfc5766", frame(0x5000, &rtp[..7], false), false),
    ]
}
