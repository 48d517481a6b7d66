//! Shared inputs and the turnpike side of the codec benchmarks.
//!
//! The benchmark (`benches/codec.rs`) races these functions against the same work done
//! with other Rust STUN crates; the no-allocation test (`tests/no_alloc.rs`) runs the very
//! same functions under a counting global allocator. Keeping the turnpike code paths here
//! guarantees that what is measured is what is proven allocation-free.
//!
//! See `benches/README.md` for how to run them and for the results.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use turnpike_stun::attr::{Username, XorMappedAddress};
use turnpike_stun::{
    DecodeError, EncodeError, IntegrityKey, Message, MessageType, MessageWriter, TransactionId,
};

/// The RFC 5769 vectors the codec's golden tests use, shared rather than copied.
#[path = "../../crates/stun/tests/common/vectors.rs"]
#[allow(missing_docs)]
mod vectors;

/// RFC 5769 §2.1 "Sample Request": a Binding request with SOFTWARE, PRIORITY,
/// ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY and FINGERPRINT (108 bytes; short-term
/// credential [`RFC5769_PASSWORD`]), from `crates/stun/tests/common/vectors.rs`.
pub const RFC5769_REQUEST: &[u8] = vectors::RFC5769_REQUEST;

/// RFC 5769 §2: the short-term password; the MESSAGE-INTEGRITY key is its bytes as they are.
pub const RFC5769_PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

/// RFC 5769 §2.1: the USERNAME of the sample request.
pub const RFC5769_USERNAME: &str = "evtj:h6vY";

/// RFC 5769 §2.1: the transaction ID of the sample request (the response reuses it).
pub const RFC5769_TRANSACTION_ID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];

/// The reflexive address put in XOR-MAPPED-ADDRESS of the response (the RFC 5769 §2.2
/// sample response's address).
pub const MAPPED_ADDRESS: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 32853);

/// Length of the Binding success response the benchmark builds: header, XOR-MAPPED-ADDRESS
/// (IPv4), MESSAGE-INTEGRITY and FINGERPRINT.
pub const RESPONSE_LEN: usize = 20 + 12 + 24 + 8;

/// Parses `packet`, checks FINGERPRINT (which must be present) and MESSAGE-INTEGRITY with
/// the prepared `key`, then hands USERNAME (which must be present) to `f`.
///
/// This is the `parse_verify` work item. The key is an [`IntegrityKey`] built once per
/// credential, outside the measured loop: that is how the server uses it.
///
/// # Errors
///
/// Whatever [`Message::new_checked`], [`Message::verify_fingerprint`],
/// [`Message::verify_integrity`] or USERNAME decoding report; a missing FINGERPRINT or
/// USERNAME is [`DecodeError::InvalidAttribute`].
pub fn turnpike_parse_verify<R>(
    packet: &[u8],
    key: &IntegrityKey,
    f: impl FnOnce(&str) -> R,
) -> Result<R, DecodeError> {
    let msg = Message::new_checked(packet)?;
    if !msg.verify_fingerprint()? {
        return Err(DecodeError::InvalidAttribute(
            turnpike_stun::AttrType::FINGERPRINT,
        ));
    }
    msg.verify_integrity(key)?;
    let Username(user) = msg.get::<Username>()?.ok_or(DecodeError::InvalidAttribute(
        turnpike_stun::AttrType::USERNAME,
    ))?;
    Ok(f(user))
}

/// Parses `packet` and reads USERNAME, without any integrity or fingerprint check (the
/// `parse_only` work item).
///
/// # Errors
///
/// As [`turnpike_parse_verify`], without the verification errors.
pub fn turnpike_parse_only<R>(packet: &[u8], f: impl FnOnce(&str) -> R) -> Result<R, DecodeError> {
    let msg = Message::new_checked(packet)?;
    let Username(user) = msg.get::<Username>()?.ok_or(DecodeError::InvalidAttribute(
        turnpike_stun::AttrType::USERNAME,
    ))?;
    Ok(f(user))
}

/// Writes a Binding success response with XOR-MAPPED-ADDRESS `addr`, MESSAGE-INTEGRITY
/// (with the prepared `key`) and FINGERPRINT into `buf`; returns its length (the
/// `build_response` work item).
///
/// # Errors
///
/// [`EncodeError::BufferTooSmall`] when `buf` is shorter than [`RESPONSE_LEN`].
pub fn turnpike_build_response(
    buf: &mut [u8],
    tid: TransactionId,
    addr: SocketAddr,
    key: &IntegrityKey,
) -> Result<usize, EncodeError> {
    let mut w = MessageWriter::new(buf, MessageType::BINDING_SUCCESS, tid)?;
    w.put(&XorMappedAddress(addr))?;
    w.put_integrity(key)?;
    w.put_fingerprint()?;
    Ok(w.finish())
}

/// The prepared key of [`RFC5769_PASSWORD`].
pub fn rfc5769_key() -> IntegrityKey {
    IntegrityKey::new(RFC5769_PASSWORD.as_bytes())
}

#[cfg(test)]
mod tests {
    use turnpike_stun::IntegrityKind;

    use super::*;

    #[test]
    fn turnpike_accepts_the_rfc5769_request() {
        let key = rfc5769_key();
        let msg = Message::new_checked(RFC5769_REQUEST).unwrap();
        assert_eq!(msg.message_type(), MessageType::BINDING_REQUEST);
        assert_eq!(msg.transaction_id(), TransactionId(RFC5769_TRANSACTION_ID));
        assert_eq!(msg.verify_integrity(&key), Ok(IntegrityKind::Sha1));
        assert_eq!(msg.verify_fingerprint(), Ok(true));
        let user = turnpike_parse_verify(RFC5769_REQUEST, &key, str::to_owned).unwrap();
        assert_eq!(user, RFC5769_USERNAME);
        let user = turnpike_parse_only(RFC5769_REQUEST, str::to_owned).unwrap();
        assert_eq!(user, RFC5769_USERNAME);
    }

    #[test]
    fn turnpike_rejects_a_wrong_key_and_a_flipped_bit() {
        let wrong = IntegrityKey::new(b"VOkJxbRl1RmTxUk/WvJxBT");
        assert_eq!(
            turnpike_parse_verify(RFC5769_REQUEST, &wrong, |_| ()),
            Err(DecodeError::IntegrityMismatch)
        );
        let mut bad = RFC5769_REQUEST.to_vec();
        bad[30] ^= 1; // inside SOFTWARE: FINGERPRINT catches it first
        assert_eq!(
            turnpike_parse_verify(&bad, &rfc5769_key(), |_| ()),
            Err(DecodeError::FingerprintMismatch)
        );
    }

    #[test]
    fn turnpike_response_round_trips() {
        let key = rfc5769_key();
        let mut buf = [0u8; 128];
        let tid = TransactionId(RFC5769_TRANSACTION_ID);
        let n = turnpike_build_response(&mut buf, tid, MAPPED_ADDRESS, &key).unwrap();
        assert_eq!(n, RESPONSE_LEN);
        let msg = Message::new_checked(&buf[..n]).unwrap();
        assert_eq!(msg.message_type(), MessageType::BINDING_SUCCESS);
        assert_eq!(msg.transaction_id(), tid);
        assert_eq!(msg.verify_integrity(&key), Ok(IntegrityKind::Sha1));
        assert_eq!(msg.verify_fingerprint(), Ok(true));
        assert_eq!(
            msg.get::<XorMappedAddress>().unwrap(),
            Some(XorMappedAddress(MAPPED_ADDRESS))
        );
    }
}
