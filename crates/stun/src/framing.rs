//! Cutting a byte stream (TCP, TLS) into STUN messages and ChannelData frames
//! (RFC 8489 §6.2.2, RFC 8656 §12.5).
//!
//! On a stream the first byte says what follows (RFC 8656 §12, RFC 7983): 0b00 STUN,
//! 0b01 (0x40..=0x7F) ChannelData, as RFC 5766 framed it. Anything else means the stream is not speaking STUN/TURN and
//! should be closed: there is no way to find the next frame boundary.

use crate::header::{HEADER_LEN, MAGIC_COOKIE};

/// The next complete frame at the start of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A STUN message of this many bytes.
    Stun(usize),
    /// A ChannelData frame of this many bytes, padding included (on streams the data is
    /// padded to a multiple of 4, RFC 8656 §12.5).
    ChannelData(usize),
}

impl Frame {
    /// Bytes the frame occupies in the stream.
    pub fn len(self) -> usize {
        match self {
            Self::Stun(n) | Self::ChannelData(n) => n,
        }
    }

    /// Never true: a frame has at least a header. Present for API symmetry with `len`.
    pub fn is_empty(self) -> bool {
        false
    }
}

/// What the start of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A complete frame is available.
    Frame(Frame),
    /// At least this many bytes are needed in total before the next frame is complete.
    NeedMore(usize),
    /// The stream is not STUN/TURN: close it.
    Garbage,
}

/// Looks at the start of `buf` and says how long the next frame is, or how many bytes
/// are needed, or that the stream is garbage. Never panics, never allocates.
pub fn next_frame(buf: &[u8]) -> Framing {
    let Some(&first) = buf.first() else {
        return Framing::NeedMore(4);
    };
    let Some(len) = buf
        .get(2..4)
        .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
    else {
        return Framing::NeedMore(4);
    };
    match first {
        0x00..=0x3F => {
            if !len.is_multiple_of(4) {
                return Framing::Garbage;
            }
            if let Some(c) = buf.get(4..8) {
                if u32::from_be_bytes([c[0], c[1], c[2], c[3]]) != MAGIC_COOKIE {
                    return Framing::Garbage;
                }
            }
            complete(buf, Frame::Stun(HEADER_LEN + len))
        }
        0x40..=0x7F => complete(buf, Frame::ChannelData((4 + len).next_multiple_of(4))),
        _ => Framing::Garbage,
    }
}

fn complete(buf: &[u8], frame: Frame) -> Framing {
    if buf.len() >= frame.len() {
        Framing::Frame(frame)
    } else {
        Framing::NeedMore(frame.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data_on_streams_is_padded() {
        let frame = [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0];
        assert_eq!(next_frame(&frame[..9]), Framing::NeedMore(12));
        assert_eq!(next_frame(&frame), Framing::Frame(Frame::ChannelData(12)));
    }

    #[test]
    fn stun_needs_header_and_body() {
        let mut msg = [0u8; 24];
        msg[1] = 0x01;
        msg[3] = 0x04;
        msg[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert_eq!(next_frame(&msg[..3]), Framing::NeedMore(4));
        assert_eq!(next_frame(&msg[..20]), Framing::NeedMore(24));
        assert_eq!(next_frame(&msg), Framing::Frame(Frame::Stun(24)));
    }

    #[test]
    fn garbage_is_detected() {
        // ASCII letters (0x41..=0x7A) mostly fall inside the RFC 5766 ChannelData range, so
        // an HTTP request looks like a long ChannelData frame: the idle timeout ends it.
        assert!(matches!(
            next_frame(b"POST / HTTP/1.1"),
            Framing::NeedMore(_)
        ));
        assert_eq!(next_frame(b"\x80 not stun"), Framing::Garbage);
        assert_eq!(
            next_frame(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            Framing::Garbage
        );
        assert_eq!(next_frame(&[0x00, 0x01, 0x00, 0x03]), Framing::Garbage);
        assert_eq!(next_frame(&[0x80, 0x00, 0x00, 0x00]), Framing::Garbage);
    }
}
