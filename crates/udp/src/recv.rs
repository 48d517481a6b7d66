//! Batched receive: one `recvmmsg(2)` takes up to a batch of datagrams off a socket, each
//! into its own slot, with its source address and, when asked, the control messages the
//! bench reads (kernel receive time, drop count, destination address).
//!
//! On the server's client-facing sockets many clients' datagrams queue up on one socket, so
//! one syscall and one readiness round trip per batch instead of per datagram; on its relay
//! sockets the batch is filled from several sockets in turn ([`RecvBatch::recv_at`]) so that
//! what they produce leaves in one `sendmmsg`. Every slot can be as large as the largest UDP
//! payload plus room around it, so nothing is ever truncated; the slots are allocated zeroed
//! (lazily mapped pages), so only the bytes the kernel writes are ever backed by memory.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use crate::addr::{socket_addr, zeroed_storage};
use crate::cmsg;

/// Datagrams per `recvmmsg` call of a batch made by [`RecvBatch::new`] or
/// [`RecvBatch::with_room`] (the server's batch).
pub const BATCH: usize = 32;

/// Room for a source address: a whole `sockaddr_storage`.
const NAME_ROOM: libc::socklen_t = size_of::<libc::sockaddr_storage>() as libc::socklen_t;

/// One slot's source address and what the kernel reported for it, kept together so that a
/// lookup checks one bound.
#[derive(Clone, Copy)]
struct Meta {
    /// The source, as the kernel wrote it (`msg_name` points here).
    addr: libc::sockaddr_storage,
    /// The datagram's length.
    len: usize,
    /// Bytes of `addr` the kernel filled.
    name_len: usize,
}

/// Receive buffers, addresses, control buffers and headers for one `recvmmsg` batch.
///
/// The headers and their iovecs are set up once (header `i` receives into slot `i`); a call
/// only resets the lengths the kernel overwrites. Zeroing and filling all of them on every
/// call cost about a tenth of the server's user-space instructions per datagram.
pub struct RecvBatch {
    /// Bytes per slot: headroom, payload, tailroom.
    slot: usize,
    /// Bytes before the payload in each slot.
    head: usize,
    /// Largest payload per slot.
    payload: usize,
    bufs: Vec<u8>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// Each slot's source address and lengths.
    meta: Vec<Meta>,
    /// Control buffers, `ctrl_words` 8-byte words (aligned for `cmsghdr`) per datagram;
    /// empty unless rx info or destinations are asked for.
    ctrl: Vec<u64>,
    ctrl_words: usize,
    /// Whether receive times and drop counts are read.
    info: bool,
    /// Whether destination addresses are read.
    dst: bool,
    /// Each datagram's kernel receive time (since the Unix epoch), with rx info.
    stamps: Vec<Option<Duration>>,
    /// The socket's drop counter as of the last datagram that carried it.
    drops: Option<u32>,
    /// Each datagram's destination address, with destinations.
    dsts: Vec<Option<Ipv4Addr>>,
}

impl RecvBatch {
    /// A batch of [`BATCH`] slots that each hold a `slot`-byte datagram.
    pub fn new(slot: usize) -> Self {
        Self::with_room(0, slot, 0)
    }

    /// A batch of [`BATCH`] slots that hold a `payload`-byte datagram with `head` bytes of
    /// room before it and `tail` after (for headers written in place).
    pub fn with_room(head: usize, payload: usize, tail: usize) -> Self {
        Self::with_capacity(BATCH, head, payload, tail)
    }

    /// A batch of `batch` (at least 1) slots, each `head + payload + tail` bytes.
    pub fn with_capacity(batch: usize, head: usize, payload: usize, tail: usize) -> Self {
        let batch = batch.max(1);
        let slot = head + payload + tail;
        // SAFETY: iovec is plain old data, for which all-zero is a valid value (a null
        // pointer, a zero length); the pointers are set below.
        let iov: libc::iovec = unsafe { std::mem::zeroed() };
        // SAFETY: as above, for mmsghdr (null pointers, zero lengths).
        let msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let mut b = Self {
            slot,
            head,
            payload,
            bufs: vec![0; slot * batch],
            iovs: vec![iov; batch],
            msgs: vec![msg; batch],
            meta: vec![
                Meta {
                    addr: zeroed_storage(),
                    len: 0,
                    name_len: 0,
                };
                batch
            ],
            ctrl: Vec::new(),
            ctrl_words: 0,
            info: false,
            dst: false,
            stamps: vec![None; batch],
            drops: None,
            dsts: vec![None; batch],
        };
        // Header `i` receives into slot `i`: the pointers go into the heap blocks of
        // `bufs`, `meta` and `iovs`, which never move or grow while the batch lives (a
        // move of the batch moves only the handles).
        let base = b.bufs.as_mut_ptr();
        for i in 0..batch {
            // SAFETY: `i * slot + head` is within `bufs`, which holds `slot * batch` bytes
            // (or is at its end, for a zero-sized payload), and `payload` more bytes from
            // there stay within slot `i`.
            b.iovs[i].iov_base = unsafe { base.add(i * slot + head) }.cast();
            b.iovs[i].iov_len = payload;
            let hdr = &mut b.msgs[i].msg_hdr;
            hdr.msg_name = (&raw mut b.meta[i].addr).cast();
            hdr.msg_namelen = NAME_ROOM;
            hdr.msg_iov = &raw mut b.iovs[i];
            hdr.msg_iovlen = 1;
        }
        b
    }

    /// Also reads each datagram's receive time and the socket's drop count (the socket
    /// needs [`crate::sockopt::enable_rx_info`] or [`crate::sockopt::enable_drop_count`]).
    pub fn with_rx_info(mut self) -> Self {
        self.info = true;
        self.size_ctrl();
        self
    }

    /// Also reads the IPv4 address each datagram was sent to (the socket needs
    /// [`crate::sockopt::enable_pktinfo`]).
    pub fn with_destinations(mut self) -> Self {
        self.dst = true;
        self.size_ctrl();
        self
    }

    /// Control buffers with room for the control messages asked for, one per header.
    fn size_ctrl(&mut self) {
        let mut space = 0;
        if self.info {
            space += cmsg::space(size_of::<libc::timespec>()) + cmsg::space(size_of::<u32>());
        }
        if self.dst {
            space += cmsg::space(size_of::<libc::in_pktinfo>());
        }
        self.ctrl_words = space.div_ceil(8);
        self.ctrl = vec![0; self.ctrl_words * self.msgs.len()];
        let bytes = self.ctrl_words * 8;
        for (h, c) in self
            .msgs
            .iter_mut()
            .zip(self.ctrl.chunks_exact_mut(self.ctrl_words))
        {
            h.msg_hdr.msg_control = c.as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = bytes as _;
        }
    }

    /// Datagrams the batch holds.
    pub fn capacity(&self) -> usize {
        self.msgs.len()
    }

    /// Receives up to a batch of datagrams from `fd` without blocking; answers how many.
    /// `WouldBlock` when none is queued.
    #[inline]
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.recv_at(fd, 0)
    }

    /// Receives into slots `start..` from `fd` without blocking; answers how many.
    /// `WouldBlock` when none is queued; `Ok(0)` when `start` is past the last slot.
    #[inline]
    pub fn recv_at(&mut self, fd: RawFd, start: usize) -> io::Result<usize> {
        self.recv_flags(fd, start, libc::MSG_DONTWAIT)
    }

    /// Receives at least one datagram (blocking up to the socket's read timeout) and as
    /// many more as are already queued, up to the batch size. Returns how many.
    pub fn recv_wait(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.recv_flags(socket.as_raw_fd(), 0, libc::MSG_WAITFORONE)
    }

    /// Receives whatever is queued, up to the batch size, without waiting (0 when nothing
    /// is: an empty queue is not an error here).
    pub fn recv_now(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        match self.recv_at(socket.as_raw_fd(), 0) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            other => other,
        }
    }

    /// One `recvmmsg` into slots `start..` with `flags`.
    #[inline]
    fn recv_flags(&mut self, fd: RawFd, start: usize, flags: libc::c_int) -> io::Result<usize> {
        let batch = self.msgs.len();
        if start >= batch {
            return Ok(0);
        }
        let count = batch - start;
        // Every header's msg_namelen (and msg_controllen) holds the room there is: set so at
        // construction and reset right after the kernel overwrites it (below), so nothing
        // is reset here. A loop over all headers before each call cost ~5 instructions a
        // header, which is more than most calls receive datagrams.
        // SAFETY: headers `start..batch` of `msgs` (`count` of them) each point at one live
        // iovec (into `bufs`, disjoint payload areas of distinct slots), one live
        // sockaddr_storage with its size as msg_namelen and, with control messages, their
        // own `ctrl_words` words of `ctrl` with that size as msg_controllen (or no control
        // buffer); all set up at construction and never moved, and both lengths restored
        // after every receive that changed them. All are owned by `self`,
        // borrowed mutably for the call, which writes only within those bounds. A null
        // timeout is allowed (with MSG_WAITFORONE: wait per the socket's SO_RCVTIMEO).
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr().add(start),
                count as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (n as usize).min(count);
        let payload = self.payload;
        let filled = self.msgs[start..start + n].iter_mut();
        for (meta, hdr) in self.meta[start..start + n].iter_mut().zip(filled) {
            meta.len = (hdr.msg_len as usize).min(payload);
            meta.name_len = hdr.msg_hdr.msg_namelen as usize;
            // The kernel wrote the source's length here: reset it to the room there is.
            hdr.msg_hdr.msg_namelen = NAME_ROOM;
        }
        if self.ctrl_words > 0 {
            self.read_control(start..start + n);
        }
        Ok(n)
    }

    /// Reads the receive times, drop counts and destinations of slots `range`.
    fn read_control(&mut self, range: Range<usize>) {
        for i in range {
            self.stamps[i] = None;
            self.dsts[i] = None;
            #[allow(
                clippy::unnecessary_cast,
                reason = "size_t on glibc, socklen_t on musl"
            )]
            let filled = self.msgs[i].msg_hdr.msg_controllen as usize;
            // Reset to the room there is, for the next receive into this slot.
            self.msgs[i].msg_hdr.msg_controllen = (self.ctrl_words * 8) as _;
            let words = &self.ctrl[i * self.ctrl_words..(i + 1) * self.ctrl_words];
            // The control words as bytes (the same memory; u64 → u8 is always valid).
            let buf = words_as_bytes(words);
            for m in cmsg::messages(buf, filled) {
                match (m.level, m.kind) {
                    (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                        if let Some(ts) = m.read::<libc::timespec>() {
                            self.stamps[i] = Some(Duration::new(
                                u64::try_from(ts.tv_sec).unwrap_or(0),
                                u32::try_from(ts.tv_nsec).unwrap_or(0),
                            ));
                        }
                    }
                    (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => {
                        if let Some(d) = m.read::<u32>() {
                            self.drops = Some(d);
                        }
                    }
                    (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                        if let Some(info) = m.read::<libc::in_pktinfo>() {
                            self.dsts[i] = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Datagram `i` of the last receive and its source; `None` for a source that is not
    /// IPv4 or IPv6.
    #[inline]
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let m = &self.meta[i];
        let from = socket_addr(&m.addr, m.name_len)?;
        let start = i * self.slot + self.head;
        Some((&self.bufs[start..start + m.len], from))
    }

    /// Datagram `i` of the last receive.
    #[inline]
    pub fn packet(&self, i: usize) -> &[u8] {
        let start = i * self.slot + self.head;
        &self.bufs[start..start + self.meta[i].len]
    }

    /// The source of datagram `i` of the last receive; `None` for one that is not IPv4 or
    /// IPv6.
    #[inline]
    pub fn source(&self, i: usize) -> Option<SocketAddr> {
        let m = &self.meta[i];
        socket_addr(&m.addr, m.name_len)
    }

    /// Slot `i` whole (headroom, payload, tailroom), where its datagram lies in it, and the
    /// datagram's source; `None` for a source that is not IPv4 or IPv6.
    #[inline]
    pub fn slot_mut(&mut self, i: usize) -> Option<(&mut [u8], Range<usize>, SocketAddr)> {
        let m = &self.meta[i];
        let from = socket_addr(&m.addr, m.name_len)?;
        let start = i * self.slot;
        let slot = &mut self.bufs[start..start + self.slot];
        Some((slot, self.head..self.head + m.len, from))
    }

    /// The kernel's receive time of datagram `i` of the last receive, since the Unix
    /// epoch (with rx info only).
    pub fn stamp(&self, i: usize) -> Option<Duration> {
        self.stamps.get(i).copied().flatten()
    }

    /// How many datagrams the socket has dropped for want of buffer space, as of the last
    /// datagram that carried the count (the kernel attaches it once there is a drop; with
    /// rx info only).
    pub fn drops(&self) -> Option<u32> {
        self.drops
    }

    /// The IPv4 address datagram `i` of the last receive was sent to, if the kernel said
    /// (with destinations only).
    pub fn destination(&self, i: usize) -> Option<Ipv4Addr> {
        self.dsts.get(i).copied().flatten()
    }

    /// Bytes `range` of slot `i`.
    #[inline]
    pub(crate) fn slot_bytes(&self, i: usize, range: &Range<usize>) -> &[u8] {
        let start = i * self.slot;
        &self.bufs[start..start + self.slot][range.clone()]
    }
}

/// `words` as bytes.
fn words_as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: the pointer and length cover exactly the memory of `words` (8 bytes per
    // u64), every byte of which is initialised, and u8 has no alignment requirement; the
    // borrow keeps `words` alive and unmodified.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

#[cfg(test)]
#[path = "recv_tests.rs"]
mod tests;
