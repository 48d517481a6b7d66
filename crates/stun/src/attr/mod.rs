//! Attribute types, the raw `(type, value)` view, and the [`Attribute`] trait that turns a
//! value into a typed, borrowed Rust value and back.
//!
//! Each typed attribute quotes the RFC section that defines it. Decoding borrows from the
//! packet; encoding writes into the caller's buffer.

mod address;
mod rfc5780;
mod rfc6062;
mod rfc8016;
mod rfc8445;
mod rfc8489;
mod rfc8656;

use core::fmt;

pub use address::{AddressFamily, decode_address, encode_address, xor_address};
pub use rfc5780::{ChangeRequest, OtherAddress, Padding, ResponseOrigin, ResponsePort};
pub use rfc6062::ConnectionId;
pub use rfc8016::MobilityTicket;
pub use rfc8445::{IceControlled, IceControlling, Priority, UseCandidate};
pub use rfc8489::{
    AlternateDomain, AlternateServer, ErrorCodeAttr, Fingerprint, MappedAddress, MessageIntegrity,
    MessageIntegritySha256, Nonce, PasswordAlgorithm, PasswordAlgorithmId, PasswordAlgorithms,
    Realm, Software, UnknownAttributes, Userhash, Username, XorMappedAddress,
};
pub use rfc8656::{
    AdditionalAddressFamily, AddressErrorCode, ChannelNumber, Data, DontFragment, EvenPort, Icmp,
    Lifetime, RequestedAddressFamily, RequestedTransport, ReservationToken, TransportProtocol,
    XorPeerAddress, XorRelayedAddress,
};

use crate::error::{DecodeError, EncodeError};
use crate::header::TransactionId;

/// A 16-bit attribute type (RFC 8489 §14 and the IANA STUN registry).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrType(pub u16);

macro_rules! attr_types {
    ($($(#[$doc:meta])* $name:ident = $value:expr, $text:expr;)*) => {
        impl AttrType {
            $($(#[$doc])* pub const $name: Self = Self($value);)*

            /// The registered name of an attribute this codec knows.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

attr_types! {
    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    MAPPED_ADDRESS = 0x0001, "MAPPED-ADDRESS";
    /// CHANGE-REQUEST (RFC 5780 §7.2).
    CHANGE_REQUEST = 0x0003, "CHANGE-REQUEST";
    /// USERNAME (RFC 8489 §14.3).
    USERNAME = 0x0006, "USERNAME";
    /// MESSAGE-INTEGRITY (RFC 8489 §14.5).
    MESSAGE_INTEGRITY = 0x0008, "MESSAGE-INTEGRITY";
    /// ERROR-CODE (RFC 8489 §14.8).
    ERROR_CODE = 0x0009, "ERROR-CODE";
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).
    UNKNOWN_ATTRIBUTES = 0x000A, "UNKNOWN-ATTRIBUTES";
    /// CHANNEL-NUMBER (RFC 8656 §18.1).
    CHANNEL_NUMBER = 0x000C, "CHANNEL-NUMBER";
    /// LIFETIME (RFC 8656 §18.2).
    LIFETIME = 0x000D, "LIFETIME";
    /// XOR-PEER-ADDRESS (RFC 8656 §18.3).
    XOR_PEER_ADDRESS = 0x0012, "XOR-PEER-ADDRESS";
    /// DATA (RFC 8656 §18.4).
    DATA = 0x0013, "DATA";
    /// REALM (RFC 8489 §14.9).
    REALM = 0x0014, "REALM";
    /// NONCE (RFC 8489 §14.10).
    NONCE = 0x0015, "NONCE";
    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5).
    XOR_RELAYED_ADDRESS = 0x0016, "XOR-RELAYED-ADDRESS";
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6).
    REQUESTED_ADDRESS_FAMILY = 0x0017, "REQUESTED-ADDRESS-FAMILY";
    /// EVEN-PORT (RFC 8656 §18.7).
    EVEN_PORT = 0x0018, "EVEN-PORT";
    /// REQUESTED-TRANSPORT (RFC 8656 §18.8).
    REQUESTED_TRANSPORT = 0x0019, "REQUESTED-TRANSPORT";
    /// DONT-FRAGMENT (RFC 8656 §18.9).
    DONT_FRAGMENT = 0x001A, "DONT-FRAGMENT";
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
    MESSAGE_INTEGRITY_SHA256 = 0x001C, "MESSAGE-INTEGRITY-SHA256";
    /// PASSWORD-ALGORITHM (RFC 8489 §14.12).
    PASSWORD_ALGORITHM = 0x001D, "PASSWORD-ALGORITHM";
    /// USERHASH (RFC 8489 §14.4).
    USERHASH = 0x001E, "USERHASH";
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    XOR_MAPPED_ADDRESS = 0x0020, "XOR-MAPPED-ADDRESS";
    /// RESERVATION-TOKEN (RFC 8656 §18.10).
    RESERVATION_TOKEN = 0x0022, "RESERVATION-TOKEN";
    /// PRIORITY (RFC 8445 §16.1).
    PRIORITY = 0x0024, "PRIORITY";
    /// USE-CANDIDATE (RFC 8445 §16.1).
    USE_CANDIDATE = 0x0025, "USE-CANDIDATE";
    /// PADDING (RFC 5780 §7.6).
    PADDING = 0x0026, "PADDING";
    /// RESPONSE-PORT (RFC 5780 §7.5).
    RESPONSE_PORT = 0x0027, "RESPONSE-PORT";
    /// CONNECTION-ID (RFC 6062 §6.2.1).
    CONNECTION_ID = 0x002A, "CONNECTION-ID";
    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11).
    ADDITIONAL_ADDRESS_FAMILY = 0x8000, "ADDITIONAL-ADDRESS-FAMILY";
    /// ADDRESS-ERROR-CODE (RFC 8656 §18.12).
    ADDRESS_ERROR_CODE = 0x8001, "ADDRESS-ERROR-CODE";
    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11).
    PASSWORD_ALGORITHMS = 0x8002, "PASSWORD-ALGORITHMS";
    /// ALTERNATE-DOMAIN (RFC 8489 §14.16).
    ALTERNATE_DOMAIN = 0x8003, "ALTERNATE-DOMAIN";
    /// ICMP (RFC 8656 §18.13).
    ICMP = 0x8004, "ICMP";
    /// SOFTWARE (RFC 8489 §14.14).
    SOFTWARE = 0x8022, "SOFTWARE";
    /// ALTERNATE-SERVER (RFC 8489 §14.15).
    ALTERNATE_SERVER = 0x8023, "ALTERNATE-SERVER";
    /// FINGERPRINT (RFC 8489 §14.7).
    FINGERPRINT = 0x8028, "FINGERPRINT";
    /// ICE-CONTROLLED (RFC 8445 §16.1).
    ICE_CONTROLLED = 0x8029, "ICE-CONTROLLED";
    /// ICE-CONTROLLING (RFC 8445 §16.1).
    ICE_CONTROLLING = 0x802A, "ICE-CONTROLLING";
    /// RESPONSE-ORIGIN (RFC 5780 §7.3).
    RESPONSE_ORIGIN = 0x802B, "RESPONSE-ORIGIN";
    /// OTHER-ADDRESS (RFC 5780 §7.4).
    OTHER_ADDRESS = 0x802C, "OTHER-ADDRESS";
    /// MOBILITY-TICKET (RFC 8016 §3.1).
    MOBILITY_TICKET = 0x8030, "MOBILITY-TICKET";
}

impl AttrType {
    /// Types 0x0000..=0x7FFF are comprehension-required: an agent that does not know one
    /// must reject the request with 420 (RFC 8489 §14).
    pub const fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }

    /// Whether this codec knows the type.
    pub const fn is_known(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Debug for AttrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "AttrType({:#06x})", self.0),
        }
    }
}

/// One attribute as it stands in a message: its type and its value, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    /// The attribute type.
    pub ty: AttrType,
    /// The value, without the 4-byte attribute header and without padding.
    pub value: &'a [u8],
    /// Offset of the attribute header from the start of the message.
    pub offset: usize,
}

/// A typed attribute: decoded by borrowing its value, encoded into a caller's buffer.
///
/// `decode` never panics on any input; a malformed value is
/// [`DecodeError::InvalidAttribute`].
pub trait Attribute<'a>: Sized {
    /// The attribute type this Rust type represents.
    const TYPE: AttrType;

    /// Decodes the attribute value (no header, no padding). The transaction ID is needed by
    /// the XOR-ed address attributes.
    fn decode(value: &'a [u8], tid: &TransactionId) -> Result<Self, DecodeError>;

    /// The length of the encoded value, without header and padding.
    fn encoded_len(&self) -> usize;

    /// Writes the value into `out`, which is exactly `encoded_len()` bytes long.
    fn encode(&self, out: &mut [u8], tid: &TransactionId);

    /// Checks an encoded value length against the attribute's own limit before encoding.
    fn check_encode(&self) -> Result<(), EncodeError> {
        Ok(())
    }
}

/// Shorthand for the error of a malformed value of type `A`.
pub(crate) const fn invalid<'a, A: Attribute<'a>>() -> DecodeError {
    DecodeError::InvalidAttribute(A::TYPE)
}

/// Reads a big-endian u16 at `at` (caller checked the length).
pub(crate) fn be16(value: &[u8], at: usize) -> Option<u16> {
    let b = value.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads a big-endian u32 at `at`.
pub(crate) fn be32(value: &[u8], at: usize) -> Option<u32> {
    let b = value.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Defines an attribute that is a borrowed UTF-8 string with a byte limit.
macro_rules! string_attr {
    ($(#[$doc:meta])* $name:ident, $ty:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<'a>(pub &'a str);

        impl<'a> $crate::attr::Attribute<'a> for $name<'a> {
            const TYPE: $crate::attr::AttrType = $ty;

            fn decode(
                value: &'a [u8],
                _: &$crate::header::TransactionId,
            ) -> Result<Self, $crate::error::DecodeError> {
                if value.len() > $max {
                    return Err($crate::attr::invalid::<Self>());
                }
                core::str::from_utf8(value)
                    .map(Self)
                    .map_err(|_| $crate::attr::invalid::<Self>())
            }

            fn encoded_len(&self) -> usize {
                self.0.len()
            }

            fn encode(&self, out: &mut [u8], _: &$crate::header::TransactionId) {
                out.copy_from_slice(self.0.as_bytes());
            }

            fn check_encode(&self) -> Result<(), $crate::error::EncodeError> {
                if self.0.len() > $max {
                    Err($crate::error::EncodeError::ValueTooLong)
                } else {
                    Ok(())
                }
            }
        }
    };
}

/// Defines an attribute whose value is opaque bytes, borrowed.
macro_rules! bytes_attr {
    ($(#[$doc:meta])* $name:ident, $ty:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<'a>(pub &'a [u8]);

        impl<'a> $crate::attr::Attribute<'a> for $name<'a> {
            const TYPE: $crate::attr::AttrType = $ty;

            fn decode(
                value: &'a [u8],
                _: &$crate::header::TransactionId,
            ) -> Result<Self, $crate::error::DecodeError> {
                Ok(Self(value))
            }

            fn encoded_len(&self) -> usize {
                self.0.len()
            }

            fn encode(&self, out: &mut [u8], _: &$crate::header::TransactionId) {
                out.copy_from_slice(self.0);
            }
        }
    };
}

/// Defines an attribute whose value is one big-endian u32.
macro_rules! u32_attr {
    ($(#[$doc:meta])* $name:ident, $ty:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub u32);

        impl<'a> $crate::attr::Attribute<'a> for $name {
            const TYPE: $crate::attr::AttrType = $ty;

            fn decode(
                value: &'a [u8],
                _: &$crate::header::TransactionId,
            ) -> Result<Self, $crate::error::DecodeError> {
                match value {
                    [a, b, c, d] => Ok(Self(u32::from_be_bytes([*a, *b, *c, *d]))),
                    _ => Err($crate::attr::invalid::<Self>()),
                }
            }

            fn encoded_len(&self) -> usize {
                4
            }

            fn encode(&self, out: &mut [u8], _: &$crate::header::TransactionId) {
                out.copy_from_slice(&self.0.to_be_bytes());
            }
        }
    };
}

/// Defines an attribute whose value is one big-endian u64.
macro_rules! u64_attr {
    ($(#[$doc:meta])* $name:ident, $ty:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub u64);

        impl<'a> $crate::attr::Attribute<'a> for $name {
            const TYPE: $crate::attr::AttrType = $ty;

            fn decode(
                value: &'a [u8],
                _: &$crate::header::TransactionId,
            ) -> Result<Self, $crate::error::DecodeError> {
                let bytes: [u8; 8] = value.try_into().map_err(|_| $crate::attr::invalid::<Self>())?;
                Ok(Self(u64::from_be_bytes(bytes)))
            }

            fn encoded_len(&self) -> usize {
                8
            }

            fn encode(&self, out: &mut [u8], _: &$crate::header::TransactionId) {
                out.copy_from_slice(&self.0.to_be_bytes());
            }
        }
    };
}

/// Defines an attribute with an empty value.
macro_rules! flag_attr {
    ($(#[$doc:meta])* $name:ident, $ty:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name;

        impl<'a> $crate::attr::Attribute<'a> for $name {
            const TYPE: $crate::attr::AttrType = $ty;

            fn decode(
                value: &'a [u8],
                _: &$crate::header::TransactionId,
            ) -> Result<Self, $crate::error::DecodeError> {
                if value.is_empty() {
                    Ok(Self)
                } else {
                    Err($crate::attr::invalid::<Self>())
                }
            }

            fn encoded_len(&self) -> usize {
                0
            }

            fn encode(&self, _: &mut [u8], _: &$crate::header::TransactionId) {}
        }
    };
}

/// Defines an attribute whose value is a socket address, plain (`xor = false`) or XOR-ed
/// with the magic cookie and transaction ID.
macro_rules! address_attr {
    ($(#[$doc:meta])* $name:ident, $ty:expr, $xor:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub core::net::SocketAddr);

        impl<'a> $crate::attr::Attribute<'a> for $name {
            const TYPE: $crate::attr::AttrType = $ty;

            fn decode(
                value: &'a [u8],
                tid: &$crate::header::TransactionId,
            ) -> Result<Self, $crate::error::DecodeError> {
                let addr = $crate::attr::decode_address(value)
                    .ok_or($crate::attr::invalid::<Self>())?;
                Ok(Self(if $xor { $crate::attr::xor_address(addr, tid) } else { addr }))
            }

            fn encoded_len(&self) -> usize {
                if self.0.is_ipv4() { 8 } else { 20 }
            }

            fn encode(&self, out: &mut [u8], tid: &$crate::header::TransactionId) {
                let addr = if $xor { $crate::attr::xor_address(self.0, tid) } else { self.0 };
                $crate::attr::encode_address(addr, out);
            }
        }
    };
}

pub(crate) use {address_attr, bytes_attr, flag_attr, string_attr, u32_attr, u64_attr};
