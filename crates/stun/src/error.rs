//! Small `Copy` errors: what went wrong while decoding or encoding, and what a receiver
//! should do about it.

use core::fmt;

use crate::attr::AttrType;

/// Why bytes were not accepted as a STUN message, ChannelData frame or attribute value.
///
/// Every variant is cheap to create (no allocation) so a flood of garbage costs nothing
/// but the check that rejected it. [`DecodeError::disposition`] tells a server whether to
/// drop the packet silently or answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the fixed header (20 for STUN, 4 for ChannelData).
    TooShort,
    /// The top two bits are not zero or the magic cookie is wrong: not an RFC 5389/8489
    /// message. RFC 3489 clients are deliberately not supported.
    NotStun,
    /// The header's length field is not a multiple of 4 (RFC 8489 §5).
    UnalignedLength,
    /// The header's length field disagrees with the number of bytes received.
    LengthMismatch,
    /// An attribute header or value runs past the end of the message.
    AttributeTruncated,
    /// An attribute follows FINGERPRINT, which must be last (RFC 8489 §14.7).
    AttributeAfterFingerprint,
    /// An attribute's value is malformed for its type.
    InvalidAttribute(AttrType),
    /// A ChannelData frame names a channel number outside 0x4000..=0x7FFF.
    InvalidChannelNumber,
    /// The FINGERPRINT attribute does not match the message (RFC 8489 §14.7).
    FingerprintMismatch,
    /// The message carries no MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256.
    IntegrityMissing,
    /// The HMAC does not match the key (RFC 8489 §9.2.4).
    IntegrityMismatch,
}

/// What a server should do with a packet that failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Drop silently: the bytes are not STUN (or not for us); answering would turn the
    /// server into a reflector.
    Drop,
    /// The header was valid: a request gets a 400 Bad Request error response.
    BadRequest,
    /// The credentials did not check out: a request gets a 401 Unauthenticated.
    Unauthenticated,
}

impl DecodeError {
    /// What a server should do with a request that produced this error.
    pub const fn disposition(self) -> Disposition {
        match self {
            Self::TooShort
            | Self::NotStun
            | Self::UnalignedLength
            | Self::LengthMismatch
            | Self::InvalidChannelNumber
            // RFC 8489 §7.3: a bad FINGERPRINT means the packet is not STUN at all.
            | Self::FingerprintMismatch => Disposition::Drop,
            Self::AttributeTruncated
            | Self::AttributeAfterFingerprint
            | Self::InvalidAttribute(_) => Disposition::BadRequest,
            Self::IntegrityMissing | Self::IntegrityMismatch => Disposition::Unauthenticated,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort => f.write_str("shorter than the header"),
            Self::NotStun => f.write_str("not a STUN message"),
            Self::UnalignedLength => f.write_str("length field not a multiple of 4"),
            Self::LengthMismatch => f.write_str("length field disagrees with the packet"),
            Self::AttributeTruncated => f.write_str("attribute runs past the end"),
            Self::AttributeAfterFingerprint => f.write_str("attribute after FINGERPRINT"),
            Self::InvalidAttribute(t) => write!(f, "malformed attribute {t:?}"),
            Self::InvalidChannelNumber => f.write_str("channel number outside 0x4000..=0x7FFF"),
            Self::FingerprintMismatch => f.write_str("FINGERPRINT mismatch"),
            Self::IntegrityMissing => f.write_str("no MESSAGE-INTEGRITY"),
            Self::IntegrityMismatch => f.write_str("MESSAGE-INTEGRITY mismatch"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a message or frame could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The caller's buffer is too small for what was asked.
    BufferTooSmall,
    /// A value is longer than its attribute allows (or than 65535 bytes).
    ValueTooLong,
    /// An attribute was added after MESSAGE-INTEGRITY(-SHA256) or FINGERPRINT, where
    /// RFC 8489 §14.5 and §14.7 allow only the later integrity attributes.
    AfterIntegrity,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall => f.write_str("buffer too small"),
            Self::ValueTooLong => f.write_str("value too long"),
            Self::AfterIntegrity => f.write_str("attribute after an integrity attribute"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// A STUN error code, 300..=699, as carried in ERROR-CODE (RFC 8489 §14.8).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(u16);

impl ErrorCode {
    /// 300 Try Alternate (RFC 8489 §14.8).
    pub const TRY_ALTERNATE: Self = Self(300);
    /// 400 Bad Request (RFC 8489 §14.8).
    pub const BAD_REQUEST: Self = Self(400);
    /// 401 Unauthenticated (RFC 8489 §14.8).
    pub const UNAUTHENTICATED: Self = Self(401);
    /// 403 Forbidden (RFC 8656 §19).
    pub const FORBIDDEN: Self = Self(403);
    /// 405 Mobility Forbidden (RFC 8016 §3.2).
    pub const MOBILITY_FORBIDDEN: Self = Self(405);
    /// 420 Unknown Attribute (RFC 8489 §14.8).
    pub const UNKNOWN_ATTRIBUTE: Self = Self(420);
    /// 437 Allocation Mismatch (RFC 8656 §19).
    pub const ALLOCATION_MISMATCH: Self = Self(437);
    /// 438 Stale Nonce (RFC 8489 §14.8).
    pub const STALE_NONCE: Self = Self(438);
    /// 440 Address Family not Supported (RFC 8656 §19).
    pub const ADDRESS_FAMILY_NOT_SUPPORTED: Self = Self(440);
    /// 441 Wrong Credentials (RFC 8656 §19).
    pub const WRONG_CREDENTIALS: Self = Self(441);
    /// 442 Unsupported Transport Protocol (RFC 8656 §19).
    pub const UNSUPPORTED_TRANSPORT_PROTOCOL: Self = Self(442);
    /// 443 Peer Address Family Mismatch (RFC 8656 §19).
    pub const PEER_ADDRESS_FAMILY_MISMATCH: Self = Self(443);
    /// 446 Connection Already Exists (RFC 6062 §6.3).
    pub const CONNECTION_ALREADY_EXISTS: Self = Self(446);
    /// 447 Connection Timeout or Failure (RFC 6062 §6.3).
    pub const CONNECTION_TIMEOUT_OR_FAILURE: Self = Self(447);
    /// 486 Allocation Quota Reached (RFC 8656 §19).
    pub const ALLOCATION_QUOTA_REACHED: Self = Self(486);
    /// 500 Server Error (RFC 8489 §14.8).
    pub const SERVER_ERROR: Self = Self(500);
    /// 508 Insufficient Capacity (RFC 8656 §19).
    pub const INSUFFICIENT_CAPACITY: Self = Self(508);

    /// An error code; `None` outside 300..=699 (RFC 8489 §14.8).
    pub const fn new(code: u16) -> Option<Self> {
        if code >= 300 && code <= 699 {
            Some(Self(code))
        } else {
            None
        }
    }

    /// The numeric code.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// The reason phrase the RFCs suggest for this code.
    pub const fn reason(self) -> &'static str {
        match self.0 {
            300 => "Try Alternate",
            400 => "Bad Request",
            401 => "Unauthenticated",
            403 => "Forbidden",
            405 => "Mobility Forbidden",
            420 => "Unknown Attribute",
            437 => "Allocation Mismatch",
            438 => "Stale Nonce",
            440 => "Address Family not Supported",
            441 => "Wrong Credentials",
            442 => "Unsupported Transport Protocol",
            443 => "Peer Address Family Mismatch",
            446 => "Connection Already Exists",
            447 => "Connection Timeout or Failure",
            486 => "Allocation Quota Reached",
            500 => "Server Error",
            508 => "Insufficient Capacity",
            _ => "",
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}
