//! Control messages (`cmsg(3)`): writing `UDP_SEGMENT` and `IP_PKTINFO` into a send's control
//! buffer, and walking the control messages `recvmsg`/`recvmmsg` left in a receive's.
//!
//! The `CMSG_*` macros are pointer arithmetic over a buffer that a `msghdr` describes; this
//! module keeps every such walk inside the buffer and hands out copies of the data, so the
//! rest of the crate never touches a `cmsghdr` pointer.

/// Bytes of one control buffer: room for an `IP_PKTINFO` (`CMSG_SPACE(12)` = 32) and a
/// `UDP_SEGMENT` (`CMSG_SPACE(2)` = 24) message.
pub(crate) const CONTROL_LEN: usize = 64;

/// A control buffer for one sent message, aligned for `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct Control(pub(crate) [u8; CONTROL_LEN]);

impl Control {
    /// An all-zero buffer.
    pub(crate) const ZERO: Self = Self([0; CONTROL_LEN]);
}

/// `CMSG_SPACE` of `len` data bytes.
pub(crate) fn space(len: usize) -> usize {
    let len = u32::try_from(len).unwrap_or(0);
    // SAFETY: CMSG_SPACE only computes a size from its argument.
    unsafe { libc::CMSG_SPACE(len) as usize }
}

/// `CMSG_LEN` of `len` data bytes.
pub(crate) fn len(len: usize) -> usize {
    let len = u32::try_from(len).unwrap_or(0);
    // SAFETY: CMSG_LEN only computes a size from its argument.
    unsafe { libc::CMSG_LEN(len) as usize }
}

/// Plain C data that any bytes form a valid value of, so it may be read from control
/// message data. Sealed: implemented only for the kernel types read here.
pub(crate) trait Pod: Copy + private::Sealed {}

mod private {
    /// Seals [`super::Pod`].
    pub(crate) trait Sealed {}
}

macro_rules! pod {
    ($($t:ty),*) => {$(
        impl private::Sealed for $t {}
        impl Pod for $t {}
    )*};
}
pod!(
    u16,
    u32,
    libc::timespec,
    libc::in_pktinfo,
    libc::sock_extended_err
);

/// Writes control messages into the buffer that `hdr` names, one after the other, and
/// sets `hdr.msg_controllen` to what was written.
pub(crate) struct Writer<'a> {
    hdr: &'a mut libc::msghdr,
    buf: &'a mut Control,
    at: usize,
}

impl<'a> Writer<'a> {
    /// Points `hdr` at `buf` (whole) and starts writing at its beginning.
    pub(crate) fn new(hdr: &'a mut libc::msghdr, buf: &'a mut Control) -> Self {
        hdr.msg_control = buf.0.as_mut_ptr().cast();
        hdr.msg_controllen = 0;
        Self { hdr, buf, at: 0 }
    }

    /// Appends one control message carrying `data`; `false` (nothing written) when it
    /// does not fit.
    pub(crate) fn push<T: Pod>(&mut self, level: libc::c_int, kind: libc::c_int, data: T) -> bool {
        let need = space(size_of::<T>());
        if self.at + need > CONTROL_LEN {
            return false;
        }
        let header = libc::cmsghdr {
            cmsg_len: len(size_of::<T>()) as _,
            cmsg_level: level,
            cmsg_type: kind,
        };
        let data_at = self.at + len(0);
        let base = self.buf.0.as_mut_ptr();
        // SAFETY: `at + CMSG_SPACE(size_of::<T>())` bytes fit in the buffer (checked
        // above), and both the header (at `at`) and the data (at `at + CMSG_LEN(0)`, before
        // `at + CMSG_SPACE(..)`) lie within them; unaligned writes make no alignment
        // assumption, and both values are plain data.
        unsafe {
            base.add(self.at)
                .cast::<libc::cmsghdr>()
                .write_unaligned(header);
            base.add(data_at).cast::<T>().write_unaligned(data);
        }
        self.at += need;
        self.hdr.msg_controllen = self.at as _;
        true
    }
}

/// One received control message: its level, type and a copy of its data bytes' location.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Message<'a> {
    /// `cmsg_level`.
    pub(crate) level: libc::c_int,
    /// `cmsg_type`.
    pub(crate) kind: libc::c_int,
    /// The data (`cmsg_len - CMSG_LEN(0)` bytes, cut to the buffer).
    pub(crate) data: &'a [u8],
}

impl Message<'_> {
    /// The data as a `T`, if there are enough bytes.
    pub(crate) fn read<T: Pod>(&self) -> Option<T> {
        if self.data.len() < size_of::<T>() {
            return None;
        }
        // SAFETY: `data` holds at least size_of::<T>() initialised bytes (checked just
        // above), any bytes are a valid `T` (Pod), and the read is unaligned.
        Some(unsafe { self.data.as_ptr().cast::<T>().read_unaligned() })
    }
}

/// The control messages in the first `filled` bytes of `buf`, as the kernel wrote them
/// (`msg_controllen` after the receive; clamped to the buffer).
pub(crate) fn messages(buf: &[u8], filled: usize) -> impl Iterator<Item = Message<'_>> {
    let end = filled.min(buf.len());
    let header = size_of::<libc::cmsghdr>();
    let data_offset = len(0);
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at + header > end {
            return None;
        }
        // SAFETY: the header's `size_of::<cmsghdr>()` bytes lie within the first `end`
        // bytes of `buf` (checked just above), which are initialised; the read is unaligned.
        let h = unsafe {
            buf.as_ptr()
                .add(at)
                .cast::<libc::cmsghdr>()
                .read_unaligned()
        };
        #[allow(
            clippy::unnecessary_cast,
            reason = "size_t on glibc, socklen_t on musl"
        )]
        let cmsg_len = h.cmsg_len as usize;
        if cmsg_len < data_offset {
            return None;
        }
        let data_end = (at + cmsg_len).min(end);
        let data = buf.get(at + data_offset..data_end).unwrap_or(&[]);
        // CMSG_NXTHDR: the next header starts at the aligned end of this message.
        at += space(cmsg_len - data_offset);
        Some(Message {
            level: h.cmsg_level,
            kind: h.cmsg_type,
            data,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writer writes, the reader reads back, as the kernel's macros lay it out.
    #[test]
    fn written_messages_read_back() {
        // SAFETY: msghdr is plain integers and pointers; all-zero is a valid value.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        let mut buf = Control::ZERO;
        let mut w = Writer::new(&mut hdr, &mut buf);
        let info = libc::in_pktinfo {
            ipi_ifindex: 3,
            ipi_spec_dst: libc::in_addr {
                s_addr: 0x0100_007f,
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        assert!(w.push(libc::IPPROTO_IP, libc::IP_PKTINFO, info));
        assert!(w.push(libc::SOL_UDP, 103, 1200u16));
        // A third does not fit in 64 bytes.
        assert!(!w.push(libc::SOL_UDP, 103, 1200u16));
        let filled = hdr.msg_controllen as usize;
        assert_eq!(filled, space(12) + space(2));
        // SAFETY: `hdr` describes `buf` (msg_control points at it, msg_controllen is what
        // was written); CMSG_FIRSTHDR and CMSG_NXTHDR only compute pointers into it.
        let (first, second) = unsafe {
            let first = libc::CMSG_FIRSTHDR(&hdr);
            (first as usize, libc::CMSG_NXTHDR(&hdr, first) as usize)
        };
        assert_eq!(second - first, space(12), "laid out as CMSG_NXTHDR expects");
        let got: Vec<_> = messages(&buf.0, filled).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].level, got[0].kind),
            (libc::IPPROTO_IP, libc::IP_PKTINFO)
        );
        let back: libc::in_pktinfo = got[0].read().unwrap();
        assert_eq!(back.ipi_spec_dst.s_addr, 0x0100_007f);
        assert_eq!(got[1].read::<u16>(), Some(1200));
        assert_eq!(got[1].read::<u32>(), None, "two data bytes only");
        // A cut buffer yields only whole headers.
        assert_eq!(messages(&buf.0, 8).count(), 0);
    }
}
