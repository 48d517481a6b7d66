//! [`Message`]: a validated, borrowed view over one STUN message.

use crate::attr::{AttrType, Attribute, RawAttribute};
use crate::error::DecodeError;
use crate::header::{HEADER_LEN, MAGIC_COOKIE, MessageType, TransactionId, field};
use crate::integrity::{IntegrityKey, SHA1_MAC_LEN, ct_eq, fingerprint};

/// Which integrity attribute authenticated a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityKind {
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    Sha1,
    /// MESSAGE-INTEGRITY-SHA256, with the value length the sender used (16..=32).
    Sha256 {
        /// Bytes of the HMAC the sender kept.
        len: u8,
    },
}

/// A STUN message over any byte container, validated once by [`Message::new_checked`].
///
/// # Panics
///
/// None. `new_checked` establishes that the header is valid, the length field matches the
/// buffer, every attribute lies inside the message, and the integrity attributes have
/// their fixed lengths. No accessor can panic afterwards, whatever the bytes.
///
/// # Which attributes count
///
/// RFC 8489 §14.5 and §14.6: attributes after MESSAGE-INTEGRITY are ignored except
/// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT; after MESSAGE-INTEGRITY-SHA256 only
/// FINGERPRINT counts. [`Message::get`] and [`Message::unknown_comprehension_required`]
/// look only at the attributes that count; [`Message::attributes`] walks all of them.
#[derive(Debug, Clone, Copy)]
pub struct Message<T> {
    buf: T,
    /// End of the attributes that count (the offset of the first integrity attribute or
    /// FINGERPRINT, else the message length).
    covered_end: u32,
    integrity: Option<u32>,
    integrity_sha256: Option<u32>,
    fingerprint: Option<u32>,
}

/// Rounds an attribute value length up to the 4-byte boundary (RFC 8489 §14).
const fn padded(len: usize) -> usize {
    (len + 3) & !3
}

/// Reads the attribute header at `at`: type and value length.
fn attr_header(buf: &[u8], at: usize) -> Option<(AttrType, usize)> {
    let h = buf.get(at..at + 4)?;
    Some((
        AttrType(u16::from_be_bytes([h[0], h[1]])),
        usize::from(u16::from_be_bytes([h[2], h[3]])),
    ))
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Validates `buf` as exactly one STUN message (a UDP datagram, or a frame cut from a
    /// stream by [`crate::framing`]).
    ///
    /// # Errors
    ///
    /// A frame-level error (the bytes are not STUN) or an attribute-level one (a request
    /// that deserves 400); see [`DecodeError::disposition`].
    pub fn new_checked(buf: T) -> Result<Self, DecodeError> {
        let bytes = buf.as_ref();
        let header: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(DecodeError::TooShort)?;
        let cookie = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if header[0] & 0xC0 != 0 || cookie != MAGIC_COOKIE {
            return Err(DecodeError::NotStun);
        }
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if !length.is_multiple_of(4) {
            return Err(DecodeError::UnalignedLength);
        }
        if HEADER_LEN + length != bytes.len() {
            return Err(DecodeError::LengthMismatch);
        }

        let end = bytes.len();
        let mut msg = Self {
            covered_end: end as u32,
            integrity: None,
            integrity_sha256: None,
            fingerprint: None,
            buf,
        };
        let bytes = msg.buf.as_ref();
        let mut at = HEADER_LEN;
        while at < end {
            let (ty, len) = attr_header(bytes, at).ok_or(DecodeError::AttributeTruncated)?;
            let next = at + 4 + padded(len);
            if next > end {
                return Err(DecodeError::AttributeTruncated);
            }
            if msg.fingerprint.is_some() {
                return Err(DecodeError::AttributeAfterFingerprint);
            }
            let first_protected = msg.integrity.is_none() && msg.integrity_sha256.is_none();
            match ty {
                AttrType::MESSAGE_INTEGRITY if first_protected => {
                    if len != SHA1_MAC_LEN {
                        return Err(DecodeError::InvalidAttribute(ty));
                    }
                    msg.integrity = Some(at as u32);
                }
                AttrType::MESSAGE_INTEGRITY_SHA256 if msg.integrity_sha256.is_none() => {
                    // RFC 8489 §14.6: at least 16 bytes, a multiple of 4, at most 32.
                    if !(16..=32).contains(&len) || !len.is_multiple_of(4) {
                        return Err(DecodeError::InvalidAttribute(ty));
                    }
                    msg.integrity_sha256 = Some(at as u32);
                }
                AttrType::FINGERPRINT => {
                    if len != 4 {
                        return Err(DecodeError::InvalidAttribute(ty));
                    }
                    msg.fingerprint = Some(at as u32);
                }
                _ => {}
            }
            let is_integrity_or_fingerprint = msg.integrity == Some(at as u32)
                || msg.integrity_sha256 == Some(at as u32)
                || msg.fingerprint == Some(at as u32);
            if is_integrity_or_fingerprint && msg.covered_end == end as u32 {
                msg.covered_end = at as u32;
            }
            at = next;
        }
        Ok(msg)
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Returns the underlying container.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The message type.
    pub fn message_type(&self) -> MessageType {
        let b = self.as_bytes();
        // `new_checked` verified the two top bits are zero.
        MessageType::from_u16(u16::from_be_bytes([b[0], b[1]]))
            .unwrap_or(MessageType::BINDING_REQUEST)
    }

    /// The transaction ID.
    pub fn transaction_id(&self) -> TransactionId {
        let mut id = [0u8; 12];
        id.copy_from_slice(&self.as_bytes()[field::TRANSACTION_ID]);
        TransactionId(id)
    }

    /// Every attribute in order, including the ones RFC 8489 says to ignore.
    pub fn attributes(&self) -> Attributes<'_> {
        Attributes {
            buf: self.as_bytes(),
            at: HEADER_LEN,
            end: self.as_bytes().len(),
        }
    }

    /// The attributes that count: those before the first integrity attribute or
    /// FINGERPRINT (which themselves are checked with the `verify_*` methods).
    pub fn effective_attributes(&self) -> Attributes<'_> {
        Attributes {
            buf: self.as_bytes(),
            at: HEADER_LEN,
            end: self.covered_end as usize,
        }
    }

    /// The first attribute of type `ty` that counts, raw.
    pub fn raw(&self, ty: AttrType) -> Option<RawAttribute<'_>> {
        self.effective_attributes().find(|a| a.ty == ty)
    }

    /// The first attribute of type `A` that counts, decoded. `Ok(None)` when absent.
    ///
    /// # Errors
    ///
    /// [`DecodeError::InvalidAttribute`] when the value is malformed.
    pub fn get<'a, A: Attribute<'a>>(&'a self) -> Result<Option<A>, DecodeError> {
        let tid = self.transaction_id();
        self.raw(A::TYPE)
            .map(|raw| A::decode(raw.value, &tid))
            .transpose()
    }

    /// Every attribute of type `A` that counts, decoded in order (CreatePermission may carry
    /// several XOR-PEER-ADDRESS, RFC 8656 §9.1).
    pub fn get_all<'a, A: Attribute<'a> + 'a>(
        &'a self,
    ) -> impl Iterator<Item = Result<A, DecodeError>> + 'a {
        let tid = self.transaction_id();
        self.effective_attributes()
            .filter(|a| a.ty == A::TYPE)
            .map(move |a| A::decode(a.value, &tid))
    }

    /// Comprehension-required attribute types this codec does not know; a request carrying
    /// any gets 420 with UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1.1).
    pub fn unknown_comprehension_required(&self) -> impl Iterator<Item = AttrType> + '_ {
        self.effective_attributes()
            .map(|a| a.ty)
            .filter(|t| t.is_comprehension_required() && !t.is_known())
    }

    /// Whether MESSAGE-INTEGRITY is present.
    pub fn has_integrity(&self) -> bool {
        self.integrity.is_some()
    }

    /// Whether MESSAGE-INTEGRITY-SHA256 is present.
    pub fn has_integrity_sha256(&self) -> bool {
        self.integrity_sha256.is_some()
    }

    /// Whether FINGERPRINT is present.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint.is_some()
    }

    /// The three parts hashed for an integrity attribute or FINGERPRINT at `at`: the
    /// header up to the length field, the length field patched to end at the attribute's
    /// end (`value_len` after its header), and everything from the cookie up to the
    /// attribute (RFC 8489 §14.5).
    fn hash_input(&self, at: usize, value_len: usize) -> ([u8; 2], &[u8], &[u8]) {
        let b = self.as_bytes();
        let patched = (at + 4 + value_len - HEADER_LEN) as u16;
        (patched.to_be_bytes(), &b[..2], &b[4..at])
    }

    /// Checks FINGERPRINT if present; `Ok(true)` when present and right.
    ///
    /// # Errors
    ///
    /// [`DecodeError::FingerprintMismatch`]: drop the packet (RFC 8489 §7.3).
    pub fn verify_fingerprint(&self) -> Result<bool, DecodeError> {
        let Some(at) = self.fingerprint.map(|a| a as usize) else {
            return Ok(false);
        };
        let b = self.as_bytes();
        let (len, head, body) = self.hash_input(at, 4);
        let expected = fingerprint([head, &len, body]);
        let got = u32::from_be_bytes([b[at + 4], b[at + 5], b[at + 6], b[at + 7]]);
        if got == expected {
            Ok(true)
        } else {
            Err(DecodeError::FingerprintMismatch)
        }
    }

    /// Checks the message's integrity with `key`. When both attributes are present,
    /// MESSAGE-INTEGRITY-SHA256 is the one checked (RFC 8489 §9.2.4: the stronger one
    /// wins, so an attacker cannot bid a client down to SHA-1).
    ///
    /// # Errors
    ///
    /// [`DecodeError::IntegrityMissing`] or [`DecodeError::IntegrityMismatch`].
    pub fn verify_integrity(&self, key: &IntegrityKey) -> Result<IntegrityKind, DecodeError> {
        let b = self.as_bytes();
        if let Some(at) = self.integrity_sha256.map(|a| a as usize) {
            let len = usize::from(u16::from_be_bytes([b[at + 2], b[at + 3]]));
            let (plen, head, body) = self.hash_input(at, len);
            let mac = key.sha256([head, &plen, body]);
            if ct_eq(&mac[..len], &b[at + 4..at + 4 + len]) {
                return Ok(IntegrityKind::Sha256 { len: len as u8 });
            }
            return Err(DecodeError::IntegrityMismatch);
        }
        let at = self.integrity.ok_or(DecodeError::IntegrityMissing)? as usize;
        let (plen, head, body) = self.hash_input(at, SHA1_MAC_LEN);
        let mac = key.sha1([head, &plen, body]);
        if ct_eq(&mac, &b[at + 4..at + 4 + SHA1_MAC_LEN]) {
            Ok(IntegrityKind::Sha1)
        } else {
            Err(DecodeError::IntegrityMismatch)
        }
    }
}

/// Iterator over the attributes of a validated message.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    buf: &'a [u8],
    at: usize,
    end: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.end {
            return None;
        }
        // `new_checked` proved every attribute lies inside the message; `get` keeps this
        // panic-free even if that invariant were broken.
        let (ty, len) = attr_header(self.buf, self.at)?;
        let value = self.buf.get(self.at + 4..self.at + 4 + len)?;
        let offset = self.at;
        self.at += 4 + padded(len);
        Some(RawAttribute { ty, value, offset })
    }
}
