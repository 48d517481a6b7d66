//! # turnpike-stun
//!
//! A zero-copy codec for STUN (RFC 8489, RFC 5389) and TURN (RFC 8656, RFC 6062,
//! RFC 6156, RFC 8016), the NAT behaviour discovery attributes (RFC 5780), and TURN's
//! ChannelData framing. No IO, no clock, no async, no `unsafe`.
//!
//! ## Reading
//!
//! [`Message::new_checked`] validates a packet once and borrows it: header, length field,
//! the bounds of every attribute, the lengths of the integrity attributes.
//! **After `new_checked` succeeds, no accessor can panic**, whatever the bytes; typed
//! attribute decoding ([`Message::get`]) returns a [`DecodeError`] for malformed values.
//! Nothing on the parse path allocates, error paths included.
//!
//! MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are checked over the
//! received bytes with the length field patched in the hash input, never by re-encoding,
//! and compared in constant time. An [`IntegrityKey`] keeps the HMAC pad states so that
//! a key is prepared once and used for many messages.
//!
//! ## Writing
//!
//! [`MessageWriter`] builds a message into a buffer the caller owns and back-patches the
//! length after every attribute; integrity and fingerprint are appended last, in the order
//! RFC 8489 requires. [`encode_channel_data`] and [`write_channel_data_header`] frame
//! ChannelData, the latter in place in front of data already in the buffer.
//!
//! ## Streams
//!
//! [`framing::next_frame`] tells how long the next STUN message or (padded) ChannelData
//! frame on a TCP/TLS stream is, or that more bytes are needed, or that the stream is not
//! STUN at all.
//!
//! ## Errors
//!
//! [`DecodeError`] is a small `Copy` enum; [`DecodeError::disposition`] separates what a
//! server drops silently from what it answers with 400 or 401.
//!
//! ```
//! use turnpike_stun::{Message, MessageType, demux, Demux};
//!
//! let packet = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42,
//!               1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
//! assert_eq!(demux(&packet), Demux::Stun);
//! let msg = Message::new_checked(&packet[..]).unwrap();
//! assert_eq!(msg.message_type(), MessageType::BINDING_REQUEST);
//! assert!(msg.attributes().next().is_none());
//! ```

#![forbid(unsafe_code)]

pub mod attr;
mod channel_data;
mod error;
pub mod framing;
mod header;
mod integrity;
mod message;
pub mod nonce_cookie;
mod writer;

pub use attr::{AttrType, Attribute, ChannelNumber, RawAttribute};
pub use channel_data::{
    CHANNEL_DATA_HEADER_LEN, ChannelData, encode_channel_data, write_channel_data_header,
};
pub use error::{DecodeError, Disposition, EncodeError, ErrorCode};
pub use header::{
    Class, HEADER_LEN, MAGIC_COOKIE, MessageType, Method, TransactionId, peek_header,
};
pub use integrity::{
    FINGERPRINT_XOR, IntegrityKey, KeyError, LongTermKey, SHA1_MAC_LEN, SHA256_MAC_LEN, ct_eq,
    opaque_string, userhash,
};
pub use message::{Attributes, IntegrityKind, Message};
pub use writer::MessageWriter;

/// What a datagram on a TURN port is, by its first byte (RFC 8656 §12, RFC 7983).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demux {
    /// 0b00xxxxxx: STUN.
    Stun,
    /// 0x40..=0x7F: ChannelData (RFC 8656 uses 0x40..=0x4F; RFC 5766 allowed up to 0x7F).
    ChannelData,
    /// Anything else (or empty): not ours.
    Other,
}

/// Classifies a datagram by its first byte.
pub fn demux(packet: &[u8]) -> Demux {
    match packet.first() {
        Some(0x00..=0x3F) => Demux::Stun,
        Some(0x40..=0x7F) => Demux::ChannelData,
        _ => Demux::Other,
    }
}
