//! The bodies of the `turnpike-stun` fuzz targets, as plain functions.
//!
//! Each target in `fuzz_targets/` calls one of [`message_decode`], [`channel_data_decode`]
//! and [`stream_framing`]. `crates/stun/tests/fuzz_corpus.rs` includes this very file with
//! `#[path]` and replays the committed corpus through the same functions on stable Rust, so
//! CI exercises every seed; the malformed-input sweeps and the property tests call them too.
//!
//! The functions take any bytes. They drive every public entry point of the codec and
//! `assert!` the invariants the codec documents (typed errors only, no accessor panics,
//! integrity and FINGERPRINT agree with an independent computation, re-encoding gives the
//! bytes back, framing does not depend on how a stream is chunked). A panic is a bug.
//!
//! Keep this file free of `crate::` paths and submodules: it is compiled both as the root
//! of the `turnpike-fuzz` library and as a module of integration tests.

#![allow(dead_code, unreachable_pub)]

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
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
    AttrType, Attribute, CHANNEL_DATA_HEADER_LEN, ChannelData, ChannelNumber, DecodeError, Demux,
    HEADER_LEN, IntegrityKey, IntegrityKind, MAGIC_COOKIE, Message, MessageType, MessageWriter,
    RawAttribute, demux, encode_channel_data, peek_header, write_channel_data_header,
};

/// The short-term key the generated corpus messages are signed with.
pub const FUZZ_KEY: &[u8] = b"turnpike-fuzz-key";

/// Every key [`message_decode`] checks integrity with: the corpus key, the RFC 5769 §2.1–2.3
/// short-term password, the RFC 5769 §2.4 MD5 long-term key and the RFC 8489 B.1
/// (Errata 6268) SHA-256 long-term key. With them the seeds taken from the RFCs verify, and
/// every mutation of them is checked against an independent HMAC.
pub const KEYS: [&[u8]; 4] = [
    FUZZ_KEY,
    b"VOkJxbRl1RmTxUk/WvJxBt",
    &[
        0xe8, 0xca, 0x7a, 0xd5, 0x9d, 0x5e, 0xb0, 0x51, 0x8e, 0x31, 0x29, 0x11, 0xd2, 0xda, 0xb2,
        0xa9,
    ],
    &[
        0xdd, 0x29, 0x5a, 0x61, 0x3b, 0x90, 0x58, 0xc3, 0xc2, 0x3d, 0x6d, 0xc7, 0x16, 0x5b, 0xda,
        0x07, 0x23, 0x04, 0xd9, 0x89, 0xc9, 0xd0, 0xaf, 0x3a, 0x8c, 0x7e, 0x18, 0x4b, 0x4f, 0x9b,
        0xb4, 0xa1,
    ],
];

const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// The channel numbers `ChannelNumber::new` accepts: RFC 5766's 0x4000..=0x7FFF, of which
/// RFC 8656 §12 keeps 0x4000..=0x4FFF (`ChannelNumber::is_rfc8656`). The codec takes the
/// wider range so that frames from RFC 5766 clients stay recognisable.
pub const CHANNELS: core::ops::RangeInclusive<usize> = 0x4000..=0x7FFF;

/// The first bytes of a ChannelData frame, the high byte of [`CHANNELS`] (`demux`,
/// `next_frame`).
pub const CHANNEL_FIRST_BYTES: core::ops::RangeInclusive<u8> = 0x40..=0x7F;

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn padded(len: usize) -> usize {
    (len + 3) & !3
}

// ---------------------------------------------------------------------------------------
// STUN messages
// ---------------------------------------------------------------------------------------

/// Fuzz body of `message_decode`: `Message::new_checked` and, when it accepts, every
/// accessor, typed decoding of every attribute type, integrity and FINGERPRINT against an
/// independent computation, and decode → re-encode identity through raw attributes. Also
/// runs the header-level entry points (`peek_header`, `demux`, `next_frame`) and
/// [`channel_data_decode`] on the same bytes. Returns what `new_checked` returned.
pub fn message_decode(data: &[u8]) -> Result<(), DecodeError> {
    let parsed = Message::new_checked(data);
    // The container does not matter.
    let owned = Message::new_checked(data.to_vec());
    assert_eq!(parsed.as_ref().err(), owned.as_ref().err());

    check_header_entry_points(data, parsed.as_ref().err().copied());
    channel_data_decode(data);

    match parsed {
        Ok(msg) => {
            check_message(&msg, data);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// What `peek_header`, `demux` and `next_frame` must say, given `new_checked`'s verdict.
fn check_header_entry_points(data: &[u8], err: Option<DecodeError>) {
    let header_ok =
        data.len() >= HEADER_LEN && data[0] & 0xC0 == 0 && data[4..8] == MAGIC_COOKIE.to_be_bytes();
    let peek = peek_header(data);
    assert_eq!(peek.is_some(), header_ok, "peek_header on {data:02x?}");
    if let Some((ty, tid)) = peek {
        assert_eq!(usize::from(ty.to_u16()), be16(data, 0));
        assert_eq!(MessageType::from_u16(ty.to_u16()), Some(ty));
        assert_eq!(tid.0[..], data[8..20]);
    }

    let framing = next_frame(data);
    match err {
        None => {
            assert_eq!(demux(data), Demux::Stun);
            assert_eq!(framing, Framing::Frame(Frame::Stun(data.len())));
        }
        Some(DecodeError::TooShort) => {
            assert!(data.len() < HEADER_LEN);
            assert!(!matches!(framing, Framing::Frame(Frame::Stun(_))));
        }
        Some(DecodeError::NotStun) => {
            assert!(data.len() >= HEADER_LEN && !header_ok);
            // A stream reader must not take it for STUN either: a wrong cookie is garbage,
            // a first byte outside 0x00..=0x3F is ChannelData or garbage.
            match data[0] {
                0x00..=0x3F => assert_eq!(framing, Framing::Garbage),
                b if CHANNEL_FIRST_BYTES.contains(&b) => assert!(!matches!(
                    framing,
                    Framing::Garbage | Framing::Frame(Frame::Stun(_))
                )),
                _ => assert_eq!(framing, Framing::Garbage),
            }
        }
        Some(DecodeError::UnalignedLength) => {
            assert!(header_ok && be16(data, 2) & 3 != 0);
            assert_eq!(framing, Framing::Garbage);
        }
        Some(DecodeError::LengthMismatch) => {
            assert!(header_ok);
            let want = HEADER_LEN + be16(data, 2);
            assert_ne!(want, data.len());
            if want < data.len() {
                assert_eq!(framing, Framing::Frame(Frame::Stun(want)));
            } else {
                assert_eq!(framing, Framing::NeedMore(want));
            }
        }
        Some(
            DecodeError::AttributeTruncated
            | DecodeError::AttributeAfterFingerprint
            | DecodeError::InvalidAttribute(
                AttrType::MESSAGE_INTEGRITY
                | AttrType::MESSAGE_INTEGRITY_SHA256
                | AttrType::FINGERPRINT,
            ),
        ) => {
            // The header was fine: a server can answer 400 with the peeked transaction ID.
            assert!(peek.is_some());
            assert_eq!(framing, Framing::Frame(Frame::Stun(data.len())));
        }
        Some(other) => panic!("new_checked returned {other:?}, not a message-level error"),
    }
}

/// Every accessor of an accepted message.
fn check_message(msg: &Message<&[u8]>, data: &[u8]) {
    assert_eq!(msg.as_bytes(), data);
    assert_eq!(usize::from(msg.message_type().to_u16()), be16(data, 0));
    assert_eq!(msg.transaction_id().0[..], data[8..20]);
    assert_eq!(
        peek_header(data),
        Some((msg.message_type(), msg.transaction_id()))
    );

    // The attribute walk tiles the message exactly.
    let attrs: Vec<RawAttribute<'_>> = msg.attributes().collect();
    let mut at = HEADER_LEN;
    for a in &attrs {
        assert_eq!(a.offset, at);
        assert_eq!(usize::from(a.ty.0), be16(data, at));
        assert_eq!(a.value.len(), be16(data, at + 2));
        assert_eq!(a.value, &data[at + 4..at + 4 + a.value.len()]);
        at += 4 + padded(a.value.len());
    }
    assert_eq!(at, data.len(), "attributes do not cover the message");

    // RFC 8489 §14.5–§14.7: which integrity attributes count, and where counting stops.
    let mut mi = None;
    let mut mi256 = None;
    let mut fp = None;
    for a in &attrs {
        match a.ty {
            AttrType::MESSAGE_INTEGRITY if mi.is_none() && mi256.is_none() => mi = Some(*a),
            AttrType::MESSAGE_INTEGRITY_SHA256 if mi256.is_none() => mi256 = Some(*a),
            AttrType::FINGERPRINT => {
                assert!(fp.is_none(), "two FINGERPRINTs accepted");
                fp = Some(*a);
            }
            _ => {}
        }
    }
    if let Some(f) = fp {
        assert_eq!(
            f.offset,
            attrs.last().map_or(0, |a| a.offset),
            "FINGERPRINT not last"
        );
        assert_eq!(f.value.len(), 4);
    }
    if let Some(m) = mi {
        assert_eq!(m.value.len(), 20);
    }
    if let Some(m) = mi256 {
        assert!((16..=32).contains(&m.value.len()) && m.value.len() % 4 == 0);
    }
    assert_eq!(msg.has_integrity(), mi.is_some());
    assert_eq!(msg.has_integrity_sha256(), mi256.is_some());
    assert_eq!(msg.has_fingerprint(), fp.is_some());
    let covered_end = [mi, mi256, fp]
        .iter()
        .flatten()
        .map(|a| a.offset)
        .min()
        .unwrap_or(data.len());
    let effective: Vec<RawAttribute<'_>> = msg.effective_attributes().collect();
    let expected_effective: Vec<RawAttribute<'_>> = attrs
        .iter()
        .copied()
        .filter(|a| a.offset < covered_end)
        .collect();
    assert_eq!(effective, expected_effective);
    for a in &attrs {
        assert_eq!(
            msg.raw(a.ty),
            effective.iter().copied().find(|e| e.ty == a.ty),
            "raw({:?})",
            a.ty
        );
    }
    let unknown: Vec<AttrType> = msg.unknown_comprehension_required().collect();
    let expected_unknown: Vec<AttrType> = effective
        .iter()
        .map(|a| a.ty)
        .filter(|t| t.0 < 0x8000 && t.name().is_none())
        .collect();
    assert_eq!(unknown, expected_unknown);

    // FINGERPRINT and integrity, against an independent computation.
    let fp_expected = match fp {
        None => Ok(false),
        Some(f) if reference_fingerprint(data, f) => Ok(true),
        Some(_) => Err(DecodeError::FingerprintMismatch),
    };
    assert_eq!(msg.verify_fingerprint(), fp_expected);
    for key in KEYS {
        let expected = reference_integrity(data, key, mi, mi256);
        assert_eq!(msg.verify_integrity(&IntegrityKey::new(key)), expected);
    }

    check_typed_attributes(msg);
    check_raw_reencode(msg, data, &attrs);
}

/// CRC-32 of the message up to FINGERPRINT, length field as if the message ended after it,
/// XOR "STUN" (RFC 8489 §14.7), written without the codec.
fn reference_fingerprint(data: &[u8], fp: RawAttribute<'_>) -> bool {
    let mut input = data[..fp.offset].to_vec();
    let len = (fp.offset + 8 - HEADER_LEN) as u16;
    input[2..4].copy_from_slice(&len.to_be_bytes());
    (crc32fast::hash(&input) ^ FINGERPRINT_XOR).to_be_bytes() == fp.value[..]
}

/// The HMAC input of an integrity attribute: everything before it, the length field set
/// to end at its end (RFC 8489 §14.5, §14.6).
fn hmac_input(data: &[u8], a: RawAttribute<'_>) -> Vec<u8> {
    let mut input = data[..a.offset].to_vec();
    let len = (a.offset + 4 + a.value.len() - HEADER_LEN) as u16;
    input[2..4].copy_from_slice(&len.to_be_bytes());
    input
}

/// What `verify_integrity` must say: MESSAGE-INTEGRITY-SHA256 wins when present
/// (RFC 8489 §9.2.4), else MESSAGE-INTEGRITY, else missing.
fn reference_integrity(
    data: &[u8],
    key: &[u8],
    mi: Option<RawAttribute<'_>>,
    mi256: Option<RawAttribute<'_>>,
) -> Result<IntegrityKind, DecodeError> {
    if let Some(a) = mi256 {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
        mac.update(&hmac_input(data, a));
        let full = mac.finalize().into_bytes();
        return if full[..a.value.len()] == *a.value {
            Ok(IntegrityKind::Sha256 {
                len: a.value.len() as u8,
            })
        } else {
            Err(DecodeError::IntegrityMismatch)
        };
    }
    let a = mi.ok_or(DecodeError::IntegrityMissing)?;
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(&hmac_input(data, a));
    if mac.finalize().into_bytes()[..] == *a.value {
        Ok(IntegrityKind::Sha1)
    } else {
        Err(DecodeError::IntegrityMismatch)
    }
}

/// For one typed attribute `$t`: `get` and `get_all` agree with the raw attributes that
/// count, errors are `InvalidAttribute($t::TYPE)`, a decoded value passes its own encode
/// check and decodes back to itself after encoding, and, for types without reserved bits
/// (`exact`), encodes back to the very bytes it came from.
macro_rules! check_typed {
    ($msg:expr, $tid:expr, $t:ty, exact = $exact:expr) => {{
        let msg = $msg;
        let tid = $tid;
        let ty = <$t as Attribute<'_>>::TYPE;
        let raws: Vec<RawAttribute<'_>> =
            msg.effective_attributes().filter(|a| a.ty == ty).collect();
        let got: Result<Option<$t>, DecodeError> = msg.get::<$t>();
        let all: Vec<Result<$t, DecodeError>> = msg.get_all::<$t>().collect();
        assert_eq!(all.len(), raws.len(), "get_all::<{ty:?}>");
        match (&got, all.first()) {
            (Ok(None), None) => {}
            (Ok(Some(v)), Some(Ok(first))) => assert_eq!(v, first, "get vs get_all {ty:?}"),
            (Err(e), Some(Err(first))) => assert_eq!(e, first, "get vs get_all {ty:?}"),
            (g, f) => panic!("get::<{ty:?}>() = {g:?} but get_all first = {f:?}"),
        }
        // Every attribute of this type, including ignored ones, through `decode` directly.
        for raw in msg.attributes().filter(|a| a.ty == ty) {
            match <$t as Attribute<'_>>::decode(raw.value, &tid) {
                Ok(v) => {
                    assert!(
                        v.check_encode().is_ok(),
                        "{ty:?}: decoded but refuses to encode"
                    );
                    let mut out = vec![0u8; v.encoded_len()];
                    v.encode(&mut out, &tid);
                    let again = <$t as Attribute<'_>>::decode(&out, &tid);
                    assert_eq!(again.as_ref().ok(), Some(&v), "{ty:?}: decode∘encode");
                    if $exact {
                        assert_eq!(out, raw.value, "{ty:?}: re-encoding changed the bytes");
                    }
                }
                Err(e) => assert_eq!(e, DecodeError::InvalidAttribute(ty)),
            }
        }
        for (raw, decoded) in raws.iter().zip(&all) {
            let direct = <$t as Attribute<'_>>::decode(raw.value, &tid);
            assert_eq!(
                direct.as_ref(),
                decoded.as_ref(),
                "get_all vs decode {ty:?}"
            );
        }
    }};
}

/// Every typed attribute of the codec, one `check_typed!` each. `every_known_type_has_a_typed_attribute`
/// in `crates/stun/tests/malformed.rs` keeps this list complete.
fn check_typed_attributes(msg: &Message<&[u8]>) {
    let tid = msg.transaction_id();
    check_typed!(msg, tid, MappedAddress, exact = false);
    check_typed!(msg, tid, XorMappedAddress, exact = false);
    check_typed!(msg, tid, AlternateServer, exact = false);
    check_typed!(msg, tid, ResponseOrigin, exact = false);
    check_typed!(msg, tid, OtherAddress, exact = false);
    check_typed!(msg, tid, XorPeerAddress, exact = false);
    check_typed!(msg, tid, XorRelayedAddress, exact = false);
    check_typed!(msg, tid, Username<'_>, exact = true);
    check_typed!(msg, tid, Realm<'_>, exact = true);
    check_typed!(msg, tid, Nonce<'_>, exact = true);
    check_typed!(msg, tid, Software<'_>, exact = true);
    check_typed!(msg, tid, AlternateDomain<'_>, exact = true);
    check_typed!(msg, tid, MessageIntegrity<'_>, exact = true);
    check_typed!(msg, tid, MessageIntegritySha256<'_>, exact = true);
    check_typed!(msg, tid, Fingerprint, exact = true);
    check_typed!(msg, tid, Userhash<'_>, exact = true);
    check_typed!(msg, tid, ErrorCodeAttr<'_>, exact = false);
    check_typed!(msg, tid, UnknownAttributes<'_>, exact = true);
    check_typed!(msg, tid, PasswordAlgorithm<'_>, exact = false);
    check_typed!(msg, tid, PasswordAlgorithms<'_>, exact = true);
    check_typed!(msg, tid, ChannelNumber, exact = false);
    check_typed!(msg, tid, Lifetime, exact = true);
    check_typed!(msg, tid, Data<'_>, exact = true);
    check_typed!(msg, tid, RequestedAddressFamily, exact = false);
    check_typed!(msg, tid, AdditionalAddressFamily, exact = false);
    check_typed!(msg, tid, EvenPort, exact = false);
    check_typed!(msg, tid, RequestedTransport, exact = false);
    check_typed!(msg, tid, DontFragment, exact = true);
    check_typed!(msg, tid, ReservationToken, exact = true);
    check_typed!(msg, tid, AddressErrorCode<'_>, exact = false);
    check_typed!(msg, tid, Icmp, exact = false);
    check_typed!(msg, tid, ChangeRequest, exact = false);
    check_typed!(msg, tid, ResponsePort, exact = false);
    check_typed!(msg, tid, Padding<'_>, exact = true);
    check_typed!(msg, tid, ConnectionId, exact = true);
    check_typed!(msg, tid, MobilityTicket<'_>, exact = true);
    check_typed!(msg, tid, Priority, exact = true);
    check_typed!(msg, tid, UseCandidate, exact = true);
    check_typed!(msg, tid, IceControlled, exact = true);
    check_typed!(msg, tid, IceControlling, exact = true);
}

/// The attribute types [`check_typed_attributes`] covers, for the completeness test.
pub const TYPED: [AttrType; 40] = [
    AttrType::MAPPED_ADDRESS,
    AttrType::XOR_MAPPED_ADDRESS,
    AttrType::ALTERNATE_SERVER,
    AttrType::RESPONSE_ORIGIN,
    AttrType::OTHER_ADDRESS,
    AttrType::XOR_PEER_ADDRESS,
    AttrType::XOR_RELAYED_ADDRESS,
    AttrType::USERNAME,
    AttrType::REALM,
    AttrType::NONCE,
    AttrType::SOFTWARE,
    AttrType::ALTERNATE_DOMAIN,
    AttrType::MESSAGE_INTEGRITY,
    AttrType::MESSAGE_INTEGRITY_SHA256,
    AttrType::FINGERPRINT,
    AttrType::USERHASH,
    AttrType::ERROR_CODE,
    AttrType::UNKNOWN_ATTRIBUTES,
    AttrType::PASSWORD_ALGORITHM,
    AttrType::PASSWORD_ALGORITHMS,
    AttrType::CHANNEL_NUMBER,
    AttrType::LIFETIME,
    AttrType::DATA,
    AttrType::REQUESTED_ADDRESS_FAMILY,
    AttrType::ADDITIONAL_ADDRESS_FAMILY,
    AttrType::EVEN_PORT,
    AttrType::REQUESTED_TRANSPORT,
    AttrType::DONT_FRAGMENT,
    AttrType::RESERVATION_TOKEN,
    AttrType::ADDRESS_ERROR_CODE,
    AttrType::ICMP,
    AttrType::CHANGE_REQUEST,
    AttrType::RESPONSE_PORT,
    AttrType::PADDING,
    AttrType::CONNECTION_ID,
    AttrType::MOBILITY_TICKET,
    AttrType::PRIORITY,
    AttrType::USE_CANDIDATE,
    AttrType::ICE_CONTROLLED,
    AttrType::ICE_CONTROLLING,
];

/// Rebuilds the message from its raw attributes with `MessageWriter::put_raw` (which copies
/// integrity and FINGERPRINT values verbatim): the result equals the input everywhere but
/// in the padding, and exactly when the input padded with one byte value throughout.
fn check_raw_reencode(msg: &Message<&[u8]>, data: &[u8], attrs: &[RawAttribute<'_>]) {
    let mut pad_bytes = attrs
        .iter()
        .flat_map(|a| &data[a.offset + 4 + a.value.len()..a.offset + 4 + padded(a.value.len())]);
    let first_pad = pad_bytes.next().copied();
    let uniform = pad_bytes.all(|b| Some(*b) == first_pad);
    let pad = first_pad.unwrap_or(0);

    let mut out = vec![0u8; data.len()];
    let mut w = MessageWriter::new(&mut out, msg.message_type(), msg.transaction_id())
        .expect("header fits")
        .with_padding_byte(pad);
    for a in attrs {
        w.put_raw(a.ty, a.value).expect("raw attribute fits");
    }
    assert_eq!(w.finish(), data.len());

    for a in attrs {
        let value_end = a.offset + 4 + a.value.len();
        assert_eq!(out[a.offset..value_end], data[a.offset..value_end]);
        assert!(
            out[value_end..a.offset + 4 + padded(a.value.len())]
                .iter()
                .all(|b| *b == pad)
        );
    }
    assert_eq!(out[..HEADER_LEN], data[..HEADER_LEN]);
    if uniform {
        assert_eq!(out, data, "raw re-encoding is not the identity");
    }
    let again = Message::new_checked(&out[..]).expect("a rebuilt message parses");
    let again_attrs: Vec<(AttrType, &[u8])> = again.attributes().map(|a| (a.ty, a.value)).collect();
    let attrs: Vec<(AttrType, &[u8])> = attrs.iter().map(|a| (a.ty, a.value)).collect();
    assert_eq!(again_attrs, attrs);
}

// ---------------------------------------------------------------------------------------
// ChannelData
// ---------------------------------------------------------------------------------------

/// Fuzz body of `channel_data_decode`: `ChannelData::new_checked` agrees with RFC 8656
/// §12.4 field by field, its accessors return the bytes in the frame, and re-encoding
/// (padded or not, whole or header only) gives the frame back.
pub fn channel_data_decode(data: &[u8]) {
    let parsed = ChannelData::new_checked(data);
    let owned = ChannelData::new_checked(data.to_vec());
    assert_eq!(parsed.as_ref().err(), owned.as_ref().err());

    let expected = if data.len() < CHANNEL_DATA_HEADER_LEN {
        Err(DecodeError::TooShort)
    } else if !CHANNELS.contains(&be16(data, 0)) {
        Err(DecodeError::InvalidChannelNumber)
    } else if be16(data, 2) > data.len() - CHANNEL_DATA_HEADER_LEN {
        Err(DecodeError::LengthMismatch)
    } else {
        Ok(())
    };
    assert_eq!(parsed.as_ref().map(|_| ()).map_err(|e| *e), expected);

    // On a datagram, the first byte decides; on a stream, `next_frame` agrees.
    if let Some(&first) = data.first() {
        let is_channel = CHANNEL_FIRST_BYTES.contains(&first);
        assert_eq!(demux(data) == Demux::ChannelData, is_channel);
        if is_channel && data.len() >= 4 {
            let total = (4 + be16(data, 2)).next_multiple_of(4);
            let want = if data.len() >= total {
                Framing::Frame(Frame::ChannelData(total))
            } else {
                Framing::NeedMore(total)
            };
            assert_eq!(next_frame(data), want);
            // Never STUN as well.
            assert!(matches!(
                Message::new_checked(data),
                Err(DecodeError::TooShort | DecodeError::NotStun)
            ));
        }
    }

    let Ok(frame) = parsed else { return };
    let len = be16(data, 2);
    assert_eq!(usize::from(frame.channel().value()), be16(data, 0));
    assert_eq!(frame.channel().is_rfc8656(), be16(data, 0) <= 0x4FFF);
    assert_eq!(frame.data(), &data[4..4 + len]);
    assert_eq!(demux(data), Demux::ChannelData);

    let mut out = vec![0xA5u8; len + 8];
    let n = encode_channel_data(&mut out, frame.channel(), frame.data(), false).expect("fits");
    assert_eq!(out[..n], data[..4 + len]);
    let n = encode_channel_data(&mut out, frame.channel(), frame.data(), true).expect("fits");
    assert_eq!(n, (4 + len).next_multiple_of(4));
    assert_eq!(out[..4 + len], data[..4 + len]);
    assert!(out[4 + len..n].iter().all(|b| *b == 0));
    // Padded or not, the re-encoded frame decodes to the same channel and data.
    let again = ChannelData::new_checked(&out[..n]).expect("re-encoded frame decodes");
    assert_eq!(again.channel(), frame.channel());
    assert_eq!(again.data(), frame.data());

    let mut header = [0u8; 4];
    write_channel_data_header(&mut header, frame.channel(), len).expect("fits");
    assert_eq!(header[..], data[..4]);
    assert_eq!(frame.into_inner(), data);
}

// ---------------------------------------------------------------------------------------
// Stream framing
// ---------------------------------------------------------------------------------------

/// How a stream was cut.
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    /// The frames, in order, as the kind `next_frame` said and the bytes cut.
    pub frames: Vec<(Frame, Vec<u8>)>,
    /// The bytes left unconsumed: a partial frame, or everything from the garbage on.
    pub rest: Vec<u8>,
    /// The last verdict: `NeedMore` (stream ended inside or between frames) or `Garbage`.
    pub end: Framing,
}

/// Fuzz body of `stream_framing`. The first byte seeds the chunk sizes; the rest is the
/// stream. It is fed to a small reassembly loop around `next_frame` in random-sized
/// chunks, one byte at a time and all at once: the three splits must be identical, the
/// frames and what is left must concatenate back to the stream, and every frame must be
/// what `next_frame` said (a STUN message whose header `Message::new_checked` accepts, or a
/// padded ChannelData frame `ChannelData::new_checked` accepts).
pub fn stream_framing(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = split_stream(stream, || usize::MAX);
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let max_chunk = usize::from(seed & 0x3F) + 1;
    let chunked = split_stream(stream, || {
        // xorshift32
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as usize % max_chunk + 1
    });
    assert_eq!(chunked, whole, "chunking changed the framing");
    if stream.len() <= 4096 {
        let bytewise = split_stream(stream, || 1);
        assert_eq!(bytewise, whole, "byte-by-byte feeding changed the framing");
    }
    check_split(stream, &whole);
}

/// The reassembly loop: cut frames while `next_frame` finds them, else read a chunk.
pub fn split_stream(stream: &[u8], mut next_chunk: impl FnMut() -> usize) -> Split {
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut frames = Vec::new();
    let mut need: Option<usize> = None;
    loop {
        match next_frame(&buf) {
            Framing::Frame(frame) => {
                assert!(frame.len() >= 4 && frame.len() <= buf.len(), "{frame:?}");
                assert!(!frame.is_empty());
                // `NeedMore(4)` only means "no header yet"; any other total was exact.
                if let Some(n) = need.take().filter(|n| *n > 4) {
                    assert_eq!(n, frame.len(), "NeedMore({n}) then a frame of {frame:?}");
                }
                frames.push((frame, buf.drain(..frame.len()).collect()));
            }
            Framing::NeedMore(n) => {
                assert!(n > buf.len(), "NeedMore({n}) with {} bytes", buf.len());
                // Once the header is known the total does not change with more bytes.
                if let Some(prev) = need.filter(|p| *p > 4 && buf.len() >= 4) {
                    assert_eq!(prev, n);
                }
                need = Some(n);
                if fed == stream.len() {
                    return Split {
                        frames,
                        rest: buf,
                        end: Framing::NeedMore(n),
                    };
                }
                let k = next_chunk().clamp(1, stream.len() - fed);
                buf.extend_from_slice(&stream[fed..fed + k]);
                fed += k;
            }
            Framing::Garbage => {
                assert!(buf.len() >= 4, "garbage decided on {} bytes", buf.len());
                buf.extend_from_slice(&stream[fed..]);
                return Split {
                    frames,
                    rest: buf,
                    end: Framing::Garbage,
                };
            }
        }
    }
}

/// Frames and rest concatenate to the stream; every frame is a frame on its own.
fn check_split(stream: &[u8], split: &Split) {
    let mut joined: Vec<u8> = split.frames.iter().flat_map(|(_, b)| b.clone()).collect();
    joined.extend_from_slice(&split.rest);
    assert_eq!(joined, stream);

    for (frame, bytes) in &split.frames {
        assert_eq!(frame.len(), bytes.len());
        assert_eq!(next_frame(bytes), Framing::Frame(*frame));
        match frame {
            Frame::Stun(_) => {
                assert_eq!(demux(bytes), Demux::Stun);
                // The header is valid: only attribute-level errors remain possible.
                match message_decode(bytes) {
                    Ok(())
                    | Err(
                        DecodeError::AttributeTruncated
                        | DecodeError::AttributeAfterFingerprint
                        | DecodeError::InvalidAttribute(_),
                    ) => {}
                    Err(e) => panic!("next_frame cut a STUN frame new_checked refuses: {e:?}"),
                }
            }
            Frame::ChannelData(_) => {
                assert_eq!(demux(bytes), Demux::ChannelData);
                let cd = ChannelData::new_checked(&bytes[..]).expect("framed ChannelData decodes");
                assert_eq!(bytes.len(), (4 + cd.data().len()).next_multiple_of(4));
                channel_data_decode(bytes);
            }
        }
    }
    match split.end {
        Framing::Garbage => assert_eq!(next_frame(&split.rest), Framing::Garbage),
        Framing::NeedMore(n) => {
            assert!(n > split.rest.len());
            assert_eq!(next_frame(&split.rest), Framing::NeedMore(n));
        }
        Framing::Frame(_) => panic!("a split ends on NeedMore or Garbage"),
    }
}
