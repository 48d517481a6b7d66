//! The NAT behaviour discovery attributes (RFC 5780 §7).

use super::{AttrType, Attribute, address_attr, be16, be32, bytes_attr, invalid};
use crate::error::DecodeError;
use crate::header::TransactionId;

/// CHANGE-REQUEST (RFC 5780 §7.2): answer from the other IP and/or the other port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChangeRequest {
    /// The A flag: change IP.
    pub change_ip: bool,
    /// The B flag: change port.
    pub change_port: bool,
}

impl<'a> Attribute<'a> for ChangeRequest {
    const TYPE: AttrType = AttrType::CHANGE_REQUEST;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        if value.len() != 4 {
            return Err(invalid::<Self>());
        }
        let flags = be32(value, 0).ok_or(invalid::<Self>())?;
        Ok(Self {
            change_ip: flags & 0x4 != 0,
            change_port: flags & 0x2 != 0,
        })
    }

    fn encoded_len(&self) -> usize {
        4
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        let flags = (u32::from(self.change_ip) << 2) | (u32::from(self.change_port) << 1);
        out.copy_from_slice(&flags.to_be_bytes());
    }
}

/// RESPONSE-PORT (RFC 5780 §7.5): the port a Binding response should be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponsePort(pub u16);

impl<'a> Attribute<'a> for ResponsePort {
    const TYPE: AttrType = AttrType::RESPONSE_PORT;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        // A 16-bit port followed by two bytes of padding; a bare 2-byte value is accepted
        // too, since the RFC's wording leaves room for it.
        if value.len() != 4 && value.len() != 2 {
            return Err(invalid::<Self>());
        }
        be16(value, 0).map(Self).ok_or(invalid::<Self>())
    }

    fn encoded_len(&self) -> usize {
        4
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out[0..2].copy_from_slice(&self.0.to_be_bytes());
        out[2..4].fill(0);
    }
}

bytes_attr!(
    /// PADDING (RFC 5780 §7.6): filler to test path MTU.
    Padding, AttrType::PADDING
);

address_attr!(
    /// RESPONSE-ORIGIN (RFC 5780 §7.3): the address the response was sent from.
    ResponseOrigin, AttrType::RESPONSE_ORIGIN, false
);
address_attr!(
    /// OTHER-ADDRESS (RFC 5780 §7.4): the server's alternate address and port.
    OtherAddress, AttrType::OTHER_ADDRESS, false
);
