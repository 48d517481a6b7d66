//! Golden tests: the RFC 5769 test vectors (§2.1–§2.4) and RFC 8489 Appendix B.1 (as
//! corrected by verified Errata ID 6268), parsed, verified and rebuilt byte for byte.

mod common;

use std::net::SocketAddr;

use common::vectors::*;
use turnpike_stun::attr::{
    IceControlled, MessageIntegrity, Nonce, PasswordAlgorithm, PasswordAlgorithmId, Priority,
    Realm, Software, Userhash, Username, XorMappedAddress,
};
use turnpike_stun::nonce_cookie::{SecurityFeatures, parse_nonce_cookie};
use turnpike_stun::{
    AttrType, DecodeError, IntegrityKey, IntegrityKind, LongTermKey, Message, MessageType,
    MessageWriter, TransactionId, userhash,
};

fn attribute_list(msg: &Message<&[u8]>) -> Vec<(u16, u16)> {
    msg.attributes()
        .map(|a| (a.ty.0, a.value.len() as u16))
        .collect()
}

fn expected_list(spec: &[(u16, &str, u16)]) -> Vec<(u16, u16)> {
    spec.iter().map(|(t, _, l)| (*t, *l)).collect()
}

#[test]
fn sample_request_parses_and_verifies() {
    let msg = Message::new_checked(RFC5769_REQUEST).unwrap();
    assert_eq!(msg.message_type(), MessageType::BINDING_REQUEST);
    assert_eq!(
        msg.transaction_id(),
        TransactionId(RFC5769_REQUEST_TRANSACTION_ID)
    );
    assert_eq!(
        attribute_list(&msg),
        expected_list(RFC5769_REQUEST_ATTRIBUTES)
    );
    assert_eq!(
        msg.get::<Software>().unwrap().unwrap().0,
        RFC5769_REQUEST_SOFTWARE
    );
    assert_eq!(
        msg.get::<Username>().unwrap().unwrap().0,
        RFC5769_REQUEST_USERNAME
    );
    assert_eq!(
        msg.get::<Priority>().unwrap().unwrap().0,
        RFC5769_REQUEST_PRIORITY
    );
    assert_eq!(
        msg.get::<IceControlled>().unwrap().unwrap().0,
        RFC5769_REQUEST_ICE_CONTROLLED
    );
    // Known ICE attributes are not "unknown comprehension-required".
    assert_eq!(msg.unknown_comprehension_required().count(), 0);
    assert_eq!(msg.verify_fingerprint(), Ok(true));
    let key = IntegrityKey::new(RFC5769_PASSWORD.as_bytes());
    assert_eq!(msg.verify_integrity(&key), Ok(IntegrityKind::Sha1));
    let wrong = IntegrityKey::new(b"VOkJxbRl1RmTxUk/WvJxBT");
    assert_eq!(
        msg.verify_integrity(&wrong),
        Err(DecodeError::IntegrityMismatch)
    );
    // Integrity attributes are not returned by `get` (they are not "covered" content).
    assert!(msg.get::<MessageIntegrity>().unwrap().is_none());
}

#[test]
fn sample_request_is_rebuilt_byte_for_byte() {
    let key = IntegrityKey::new(RFC5769_PASSWORD.as_bytes());
    let mut buf = [0u8; 256];
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::BINDING_REQUEST,
        TransactionId(RFC5769_REQUEST_TRANSACTION_ID),
    )
    .unwrap()
    .with_padding_byte(0x20);
    w.put(&Software(RFC5769_REQUEST_SOFTWARE)).unwrap();
    w.put(&Priority(RFC5769_REQUEST_PRIORITY)).unwrap();
    w.put(&IceControlled(RFC5769_REQUEST_ICE_CONTROLLED))
        .unwrap();
    w.put(&Username(RFC5769_REQUEST_USERNAME)).unwrap();
    w.put_integrity(&key).unwrap();
    w.put_fingerprint().unwrap();
    let len = w.finish();
    assert_eq!(&buf[..len], RFC5769_REQUEST);
}

fn check_response(bytes: &[u8], expected: &str) {
    let msg = Message::new_checked(bytes).unwrap();
    assert_eq!(msg.message_type(), MessageType::BINDING_SUCCESS);
    let mapped: SocketAddr = expected.parse().unwrap();
    assert_eq!(msg.get::<XorMappedAddress>().unwrap().unwrap().0, mapped);
    // The SOFTWARE value is 11 bytes; its 12th byte is padding (a space), not content.
    assert_eq!(
        msg.get::<Software>().unwrap().unwrap().0,
        RFC5769_RESPONSE_SOFTWARE
    );
    assert_eq!(msg.verify_fingerprint(), Ok(true));
    let key = IntegrityKey::new(RFC5769_PASSWORD.as_bytes());
    assert_eq!(msg.verify_integrity(&key), Ok(IntegrityKind::Sha1));

    let mut buf = [0u8; 256];
    let mut w = MessageWriter::new(&mut buf, MessageType::BINDING_SUCCESS, msg.transaction_id())
        .unwrap()
        .with_padding_byte(0x20);
    w.put(&Software(RFC5769_RESPONSE_SOFTWARE)).unwrap();
    w.put(&XorMappedAddress(mapped)).unwrap();
    w.put_integrity(&key).unwrap();
    w.put_fingerprint().unwrap();
    let len = w.finish();
    assert_eq!(&buf[..len], bytes);
}

#[test]
fn sample_ipv4_response() {
    check_response(RFC5769_IPV4_RESPONSE, RFC5769_IPV4_RESPONSE_MAPPED_ADDRESS);
    let msg = Message::new_checked(RFC5769_IPV4_RESPONSE).unwrap();
    assert_eq!(
        attribute_list(&msg),
        expected_list(RFC5769_IPV4_RESPONSE_ATTRIBUTES)
    );
}

#[test]
fn sample_ipv6_response() {
    check_response(RFC5769_IPV6_RESPONSE, RFC5769_IPV6_RESPONSE_MAPPED_ADDRESS);
    let msg = Message::new_checked(RFC5769_IPV6_RESPONSE).unwrap();
    assert_eq!(
        attribute_list(&msg),
        expected_list(RFC5769_IPV6_RESPONSE_ATTRIBUTES)
    );
}

/// RFC 5769 §2.4 predates RFC 8489: its password was prepared with SASLprep, giving
/// "TheMatrIX". OpaqueString (RFC 8265) rejects the raw password (U+00AD is disallowed),
/// so the key is derived from the prepared form, as the RFC states it.
#[test]
fn sample_request_with_long_term_authentication() {
    let msg = Message::new_checked(RFC5769_LONG_TERM_REQUEST).unwrap();
    assert_eq!(
        attribute_list(&msg),
        expected_list(RFC5769_LONG_TERM_REQUEST_ATTRIBUTES)
    );
    assert_eq!(
        msg.get::<Username>().unwrap().unwrap().0,
        RFC5769_LONG_TERM_REQUEST_USERNAME
    );
    assert_eq!(
        msg.get::<Nonce>().unwrap().unwrap().0,
        RFC5769_LONG_TERM_REQUEST_NONCE
    );
    assert_eq!(
        msg.get::<Realm>().unwrap().unwrap().0,
        RFC5769_LONG_TERM_REQUEST_REALM
    );
    assert!(!msg.has_fingerprint());
    assert_eq!(msg.verify_fingerprint(), Ok(false));

    let key = LongTermKey::derive(
        PasswordAlgorithmId::MD5,
        RFC5769_LONG_TERM_REQUEST_USERNAME,
        RFC5769_LONG_TERM_REQUEST_REALM,
        RFC5769_LONG_TERM_REQUEST_PASSWORD_SASLPREP,
    )
    .unwrap();
    assert_eq!(key.as_bytes(), RFC5769_LONG_TERM_REQUEST_KEY);
    assert_eq!(
        msg.verify_integrity(&key.integrity_key()),
        Ok(IntegrityKind::Sha1)
    );
    assert!(
        LongTermKey::derive(
            PasswordAlgorithmId::MD5,
            RFC5769_LONG_TERM_REQUEST_USERNAME,
            RFC5769_LONG_TERM_REQUEST_REALM,
            RFC5769_LONG_TERM_REQUEST_PASSWORD,
        )
        .is_err(),
        "OpaqueString must refuse the soft hyphen"
    );

    let mut buf = [0u8; 256];
    let mut w =
        MessageWriter::new(&mut buf, MessageType::BINDING_REQUEST, msg.transaction_id()).unwrap();
    w.put(&Username(RFC5769_LONG_TERM_REQUEST_USERNAME))
        .unwrap();
    w.put(&Nonce(RFC5769_LONG_TERM_REQUEST_NONCE)).unwrap();
    w.put(&Realm(RFC5769_LONG_TERM_REQUEST_REALM)).unwrap();
    w.put_integrity(&key.integrity_key()).unwrap();
    let len = w.finish();
    assert_eq!(&buf[..len], RFC5769_LONG_TERM_REQUEST);
}

/// RFC 8489 Appendix B.1 as corrected by Errata ID 6268 (length 0x0090, a
/// PASSWORD-ALGORITHM attribute, a recomputed MESSAGE-INTEGRITY-SHA256).
#[test]
fn rfc8489_b1_userhash_and_sha256() {
    let msg = Message::new_checked(RFC8489_B1_REQUEST).unwrap();
    let hash = userhash(RFC8489_B1_USERNAME, RFC8489_B1_REALM).unwrap();
    assert_eq!(hash, RFC8489_B1_USERHASH);
    assert_eq!(
        msg.get::<Userhash>().unwrap().unwrap().0,
        &RFC8489_B1_USERHASH
    );
    let nonce = msg.get::<Nonce>().unwrap().unwrap().0;
    assert_eq!(nonce, RFC8489_B1_NONCE);
    // Errata ID 6290: feature bits count from the right; 0x000002 is username anonymity.
    assert_eq!(
        parse_nonce_cookie(nonce),
        Some(SecurityFeatures::USERNAME_ANONYMITY)
    );
    let alg = msg.get::<PasswordAlgorithm>().unwrap().unwrap();
    assert_eq!(alg.algorithm, PasswordAlgorithmId::SHA256);

    let key = LongTermKey::derive(
        alg.algorithm,
        RFC8489_B1_USERNAME,
        RFC8489_B1_REALM,
        RFC8489_B1_PASSWORD_PROCESSED,
    )
    .unwrap();
    assert_eq!(key.as_bytes(), RFC8489_B1_KEY);
    assert_eq!(
        msg.verify_integrity(&key.integrity_key()),
        Ok(IntegrityKind::Sha256 { len: 32 })
    );
    let md5 = LongTermKey::derive(
        PasswordAlgorithmId::MD5,
        RFC8489_B1_USERNAME,
        RFC8489_B1_REALM,
        RFC8489_B1_PASSWORD_PROCESSED,
    )
    .unwrap();
    assert_eq!(
        msg.verify_integrity(&md5.integrity_key()),
        Err(DecodeError::IntegrityMismatch)
    );

    let mut buf = [0u8; 256];
    let mut w =
        MessageWriter::new(&mut buf, MessageType::BINDING_REQUEST, msg.transaction_id()).unwrap();
    w.put(&Userhash(&hash)).unwrap();
    w.put(&Nonce(RFC8489_B1_NONCE)).unwrap();
    w.put(&Realm(RFC8489_B1_REALM)).unwrap();
    w.put(&PasswordAlgorithm::new(PasswordAlgorithmId::SHA256))
        .unwrap();
    w.put_integrity_sha256(&key.integrity_key(), 32).unwrap();
    let len = w.finish();
    assert_eq!(&buf[..len], RFC8489_B1_REQUEST);
}

/// The vector as printed in RFC 8489 carries a length field of 0x009c for a 136-byte
/// body (Errata ID 6268): a strict decoder refuses it.
#[test]
fn rfc8489_b1_as_published_is_rejected() {
    assert_eq!(
        Message::new_checked(RFC8489_B1_REQUEST_PUBLISHED).unwrap_err(),
        DecodeError::LengthMismatch
    );
}

#[test]
fn truncated_sha256_integrity_verifies() {
    let key = IntegrityKey::new(b"secret");
    for len in [16, 20, 24, 28, 32] {
        let mut buf = [0u8; 128];
        let mut w = MessageWriter::new(
            &mut buf,
            MessageType::BINDING_REQUEST,
            TransactionId([1; 12]),
        )
        .unwrap();
        w.put(&Username("alice")).unwrap();
        w.put_integrity(&key).unwrap();
        w.put_integrity_sha256(&key, len).unwrap();
        w.put_fingerprint().unwrap();
        let n = w.finish();
        let msg = Message::new_checked(&buf[..n]).unwrap();
        assert_eq!(
            msg.verify_integrity(&key),
            Ok(IntegrityKind::Sha256 { len: len as u8 })
        );
        assert_eq!(msg.verify_fingerprint(), Ok(true));
        assert_eq!(msg.raw(AttrType::USERNAME).unwrap().value, b"alice");
    }
}
