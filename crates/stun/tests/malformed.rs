//! Malformed input: every truncation, every corrupted length field and every flipped byte
//! of the RFC 5769 / RFC 8489 vectors and of generated messages, through every public
//! entry point. Nothing panics, a rejected input gets the typed error the RFC rule it
//! breaks calls for, and an accepted one is never taken for the original.
//!
//! Each mutated input goes (1) to `Message::new_checked`, whose verdict is compared with a
//! reference walk written here from RFC 8489 §5, §14, §14.5–§14.7, and (2) through
//! `fuzz_bodies::message_decode` (the `message_decode` fuzz target's body), which runs every
//! accessor, typed `get`/`get_all` of all 40 attribute types, `unknown_comprehension_required`,
//! `verify_integrity`/`verify_fingerprint` against independent HMAC/CRC computations,
//! `peek_header`, `demux`, `framing::next_frame` and `ChannelData::new_checked`.

mod common;
#[path = "../../../fuzz/src/lib.rs"]
mod fuzz_bodies;
mod support;

use common::vectors::{
    RFC5769_IPV4_RESPONSE, RFC5769_IPV4_RESPONSE_MAPPED_ADDRESS, RFC5769_IPV6_RESPONSE,
    RFC5769_IPV6_RESPONSE_MAPPED_ADDRESS,
};
use support::{Sample, channel_frames, published_b1, samples};
use turnpike_stun::attr::{
    AdditionalAddressFamily, AddressErrorCode, AlternateDomain, AlternateServer, ChangeRequest,
    ConnectionId, Data, DontFragment, ErrorCodeAttr, EvenPort, Fingerprint, IceControlled,
    IceControlling, Icmp, Lifetime, MappedAddress, MessageIntegrity, MessageIntegritySha256,
    MobilityTicket, Nonce, OtherAddress, Padding, PasswordAlgorithm, PasswordAlgorithms, Priority,
    Realm, RequestedAddressFamily, RequestedTransport, ReservationToken, ResponseOrigin,
    ResponsePort, Software, UnknownAttributes, UseCandidate, Userhash, Username, XorMappedAddress,
    XorPeerAddress, XorRelayedAddress,
};
use turnpike_stun::framing::{Frame, Framing, next_frame};
use turnpike_stun::{
    AttrType, Attribute, ChannelData, ChannelNumber, DecodeError, Demux, IntegrityKey,
    IntegrityKind, Message, MessageType, MessageWriter, TransactionId, demux, peek_header,
};

const HEADER: usize = 20;

fn padded(len: usize) -> usize {
    (len + 3) & !3
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn set_be16(b: &mut [u8], at: usize, v: usize) {
    b[at..at + 2].copy_from_slice(&(v as u16).to_be_bytes());
}

/// What the reference walk expects: the attributes `(type, offset, value length)`, or the
/// errors any of which is a correct answer (when two rules are broken at once).
#[derive(Debug, PartialEq)]
enum Expect {
    Ok(Vec<(AttrType, usize, usize)>),
    Err(Vec<DecodeError>),
}

/// RFC 8489 §5 (header), §14 (attribute layout, 4-byte padding), §14.5–§14.7 (integrity
/// and FINGERPRINT lengths and order; attributes after MESSAGE-INTEGRITY are ignored except
/// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, after MESSAGE-INTEGRITY-SHA256 only
/// FINGERPRINT, nothing after FINGERPRINT).
fn reference_walk(b: &[u8]) -> Expect {
    use DecodeError::*;
    if b.len() < HEADER {
        return Expect::Err(vec![TooShort]);
    }
    if b[0] & 0xC0 != 0 || b[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return Expect::Err(vec![NotStun]);
    }
    let length = be16(b, 2);
    if length & 3 != 0 {
        return Expect::Err(vec![UnalignedLength]);
    }
    if HEADER + length != b.len() {
        return Expect::Err(vec![LengthMismatch]);
    }
    let (mut mi, mut mi256, mut fp) = (false, false, false);
    let mut attrs = Vec::new();
    let mut at = HEADER;
    while at < b.len() {
        let ty = AttrType(be16(b, at) as u16);
        let len = be16(b, at + 2);
        let mut errs = Vec::new();
        if at + 4 + padded(len) > b.len() {
            errs.push(AttributeTruncated);
        }
        if fp {
            errs.push(AttributeAfterFingerprint);
        }
        if !errs.is_empty() {
            return Expect::Err(errs);
        }
        match ty {
            AttrType::MESSAGE_INTEGRITY if !mi && !mi256 => {
                if len != 20 {
                    return Expect::Err(vec![InvalidAttribute(ty)]);
                }
                mi = true;
            }
            AttrType::MESSAGE_INTEGRITY_SHA256 if !mi256 => {
                if ![16, 20, 24, 28, 32].contains(&len) {
                    return Expect::Err(vec![InvalidAttribute(ty)]);
                }
                mi256 = true;
            }
            AttrType::FINGERPRINT => {
                if len != 4 {
                    return Expect::Err(vec![InvalidAttribute(ty)]);
                }
                fp = true;
            }
            _ => {}
        }
        attrs.push((ty, at, len));
        at += 4 + padded(len);
    }
    Expect::Ok(attrs)
}

/// Runs `b` through every entry point; checks `new_checked` against the reference walk and
/// the fuzz body's invariants. Returns `new_checked`'s verdict.
fn check(b: &[u8], ctx: &dyn Fn() -> String) -> Result<(), DecodeError> {
    let expect = reference_walk(b);
    let got = Message::new_checked(b);
    match (&expect, &got) {
        (Expect::Ok(list), Ok(msg)) => {
            let l: Vec<_> = msg
                .attributes()
                .map(|a| (a.ty, a.offset, a.value.len()))
                .collect();
            assert_eq!(&l, list, "{}", ctx());
        }
        (Expect::Err(allowed), Err(e)) => {
            assert!(
                allowed.contains(e),
                "{}: got {e:?}, expected one of {allowed:?}",
                ctx()
            );
        }
        _ => panic!(
            "{}: new_checked = {:?}, reference = {expect:?}",
            ctx(),
            got.as_ref().map(|_| ())
        ),
    }
    let verdict = got.map(|_| ());
    let Ok(body) = std::panic::catch_unwind(|| fuzz_bodies::message_decode(b)) else {
        panic!(
            "{}: the message_decode fuzz body panicked on {b:02x?}",
            ctx()
        );
    };
    assert_eq!(body, verdict, "{}", ctx());
    verdict
}

/// Attribute (type, offset, value) of an accepted message, what a receiver observes
/// together with the message type and transaction ID.
type Observed = (MessageType, TransactionId, Vec<(AttrType, Vec<u8>)>);

fn observe(m: &Message<&[u8]>) -> Observed {
    (
        m.message_type(),
        m.transaction_id(),
        m.attributes().map(|a| (a.ty, a.value.to_vec())).collect(),
    )
}

/// `[start, end)` of the value-and-padding of every attribute, and the padding bytes.
fn layout(b: &[u8]) -> Vec<(AttrType, usize, usize)> {
    Message::new_checked(b)
        .expect("sample parses")
        .attributes()
        .map(|a| (a.ty, a.offset, a.value.len()))
        .collect()
}

fn is_padding(layout: &[(AttrType, usize, usize)], i: usize) -> bool {
    layout
        .iter()
        .any(|&(_, at, len)| i >= at + 4 + len && i < at + 4 + padded(len))
}

/// The end of the integrity attribute that `verify_integrity` checks in `m`.
fn verified_end(m: &Message<&[u8]>, kind: IntegrityKind) -> usize {
    let want = match kind {
        IntegrityKind::Sha1 => AttrType::MESSAGE_INTEGRITY,
        IntegrityKind::Sha256 { .. } => AttrType::MESSAGE_INTEGRITY_SHA256,
    };
    let a = m
        .attributes()
        .find(|a| a.ty == want)
        .expect("verified attribute exists");
    a.offset + 4 + a.value.len()
}

/// What `verify_integrity` says about an intact sample (or a prefix of it cut at an
/// attribute boundary): the stronger attribute wins.
fn expected_kind(m: &Message<&[u8]>) -> Result<IntegrityKind, DecodeError> {
    if let Some(a) = m
        .attributes()
        .find(|a| a.ty == AttrType::MESSAGE_INTEGRITY_SHA256)
    {
        return Ok(IntegrityKind::Sha256 {
            len: a.value.len() as u8,
        });
    }
    if m.has_integrity() {
        Ok(IntegrityKind::Sha1)
    } else {
        Err(DecodeError::IntegrityMissing)
    }
}

#[test]
fn samples_are_valid_and_verify() {
    let all = samples();
    assert!(all.len() >= 25, "{} samples", all.len());
    let mut seen_types = std::collections::BTreeSet::new();
    for s in &all {
        let m = Message::new_checked(&s.bytes[..]).unwrap_or_else(|e| panic!("{}: {e:?}", s.name));
        assert_eq!(check(&s.bytes, &|| s.name.to_string()), Ok(()));
        if m.has_fingerprint() {
            assert_eq!(m.verify_fingerprint(), Ok(true), "{}", s.name);
        }
        match s.integrity_key() {
            Some(key) => {
                assert_eq!(m.verify_integrity(&key), expected_kind(&m), "{}", s.name);
                let wrong = IntegrityKey::new(b"not the key");
                assert_eq!(
                    m.verify_integrity(&wrong),
                    Err(DecodeError::IntegrityMismatch),
                    "{}",
                    s.name
                );
            }
            None => assert_eq!(
                m.verify_integrity(&IntegrityKey::new(b"any")),
                Err(DecodeError::IntegrityMissing),
                "{}",
                s.name
            ),
        }
        seen_types.extend(m.attributes().map(|a| a.ty));
    }
    // Between them the samples carry every attribute type the codec knows.
    for ty in fuzz_bodies::TYPED {
        assert!(seen_types.contains(&ty), "no sample carries {ty:?}");
    }
    // Known answers: the XOR-ed addresses of RFC 5769 §2.2 and §2.3.
    for (bytes, addr) in [
        (RFC5769_IPV4_RESPONSE, RFC5769_IPV4_RESPONSE_MAPPED_ADDRESS),
        (RFC5769_IPV6_RESPONSE, RFC5769_IPV6_RESPONSE_MAPPED_ADDRESS),
    ] {
        let m = Message::new_checked(bytes).unwrap();
        let got = m.get::<XorMappedAddress>().unwrap().unwrap().0;
        assert_eq!(got, addr.parse().unwrap());
    }
    let ipv6 = all.iter().any(|s| {
        Message::new_checked(&s.bytes[..])
            .unwrap()
            .get::<XorMappedAddress>()
            .ok()
            .flatten()
            .is_some_and(|a| a.0.is_ipv6())
    });
    assert!(ipv6);
}

#[test]
fn every_known_type_has_a_typed_attribute() {
    let known: Vec<AttrType> = (0..=u16::MAX)
        .map(AttrType)
        .filter(|t| t.is_known())
        .collect();
    let mut typed = fuzz_bodies::TYPED.to_vec();
    typed.sort();
    assert_eq!(
        known, typed,
        "fuzz/src/lib.rs TYPED (and check_typed_attributes) is stale"
    );
}

#[test]
fn every_truncation_is_rejected() {
    for s in samples() {
        let b = &s.bytes;
        let total = b.len();
        let (ty, tid) = peek_header(b).expect("sample header");
        for n in 0..total {
            let p = &b[..n];
            let ctx = || format!("{} truncated to {n}", s.name);
            let r = check(p, &ctx);
            // A truncated message is never accepted: its length field still says `total`.
            let want = if n < HEADER {
                DecodeError::TooShort
            } else {
                DecodeError::LengthMismatch
            };
            assert_eq!(r, Err(want), "{}", ctx());
            assert_eq!(
                peek_header(p),
                (n >= HEADER).then_some((ty, tid)),
                "{}",
                ctx()
            );
            let need = if n < 4 { 4 } else { total };
            assert_eq!(next_frame(p), Framing::NeedMore(need), "{}", ctx());
            assert_eq!(
                ChannelData::new_checked(p).err(),
                Some(if n < 4 {
                    DecodeError::TooShort
                } else {
                    DecodeError::InvalidChannelNumber
                }),
                "{}",
                ctx()
            );
            assert_eq!(demux(p), if n == 0 { Demux::Other } else { Demux::Stun });
        }
    }
}

#[test]
fn truncation_with_a_consistent_length_field() {
    for s in samples() {
        let orig = Message::new_checked(&s.bytes[..]).unwrap();
        let lay = layout(&s.bytes);
        let key = s.integrity_key();
        for n in (HEADER..s.bytes.len()).step_by(4) {
            let mut b = s.bytes[..n].to_vec();
            set_be16(&mut b, 2, n - HEADER);
            let ctx = || format!("{} cut to {n} with length {}", s.name, n - HEADER);
            let at_boundary = lay.iter().any(|&(_, at, _)| at == n);
            let r = check(&b, &ctx);
            if !at_boundary {
                assert_eq!(r, Err(DecodeError::AttributeTruncated), "{}", ctx());
                continue;
            }
            // Cut between attributes: a valid, shorter message, never the original.
            assert_eq!(r, Ok(()), "{}", ctx());
            let m = Message::new_checked(&b[..]).unwrap();
            let kept: Vec<_> = lay.iter().copied().filter(|&(_, at, _)| at < n).collect();
            let got: Vec<_> = m
                .attributes()
                .map(|a| (a.ty, a.offset, a.value.len()))
                .collect();
            assert_eq!(got, kept, "{}", ctx());
            assert!(got.len() < lay.len());
            assert_eq!(m.message_type(), orig.message_type());
            assert_eq!(m.transaction_id(), orig.transaction_id());
            if orig.has_fingerprint() {
                assert!(!m.has_fingerprint());
                assert_eq!(m.verify_fingerprint(), Ok(false), "{}", ctx());
            }
            // Integrity survives losing what follows it: the HMAC's length field ends at
            // the integrity attribute (RFC 8489 §14.5).
            if let Some(key) = &key {
                assert_eq!(m.verify_integrity(key), expected_kind(&m), "{}", ctx());
            }
        }
    }
}

#[test]
fn every_header_length_value() {
    for s in samples() {
        let mut b = s.bytes.clone();
        let total = b.len();
        let orig = total - HEADER;
        let (ty, tid) = peek_header(&b).unwrap();
        for v in 0..=0xFFFFusize {
            set_be16(&mut b, 2, v);
            let want = if v % 4 != 0 {
                Err(DecodeError::UnalignedLength)
            } else if v != orig {
                Err(DecodeError::LengthMismatch)
            } else {
                Ok(())
            };
            let got = Message::new_checked(&b[..]).map(|_| ());
            assert_eq!(got, want, "{} length {v}", s.name);
            let frame = if v % 4 != 0 {
                Framing::Garbage
            } else if HEADER + v <= total {
                Framing::Frame(Frame::Stun(HEADER + v))
            } else {
                Framing::NeedMore(HEADER + v)
            };
            assert_eq!(next_frame(&b), frame, "{} length {v}", s.name);
            assert_eq!(peek_header(&b), Some((ty, tid)));
            if (v % 4 == 0 && v <= orig + 64) || v % 61 == 0 || v >= 0xFFF0 {
                check(&b, &|| format!("{} length field {v}", s.name)).ok();
            }
        }
    }
}

#[test]
fn every_attribute_length_value() {
    for s in samples() {
        let lay = layout(&s.bytes);
        let total = s.bytes.len();
        for &(ty, at, len) in &lay {
            let extra = [0x7FFF, 0x8000, 0xFFF8, 0xFFFB, 0xFFFC, 0xFFFF];
            for v in (0..=total + 8).chain(extra) {
                let mut b = s.bytes.clone();
                set_be16(&mut b, at + 2, v);
                let ctx = || format!("{} {ty:?}@{at} length {len} -> {v}", s.name);
                let r = check(&b, &ctx);
                if at + 4 + padded(v) > total {
                    assert_eq!(r, Err(DecodeError::AttributeTruncated), "{}", ctx());
                } else if v == len {
                    assert_eq!(r, Ok(()), "{}", ctx());
                } else if padded(v) == padded(len) {
                    // The walk is undisturbed; only the fixed-length attributes object.
                    let fixed = match ty {
                        AttrType::FINGERPRINT => Some(v == 4),
                        AttrType::MESSAGE_INTEGRITY
                            if lay.iter().take_while(|a| a.1 < at).all(|a| {
                                a.0 != AttrType::MESSAGE_INTEGRITY
                                    && a.0 != AttrType::MESSAGE_INTEGRITY_SHA256
                            }) =>
                        {
                            Some(v == 20)
                        }
                        AttrType::MESSAGE_INTEGRITY_SHA256 => Some(v % 4 == 0),
                        _ => None,
                    };
                    match fixed {
                        Some(false) => {
                            assert_eq!(r, Err(DecodeError::InvalidAttribute(ty)), "{}", ctx())
                        }
                        _ => {
                            assert_eq!(r, Ok(()), "{}", ctx());
                            let m = Message::new_checked(&b[..]).unwrap();
                            // Still a different message: one value grew or shrank.
                            assert_ne!(
                                observe(&m),
                                observe(&Message::new_checked(&s.bytes[..]).unwrap())
                            );
                            // The FINGERPRINT covers the length field it just lost.
                            if m.has_fingerprint() {
                                assert_eq!(
                                    m.verify_fingerprint(),
                                    Err(DecodeError::FingerprintMismatch),
                                    "{}",
                                    ctx()
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn every_byte_flip() {
    for s in samples() {
        let orig = Message::new_checked(&s.bytes[..]).unwrap();
        let orig_obs = observe(&orig);
        let lay = layout(&s.bytes);
        let key = s.integrity_key();
        for i in 0..s.bytes.len() {
            for mask in [0x01u8, 0x10, 0x80, 0xFF] {
                let mut b = s.bytes.clone();
                b[i] ^= mask;
                let ctx = || format!("{} byte {i} ^ {mask:#04x}", s.name);
                let r = check(&b, &ctx);
                if (4..8).contains(&i) || (i == 0 && mask & 0xC0 != 0) {
                    assert_eq!(r, Err(DecodeError::NotStun), "{}", ctx());
                }
                if (2..4).contains(&i) {
                    assert!(
                        matches!(
                            r,
                            Err(DecodeError::UnalignedLength | DecodeError::LengthMismatch)
                        ),
                        "{}: {r:?}",
                        ctx()
                    );
                }
                if r.is_err() {
                    continue;
                }
                let m = Message::new_checked(&b[..]).unwrap();
                // FINGERPRINT covers every byte before it and itself: never right after a
                // flip (it may be gone if its own type byte was hit).
                assert_ne!(m.verify_fingerprint(), Ok(true), "{}", ctx());
                if m.has_fingerprint() {
                    assert_eq!(
                        m.verify_fingerprint(),
                        Err(DecodeError::FingerprintMismatch),
                        "{}",
                        ctx()
                    );
                }
                // Integrity that still verifies did not cover the flipped byte.
                if let Some(key) = &key {
                    if let Ok(kind) = m.verify_integrity(key) {
                        assert!(i >= verified_end(&m, kind), "{}: {kind:?}", ctx());
                    }
                }
                // Only a flip in padding goes unnoticed by a receiver.
                if is_padding(&lay, i) {
                    assert_eq!(observe(&m), orig_obs, "{}", ctx());
                } else {
                    assert_ne!(observe(&m), orig_obs, "{}", ctx());
                }
                if (8..20).contains(&i) {
                    assert_ne!(m.transaction_id(), orig.transaction_id());
                    assert_eq!(m.attributes().count(), lay.len());
                }
                if i < 2 {
                    assert_ne!(m.message_type(), orig.message_type());
                }
            }
        }
    }
}

#[test]
fn published_b1_vector_is_rejected() {
    let b = published_b1();
    // Its length field counts the 20-byte header.
    assert_eq!(
        check(b, &|| "published B.1".into()),
        Err(DecodeError::LengthMismatch)
    );
    assert_eq!(next_frame(b), Framing::NeedMore(b.len() + 20));
    // Repaired length: it parses, but the published HMAC does not verify (it was computed
    // with the wrong length field), with the SHA-256 key or any other.
    let mut fixed = b.to_vec();
    set_be16(&mut fixed, 2, b.len() - HEADER);
    assert_eq!(check(&fixed, &|| "repaired B.1".into()), Ok(()));
    let m = Message::new_checked(&fixed[..]).unwrap();
    for key in fuzz_bodies::KEYS {
        assert_eq!(
            m.verify_integrity(&IntegrityKey::new(key)),
            Err(DecodeError::IntegrityMismatch)
        );
    }
}

/// Appends a raw attribute after the last one of a finished message and fixes the length.
fn append(b: &[u8], ty: u16, value: &[u8]) -> Vec<u8> {
    let mut out = b.to_vec();
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
    let len = out.len() - HEADER;
    set_be16(&mut out, 2, len);
    out
}

#[test]
fn integrity_and_fingerprint_placement_rules() {
    use DecodeError::*;
    let all = samples();
    let with_fp: Vec<&Sample> = all
        .iter()
        .filter(|s| {
            Message::new_checked(&s.bytes[..])
                .unwrap()
                .has_fingerprint()
        })
        .collect();
    assert!(with_fp.len() > 5);
    for s in with_fp {
        let ctx = || s.name.to_string();
        // Nothing after FINGERPRINT, not even another one.
        for ty in [0x0006, 0x8022, 0x0008, 0x001C, 0x8028] {
            let b = append(&s.bytes, ty, &[0; 4]);
            assert_eq!(
                check(&b, &ctx),
                Err(AttributeAfterFingerprint),
                "{} + {ty:#06x}",
                s.name
            );
        }
    }
    let empty = &all
        .iter()
        .find(|s| s.name == "binding-request-empty")
        .unwrap()
        .bytes;
    let ctx = || "constructed".to_string();
    // Fixed lengths of the integrity attributes and FINGERPRINT (RFC 8489 §14.5–§14.7).
    for len in [0, 4, 16, 19, 21, 24, 32] {
        let b = append(empty, 0x0008, &vec![0; len]);
        assert_eq!(
            check(&b, &ctx),
            Err(InvalidAttribute(AttrType::MESSAGE_INTEGRITY))
        );
    }
    for len in [0, 4, 12, 15, 17, 18, 30, 33, 36, 64] {
        let b = append(empty, 0x001C, &vec![0; len]);
        assert_eq!(
            check(&b, &ctx),
            Err(InvalidAttribute(AttrType::MESSAGE_INTEGRITY_SHA256)),
            "len {len}"
        );
    }
    for len in [16, 20, 24, 28, 32] {
        assert_eq!(check(&append(empty, 0x001C, &vec![0; len]), &ctx), Ok(()));
    }
    for len in [0, 2, 3, 5, 8] {
        let b = append(empty, 0x8028, &vec![0; len]);
        assert_eq!(
            check(&b, &ctx),
            Err(InvalidAttribute(AttrType::FINGERPRINT))
        );
    }
    // After MESSAGE-INTEGRITY everything but MESSAGE-INTEGRITY-SHA256 and FINGERPRINT is
    // ignored, lengths included: a second MESSAGE-INTEGRITY of any length is fine.
    let mi = append(empty, 0x0008, &[0; 20]);
    let b = append(&mi, 0x0008, &[0; 7]);
    assert_eq!(check(&b, &ctx), Ok(()));
    let m = Message::new_checked(&b[..]).unwrap();
    assert_eq!(m.effective_attributes().count(), 0);
    assert_eq!(m.get::<Username>(), Ok(None));
    // But MESSAGE-INTEGRITY-SHA256 after MESSAGE-INTEGRITY is checked and verified.
    let b = append(&mi, 0x001C, &[0; 12]);
    assert_eq!(
        check(&b, &ctx),
        Err(InvalidAttribute(AttrType::MESSAGE_INTEGRITY_SHA256))
    );
    // The ignored attributes of the handcrafted sample stay ignored.
    let s = all
        .iter()
        .find(|s| s.name == "ignored-after-integrity")
        .unwrap();
    let m = Message::new_checked(&s.bytes[..]).unwrap();
    assert_eq!(m.get::<Username>(), Ok(Some(Username("before"))));
    assert_eq!(m.get_all::<Username>().count(), 1);
    assert_eq!(
        m.attributes()
            .filter(|a| a.ty == AttrType::USERNAME)
            .count(),
        2
    );
    assert_eq!(m.unknown_comprehension_required().count(), 0);
    assert_eq!(
        m.verify_integrity(&s.integrity_key().unwrap()),
        Ok(IntegrityKind::Sha1)
    );
}

#[test]
fn unknown_comprehension_required_attributes_are_reported() {
    let all = samples();
    let s = all.iter().find(|s| s.name == "unknown-attributes").unwrap();
    let m = Message::new_checked(&s.bytes[..]).unwrap();
    let unknown: Vec<AttrType> = m.unknown_comprehension_required().collect();
    assert_eq!(unknown, [AttrType(0x7F00), AttrType(0x0000)]);
}

/// Typed decoding rejects a value of the wrong length with `InvalidAttribute(TYPE)`, for
/// every attribute whose length the RFC fixes; a valid value of the right length decodes.
#[test]
fn typed_values_of_every_length() {
    let tid = TransactionId([7; 12]);
    macro_rules! lengths {
        ($t:ty, $template:expr, $ok:expr) => {{
            let template: &[u8] = &$template;
            let ok: &dyn Fn(usize) -> bool = &$ok;
            for len in 0..=48usize {
                let mut v = template.to_vec();
                v.resize(len, 0);
                let ty = <$t as Attribute<'_>>::TYPE;
                match <$t as Attribute<'_>>::decode(&v, &tid) {
                    Ok(_) => assert!(ok(len), "{ty:?} accepted {len} bytes"),
                    Err(e) => {
                        assert!(!ok(len), "{ty:?} rejected {len} bytes: {e:?}");
                        assert_eq!(e, DecodeError::InvalidAttribute(ty));
                    }
                }
            }
        }};
    }
    let v4 = [0, 1, 0x12, 0x34, 192, 0, 2, 1];
    let mut v6 = [0u8; 20];
    v6[1] = 2;
    lengths!(MappedAddress, v4, |l| l == 8);
    lengths!(XorMappedAddress, v4, |l| l == 8);
    lengths!(AlternateServer, v4, |l| l == 8);
    lengths!(ResponseOrigin, v4, |l| l == 8);
    lengths!(OtherAddress, v6, |l| l == 20);
    lengths!(XorPeerAddress, v6, |l| l == 20);
    lengths!(XorRelayedAddress, v6, |l| l == 20);
    lengths!(Userhash<'_>, [0x4a; 32], |l| l == 32);
    lengths!(ErrorCodeAttr<'_>, [0, 0, 4, 1], |l| l >= 4);
    lengths!(AddressErrorCode<'_>, [2, 0, 4, 40], |l| l >= 4);
    lengths!(UnknownAttributes<'_>, [0, 2, 0x7f, 0xff], |l| l % 2 == 0);
    lengths!(PasswordAlgorithm<'_>, [0, 2, 0, 0], |l| l == 4);
    lengths!(PasswordAlgorithms<'_>, [0, 1, 0, 0, 0, 2, 0, 0], |l| l % 4
        == 0);
    lengths!(ChannelNumber, [0x40, 0x01, 0, 0], |l| l == 4);
    lengths!(Lifetime, [0, 0, 2, 0x58], |l| l == 4);
    lengths!(RequestedAddressFamily, [2, 0, 0, 0], |l| l == 4);
    lengths!(AdditionalAddressFamily, [2, 0, 0, 0], |l| l == 4);
    lengths!(EvenPort, [0x80], |l| l == 1);
    lengths!(RequestedTransport, [17, 0, 0, 0], |l| l == 4);
    lengths!(DontFragment, [], |l| l == 0);
    lengths!(ReservationToken, [1, 2, 3, 4, 5, 6, 7, 8], |l| l == 8);
    lengths!(Icmp, [0, 0, 3, 4, 0, 0, 5, 0x78], |l| l == 8);
    lengths!(ChangeRequest, [0, 0, 0, 6], |l| l == 4);
    lengths!(ResponsePort, [0x10, 0x92, 0, 0], |l| l == 2 || l == 4);
    lengths!(ConnectionId, [1, 2, 3, 4], |l| l == 4);
    lengths!(Priority, [1, 2, 3, 4], |l| l == 4);
    lengths!(Fingerprint, [1, 2, 3, 4], |l| l == 4);
    lengths!(UseCandidate, [], |l| l == 0);
    lengths!(IceControlled, [1; 8], |l| l == 8);
    lengths!(IceControlling, [1; 8], |l| l == 8);
    lengths!(Data<'_>, [], |_| true);
    lengths!(Padding<'_>, [], |_| true);
    lengths!(MobilityTicket<'_>, [], |_| true);
    lengths!(MessageIntegrity<'_>, [], |_| true);
    lengths!(MessageIntegritySha256<'_>, [], |_| true);

    // Strings: UTF-8 of at most the RFC's byte limit.
    macro_rules! string_limit {
        ($t:ty, $max:expr) => {{
            let ty = <$t as Attribute<'_>>::TYPE;
            for len in [0, 1, $max - 1, $max, $max + 1, $max + 4, 2000] {
                let v = vec![b'a'; len];
                let r = <$t as Attribute<'_>>::decode(&v, &tid).map(|_| ());
                let want = if len <= $max {
                    Ok(())
                } else {
                    Err(DecodeError::InvalidAttribute(ty))
                };
                assert_eq!(r, want, "{ty:?} of {len} bytes");
            }
            for bad in [&[0xFF][..], &[b'a', 0xC3], &[0xED, 0xA0, 0x80]] {
                assert_eq!(
                    <$t as Attribute<'_>>::decode(bad, &tid).map(|_| ()),
                    Err(DecodeError::InvalidAttribute(ty))
                );
            }
        }};
    }
    string_limit!(Username<'_>, 508);
    string_limit!(Realm<'_>, 763);
    string_limit!(Nonce<'_>, 763);
    string_limit!(Software<'_>, 763);
    string_limit!(AlternateDomain<'_>, 255);

    // Out-of-range contents of the right length.
    let invalid = |ty: AttrType| Err::<(), _>(DecodeError::InvalidAttribute(ty));
    for ch in [0x0000u16, 0x3FFF, 0x8000, 0xFFFF] {
        let v = [(ch >> 8) as u8, ch as u8, 0, 0];
        assert_eq!(
            ChannelNumber::decode(&v, &tid).map(|_| ()),
            invalid(AttrType::CHANNEL_NUMBER)
        );
    }
    for (class, number) in [(0u8, 0u8), (2, 99), (7, 0), (4, 100), (6, 255), (3, 200)] {
        let v = [0, 0, class, number];
        assert_eq!(
            ErrorCodeAttr::decode(&v, &tid).map(|_| ()),
            invalid(AttrType::ERROR_CODE),
            "{class} {number}"
        );
    }
    for family in [0u8, 3, 0xFF] {
        let v = [0, family, 0, 0, 1, 2, 3, 4];
        assert_eq!(
            XorMappedAddress::decode(&v, &tid).map(|_| ()),
            invalid(AttrType::XOR_MAPPED_ADDRESS)
        );
    }
    // An IPv4 family with an IPv6-sized value, and the other way round.
    let mut v = v6;
    v[1] = 1;
    assert!(MappedAddress::decode(&v, &tid).is_err());
    assert!(MappedAddress::decode(&[0, 2, 0, 0, 1, 2, 3, 4], &tid).is_err());
    // PASSWORD-ALGORITHMS whose parameter length runs past the value.
    assert!(PasswordAlgorithms::decode(&[0, 1, 0, 8, 0, 0, 0, 0], &tid).is_err());
    assert!(PasswordAlgorithm::decode(&[0, 1, 0, 1, 9], &tid).is_err());
    assert!(PasswordAlgorithm::decode(&[0, 1, 0, 1, 9, 0, 0, 0], &tid).is_ok());
}

// ---------------------------------------------------------------------------------------
// ChannelData
// ---------------------------------------------------------------------------------------

fn check_channel(b: &[u8]) {
    if std::panic::catch_unwind(|| fuzz_bodies::channel_data_decode(b)).is_err() {
        panic!("channel_data_decode fuzz body panicked on {b:02x?}");
    }
}

#[test]
fn channel_data_truncations_lengths_and_channels() {
    for (name, frame, pad) in channel_frames() {
        let data_len = be16(&frame, 2);
        let data = frame[4..4 + data_len].to_vec();
        check_channel(&frame);
        assert_eq!(
            next_frame(&frame),
            if pad || data_len & 3 == 0 {
                Framing::Frame(Frame::ChannelData(frame.len()))
            } else {
                Framing::NeedMore((4 + data_len).next_multiple_of(4))
            },
            "{name}"
        );
        // Every truncation: typed error until the data is complete, then the same data
        // (only padding can be lost).
        for n in 0..frame.len() {
            let p = &frame[..n];
            check_channel(p);
            match ChannelData::new_checked(p) {
                Ok(cd) => {
                    assert!(n >= 4 + data_len, "{name} cut to {n} accepted");
                    assert_eq!(cd.data(), &data[..]);
                }
                Err(e) => assert_eq!(
                    e,
                    if n < 4 {
                        DecodeError::TooShort
                    } else {
                        DecodeError::LengthMismatch
                    },
                    "{name} cut to {n}"
                ),
            }
        }
        // Every length field value.
        let mut b = frame.clone();
        for v in 0..=0xFFFFusize {
            set_be16(&mut b, 2, v);
            match ChannelData::new_checked(&b[..]) {
                Ok(cd) => {
                    assert!(v <= frame.len() - 4, "{name}: length {v} accepted");
                    assert_eq!(cd.data(), &b[4..4 + v]);
                }
                Err(e) => {
                    assert!(v > frame.len() - 4);
                    assert_eq!(e, DecodeError::LengthMismatch, "{name} length {v}");
                }
            }
            if v <= frame.len() + 8 || v % 251 == 0 {
                check_channel(&b);
            }
        }
        // Every channel number.
        let mut b = frame.clone();
        for ch in 0..=0xFFFFusize {
            set_be16(&mut b, 0, ch);
            let r = ChannelData::new_checked(&b[..]);
            if fuzz_bodies::CHANNELS.contains(&ch) {
                let cd = r.unwrap_or_else(|e| panic!("{name} channel {ch:#x}: {e:?}"));
                assert_eq!(usize::from(cd.channel().value()), ch);
                assert_eq!(cd.channel().is_rfc8656(), ch <= 0x4FFF);
                assert_eq!(demux(&b), Demux::ChannelData);
            } else {
                assert_eq!(r.err(), Some(DecodeError::InvalidChannelNumber));
                assert_ne!(demux(&b), Demux::ChannelData);
            }
            if ch % 0x100 < 2 || ch % 0x1000 == 0xFFF {
                check_channel(&b);
                check(&b, &|| format!("{name} channel {ch:#x} as STUN")).ok();
            }
        }
        // Every byte flip.
        for i in 0..frame.len() {
            for mask in [0x01u8, 0x80, 0xFF] {
                let mut b = frame.clone();
                b[i] ^= mask;
                check_channel(&b);
                if i >= 4 {
                    let cd = ChannelData::new_checked(&b[..]).expect("header untouched");
                    if i < 4 + data_len {
                        assert_ne!(cd.data(), &data[..]);
                        assert_eq!(cd.data()[i - 4], data[i - 4] ^ mask);
                    } else {
                        assert_eq!(cd.data(), &data[..]);
                    }
                }
            }
        }
    }
}

#[test]
fn demux_and_entry_points_by_first_byte() {
    let s = &samples()[0];
    for first in 0..=0xFFu8 {
        let mut b = s.bytes.clone();
        b[0] = first;
        let d = demux(&b);
        match first {
            0x00..=0x3F => assert_eq!(d, Demux::Stun),
            0x40..=0x7F => assert_eq!(d, Demux::ChannelData),
            _ => assert_eq!(d, Demux::Other),
        }
        let stun = Message::new_checked(&b[..]);
        assert_eq!(
            stun.is_ok() || stun.err() != Some(DecodeError::NotStun),
            d == Demux::Stun
        );
        let cd = ChannelData::new_checked(&b[..]);
        assert_eq!(
            cd.err() != Some(DecodeError::InvalidChannelNumber),
            d == Demux::ChannelData
        );
        match next_frame(&b) {
            Framing::Garbage => assert_eq!(d, Demux::Other),
            Framing::Frame(Frame::Stun(_)) => assert_eq!(d, Demux::Stun),
            Framing::Frame(Frame::ChannelData(_)) | Framing::NeedMore(_) => {
                assert_ne!(d, Demux::Other)
            }
        }
        check(&b, &|| format!("first byte {first:#04x}")).ok();
    }
    assert_eq!(demux(&[]), Demux::Other);
    assert_eq!(next_frame(&[]), Framing::NeedMore(4));
    assert_eq!(
        Message::new_checked(&[][..]).err(),
        Some(DecodeError::TooShort)
    );
    assert_eq!(
        ChannelData::new_checked(&[][..]).err(),
        Some(DecodeError::TooShort)
    );
    assert_eq!(peek_header(&[]), None);
}

// ---------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------

/// Every sample message and padded ChannelData frame, interleaved.
fn stream_pieces() -> Vec<Vec<u8>> {
    let msgs = samples();
    let frames: Vec<Vec<u8>> = channel_frames()
        .into_iter()
        .filter(|(_, _, pad)| *pad)
        .map(|(_, f, _)| f)
        .collect();
    let mut pieces = Vec::new();
    for (i, m) in msgs.into_iter().enumerate() {
        pieces.push(m.bytes);
        pieces.push(frames[i % frames.len()].clone());
    }
    pieces
}

#[test]
fn stream_framing_recovers_frames_and_stops_at_garbage() {
    let pieces = stream_pieces();
    let stream: Vec<u8> = pieces.concat();
    let whole = fuzz_bodies::split_stream(&stream, || usize::MAX);
    let got: Vec<Vec<u8>> = whole.frames.iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(got, pieces);
    assert!(whole.rest.is_empty());
    assert_eq!(whole.end, Framing::NeedMore(4));
    for seed in 0..8u8 {
        let mut input = vec![seed.wrapping_mul(37)];
        input.extend_from_slice(&stream);
        fuzz_bodies::stream_framing(&input);
    }

    // Every prefix: the whole frames it holds, then the partial one left over.
    let mut starts = vec![0];
    for p in &pieces {
        starts.push(starts.last().unwrap() + p.len());
    }
    for n in 0..stream.len() {
        let split = fuzz_bodies::split_stream(&stream[..n], || usize::MAX);
        let complete = starts.iter().filter(|&&s| s <= n).count() - 1;
        assert_eq!(split.frames.len(), complete, "prefix {n}");
        assert_eq!(split.rest, stream[starts[complete]..n]);
        if n % 41 == 0 {
            let mut input = vec![n as u8];
            input.extend_from_slice(&stream[..n]);
            fuzz_bodies::stream_framing(&input);
        }
    }

    // Garbage between two frames: the frames before it, then nothing.
    for bad in [0x80u8, 0xC0, 0xFF] {
        for cut in [3, 7, 11] {
            let mut s = pieces[..cut].concat();
            s.extend_from_slice(&[bad, 0, 0, 0]);
            s.extend_from_slice(&pieces[cut..].concat());
            let split = fuzz_bodies::split_stream(&s, || 5);
            assert_eq!(split.frames.len(), cut);
            assert_eq!(split.end, Framing::Garbage);
            assert_eq!(split.rest[0], bad);
            let mut input = vec![bad];
            input.extend_from_slice(&s);
            fuzz_bodies::stream_framing(&input);
        }
    }

    // A STUN frame whose length field lies: no panic, and the frames before it intact.
    let victim = 4; // pieces[4] is a STUN message
    assert_eq!(demux(&pieces[victim]), Demux::Stun);
    for v in [0usize, 4, 8, 3, 0x100, 0xFFFC, 0xFFFF] {
        let mut ps = pieces.clone();
        set_be16(&mut ps[victim], 2, v);
        let s = ps.concat();
        let split = fuzz_bodies::split_stream(&s, || 3);
        assert!(split.frames.len() >= victim);
        assert_eq!(
            split.frames[..victim]
                .iter()
                .map(|(_, b)| b.clone())
                .collect::<Vec<_>>(),
            ps[..victim]
        );
        let mut input = vec![v as u8];
        input.extend_from_slice(&s);
        fuzz_bodies::stream_framing(&input);
    }
}

#[test]
fn writer_refuses_what_the_reader_would_reject() {
    // The writer cannot produce an attribute after the integrity attributes, or a
    // second FINGERPRINT, so what it builds always passes `new_checked`'s order rules.
    let mut buf = [0u8; 256];
    let key = IntegrityKey::new(b"k");
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::BINDING_REQUEST,
        TransactionId([1; 12]),
    )
    .unwrap();
    w.put_integrity(&key).unwrap();
    assert!(w.put(&Software("late")).is_err());
    assert!(w.put_integrity(&key).is_err());
    w.put_integrity_sha256(&key, 32).unwrap();
    assert!(w.put_integrity_sha256(&key, 32).is_err());
    w.put_fingerprint().unwrap();
    assert!(w.put_fingerprint().is_err());
    assert!(w.put_raw(AttrType(0x8022), b"x").is_err());
    let n = w.finish();
    assert_eq!(check(&buf[..n], &|| "writer".into()), Ok(()));
    for len in [0, 12, 15, 36] {
        let mut w = MessageWriter::new(
            &mut buf,
            MessageType::BINDING_REQUEST,
            TransactionId([1; 12]),
        )
        .unwrap();
        assert!(w.put_integrity_sha256(&key, len).is_err(), "{len}");
    }
}
