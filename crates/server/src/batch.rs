//! Batched UDP I/O: one `recvmmsg` call takes up to [`BATCH`] datagrams off one or more
//! sockets, one `sendmmsg` call sends a run of datagrams from one socket.
//!
//! Receive: on the client-facing listener sockets many clients' datagrams queue up on one
//! socket, so one syscall and one readiness round trip per batch instead of per datagram
//! (performance.md §2, "recvmmsg batching"); on relay sockets the batch is filled from
//! several sockets in turn ([`RecvBatch::recv_at`]) so that what they produce for the
//! clients leaves in one `sendmmsg` ([`SendBatch`]). Every slot is as large as the largest
//! UDP payload plus the room asked for around it, so nothing is ever truncated; the slots
//! are allocated zeroed (lazily mapped pages), so only the bytes the kernel writes are
//! ever backed by memory.

#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::SockAddr;

use crate::sockopt::socket_addr;

/// Datagrams per `recvmmsg` call.
pub(crate) const BATCH: usize = 32;

/// Receive buffers, addresses and headers for one `recvmmsg` batch.
pub(crate) struct RecvBatch {
    /// Bytes per slot: headroom, payload, tailroom.
    slot: usize,
    /// Bytes before the payload in each slot.
    head: usize,
    /// Largest payload per slot.
    payload: usize,
    bufs: Vec<u8>,
    addrs: Box<[libc::sockaddr_storage; BATCH]>,
    /// The `recvmmsg` headers and their iovecs, set up once (header `i` receives into
    /// slot `i`); a call only resets the address lengths. Zeroing and filling all 32 on
    /// every call cost about a tenth of the worker's user-space instructions per datagram.
    iovs: Box<[libc::iovec; BATCH]>,
    msgs: Box<[libc::mmsghdr; BATCH]>,
    lens: [usize; BATCH],
    /// How many bytes of each `addrs` entry the kernel filled.
    name_lens: [usize; BATCH],
}

impl RecvBatch {
    /// A batch whose slots each hold a `slot`-byte datagram.
    pub(crate) fn new(slot: usize) -> Self {
        Self::with_room(0, slot, 0)
    }

    /// A batch whose slots hold a `payload`-byte datagram with `head` bytes of room
    /// before it and `tail` after (for headers written in place).
    pub(crate) fn with_room(head: usize, payload: usize, tail: usize) -> Self {
        let slot = head + payload + tail;
        // SAFETY (each `zeroed_array`): sockaddr_storage, iovec and mmsghdr are plain old
        // data, for which all-zero is a valid value (null pointers, zero lengths); the
        // headers' pointers and lengths are set below.
        let mut batch = Self {
            slot,
            head,
            payload,
            bufs: vec![0; slot * BATCH],
            addrs: unsafe { zeroed_array() },
            iovs: unsafe { zeroed_array() },
            msgs: unsafe { zeroed_array() },
            lens: [0; BATCH],
            name_lens: [0; BATCH],
        };
        // Header `i` receives into slot `i`: the pointers go into the heap blocks of
        // `bufs`, `addrs` and `iovs`, which never move or grow while the batch lives (a
        // move of the batch moves only the handles).
        let base = batch.bufs.as_mut_ptr();
        for i in 0..BATCH {
            // SAFETY: `i * slot + head` is within `bufs`, which holds `slot * BATCH`
            // bytes, and `payload` more bytes from there stay within slot `i`.
            batch.iovs[i].iov_base = unsafe { base.add(i * slot + head) }.cast();
            batch.iovs[i].iov_len = payload;
            let hdr = &mut batch.msgs[i].msg_hdr;
            hdr.msg_name = (&raw mut batch.addrs[i]).cast();
            hdr.msg_iov = &raw mut batch.iovs[i];
            hdr.msg_iovlen = 1;
        }
        batch
    }

    /// Receives up to [`BATCH`] datagrams from `fd` without blocking; answers how many.
    /// `WouldBlock` when none is queued.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.recv_at(fd, 0)
    }

    /// Receives up to `BATCH - start` datagrams from `fd` into slots `start..`, without
    /// blocking; answers how many. `WouldBlock` when none is queued; `Ok(0)` when
    /// `start` is past the last slot.
    pub(crate) fn recv_at(&mut self, fd: RawFd, start: usize) -> io::Result<usize> {
        if start >= BATCH {
            return Ok(0);
        }
        let count = BATCH - start;
        for msg in &mut self.msgs[start..] {
            // The kernel writes the source's length here: reset it to the room there is.
            msg.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: headers `start..BATCH` of `msgs` (`count` of them) each point at one
        // live iovec (into `bufs`, disjoint payload areas of distinct slots) and one live
        // sockaddr_storage with its size as msg_namelen (set up in `with_room`, never
        // changed but for msg_namelen), and carry no control buffer; all are owned by
        // `self`, borrowed mutably for the call, which writes only within those bounds.
        // MSG_DONTWAIT: never block the worker; a null timeout is allowed.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr().add(start),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (n as usize).min(count);
        for (k, msg) in self.msgs[start..start + n].iter().enumerate() {
            let i = start + k;
            self.lens[i] = (msg.msg_len as usize).min(self.payload);
            self.name_lens[i] = msg.msg_hdr.msg_namelen as usize;
        }
        Ok(n)
    }

    /// Datagram `i` of the last receive and its source; `None` for a source that is not
    /// IPv4 or IPv6.
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let start = i * self.slot + self.head;
        let data = &self.bufs[start..start + self.lens[i]];
        let from = socket_addr(&self.addrs[i], self.name_lens[i])?;
        Some((data, from))
    }

    /// Slot `i` whole (headroom, payload, tailroom), where its datagram lies in it, and
    /// the datagram's source; `None` for a source that is not IPv4 or IPv6.
    pub(crate) fn slot_mut(&mut self, i: usize) -> Option<(&mut [u8], Range<usize>, SocketAddr)> {
        let from = socket_addr(&self.addrs[i], self.name_lens[i])?;
        let start = i * self.slot;
        let slot = &mut self.bufs[start..start + self.slot];
        Some((slot, self.head..self.head + self.lens[i], from))
    }
}

/// A boxed array of `BATCH` all-zero `T`s, made on the heap.
///
/// # Safety
///
/// All-zero bytes must be a valid `T` (plain old data such as the libc socket structs).
unsafe fn zeroed_array<T>() -> Box<[T; BATCH]> {
    // SAFETY: the caller guarantees that all-zero is a valid `T`, so it is a valid array.
    Box::new(unsafe { MaybeUninit::<[T; BATCH]>::zeroed().assume_init() })
}

/// Where the bytes of queued datagrams live: the slots of a [`RecvBatch`], or one flat
/// buffer (slot 0) for answers written one after the other.
pub(crate) trait Slots {
    /// Bytes `range` of slot `i`.
    fn bytes(&self, i: usize, range: &Range<usize>) -> &[u8];
}

impl Slots for RecvBatch {
    fn bytes(&self, i: usize, range: &Range<usize>) -> &[u8] {
        let start = i * self.slot;
        &self.bufs[start..start + self.slot][range.clone()]
    }
}

impl Slots for Vec<u8> {
    fn bytes(&self, _: usize, range: &Range<usize>) -> &[u8] {
        &self[range.clone()]
    }
}

/// One datagram waiting in a [`SendBatch`]: bytes `range` of a [`RecvBatch`] slot, to go
/// from socket `fd` to `to`.
pub(crate) struct Outgoing {
    /// The sending socket.
    pub(crate) fd: RawFd,
    /// The destination.
    pub(crate) to: Destination,
    /// The slot of the [`RecvBatch`] that holds the bytes.
    pub(crate) slot: usize,
    /// Where the bytes are in the slot.
    pub(crate) range: Range<usize>,
    /// The caller's note (the relay, for a datagram to a peer).
    pub(crate) tag: u32,
}

/// Where a datagram goes (a plain `SocketAddr`: the 128-byte `sockaddr_storage` form is
/// built only for a send that names it, never for the connected sends to peers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Destination {
    /// The receiver.
    pub(crate) addr: SocketAddr,
    /// Whether the sending socket is connected to `addr`: the send then names no
    /// destination, so the kernel uses the socket's cached route.
    pub(crate) connected: bool,
}

impl Destination {
    /// A destination named in every send.
    pub(crate) fn to(addr: SocketAddr) -> Self {
        Self {
            addr,
            connected: false,
        }
    }

    /// The destination to name in the send: none on a connected socket.
    pub(crate) fn name(&self) -> Option<SockAddr> {
        (!self.connected).then(|| SockAddr::from(self.addr))
    }
}

/// Datagrams to send, collected while a [`RecvBatch`] is processed and sent with one
/// `sendmmsg` per run of the same socket by [`flush`](Self::flush).
pub(crate) struct SendBatch {
    queue: Vec<Outgoing>,
}

impl SendBatch {
    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// An empty batch.
    pub(crate) fn new() -> Self {
        Self {
            queue: Vec::with_capacity(BATCH),
        }
    }

    /// Queues a datagram; its bytes must stay in the [`RecvBatch`] until the flush.
    pub(crate) fn push(
        &mut self,
        fd: RawFd,
        to: Destination,
        slot: usize,
        range: Range<usize>,
        tag: u32,
    ) {
        self.queue.push(Outgoing {
            fd,
            to,
            slot,
            range,
            tag,
        });
    }

    /// Sends everything queued, one `sendmmsg` per run of the same socket, and empties
    /// the queue. A full socket buffer drops the rest of that run (as a full link
    /// would); a datagram that fails for another reason (a pending ICMP error, say) is
    /// handed to `failed`, and the run goes on after it.
    pub(crate) fn flush(&mut self, rx: &impl Slots, mut failed: impl FnMut(&Outgoing, &[u8])) {
        let mut at = 0;
        while at < self.queue.len() {
            let fd = self.queue[at].fd;
            let end = self.queue[at..]
                .iter()
                .position(|o| o.fd != fd)
                .map_or(self.queue.len(), |k| at + k);
            let mut next = at;
            while next < end {
                let sent = if end - next == 1 {
                    // One datagram: plain sendto costs less than sendmmsg's header
                    // copying (the common case for data to peers: one relay socket each).
                    let o = &self.queue[next];
                    send_one(o.fd, rx.bytes(o.slot, &o.range), o.to.name().as_ref()).map(|_| 1)
                } else {
                    send_run(rx, &self.queue[next..end])
                };
                match sent {
                    // 0: GSO was just turned off; send the same datagrams again.
                    Ok(sent) => next += sent,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        let o = &self.queue[next];
                        failed(o, rx.bytes(o.slot, &o.range));
                        next += 1;
                    }
                }
            }
            at = end;
        }
        self.queue.clear();
    }
}

/// Sends one datagram from `fd` without blocking, to `to` or, with `None`, to the peer
/// the socket is connected to.
pub(crate) fn send_one(fd: RawFd, bytes: &[u8], to: Option<&SockAddr>) -> io::Result<usize> {
    let (name, name_len) = to.map_or((std::ptr::null(), 0), |a| (a.as_ptr(), a.len()));
    // Through syscall(2) rather than glibc's sendto: sendto is a thread-cancellation
    // point, and its wrapper switches the thread's cancel state around every call (about
    // 2 % of the worker's CPU per relayed datagram in a profile). No thread of ours is
    // ever cancelled.
    // SAFETY: `bytes` and the name (null with length 0 for none) are live for the call
    // and given with their lengths; sendto only reads them.
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

/// `UDP_SEGMENT` (linux/udp.h): the segment size of a UDP GSO send.
const UDP_SEGMENT: libc::c_int = 103;
/// Most segments in one GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
const MAX_SEGMENTS: usize = 64;
/// Largest datagram sent with GSO: one that fits a 1500-byte MTU behind IPv6 and UDP
/// headers. The kernel refuses (EINVAL) a segment larger than the route's MTU where a
/// plain send would be fragmented, so larger datagrams go one by one.
const MAX_GSO_SEGMENT: usize = 1452;
/// Most bytes in one GSO send: the largest UDP payload over IPv4.
const MAX_GSO_BYTES: usize = 65_507;
/// Room for one `cmsghdr` carrying a `u16`, as `CMSG_SPACE(2)` rounds it.
const CMSG_U16: usize = 24;

/// Whether UDP GSO is used; cleared for good the first time the kernel refuses it.
static GSO: AtomicBool = AtomicBool::new(true);

/// A `CMSG_U16`-byte control buffer, aligned for `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; CMSG_U16]);

/// One `sendmmsg` of `run` (all from the same socket, at most [`BATCH`] are taken):
/// answers how many datagrams the kernel took.
///
/// UDP GSO (`UDP_SEGMENT`): consecutive datagrams to the same destination, all of the
/// first one's size but the last (which may be shorter), go as one message whose iovecs
/// the kernel cuts into datagrams of that size — one trip through the stack instead of
/// one each. A video frame relayed as a burst of full-size packets is the common case.
fn send_run(rx: &impl Slots, run: &[Outgoing]) -> io::Result<usize> {
    let count = run.len().min(BATCH);
    let gso = GSO.load(Ordering::Relaxed);
    // SAFETY: iovec and mmsghdr are plain old data; all-zero is a valid value (null
    // pointers, zero lengths), and every field the kernel reads is set below.
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let mut controls = [Control([0; CMSG_U16]); BATCH];
    // Each message's destination, where it names one; the headers point into this. Left
    // uninitialised (4 KB of `sockaddr_storage`) but for the entries written below.
    let mut names = [const { MaybeUninit::<SockAddr>::uninit() }; BATCH];
    // Datagrams in each message.
    let mut sizes = [0usize; BATCH];
    let mut messages = 0;
    let mut k = 0;
    while k < count {
        let first = &run[k];
        let seg = first.range.len();
        let mut end = k + 1;
        let mut total = seg;
        if gso && seg > 0 && seg <= MAX_GSO_SEGMENT {
            while end < count
                && end - k < MAX_SEGMENTS
                && run[end].to == first.to
                && run[end].range.len() <= seg
                && !run[end].range.is_empty()
                && total + run[end].range.len() <= MAX_GSO_BYTES
            {
                total += run[end].range.len();
                end += 1;
                // Only the last segment may be shorter.
                if run[end - 1].range.len() < seg {
                    break;
                }
            }
        }
        for (i, o) in run[k..end].iter().enumerate() {
            let bytes = rx.bytes(o.slot, &o.range);
            // The kernel only reads through this pointer (sendmmsg), so the cast away
            // from const is never written through.
            iovs[k + i].iov_base = bytes.as_ptr().cast_mut().cast();
            iovs[k + i].iov_len = bytes.len();
        }
        let hdr = &mut msgs[messages].msg_hdr;
        if let Some(to) = first.to.name() {
            let to = names[messages].write(to);
            hdr.msg_name = to.as_ptr().cast_mut().cast();
            hdr.msg_namelen = to.len();
        }
        hdr.msg_iov = &raw mut iovs[k];
        hdr.msg_iovlen = end - k;
        if end - k > 1 {
            let control = &mut controls[messages];
            hdr.msg_control = control.0.as_mut_ptr().cast();
            hdr.msg_controllen = CMSG_U16 as _;
            // SAFETY: the control buffer is CMSG_U16 bytes, aligned for cmsghdr and
            // large enough for CMSG_SPACE(2) (the length set just above), so
            // CMSG_FIRSTHDR is non-null and the header and its 2 data bytes lie within it.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(hdr);
                (*cmsg).cmsg_level = libc::SOL_UDP;
                (*cmsg).cmsg_type = UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(2) as _;
                libc::CMSG_DATA(cmsg)
                    .cast::<u16>()
                    .write_unaligned(seg as u16);
            }
        }
        sizes[messages] = end - k;
        messages += 1;
        k = end;
    }
    // SAFETY: the first `messages` headers each point at live iovecs over bytes borrowed
    // from `rx`, at a live socket address of the length given and, for GSO, at a live
    // control buffer of the length given; sendmmsg only reads them, and all outlive the
    // call. MSG_DONTWAIT: never block the worker.
    let n = unsafe {
        libc::sendmmsg(
            run[0].fd,
            msgs.as_mut_ptr(),
            messages as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if n == 0 {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    if n < 0 {
        let e = io::Error::last_os_error();
        // A kernel or device without UDP GSO: stop asking; the caller retries the
        // datagram, this time alone.
        if gso
            && sizes[0] > 1
            && matches!(
                e.raw_os_error(),
                Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT)
            )
        {
            GSO.store(false, Ordering::Relaxed);
            return Ok(0);
        }
        return Err(e);
    }
    Ok(sizes[..n as usize].iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn receives_a_batch_with_sources() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        a.send_to(b"one", to).unwrap();
        b.send_to(&[7u8; 1500], to).unwrap();
        a.send_to(b"", to).unwrap();
        let mut batch = RecvBatch::new(2048);
        let n = batch.recv(rx.as_raw_fd()).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            batch.get(0).unwrap(),
            (&b"one"[..], a.local_addr().unwrap())
        );
        assert_eq!(
            batch.get(1).unwrap(),
            (&[7u8; 1500][..], b.local_addr().unwrap())
        );
        assert_eq!(batch.get(2).unwrap(), (&b""[..], a.local_addr().unwrap()));
        let err = batch.recv(rx.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    /// Fills slot `i` of a fresh batch with `data` by receiving it.
    fn loaded(datagrams: &[Vec<u8>]) -> RecvBatch {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for d in datagrams {
            tx.send_to(d, rx.local_addr().unwrap()).unwrap();
        }
        let mut batch = RecvBatch::with_room(4, 2048, 4);
        let mut got = 0;
        while got < datagrams.len() {
            got += batch.recv_at(rx.as_raw_fd(), got).unwrap();
        }
        batch
    }

    fn recv_all(socket: &std::net::UdpSocket, n: usize) -> Vec<Vec<u8>> {
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        (0..n)
            .map(|_| {
                let mut buf = [0u8; 4096];
                let len = socket.recv(&mut buf).unwrap();
                buf[..len].to_vec()
            })
            .collect()
    }

    #[test]
    fn send_batch_keeps_datagram_boundaries_across_gso_runs() {
        // A burst of equal datagrams with a shorter last one (one GSO message), then
        // datagrams to another destination and of other sizes.
        let mut data: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1200]).collect();
        data.push(vec![9; 300]);
        data.push(vec![10; 1200]);
        data.push(vec![11; 100]);
        data.push(vec![12; 100]);
        let batch = loaded(&data);
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let out = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sends = SendBatch::new();
        for (i, d) in data.iter().enumerate() {
            let to = if i == 7 {
                b.local_addr()
            } else {
                a.local_addr()
            }
            .unwrap();
            sends.push(out.as_raw_fd(), Destination::to(to), i, 4..4 + d.len(), 0);
        }
        let mut failures = 0;
        sends.flush(&batch, |_, _| failures += 1);
        assert_eq!(failures, 0);
        // The kernel took the GSO messages (Linux ≥ 4.18 on loopback).
        assert!(GSO.load(Ordering::Relaxed), "UDP GSO was refused");
        let mut expected_a = data.clone();
        let expected_b = vec![expected_a.remove(7)];
        assert_eq!(recv_all(&a, expected_a.len()), expected_a);
        assert_eq!(recv_all(&b, 1), expected_b);
        // Nothing more: no datagram was merged or duplicated.
        a.set_nonblocking(true).unwrap();
        assert!(a.recv(&mut [0u8; 16]).is_err());
    }

    #[test]
    fn ipv6_sources() {
        let Ok(rx) = std::net::UdpSocket::bind("[::1]:0") else {
            return;
        };
        let a = std::net::UdpSocket::bind("[::1]:0").unwrap();
        a.send_to(b"six", rx.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(64);
        assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 1);
        assert_eq!(
            batch.get(0).unwrap(),
            (&b"six"[..], a.local_addr().unwrap())
        );
    }

    /// The headers are set up once and kept: a batch that was moved, and that receives
    /// into the same slots again (from an IPv6 source after IPv4 ones, whose addresses
    /// are shorter), reports each call's datagrams and sources, not the last call's.
    #[test]
    fn reused_and_moved_batch_reports_each_calls_datagrams() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let batch = RecvBatch::with_room(4, 256, 4);
        let mut moved = vec![batch];
        let mut batch = moved.pop().unwrap();
        for round in 0..3u8 {
            a.send_to(&[round; 10], to).unwrap();
            a.send_to(&[round; 200], to).unwrap();
            assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 2);
            assert_eq!(
                batch.get(0).unwrap(),
                (&[round; 10][..], a.local_addr().unwrap())
            );
            assert_eq!(
                batch.get(1).unwrap(),
                (&[round; 200][..], a.local_addr().unwrap())
            );
            // Later slots of the same batch, as the relay poller fills them.
            a.send_to(b"after", to).unwrap();
            assert_eq!(batch.recv_at(rx.as_raw_fd(), 2).unwrap(), 1);
            assert_eq!(
                batch.get(2).unwrap(),
                (&b"after"[..], a.local_addr().unwrap())
            );
            assert_eq!(batch.get(0).unwrap().0, &[round; 10][..]);
        }
        let Ok(rx6) = std::net::UdpSocket::bind("[::]:0") else {
            return;
        };
        let port = rx6.local_addr().unwrap().port();
        a.send_to(b"four", ("127.0.0.1", port)).unwrap();
        let b = std::net::UdpSocket::bind("[::1]:0").unwrap();
        b.send_to(b"six", ("::1", port)).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            let n = batch.recv(rx6.as_raw_fd()).unwrap();
            for i in 0..n {
                let (data, from) = batch.get(i).unwrap();
                got.push((data.to_vec(), from));
            }
        }
        got.sort();
        assert_eq!(got[0].0, b"four");
        assert_eq!(got[0].1.port(), a.local_addr().unwrap().port());
        assert_eq!(got[1], (b"six".to_vec(), b.local_addr().unwrap()));
    }
}
