//! The attributes of STUN itself (RFC 8489 §14).

use core::fmt;

use super::{AttrType, Attribute, address_attr, be16, bytes_attr, invalid, string_attr, u32_attr};
use crate::error::{DecodeError, EncodeError, ErrorCode};
use crate::header::TransactionId;

address_attr!(
    /// MAPPED-ADDRESS (RFC 8489 §14.1): the reflexive address, not XOR-ed. Kept for
    /// completeness; servers answer with XOR-MAPPED-ADDRESS.
    MappedAddress, AttrType::MAPPED_ADDRESS, false
);
address_attr!(
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2): the client's reflexive transport address,
    /// XOR-ed so that NATs rewriting addresses in payloads leave it alone.
    XorMappedAddress, AttrType::XOR_MAPPED_ADDRESS, true
);
address_attr!(
    /// ALTERNATE-SERVER (RFC 8489 §14.15): where a 300 Try Alternate sends the client.
    AlternateServer, AttrType::ALTERNATE_SERVER, false
);

string_attr!(
    /// USERNAME (RFC 8489 §14.3): less than 509 bytes of UTF-8 (RFC 8489 §14.3 says
    /// "MUST contain a UTF-8-encoded sequence of fewer than 509 bytes").
    Username, AttrType::USERNAME, 508
);
string_attr!(
    /// REALM (RFC 8489 §14.9): fewer than 128 characters, which can be up to 763 bytes.
    Realm, AttrType::REALM, 763
);
string_attr!(
    /// NONCE (RFC 8489 §14.10): fewer than 128 characters, up to 763 bytes. RFC 8489 §9.2
    /// servers start it with the `obMatJos2` cookie; see [`crate::nonce_cookie`].
    Nonce, AttrType::NONCE, 763
);
string_attr!(
    /// SOFTWARE (RFC 8489 §14.14): fewer than 128 characters, up to 763 bytes.
    Software, AttrType::SOFTWARE, 763
);
string_attr!(
    /// ALTERNATE-DOMAIN (RFC 8489 §14.16): the domain of the ALTERNATE-SERVER, for TLS.
    AlternateDomain, AttrType::ALTERNATE_DOMAIN, 255
);

bytes_attr!(
    /// MESSAGE-INTEGRITY (RFC 8489 §14.5): the 20-byte HMAC-SHA1. The message checks and
    /// writes it; this type only exposes the raw bytes.
    MessageIntegrity, AttrType::MESSAGE_INTEGRITY
);
bytes_attr!(
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6): HMAC-SHA256, possibly truncated to
    /// 16..=32 bytes in steps of 4.
    MessageIntegritySha256, AttrType::MESSAGE_INTEGRITY_SHA256
);

u32_attr!(
    /// FINGERPRINT (RFC 8489 §14.7): CRC-32 of the message XOR 0x5354554e.
    Fingerprint, AttrType::FINGERPRINT
);

/// USERHASH (RFC 8489 §14.4): SHA-256(username ":" OpaqueString(realm)), 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Userhash<'a>(pub &'a [u8; 32]);

impl<'a> Attribute<'a> for Userhash<'a> {
    const TYPE: AttrType = AttrType::USERHASH;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        value.try_into().map(Self).map_err(|_| invalid::<Self>())
    }

    fn encoded_len(&self) -> usize {
        32
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(self.0);
    }
}

/// ERROR-CODE (RFC 8489 §14.8): class and number, and a UTF-8 reason phrase of fewer
/// than 128 characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCodeAttr<'a> {
    /// The code, 300..=699.
    pub code: ErrorCode,
    /// The reason phrase.
    pub reason: &'a str,
}

impl<'a> ErrorCodeAttr<'a> {
    /// An ERROR-CODE with the RFC's suggested reason phrase.
    pub const fn new(code: ErrorCode) -> Self {
        Self {
            code,
            reason: code.reason(),
        }
    }

    /// An ERROR-CODE with an empty reason phrase (RFC 8489 §14.8: the phrase is only for
    /// diagnostics), for answers that must stay small: those sent before a request is
    /// authenticated, to an address that may be spoofed.
    pub const fn terse(code: ErrorCode) -> Self {
        Self { code, reason: "" }
    }
}

/// Decodes the class/number/reason layout shared by ERROR-CODE and ADDRESS-ERROR-CODE,
/// from the bytes that follow the first two.
pub(crate) fn decode_code_and_reason(value: &[u8]) -> Option<(ErrorCode, &str)> {
    let class = u16::from(*value.get(2)? & 0x07);
    let number = u16::from(*value.get(3)?);
    if number > 99 {
        return None;
    }
    let code = ErrorCode::new(class * 100 + number)?;
    let reason = value.get(4..)?;
    if reason.len() > 763 {
        return None;
    }
    Some((code, core::str::from_utf8(reason).ok()?))
}

/// Encodes class/number/reason into `out[2..]` (bytes 0..2 belong to the caller).
pub(crate) fn encode_code_and_reason(code: ErrorCode, reason: &str, out: &mut [u8]) {
    out[2] = (code.code() / 100) as u8;
    out[3] = (code.code() % 100) as u8;
    out[4..].copy_from_slice(reason.as_bytes());
}

impl<'a> Attribute<'a> for ErrorCodeAttr<'a> {
    const TYPE: AttrType = AttrType::ERROR_CODE;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        let (code, reason) = decode_code_and_reason(value).ok_or(invalid::<Self>())?;
        Ok(Self { code, reason })
    }

    fn encoded_len(&self) -> usize {
        4 + self.reason.len()
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out[0] = 0;
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

/// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13): the comprehension-required types a 420 response
/// names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum UnknownAttributes<'a> {
    /// As received: pairs of bytes.
    Wire(&'a [u8]),
    /// To send.
    List(&'a [AttrType]),
}

impl UnknownAttributes<'_> {
    /// The attribute types listed.
    pub fn iter(&self) -> impl Iterator<Item = AttrType> + '_ {
        let (wire, list): (&[u8], &[AttrType]) = match self {
            Self::Wire(w) => (w, &[]),
            Self::List(l) => (&[], l),
        };
        wire.chunks_exact(2)
            .map(|c| AttrType(u16::from_be_bytes([c[0], c[1]])))
            .chain(list.iter().copied())
    }
}

impl fmt::Debug for UnknownAttributes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> Attribute<'a> for UnknownAttributes<'a> {
    const TYPE: AttrType = AttrType::UNKNOWN_ATTRIBUTES;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        if !value.len().is_multiple_of(2) {
            return Err(invalid::<Self>());
        }
        Ok(Self::Wire(value))
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::Wire(w) => w.len(),
            Self::List(l) => l.len() * 2,
        }
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        for (chunk, ty) in out.chunks_exact_mut(2).zip(self.iter()) {
            chunk.copy_from_slice(&ty.0.to_be_bytes());
        }
    }
}

/// A password algorithm number (RFC 8489 §18.5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PasswordAlgorithmId(pub u16);

impl PasswordAlgorithmId {
    /// MD5, 0x0001: the RFC 5389 long-term key.
    pub const MD5: Self = Self(0x0001);
    /// SHA-256, 0x0002.
    pub const SHA256: Self = Self(0x0002);
}

/// PASSWORD-ALGORITHM (RFC 8489 §14.12): the algorithm the client chose, with its
/// parameters (none for MD5 and SHA-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAlgorithm<'a> {
    /// The algorithm.
    pub algorithm: PasswordAlgorithmId,
    /// Its parameters, unpadded.
    pub params: &'a [u8],
}

impl<'a> PasswordAlgorithm<'a> {
    /// An algorithm without parameters.
    pub const fn new(algorithm: PasswordAlgorithmId) -> Self {
        Self {
            algorithm,
            params: &[],
        }
    }

    /// Splits one algorithm entry off the front of `value`, returning the rest.
    fn split(value: &'a [u8]) -> Option<(Self, &'a [u8])> {
        let algorithm = PasswordAlgorithmId(be16(value, 0)?);
        let len = usize::from(be16(value, 2)?);
        let params = value.get(4..4 + len)?;
        let padded = 4 + len.next_multiple_of(4);
        let rest = value.get(padded..)?;
        Some((Self { algorithm, params }, rest))
    }

    fn padded_len(&self) -> usize {
        4 + self.params.len().next_multiple_of(4)
    }

    fn write(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.algorithm.0.to_be_bytes());
        out[2..4].copy_from_slice(&(self.params.len() as u16).to_be_bytes());
        out[4..4 + self.params.len()].copy_from_slice(self.params);
        out[4 + self.params.len()..self.padded_len()].fill(0);
    }
}

impl<'a> Attribute<'a> for PasswordAlgorithm<'a> {
    const TYPE: AttrType = AttrType::PASSWORD_ALGORITHM;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        match Self::split(value) {
            Some((alg, [])) => Ok(alg),
            _ => Err(invalid::<Self>()),
        }
    }

    fn encoded_len(&self) -> usize {
        self.padded_len()
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        self.write(out);
    }
}

/// PASSWORD-ALGORITHMS (RFC 8489 §14.11): the algorithms a server offers, in order of
/// preference.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PasswordAlgorithms<'a> {
    /// As received.
    Wire(&'a [u8]),
    /// To send.
    List(&'a [PasswordAlgorithm<'a>]),
}

impl<'a> PasswordAlgorithms<'a> {
    /// The algorithms in order.
    pub fn iter(&self) -> PasswordAlgorithmsIter<'a> {
        match *self {
            Self::Wire(w) => PasswordAlgorithmsIter { wire: w, list: &[] },
            Self::List(l) => PasswordAlgorithmsIter { wire: &[], list: l },
        }
    }
}

impl fmt::Debug for PasswordAlgorithms<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over [`PasswordAlgorithms`].
#[derive(Debug, Clone)]
pub struct PasswordAlgorithmsIter<'a> {
    wire: &'a [u8],
    list: &'a [PasswordAlgorithm<'a>],
}

impl<'a> Iterator for PasswordAlgorithmsIter<'a> {
    type Item = PasswordAlgorithm<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some((first, rest)) = self.list.split_first() {
            self.list = rest;
            return Some(*first);
        }
        // The wire form was validated by `decode`.
        let (alg, rest) = PasswordAlgorithm::split(self.wire)?;
        self.wire = rest;
        Some(alg)
    }
}

impl<'a> Attribute<'a> for PasswordAlgorithms<'a> {
    const TYPE: AttrType = AttrType::PASSWORD_ALGORITHMS;

    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, DecodeError> {
        let mut rest = value;
        while !rest.is_empty() {
            let (_, tail) = PasswordAlgorithm::split(rest).ok_or(invalid::<Self>())?;
            rest = tail;
        }
        Ok(Self::Wire(value))
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::Wire(w) => w.len(),
            Self::List(l) => l.iter().map(PasswordAlgorithm::padded_len).sum(),
        }
    }

    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        match self {
            Self::Wire(w) => out.copy_from_slice(w),
            Self::List(l) => {
                let mut at = 0;
                for alg in *l {
                    let n = alg.padded_len();
                    alg.write(&mut out[at..at + n]);
                    at += n;
                }
            }
        }
    }
}
