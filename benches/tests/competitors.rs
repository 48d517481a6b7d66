//! The competitor code paths the benchmark measures really do the work: they accept the
//! RFC 5769 request and read its USERNAME, reject a wrong password and a corrupted packet
//! (so integrity and fingerprint are really checked), and build responses that
//! turnpike-stun verifies.

#![allow(missing_docs, unreachable_pub)]

#[path = "../benches/impls/mod.rs"]
mod impls;

use turnpike_benches::{
    MAPPED_ADDRESS, RESPONSE_LEN, RFC5769_PASSWORD, RFC5769_REQUEST, RFC5769_TRANSACTION_ID,
    RFC5769_USERNAME, rfc5769_key,
};
use turnpike_stun::attr::XorMappedAddress;
use turnpike_stun::{IntegrityKind, Message, MessageType, TransactionId};

const WRONG_PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBT";

/// The request with one bit of SOFTWARE flipped: FINGERPRINT and MESSAGE-INTEGRITY both
/// fail.
fn corrupted() -> Vec<u8> {
    let mut p = RFC5769_REQUEST.to_vec();
    p[30] ^= 1;
    p
}

/// The request with FINGERPRINT's value changed only: MESSAGE-INTEGRITY still passes, so
/// only a real FINGERPRINT check rejects it.
fn bad_fingerprint() -> Vec<u8> {
    let mut p = RFC5769_REQUEST.to_vec();
    p[107] ^= 1;
    p
}

fn assert_turnpike_accepts_response(bytes: &[u8]) {
    assert_eq!(bytes.len(), RESPONSE_LEN);
    let msg = Message::new_checked(bytes).unwrap();
    assert_eq!(msg.message_type(), MessageType::BINDING_SUCCESS);
    assert_eq!(msg.transaction_id(), TransactionId(RFC5769_TRANSACTION_ID));
    assert_eq!(
        msg.verify_integrity(&rfc5769_key()),
        Ok(IntegrityKind::Sha1)
    );
    assert_eq!(msg.verify_fingerprint(), Ok(true));
    assert_eq!(
        msg.get::<XorMappedAddress>(),
        Ok(Some(XorMappedAddress(MAPPED_ADDRESS)))
    );
}

#[test]
fn stun_rs_parse_verify() {
    let dec = impls::stun_rs::verifying_decoder(RFC5769_PASSWORD);
    let user = impls::stun_rs::parse(&dec, RFC5769_REQUEST, true, str::to_owned).unwrap();
    assert_eq!(user, RFC5769_USERNAME);
    let wrong = impls::stun_rs::verifying_decoder(WRONG_PASSWORD);
    assert!(impls::stun_rs::parse(&wrong, RFC5769_REQUEST, true, |_| ()).is_err());
    assert!(impls::stun_rs::parse(&dec, &corrupted(), true, |_| ()).is_err());
    assert!(impls::stun_rs::parse(&dec, &bad_fingerprint(), true, |_| ()).is_err());
    // Without validation the corrupted packet goes through: parse_only does no crypto.
    let plain = impls::stun_rs::plain_decoder();
    assert!(impls::stun_rs::parse(&plain, &corrupted(), false, |_| ()).is_ok());
}

#[test]
fn stun_codec_parse_verify() {
    let mut dec = impls::stun_codec::Decoder::new();
    let user = impls::stun_codec::parse(
        &mut dec,
        RFC5769_REQUEST,
        Some(RFC5769_PASSWORD),
        str::to_owned,
    )
    .unwrap();
    assert_eq!(user, RFC5769_USERNAME);
    // The decoder is reused by the benchmark: it must keep working after an error too.
    let mut dec = impls::stun_codec::Decoder::new();
    assert!(
        impls::stun_codec::parse(&mut dec, RFC5769_REQUEST, Some(WRONG_PASSWORD), |_| ()).is_err()
    );
    let mut dec = impls::stun_codec::Decoder::new();
    assert!(
        impls::stun_codec::parse(&mut dec, &corrupted(), Some(RFC5769_PASSWORD), |_| ()).is_err()
    );
    let mut dec = impls::stun_codec::Decoder::new();
    assert!(
        impls::stun_codec::parse(&mut dec, &bad_fingerprint(), Some(RFC5769_PASSWORD), |_| ())
            .is_err()
    );
    // Reuse: many messages through one decoder.
    let mut dec = impls::stun_codec::Decoder::new();
    for _ in 0..3 {
        impls::stun_codec::parse(&mut dec, RFC5769_REQUEST, Some(RFC5769_PASSWORD), |_| ())
            .unwrap();
    }
}

#[test]
fn webrtc_parse_verify() {
    let mut m = impls::webrtc::message();
    let key = impls::webrtc::key(RFC5769_PASSWORD);
    for _ in 0..3 {
        let user =
            impls::webrtc::parse(&mut m, RFC5769_REQUEST, Some(&key), str::to_owned).unwrap();
        assert_eq!(user, RFC5769_USERNAME);
    }
    let wrong = impls::webrtc::key(WRONG_PASSWORD);
    assert!(impls::webrtc::parse(&mut m, RFC5769_REQUEST, Some(&wrong), |_| ()).is_err());
    assert!(impls::webrtc::parse(&mut m, &corrupted(), Some(&key), |_| ()).is_err());
    assert!(impls::webrtc::parse(&mut m, &bad_fingerprint(), Some(&key), |_| ()).is_err());
}

#[test]
fn responses_verify_under_turnpike() {
    let tid = RFC5769_TRANSACTION_ID;

    let enc = impls::stun_rs::encoder();
    let key = impls::stun_rs::key(RFC5769_PASSWORD);
    let mut buf = [0u8; 128];
    let n = impls::stun_rs::build_response(&enc, &mut buf, tid, MAPPED_ADDRESS, &key).unwrap();
    assert_turnpike_accepts_response(&buf[..n]);

    let mut enc = impls::stun_codec::Encoder::new();
    for _ in 0..3 {
        let bytes =
            impls::stun_codec::build_response(&mut enc, tid, MAPPED_ADDRESS, RFC5769_PASSWORD)
                .unwrap();
        assert_turnpike_accepts_response(&bytes);
    }

    let mut m = impls::webrtc::message();
    let key = impls::webrtc::key(RFC5769_PASSWORD);
    for _ in 0..3 {
        let n = impls::webrtc::build_response(&mut m, tid, MAPPED_ADDRESS, &key).unwrap();
        assert_turnpike_accepts_response(&m.raw[..n]);
    }
}
