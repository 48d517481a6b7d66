//! The kernel-facing side of a batched send: the `mmsghdr`s, iovecs, destination names and
//! control buffers of one `sendmmsg(2)` call ([`Mmsg`]), and the one-datagram send
//! ([`send_one`]). Both send batches ([`crate::SendBatch`], [`crate::SendBuffer`]) decide
//! what goes in which message and leave the laying out and the system call to this module.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;

use crate::addr::RawAddr;
use crate::cmsg::{self, Control};
use crate::gso::UDP_SEGMENT;

/// Arrays for one `sendmmsg` of up to `messages` messages and `iovecs` iovecs in all,
/// allocated once and reused. Nothing is zeroed per call: every field the kernel reads is
/// written by [`Mmsg::end_message`].
pub(crate) struct Mmsg {
    iov: Vec<libc::iovec>,
    names: Vec<RawAddr>,
    ctrl: Vec<Control>,
    hdr: Vec<libc::mmsghdr>,
    /// Iovecs filled so far.
    iovs: usize,
    /// The first iovec of the message being built.
    first_iov: usize,
    /// Messages finished so far.
    messages: usize,
}

impl Mmsg {
    /// Room for `messages` messages and `iovecs` iovecs.
    pub(crate) fn new(messages: usize, iovecs: usize) -> Self {
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: mmsghdr is plain old data; all-zero is a valid value (null pointers, zero
        // lengths), and `end_message` sets every field the kernel reads before a send.
        let hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        Self {
            iov: vec![empty; iovecs],
            names: vec![RawAddr::EMPTY; messages],
            ctrl: vec![Control::ZERO; messages],
            hdr: vec![hdr; messages],
            iovs: 0,
            first_iov: 0,
            messages: 0,
        }
    }

    /// Forgets every message (the arrays stay allocated).
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.iovs = 0;
        self.first_iov = 0;
        self.messages = 0;
    }

    /// Messages finished so far.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.messages
    }

    /// Adds `bytes` to the message being built. Only its address and length are kept:
    /// [`Mmsg::send`]'s caller must keep `bytes` alive and unchanged until then. Panics
    /// past the room given to [`Mmsg::new`] (callers never queue more).
    #[inline]
    pub(crate) fn push_iov(&mut self, bytes: &[u8]) {
        self.iov[self.iovs] = libc::iovec {
            // The kernel only reads through this pointer (sendmmsg), so the cast away
            // from const is never written through.
            iov_base: bytes.as_ptr().cast_mut().cast(),
            iov_len: bytes.len(),
        };
        self.iovs += 1;
    }

    /// Ends the message made of the iovecs pushed since the last one: to `to` (none: the
    /// connected peer), from IPv4 address `src` (`IP_PKTINFO`; none: the socket's own),
    /// cut by the kernel into `segment`-byte datagrams (`UDP_SEGMENT`; none: one datagram).
    #[inline]
    pub(crate) fn end_message(
        &mut self,
        to: Option<RawAddr>,
        src: Option<Ipv4Addr>,
        segment: Option<u16>,
    ) {
        let k = self.messages;
        let hdr = &mut self.hdr[k].msg_hdr;
        match to {
            Some(to) => {
                self.names[k] = to;
                hdr.msg_name = self.names[k].as_ptr().cast_mut().cast();
                hdr.msg_namelen = to.len();
            }
            None => {
                hdr.msg_name = std::ptr::null_mut();
                hdr.msg_namelen = 0;
            }
        }
        hdr.msg_iov = &raw mut self.iov[self.first_iov];
        hdr.msg_iovlen = self.iovs - self.first_iov;
        if src.is_none() && segment.is_none() {
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
        } else {
            let mut w = cmsg::Writer::new(hdr, &mut self.ctrl[k]);
            if let Some(src) = src {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(src).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                w.push(libc::IPPROTO_IP, libc::IP_PKTINFO, info);
            }
            if let Some(segment) = segment {
                w.push(libc::SOL_UDP, UDP_SEGMENT, segment);
            }
        }
        self.hdr[k].msg_len = 0;
        self.first_iov = self.iovs;
        self.messages += 1;
    }

    /// One `sendmmsg` of messages `from..` on `fd` with `flags`: answers how many messages
    /// the kernel took (`WouldBlock` for none without an error).
    ///
    /// # Safety
    ///
    /// Every byte slice given to [`Mmsg::push_iov`] since the last [`Mmsg::clear`] must
    /// still be alive and unchanged.
    #[inline]
    pub(crate) unsafe fn send(
        &mut self,
        fd: RawFd,
        from: usize,
        flags: libc::c_int,
    ) -> io::Result<usize> {
        if from >= self.messages {
            return Ok(0);
        }
        let count = (self.messages - from) as libc::c_uint;
        // SAFETY: headers `from..messages` were each written by `end_message` and point at
        // iovecs, names and control buffers in this struct's own vectors (allocated once,
        // never resized, so the pointers are stable) with the lengths written there; the
        // iovecs point at bytes the caller keeps alive (this function's contract).
        // sendmmsg only reads them, and writes each header's msg_len.
        let n = unsafe { libc::sendmmsg(fd, self.hdr.as_mut_ptr().add(from), count, flags) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n as usize)
    }
}

/// Sends one datagram from `fd` without blocking, to `to` or, with `None`, to the peer the
/// socket is connected to. Answers the bytes sent.
#[inline]
pub fn send_one(fd: RawFd, bytes: &[u8], to: Option<&RawAddr>) -> io::Result<usize> {
    let (name, name_len) = to.map_or((std::ptr::null(), 0), |a| (a.as_ptr(), a.len()));
    // Through syscall(2) rather than glibc's sendto: sendto is a thread-cancellation point,
    // and its wrapper switches the thread's cancel state around every call (about 2 % of
    // the server worker's CPU per relayed datagram in a profile). No thread of ours is
    // ever cancelled.
    // SAFETY: `bytes` and the name (null with length 0 for none) are live for the call and
    // given with their lengths; sendto only reads them.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            libc::c_long::from(fd),
            bytes.as_ptr(),
            bytes.len(),
            libc::c_long::from(libc::MSG_DONTWAIT),
            name,
            libc::c_long::from(name_len),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The name to put in a send to `to` on an unconnected socket.
pub(crate) fn name(to: Option<SocketAddr>) -> Option<RawAddr> {
    to.map(RawAddr::from)
}
