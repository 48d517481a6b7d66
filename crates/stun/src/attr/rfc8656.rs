//! The attributes of TURN (RFC 8656 §18).

use super::{
    AddressFamily, AttrType, Attribute, address_attr, be16, be32, bytes_attr, flag_attr, invalid,
    u32_attr,
};
use crate::attr::rfc8489::{decode_code_and_reason, encode_code_and_reason};
use crate::error::{DecodeError, EncodeError, ErrorCode};
use crate::header::TransactionId;

/// A channel number: 0x4000..=0x7FFF, the values whose first two bits are `01`.
///
/// RFC 8656 §12 narrowed valid channels to 0x4000..=0x4FFF (keeping 0x5000..=0x7FFF free
/// for RFC 7983 demultiplexing), but RFC 5766 allowed up to 0x7FFF and deployed clients
/// (coturn's `turnutils_uclient` among them) still pick numbers there. The codec accepts
/// the RFC 5766 range so such frames stay recognisable; [`ChannelNumber::is_rfc8656`]
/// lets a server apply the narrower rule. Values outside 0x4000..=0x7FFF cannot be
/// constructed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelNumber(u16);

impl ChannelNumber {
    /// The lowest valid channel number.
    pub const MIN: Self = Self(0x4000);
    /// The highest channel number RFC 8656 allows.
    pub const MAX: Self = Self(0x4FFF);
    /// The highest channel number RFC 5766 allowed.
    pub const MAX_RFC5766: Self = Self(0x7FFF);

    /// A channel number; `None` outside 0x4000..=0x7FFF.
    pub const fn new(value: u16) -> Option<Self> {
        if value >= 0x4000 && value <= 0x7FFF {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The 16-bit value.
    pub const fn value(self) -> u16 {
        self.0
    }

    /// Whether the number is inside RFC 8656's range, 0x4000..=0x4FFF.
    pub const fn is_rfc8656(self) -> bool {
        self.0 <= 0x4FFF
    }
}

/// CHANNEL-NUMBER (RFC 8656 §18.1): the channel number followed by 16 RFFU bits.
impl<'a> Attribute<'a> for ChannelNumber {
    const TYPE: AttrType = AttrType::CHANNEL_NUMBER;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        if value.len() != 4 {
            return Err(invalid::<Self>());
        }
        be16(value, 0).and_then(Self::new).ok_or(invalid::<Self>())
    }

    fn encoded_len(&self) -> usize {
        4
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out[0..2].copy_from_slice(&self.0.to_be_bytes());
        out[2..4].fill(0);
    }
}

u32_attr!(
    /// LIFETIME (RFC 8656 §18.2): seconds until the allocation expires.
    Lifetime, AttrType::LIFETIME
);

address_attr!(
    /// XOR-PEER-ADDRESS (RFC 8656 §18.3): a peer's address as seen from the server.
    XorPeerAddress, AttrType::XOR_PEER_ADDRESS, true
);
address_attr!(
    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5): the relayed transport address the server
    /// allocated.
    XorRelayedAddress, AttrType::XOR_RELAYED_ADDRESS, true
);

bytes_attr!(
    /// DATA (RFC 8656 §18.4): the application data of a Send or Data indication.
    Data, AttrType::DATA
);

/// Decodes a one-byte family followed by three RFFU bytes.
fn decode_family(value: &[u8]) -> Option<AddressFamily> {
    match value {
        [family, _, _, _] => Some(AddressFamily(*family)),
        _ => None,
    }
}

/// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6): the family of the relayed address a client
/// wants. Any family value decodes, so the server can answer 440 to the ones it lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestedAddressFamily(pub AddressFamily);

impl<'a> Attribute<'a> for RequestedAddressFamily {
    const TYPE: AttrType = AttrType::REQUESTED_ADDRESS_FAMILY;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        decode_family(value).map(Self).ok_or(invalid::<Self>())
    }

    fn encoded_len(&self) -> usize {
        4
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(&[self.0.0, 0, 0, 0]);
    }
}

/// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11): asks for a second relayed address of
/// another family (only IPv6 is allowed there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdditionalAddressFamily(pub AddressFamily);

impl<'a> Attribute<'a> for AdditionalAddressFamily {
    const TYPE: AttrType = AttrType::ADDITIONAL_ADDRESS_FAMILY;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        decode_family(value).map(Self).ok_or(invalid::<Self>())
    }

    fn encoded_len(&self) -> usize {
        4
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(&[self.0.0, 0, 0, 0]);
    }
}

/// EVEN-PORT (RFC 8656 §18.7): ask for an even relay port; with `reserve` also reserve
/// the next higher port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EvenPort {
    /// The R bit.
    pub reserve: bool,
}

impl<'a> Attribute<'a> for EvenPort {
    const TYPE: AttrType = AttrType::EVEN_PORT;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        match value {
            [flags] => Ok(Self {
                reserve: flags & 0x80 != 0,
            }),
            _ => Err(invalid::<Self>()),
        }
    }

    fn encoded_len(&self) -> usize {
        1
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out[0] = if self.reserve { 0x80 } else { 0 };
    }
}

/// An IP protocol number as carried in REQUESTED-TRANSPORT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportProtocol(pub u8);

impl TransportProtocol {
    /// TCP, 6 (RFC 6062 §6.1).
    pub const TCP: Self = Self(6);
    /// UDP, 17 (RFC 8656 §18.8).
    pub const UDP: Self = Self(17);
}

/// REQUESTED-TRANSPORT (RFC 8656 §18.8): the protocol between server and peers. Any
/// protocol decodes, so the server can answer 442 to the ones it does not relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestedTransport(pub TransportProtocol);

impl<'a> Attribute<'a> for RequestedTransport {
    const TYPE: AttrType = AttrType::REQUESTED_TRANSPORT;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        match value {
            [proto, _, _, _] => Ok(Self(TransportProtocol(*proto))),
            _ => Err(invalid::<Self>()),
        }
    }

    fn encoded_len(&self) -> usize {
        4
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(&[self.0.0, 0, 0, 0]);
    }
}

flag_attr!(
    /// DONT-FRAGMENT (RFC 8656 §18.9): set DF on datagrams sent to peers.
    DontFragment, AttrType::DONT_FRAGMENT
);

/// RESERVATION-TOKEN (RFC 8656 §18.10): 8 bytes naming a port reserved by EVEN-PORT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReservationToken(pub [u8; 8]);

impl<'a> Attribute<'a> for ReservationToken {
    const TYPE: AttrType = AttrType::RESERVATION_TOKEN;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        value.try_into().map(Self).map_err(|_| invalid::<Self>())
    }

    fn encoded_len(&self) -> usize {
        8
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(&self.0);
    }
}

/// ADDRESS-ERROR-CODE (RFC 8656 §18.12): why one family of a dual allocation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressErrorCode<'a> {
    /// The family that failed.
    pub family: AddressFamily,
    /// The error code.
    pub code: ErrorCode,
    /// The reason phrase.
    pub reason: &'a str,
}

impl<'a> Attribute<'a> for AddressErrorCode<'a> {
    const TYPE: AttrType = AttrType::ADDRESS_ERROR_CODE;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        let family = AddressFamily(*value.first().ok_or(invalid::<Self>())?);
        let (code, reason) = decode_code_and_reason(value).ok_or(invalid::<Self>())?;
        Ok(Self {
            family,
            code,
            reason,
        })
    }

    fn encoded_len(&self) -> usize {
        4 + self.reason.len()
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out[0] = self.family.0;
        out[1] = 0;
        encode_code_and_reason(self.code, self.reason, out);
    }

    fn check_encode(&self) -> Result<(), EncodeError> {
        if self.reason.len() > 763 {
            Err(EncodeError::ValueTooLong)
        } else {
            Ok(())
        }
    }
}

/// ICMP (RFC 8656 §18.13): an ICMP error a peer's network sent about a relayed datagram,
/// carried to the client in a Data indication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmp {
    /// ICMP (or ICMPv6) type.
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
    /// Error data: the MTU for "fragmentation needed"/"packet too big", otherwise 0.
    pub error_data: u32,
}

impl<'a> Attribute<'a> for Icmp {
    const TYPE: AttrType = AttrType::ICMP;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        match value {
            [_, _, icmp_type, code, ..] if value.len() == 8 => Ok(Self {
                icmp_type: *icmp_type,
                code: *code,
                error_data: be32(value, 4).ok_or(invalid::<Self>())?,
            }),
            _ => Err(invalid::<Self>()),
        }
    }

    fn encoded_len(&self) -> usize {
        8
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out[0..2].fill(0);
        out[2] = self.icmp_type;
        out[3] = self.code;
        out[4..8].copy_from_slice(&self.error_data.to_be_bytes());
    }
}
