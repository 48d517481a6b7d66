//! [`MessageWriter`]: builds a STUN message in a buffer the caller owns.

use crate::attr::{AttrType, Attribute};
use crate::error::EncodeError;
use crate::header::{HEADER_LEN, MAGIC_COOKIE, MessageType, TransactionId, field};
use crate::integrity::{IntegrityKey, SHA1_MAC_LEN, SHA256_MAC_LEN, fingerprint};

/// What may still be added (RFC 8489 §14.5–§14.7 fix the order of the last attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Attributes,
    AfterIntegrity,
    AfterIntegritySha256,
    Sealed,
}

/// Writes one STUN message into a borrowed buffer, keeping the header's length field
/// up to date after every attribute (so the message is valid at every step).
///
/// ```
/// use turnpike_stun::{MessageType, MessageWriter, Message, TransactionId};
/// use turnpike_stun::attr::XorMappedAddress;
///
/// let mut buf = [0u8; 64];
/// let tid = TransactionId([7; 12]);
/// let mut w = MessageWriter::new(&mut buf, MessageType::BINDING_SUCCESS, tid).unwrap();
/// w.put(&XorMappedAddress("192.0.2.1:32853".parse().unwrap())).unwrap();
/// w.put_fingerprint().unwrap();
/// let len = w.finish();
///
/// let msg = Message::new_checked(&buf[..len]).unwrap();
/// assert_eq!(msg.verify_fingerprint(), Ok(true));
/// let addr = msg.get::<XorMappedAddress>().unwrap().unwrap();
/// assert_eq!(addr.0, "192.0.2.1:32853".parse().unwrap());
/// ```
#[derive(Debug)]
pub struct MessageWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    tid: TransactionId,
    stage: Stage,
    padding: u8,
}

impl<'b> MessageWriter<'b> {
    /// Starts a message of type `ty` with transaction ID `tid`.
    ///
    /// # Errors
    ///
    /// [`EncodeError::BufferTooSmall`] when `buf` cannot hold the header.
    pub fn new(
        buf: &'b mut [u8],
        ty: MessageType,
        tid: TransactionId,
    ) -> Result<Self, EncodeError> {
        let header = buf
            .get_mut(..HEADER_LEN)
            .ok_or(EncodeError::BufferTooSmall)?;
        header[field::TYPE].copy_from_slice(&ty.to_u16().to_be_bytes());
        header[field::LENGTH].fill(0);
        header[field::COOKIE].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        header[field::TRANSACTION_ID].copy_from_slice(tid.as_bytes());
        Ok(Self {
            buf,
            len: HEADER_LEN,
            tid,
            stage: Stage::Attributes,
            padding: 0,
        })
    }

    /// Sets the byte that pads attribute values to 4 bytes (zero unless set). RFC 8489 §14
    /// lets padding be any value and receivers ignore it; this exists so the RFC 5769
    /// vectors, which pad with spaces, can be rebuilt byte for byte.
    #[must_use]
    pub fn with_padding_byte(mut self, byte: u8) -> Self {
        self.padding = byte;
        self
    }

    /// The transaction ID being written.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no attribute has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN
    }

    /// Reserves an attribute of `value_len` bytes, writes its header and padding, updates
    /// the message length, and returns the value's slice.
    fn reserve(&mut self, ty: AttrType, value_len: usize) -> Result<&mut [u8], EncodeError> {
        let value_len16 = u16::try_from(value_len).map_err(|_| EncodeError::ValueTooLong)?;
        let total = 4 + value_len.next_multiple_of(4);
        let start = self.len;
        let end = start + total;
        if end - HEADER_LEN > usize::from(u16::MAX) {
            return Err(EncodeError::ValueTooLong);
        }
        let slot = self
            .buf
            .get_mut(start..end)
            .ok_or(EncodeError::BufferTooSmall)?;
        slot[0..2].copy_from_slice(&ty.0.to_be_bytes());
        slot[2..4].copy_from_slice(&value_len16.to_be_bytes());
        // Padding is zero unless asked otherwise (RFC 8489 §14 lets it be anything).
        slot[4 + value_len..].fill(self.padding);
        self.len = end;
        let body = (end - HEADER_LEN) as u16;
        self.buf[field::LENGTH].copy_from_slice(&body.to_be_bytes());
        Ok(&mut self.buf[start + 4..start + 4 + value_len])
    }

    fn check_stage(&self, allowed: Stage) -> Result<(), EncodeError> {
        if self.stage <= allowed {
            Ok(())
        } else {
            Err(EncodeError::AfterIntegrity)
        }
    }

    /// Appends a typed attribute.
    ///
    /// # Errors
    ///
    /// [`EncodeError::BufferTooSmall`], [`EncodeError::ValueTooLong`], or
    /// [`EncodeError::AfterIntegrity`] after an integrity attribute.
    pub fn put<'a, A: Attribute<'a>>(&mut self, attr: &A) -> Result<(), EncodeError> {
        self.check_stage(Stage::Attributes)?;
        attr.check_encode()?;
        let tid = self.tid;
        let out = self.reserve(A::TYPE, attr.encoded_len())?;
        attr.encode(out, &tid);
        Ok(())
    }

    /// Appends an attribute given as raw type and value.
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::put`].
    pub fn put_raw(&mut self, ty: AttrType, value: &[u8]) -> Result<(), EncodeError> {
        self.check_stage(Stage::Attributes)?;
        self.reserve(ty, value.len())?.copy_from_slice(value);
        Ok(())
    }

    /// Appends an attribute of `len` bytes and lets `fill` write the value in place (for
    /// DATA, so a payload is read straight into the message).
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::put`].
    pub fn put_with(
        &mut self,
        ty: AttrType,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), EncodeError> {
        self.check_stage(Stage::Attributes)?;
        fill(self.reserve(ty, len)?);
        Ok(())
    }

    /// Appends MESSAGE-INTEGRITY (HMAC-SHA1 over everything so far, RFC 8489 §14.5).
    ///
    /// # Errors
    ///
    /// [`EncodeError::BufferTooSmall`], or [`EncodeError::AfterIntegrity`].
    pub fn put_integrity(&mut self, key: &IntegrityKey) -> Result<(), EncodeError> {
        self.check_stage(Stage::Attributes)?;
        let at = self.len;
        self.reserve(AttrType::MESSAGE_INTEGRITY, SHA1_MAC_LEN)?;
        let mac = key.sha1([&self.buf[..at], &[], &[]]);
        self.buf[at + 4..at + 4 + SHA1_MAC_LEN].copy_from_slice(&mac);
        self.stage = Stage::AfterIntegrity;
        Ok(())
    }

    /// Appends MESSAGE-INTEGRITY-SHA256, truncated to `len` bytes (16..=32, a multiple of
    /// 4; RFC 8489 §14.6). Allowed after MESSAGE-INTEGRITY.
    ///
    /// # Errors
    ///
    /// [`EncodeError::ValueTooLong`] for a bad `len`, otherwise as
    /// [`MessageWriter::put_integrity`].
    pub fn put_integrity_sha256(
        &mut self,
        key: &IntegrityKey,
        len: usize,
    ) -> Result<(), EncodeError> {
        self.check_stage(Stage::AfterIntegrity)?;
        if !(16..=SHA256_MAC_LEN).contains(&len) || !len.is_multiple_of(4) {
            return Err(EncodeError::ValueTooLong);
        }
        let at = self.len;
        self.reserve(AttrType::MESSAGE_INTEGRITY_SHA256, len)?;
        let mac = key.sha256([&self.buf[..at], &[], &[]]);
        self.buf[at + 4..at + 4 + len].copy_from_slice(&mac[..len]);
        self.stage = Stage::AfterIntegritySha256;
        Ok(())
    }

    /// Appends FINGERPRINT, which must be last (RFC 8489 §14.7).
    ///
    /// # Errors
    ///
    /// [`EncodeError::BufferTooSmall`], or [`EncodeError::AfterIntegrity`] if already sealed.
    pub fn put_fingerprint(&mut self) -> Result<(), EncodeError> {
        self.check_stage(Stage::AfterIntegritySha256)?;
        let at = self.len;
        self.reserve(AttrType::FINGERPRINT, 4)?;
        let crc = fingerprint([&self.buf[..at], &[], &[]]);
        self.buf[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
        self.stage = Stage::Sealed;
        Ok(())
    }

    /// Finishes the message and returns its length in bytes.
    pub fn finish(self) -> usize {
        self.len
    }
}
