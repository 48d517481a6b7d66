//! The same three work items done with each competitor crate, in its idiomatic (and, where
//! it offers a choice, fastest) way. Shared by `benches/codec.rs` and
//! `tests/competitors.rs` (through `#[path]`), so the test checks exactly the code that is
//! measured.
//!
//! Every function reports failure as `Err(String)`; the string is only built on the error
//! path, so it costs nothing in the measured (successful) runs.
//!
//! None of the three competitors can reuse a prepared HMAC key: `stun-rs`'s `HMACKey`,
//! `stun_codec`'s `&str` password and webrtc-rs's `MessageIntegrity(Vec<u8>)` all hold the
//! raw key bytes, and every check or signature builds a fresh HMAC (inner and outer pad
//! compressions included). Whatever could be hoisted out of the loop is: decoder/encoder
//! objects, the `HMACKey` (whose construction runs the OpaqueString profile), webrtc's
//! reusable `Message`.

#![allow(dead_code)]

use core::net::SocketAddr;

fn err(e: impl core::fmt::Debug) -> String {
    format!("{e:?}")
}

/// `stun-rs` 0.1: `MessageDecoder` with a `DecoderContext` holding the key and
/// `with_validation()`, so MESSAGE-INTEGRITY and FINGERPRINT are checked while decoding
/// (the way its documentation does it).
pub mod stun_rs {
    use super::*;
    use ::stun_rs::attributes::stun::{Fingerprint, MessageIntegrity, UserName, XorMappedAddress};
    use ::stun_rs::methods::BINDING;
    use ::stun_rs::{
        DecoderContextBuilder, HMACKey, MessageClass, MessageDecoder, MessageDecoderBuilder,
        MessageEncoder, MessageEncoderBuilder, StunMessageBuilder, TransactionId,
    };

    /// A decoder that validates integrity and fingerprint with the short-term key.
    pub fn verifying_decoder(password: &str) -> MessageDecoder {
        let ctx = DecoderContextBuilder::default()
            .with_key(HMACKey::new_short_term(password).expect("valid OpaqueString"))
            .with_validation()
            .build();
        MessageDecoderBuilder::default().with_context(ctx).build()
    }

    /// A decoder without context: no validation.
    pub fn plain_decoder() -> MessageDecoder {
        MessageDecoderBuilder::default().build()
    }

    /// The short-term key (OpaqueString-prepared once).
    pub fn key(password: &str) -> HMACKey {
        HMACKey::new_short_term(password).expect("valid OpaqueString")
    }

    /// The encoder (default padding).
    pub fn encoder() -> MessageEncoder {
        MessageEncoderBuilder::default().build()
    }

    /// Decodes (and, with a verifying decoder, validates MESSAGE-INTEGRITY and
    /// FINGERPRINT), then reads USERNAME as `&str`. Also checks the two attributes were
    /// really there, since validation only happens for attributes present.
    pub fn parse<R>(
        decoder: &MessageDecoder,
        packet: &[u8],
        must_verify: bool,
        f: impl FnOnce(&str) -> R,
    ) -> Result<R, String> {
        let (msg, _) = decoder.decode(packet).map_err(err)?;
        if must_verify
            && (msg.get::<MessageIntegrity>().is_none() || msg.get::<Fingerprint>().is_none())
        {
            return Err("integrity or fingerprint missing".into());
        }
        let user = msg
            .get::<UserName>()
            .ok_or("no USERNAME")?
            .as_user_name()
            .map_err(err)?;
        Ok(f(user.as_str()))
    }

    /// Builds the response with `StunMessageBuilder` and encodes it into `buf`. The
    /// `HMACKey` is an `Arc`; cloning it is a reference count increment.
    pub fn build_response(
        encoder: &MessageEncoder,
        buf: &mut [u8],
        tid: [u8; 12],
        addr: SocketAddr,
        key: &HMACKey,
    ) -> Result<usize, String> {
        let msg = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
            .with_transaction_id(TransactionId::from(tid))
            .with_attribute(XorMappedAddress::from(addr))
            .with_attribute(MessageIntegrity::new(key.clone()))
            .with_attribute(Fingerprint::default())
            .build();
        encoder.encode(buf, &msg).map_err(err)
    }
}

/// `stun_codec` 0.4 (with `bytecodec` 0.5): a reused `MessageDecoder<rfc5389::Attribute>`
/// (FINGERPRINT is checked while decoding, by `Fingerprint::after_decode`), then
/// `MessageIntegrity::check_short_term_credential`.
pub mod stun_codec {
    use super::*;
    use ::bytecodec::{DecodeExt, EncodeExt};
    use ::stun_codec::rfc5389::Attribute;
    use ::stun_codec::rfc5389::attributes::{
        Fingerprint, MessageIntegrity, Username, XorMappedAddress,
    };
    use ::stun_codec::rfc5389::methods::BINDING;
    use ::stun_codec::{Message, MessageClass, MessageDecoder, MessageEncoder, TransactionId};

    /// The decoder type.
    pub type Decoder = MessageDecoder<Attribute>;
    /// The encoder type.
    pub type Encoder = MessageEncoder<Attribute>;

    /// Decodes (FINGERPRINT checked by the decoder; MESSAGE-INTEGRITY's covered bytes
    /// re-encoded by it), checks MESSAGE-INTEGRITY when `password` is given, then reads
    /// USERNAME. There is no way to decode without the FINGERPRINT check, so `parse_only`
    /// with `password = None` still includes it (and MESSAGE-INTEGRITY's re-encoding).
    pub fn parse<R>(
        decoder: &mut Decoder,
        packet: &[u8],
        password: Option<&str>,
        f: impl FnOnce(&str) -> R,
    ) -> Result<R, String> {
        let msg = decoder
            .decode_from_bytes(packet)
            .map_err(err)?
            .map_err(err)?;
        if let Some(password) = password {
            if msg.get_attribute::<Fingerprint>().is_none() {
                return Err("no FINGERPRINT".into());
            }
            msg.get_attribute::<MessageIntegrity>()
                .ok_or("no MESSAGE-INTEGRITY")?
                .check_short_term_credential(password)
                .map_err(err)?;
        }
        let user = msg.get_attribute::<Username>().ok_or("no USERNAME")?;
        Ok(f(user.name()))
    }

    /// Builds the `Message`, computes MESSAGE-INTEGRITY and FINGERPRINT with their
    /// constructors (each re-encodes the message so far), and encodes it into a `Vec`
    /// (`encode_into_bytes`, the crate's way to get bytes out).
    pub fn build_response(
        encoder: &mut Encoder,
        tid: [u8; 12],
        addr: SocketAddr,
        password: &str,
    ) -> Result<Vec<u8>, String> {
        let mut msg = Message::<Attribute>::new(
            MessageClass::SuccessResponse,
            BINDING,
            TransactionId::new(tid),
        );
        msg.add_attribute(XorMappedAddress::new(addr));
        let mi = MessageIntegrity::new_short_term_credential(&msg, password).map_err(err)?;
        msg.add_attribute(mi);
        let fp = Fingerprint::new(&msg).map_err(err)?;
        msg.add_attribute(fp);
        encoder.encode_into_bytes(msg).map_err(err)
    }
}

/// webrtc-rs `stun` 0.17: a reused `Message` (`unmarshal_binary` copies the packet into its
/// buffer and decodes), `MessageIntegrity::check`, `FINGERPRINT.check`, and
/// `TextAttribute::get_from_as` for USERNAME (which returns an owned `String`: there is no
/// borrowing getter).
pub mod webrtc {
    use super::*;
    use ::stun::attributes::ATTR_USERNAME;
    use ::stun::fingerprint::FINGERPRINT;
    use ::stun::integrity::MessageIntegrity;
    use ::stun::message::{BINDING_SUCCESS, Message, Setter};
    use ::stun::textattrs::TextAttribute;
    use ::stun::xoraddr::XorMappedAddress;

    /// A reusable message.
    pub fn message() -> Message {
        Message::new()
    }

    /// The short-term integrity "key" (the password bytes).
    pub fn key(password: &str) -> MessageIntegrity {
        MessageIntegrity::new_short_term_integrity(password.to_owned())
    }

    /// Decodes into `m`, checks FINGERPRINT and MESSAGE-INTEGRITY when `key` is given,
    /// reads USERNAME.
    pub fn parse<R>(
        m: &mut Message,
        packet: &[u8],
        key: Option<&MessageIntegrity>,
        f: impl FnOnce(&str) -> R,
    ) -> Result<R, String> {
        m.unmarshal_binary(packet).map_err(err)?;
        if let Some(key) = key {
            FINGERPRINT.check(m).map_err(err)?;
            key.check(m).map_err(err)?;
        }
        let user = TextAttribute::get_from_as(m, ATTR_USERNAME).map_err(err)?;
        Ok(f(&user.text))
    }

    /// Builds the response in the reused `m` by applying the setters directly (no boxed
    /// `build(&[Box<dyn Setter>])` list); the bytes are `m.raw`.
    pub fn build_response(
        m: &mut Message,
        tid: [u8; 12],
        addr: SocketAddr,
        key: &MessageIntegrity,
    ) -> Result<usize, String> {
        m.reset();
        m.transaction_id = ::stun::agent::TransactionId(tid);
        m.typ = BINDING_SUCCESS;
        m.write_header();
        XorMappedAddress {
            ip: addr.ip(),
            port: addr.port(),
        }
        .add_to(m)
        .map_err(err)?;
        key.add_to(m).map_err(err)?;
        FINGERPRINT.add_to(m).map_err(err)?;
        Ok(m.raw.len())
    }
}
