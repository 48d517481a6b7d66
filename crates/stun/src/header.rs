//! The fixed 20-byte STUN header (RFC 8489 §5): message type, length, magic cookie and
//! transaction ID.

use core::fmt;

/// The magic cookie every RFC 5389/8489 message carries in bytes 4..8 (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Length of the STUN header in bytes.
pub const HEADER_LEN: usize = 20;

/// Byte ranges of the header fields (smoltcp style).
pub(crate) mod field {
    use core::ops::Range;
    pub(crate) const TYPE: Range<usize> = 0..2;
    pub(crate) const LENGTH: Range<usize> = 2..4;
    pub(crate) const COOKIE: Range<usize> = 4..8;
    pub(crate) const TRANSACTION_ID: Range<usize> = 8..20;
}

/// The class of a message: the two C bits of the message type (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A request (C1 C0 = 0b00).
    Request,
    /// An indication (0b01).
    Indication,
    /// A success response (0b10).
    Success,
    /// An error response (0b11).
    Error,
}

impl Class {
    const fn bits(self) -> u16 {
        match self {
            Self::Request => 0x0000,
            Self::Indication => 0x0010,
            Self::Success => 0x0100,
            Self::Error => 0x0110,
        }
    }
}

/// A STUN method: the twelve M bits of the message type.
///
/// Any 12-bit value can be carried; the constants name the methods of RFC 8489, RFC 8656
/// and RFC 6062.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method(u16);

impl Method {
    /// Binding (RFC 8489 §18.1).
    pub const BINDING: Self = Self(0x001);
    /// Allocate (RFC 8656 §18.1).
    pub const ALLOCATE: Self = Self(0x003);
    /// Refresh (RFC 8656 §18.1).
    pub const REFRESH: Self = Self(0x004);
    /// Send, indication only (RFC 8656 §18.1).
    pub const SEND: Self = Self(0x006);
    /// Data, indication only (RFC 8656 §18.1).
    pub const DATA: Self = Self(0x007);
    /// CreatePermission (RFC 8656 §18.1).
    pub const CREATE_PERMISSION: Self = Self(0x008);
    /// ChannelBind (RFC 8656 §18.1).
    pub const CHANNEL_BIND: Self = Self(0x009);
    /// Connect (RFC 6062 §6.1).
    pub const CONNECT: Self = Self(0x00A);
    /// ConnectionBind (RFC 6062 §6.1).
    pub const CONNECTION_BIND: Self = Self(0x00B);
    /// ConnectionAttempt, indication only (RFC 6062 §6.1).
    pub const CONNECTION_ATTEMPT: Self = Self(0x00C);

    /// A method from its 12-bit number; `None` above 0xFFF.
    pub const fn new(value: u16) -> Option<Self> {
        if value <= 0x0FFF {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The 12-bit method number.
    pub const fn value(self) -> u16 {
        self.0
    }

    /// The RFC name of a known method.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x001 => "Binding",
            0x003 => "Allocate",
            0x004 => "Refresh",
            0x006 => "Send",
            0x007 => "Data",
            0x008 => "CreatePermission",
            0x009 => "ChannelBind",
            0x00A => "Connect",
            0x00B => "ConnectionBind",
            0x00C => "ConnectionAttempt",
            _ => return None,
        })
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Method({:#05x})", self.0),
        }
    }
}

/// The 14-bit message type: a method and a class interleaved (RFC 8489 §5, Figure 3).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// The method.
    pub method: Method,
    /// The class.
    pub class: Class,
}

impl MessageType {
    /// Binding request.
    pub const BINDING_REQUEST: Self = Self::new(Method::BINDING, Class::Request);
    /// Binding success response.
    pub const BINDING_SUCCESS: Self = Self::new(Method::BINDING, Class::Success);
    /// Binding error response.
    pub const BINDING_ERROR: Self = Self::new(Method::BINDING, Class::Error);

    /// A message type from method and class.
    pub const fn new(method: Method, class: Class) -> Self {
        Self { method, class }
    }

    /// Decodes the 16-bit type field; `None` when either of the two top bits is set.
    pub const fn from_u16(raw: u16) -> Option<Self> {
        if raw & 0xC000 != 0 {
            return None;
        }
        let method = (raw & 0x000F) | ((raw & 0x00E0) >> 1) | ((raw & 0x3E00) >> 2);
        let class = match raw & 0x0110 {
            0x0000 => Class::Request,
            0x0010 => Class::Indication,
            0x0100 => Class::Success,
            _ => Class::Error,
        };
        Some(Self {
            method: Method(method),
            class,
        })
    }

    /// Encodes into the 16-bit type field.
    pub const fn to_u16(self) -> u16 {
        let m = self.method.0;
        (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | self.class.bits()
    }

    /// The type of the success response to a request of this method.
    pub const fn success(self) -> Self {
        Self::new(self.method, Class::Success)
    }

    /// The type of the error response to a request of this method.
    pub const fn error(self) -> Self {
        Self::new(self.method, Class::Error)
    }
}

impl fmt::Debug for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {:?}", self.method, self.class)
    }
}

/// The 96-bit transaction ID (RFC 8489 §5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub [u8; 12]);

impl TransactionId {
    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Reads the message type and transaction ID of anything that has a plausible STUN header,
/// without validating the rest.
///
/// This is what a server needs to answer 400 to a request whose attributes did not parse:
/// `Message::new_checked` refused it, yet the response needs the transaction ID.
pub fn peek_header(buf: &[u8]) -> Option<(MessageType, TransactionId)> {
    let header: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    if u32::from_be_bytes([header[4], header[5], header[6], header[7]]) != MAGIC_COOKIE {
        return None;
    }
    let ty = MessageType::from_u16(u16::from_be_bytes([header[0], header[1]]))?;
    let mut tid = [0u8; 12];
    tid.copy_from_slice(&header[field::TRANSACTION_ID]);
    Some((ty, TransactionId(tid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_round_trips_for_every_method_and_class() {
        for m in 0..=0x0FFF {
            for class in [
                Class::Request,
                Class::Indication,
                Class::Success,
                Class::Error,
            ] {
                let ty = MessageType::new(Method(m), class);
                assert_eq!(MessageType::from_u16(ty.to_u16()), Some(ty));
            }
        }
    }

    #[test]
    fn known_type_values() {
        assert_eq!(MessageType::BINDING_REQUEST.to_u16(), 0x0001);
        assert_eq!(MessageType::BINDING_SUCCESS.to_u16(), 0x0101);
        assert_eq!(MessageType::BINDING_ERROR.to_u16(), 0x0111);
        let data_ind = MessageType::new(Method::DATA, Class::Indication);
        assert_eq!(data_ind.to_u16(), 0x0017);
        let alloc_err = MessageType::new(Method::ALLOCATE, Class::Error);
        assert_eq!(alloc_err.to_u16(), 0x0113);
        assert_eq!(MessageType::from_u16(0x4001), None);
    }
}
