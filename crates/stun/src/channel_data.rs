//! ChannelData framing (RFC 8656 §12.4, §12.5): a 4-byte header, channel number and
//! length, in front of application data.

use crate::attr::ChannelNumber;
use crate::error::{DecodeError, EncodeError};

/// Length of the ChannelData header.
pub const CHANNEL_DATA_HEADER_LEN: usize = 4;

/// A validated, borrowed view of one ChannelData message.
///
/// # Panics
///
/// None: after [`ChannelData::new_checked`] succeeds, no accessor panics.
#[derive(Debug, Clone, Copy)]
pub struct ChannelData<T> {
    buf: T,
    channel: ChannelNumber,
    len: u16,
}

impl<T: AsRef<[u8]>> ChannelData<T> {
    /// Validates a ChannelData message. `buf` may be longer than the header's length says:
    /// over UDP the padding is optional and, when present, follows the data (RFC 8656
    /// §12.5); whatever follows the data is ignored.
    ///
    /// # Errors
    ///
    /// [`DecodeError::TooShort`], [`DecodeError::InvalidChannelNumber`] or
    /// [`DecodeError::LengthMismatch`]; all mean "drop".
    pub fn new_checked(buf: T) -> Result<Self, DecodeError> {
        let b = buf.as_ref();
        let [c0, c1, l0, l1, rest @ ..] = b else {
            return Err(DecodeError::TooShort);
        };
        let channel = ChannelNumber::new(u16::from_be_bytes([*c0, *c1]))
            .ok_or(DecodeError::InvalidChannelNumber)?;
        let len = u16::from_be_bytes([*l0, *l1]);
        if usize::from(len) > rest.len() {
            return Err(DecodeError::LengthMismatch);
        }
        Ok(Self { buf, channel, len })
    }

    /// The channel number.
    pub fn channel(&self) -> ChannelNumber {
        self.channel
    }

    /// The application data.
    pub fn data(&self) -> &[u8] {
        let b = self.buf.as_ref();
        // `new_checked` proved `4 + len <= b.len()`.
        b.get(CHANNEL_DATA_HEADER_LEN..CHANNEL_DATA_HEADER_LEN + usize::from(self.len))
            .unwrap_or_default()
    }

    /// The underlying container.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

/// Writes a ChannelData header for `data_len` bytes into `buf[..4]`, for data already
/// placed at `buf[4..]` (the relay keeps 4 bytes of headroom so data is never moved).
///
/// # Errors
///
/// [`EncodeError::BufferTooSmall`] or [`EncodeError::ValueTooLong`] above 65535 bytes.
pub fn write_channel_data_header(
    buf: &mut [u8],
    channel: ChannelNumber,
    data_len: usize,
) -> Result<(), EncodeError> {
    let len = u16::try_from(data_len).map_err(|_| EncodeError::ValueTooLong)?;
    let header = buf
        .get_mut(..CHANNEL_DATA_HEADER_LEN)
        .ok_or(EncodeError::BufferTooSmall)?;
    header[0..2].copy_from_slice(&channel.value().to_be_bytes());
    header[2..4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Encodes a whole ChannelData message into `buf` and returns its length. With `pad`
/// (required on TCP and TLS, RFC 8656 §12.5) zero bytes round it up to a multiple of 4.
///
/// # Errors
///
/// [`EncodeError::BufferTooSmall`] or [`EncodeError::ValueTooLong`].
pub fn encode_channel_data(
    buf: &mut [u8],
    channel: ChannelNumber,
    data: &[u8],
    pad: bool,
) -> Result<usize, EncodeError> {
    let end = CHANNEL_DATA_HEADER_LEN + data.len();
    let total = if pad { end.next_multiple_of(4) } else { end };
    let out = buf.get_mut(..total).ok_or(EncodeError::BufferTooSmall)?;
    write_channel_data_header(out, channel, data.len())?;
    out[CHANNEL_DATA_HEADER_LEN..end].copy_from_slice(data);
    out[end..].fill(0);
    Ok(total)
}
