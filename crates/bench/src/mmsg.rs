//! Batched receive with `recvmmsg(2)` and batched send with `sendmmsg(2)` on Linux (one
//! syscall for up to a batch of datagrams; elsewhere, or with a batch of 1, plain
//! `recv`/`send`), with the control messages the bench uses: kernel receive times and
//! drop counts, `IP_PKTINFO` source addresses (sending as any local IPv4 address) and
//! destination addresses (which address a datagram was sent to), UDP GSO. Also pinning a
//! thread to a CPU, and a thread's CPU time.
#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// Receive buffers for up to `batch` datagrams of at most `slot` bytes.
///
/// With [`RecvBatch::with_rx_info`] (on a socket set up by [`enable_rx_info`]), each
/// datagram also comes with the kernel's receive time and the socket's count of datagrams
/// dropped for want of buffer space; with [`RecvBatch::with_destinations`] (on a socket
/// set up by [`crate::sys::enable_pktinfo`]), with the IPv4 address it was sent to.
pub struct RecvBatch {
    buf: Vec<u8>,
    slot: usize,
    lens: Vec<usize>,
    /// Each datagram's kernel receive time (since the Unix epoch), with rx info.
    stamps: Vec<Option<Duration>>,
    /// The socket's drop counter as of the last datagram that carried it.
    drops: Option<u32>,
    /// Each datagram's destination address, with destinations.
    dsts: Vec<Option<Ipv4Addr>>,
    info: bool,
    dst: bool,
    /// Only kept alive: every `hdr` entry points at one of these.
    #[cfg(target_os = "linux")]
    _iov: Vec<libc::iovec>,
    /// Control buffers, `ctrl_words` 8-byte words (aligned for `cmsghdr`) per datagram.
    #[cfg(target_os = "linux")]
    ctrl: Vec<u64>,
    #[cfg(target_os = "linux")]
    ctrl_words: usize,
    #[cfg(target_os = "linux")]
    hdr: Vec<libc::mmsghdr>,
}

/// Asks the kernel to stamp each datagram received on `socket` with its receive time
/// (`SO_TIMESTAMPNS`) and to report the socket's drop count (`SO_RXQ_OVFL`), for a
/// [`RecvBatch::with_rx_info`].
pub fn enable_rx_info(socket: &UdpSocket) -> io::Result<()> {
    enable_rx(socket, true)
}

/// Asks the kernel to report `socket`'s drop count (`SO_RXQ_OVFL`) but not receive times
/// (cheaper where the times are not needed), for a [`RecvBatch::with_rx_info`].
pub fn enable_drop_count(socket: &UdpSocket) -> io::Result<()> {
    enable_rx(socket, false)
}

fn enable_rx(socket: &UdpSocket, times: bool) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let opts: &[libc::c_int] = if times {
            &[libc::SO_TIMESTAMPNS, libc::SO_RXQ_OVFL]
        } else {
            &[libc::SO_RXQ_OVFL]
        };
        for &opt in opts {
            crate::sys::setsockopt_int(socket.as_raw_fd(), libc::SOL_SOCKET, opt, 1)?;
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (socket, times);
        Err(io::Error::new(io::ErrorKind::Unsupported, "needs Linux"))
    }
}

/// `CMSG_SPACE` of `len` bytes of data.
#[cfg(target_os = "linux")]
fn cmsg_space(len: usize) -> usize {
    let len = u32::try_from(len).unwrap_or(0);
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE(len) as usize }
}

/// `CMSG_LEN` of `len` bytes of data.
#[cfg(target_os = "linux")]
fn cmsg_len(len: usize) -> usize {
    let len = u32::try_from(len).unwrap_or(0);
    // SAFETY: CMSG_LEN only computes a size.
    unsafe { libc::CMSG_LEN(len) as usize }
}

impl RecvBatch {
    /// Buffers for `batch` (at least 1) datagrams of up to `slot` bytes each.
    pub fn new(batch: usize, slot: usize) -> Self {
        let batch = batch.max(1);
        let mut buf = vec![0u8; batch * slot];
        #[cfg(target_os = "linux")]
        let mut iov: Vec<libc::iovec> = buf
            .chunks_exact_mut(slot)
            .map(|c| libc::iovec {
                iov_base: c.as_mut_ptr().cast(),
                iov_len: slot,
            })
            .collect();
        #[cfg(target_os = "linux")]
        let hdr = iov
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is a plain C struct of integers and pointers, for which
                // all-zero bytes are a valid value (null pointers, zero lengths).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = std::ptr::from_mut(iov);
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        #[cfg(not(target_os = "linux"))]
        let _ = &mut buf;
        Self {
            buf,
            slot,
            lens: vec![0; batch],
            stamps: vec![None; batch],
            drops: None,
            dsts: vec![None; batch],
            info: false,
            dst: false,
            #[cfg(target_os = "linux")]
            _iov: iov,
            #[cfg(target_os = "linux")]
            ctrl: Vec::new(),
            #[cfg(target_os = "linux")]
            ctrl_words: 0,
            #[cfg(target_os = "linux")]
            hdr,
        }
    }

    /// Also reads each datagram's receive time and the socket's drop count (Linux; the
    /// socket needs [`enable_rx_info`]).
    pub fn with_rx_info(mut self) -> Self {
        #[cfg(target_os = "linux")]
        {
            self.info = true;
            self.size_ctrl();
        }
        self
    }

    /// Also reads the IPv4 address each datagram was sent to (Linux; the socket needs
    /// [`crate::sys::enable_pktinfo`]).
    pub fn with_destinations(mut self) -> Self {
        #[cfg(target_os = "linux")]
        {
            self.dst = true;
            self.size_ctrl();
        }
        self
    }

    /// Control buffers with room for the control messages asked for.
    #[cfg(target_os = "linux")]
    fn size_ctrl(&mut self) {
        let mut space = 0;
        if self.info {
            space += cmsg_space(size_of::<libc::timespec>()) + cmsg_space(size_of::<u32>());
        }
        if self.dst {
            space += cmsg_space(size_of::<libc::in_pktinfo>());
        }
        self.ctrl_words = space.div_ceil(8);
        self.ctrl = vec![0; self.ctrl_words * self.lens.len()];
    }

    /// Receives at least one datagram (blocking up to the socket's read timeout) and
    /// as many more as are already queued, up to the batch size. Returns how many.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.recv_flags(socket, true)
    }

    /// Receives whatever is queued, up to the batch size, without waiting (0 when
    /// nothing is: an empty queue is not an error here).
    pub fn recv_now(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        match self.recv_flags(socket, false) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            other => other,
        }
    }

    fn recv_flags(&mut self, socket: &UdpSocket, wait: bool) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if self.lens.len() > 1 || self.ctrl_words > 0 || !wait {
            use std::os::fd::AsRawFd;
            let vlen = u32::try_from(self.hdr.len()).unwrap_or(u32::MAX);
            if self.ctrl_words > 0 {
                let bytes = self.ctrl_words * 8;
                for (h, c) in self
                    .hdr
                    .iter_mut()
                    .zip(self.ctrl.chunks_exact_mut(self.ctrl_words))
                {
                    h.msg_hdr.msg_control = c.as_mut_ptr().cast();
                    h.msg_hdr.msg_controllen = bytes as _;
                }
            }
            let flags = if wait {
                libc::MSG_WAITFORONE
            } else {
                libc::MSG_DONTWAIT
            };
            // SAFETY: `hdr` holds `vlen` initialised mmsghdrs whose single iovec each
            // points into `buf`, a live heap allocation of `slot` bytes per entry that
            // is neither moved nor resized while `self` lives (the Vecs' heap buffers
            // stay put when `self` moves); with control messages each also points at its
            // own `ctrl_words`-word chunk of `ctrl`, its length set just above. The kernel
            // writes at most `iov_len` bytes per entry and `msg_controllen` control bytes,
            // and sets `msg_len`; `&mut self` guarantees no other access meanwhile.
            // A null timeout means "wait per the socket's SO_RCVTIMEO for the first".
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    self.hdr.as_mut_ptr(),
                    vlen,
                    flags,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = usize::try_from(n).unwrap_or(0);
            for (len, h) in self.lens.iter_mut().zip(&self.hdr).take(n) {
                *len = h.msg_len as usize;
            }
            if self.ctrl_words > 0 {
                let stamp_len = cmsg_len(size_of::<libc::timespec>());
                let drops_len = cmsg_len(size_of::<u32>());
                let info_len = cmsg_len(size_of::<libc::in_pktinfo>());
                for i in 0..n {
                    self.stamps[i] = None;
                    self.dsts[i] = None;
                    let h = &self.hdr[i].msg_hdr;
                    // SAFETY: the kernel filled `msg_controllen` bytes of this entry's
                    // `ctrl` chunk (at most its size, and `MSG_CTRUNC` cuts anything
                    // longer) with well-formed cmsghdrs; CMSG_FIRSTHDR and CMSG_NXTHDR
                    // stay within that length and return null past it. The data of the
                    // three kinds read is a timespec, a u32 and an in_pktinfo, each
                    // checked against the header's length before an unaligned read
                    // inside the buffer.
                    unsafe {
                        let mut c = libc::CMSG_FIRSTHDR(h);
                        while !c.is_null() {
                            let data = libc::CMSG_DATA(c);
                            let len = (*c).cmsg_len as usize;
                            let level = (*c).cmsg_level;
                            let kind = (*c).cmsg_type;
                            if level == libc::SOL_SOCKET
                                && kind == libc::SCM_TIMESTAMPNS
                                && len >= stamp_len
                            {
                                let ts: libc::timespec = std::ptr::read_unaligned(data.cast());
                                self.stamps[i] = Some(Duration::new(
                                    u64::try_from(ts.tv_sec).unwrap_or(0),
                                    u32::try_from(ts.tv_nsec).unwrap_or(0),
                                ));
                            } else if level == libc::SOL_SOCKET
                                && kind == libc::SO_RXQ_OVFL
                                && len >= drops_len
                            {
                                self.drops = Some(std::ptr::read_unaligned(data.cast()));
                            } else if level == libc::IPPROTO_IP
                                && kind == libc::IP_PKTINFO
                                && len >= info_len
                            {
                                let info: libc::in_pktinfo = std::ptr::read_unaligned(data.cast());
                                self.dsts[i] =
                                    Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
                            }
                            c = libc::CMSG_NXTHDR(h, c);
                        }
                    }
                }
            }
            return Ok(n);
        }
        let n = socket.recv(&mut self.buf[..self.slot])?;
        self.lens[0] = n;
        Ok(1)
    }

    /// The `i`th datagram of the last [`RecvBatch::recv`].
    pub fn packet(&self, i: usize) -> &[u8] {
        let start = i * self.slot;
        &self.buf[start..start + self.lens[i].min(self.slot)]
    }

    /// The kernel's receive time of the `i`th datagram of the last receive, since the
    /// Unix epoch (with rx info only).
    pub fn stamp(&self, i: usize) -> Option<Duration> {
        self.stamps.get(i).copied().flatten()
    }

    /// How many datagrams the socket has dropped for want of buffer space, as of the
    /// last datagram that carried the count (the kernel attaches it once there is a
    /// drop; with rx info only).
    pub fn drops(&self) -> Option<u32> {
        self.drops
    }

    /// The IPv4 address the `i`th datagram of the last receive was sent to, if the
    /// kernel said (with destinations only).
    pub fn destination(&self, i: usize) -> Option<Ipv4Addr> {
        self.dsts.get(i).copied().flatten()
    }
}

/// Datagrams queued for one `sendmmsg(2)` call.
///
/// Each datagram is a head copied into the batch (up to the slot size given to
/// [`SendBatch::new`]) followed by a borrowed tail (the bench's zero filler), with an
/// optional destination (for unconnected sockets) and an optional IPv4 source address,
/// sent as an `IP_PKTINFO` control message (`ipi_spec_dst`): one socket bound to the
/// wildcard address can then send as many loopback addresses.
///
/// With UDP GSO on ([`SendBatch::set_gso`]), consecutive datagrams of one size to the
/// same destination from the same source go as one message with a `UDP_SEGMENT`
/// control message, which the kernel cuts into datagrams of that size after one trip
/// through the stack instead of one trip each. The receiver sees the same datagrams.
pub struct SendBatch<'a> {
    slot: usize,
    heads: Vec<u8>,
    head_lens: Vec<usize>,
    tails: Vec<&'a [u8]>,
    /// Datagrams queued.
    len: usize,
    /// Messages: consecutive datagrams sent as one (GSO) or alone.
    msgs: Vec<Msg>,
    gso: bool,
    #[cfg(target_os = "linux")]
    sys: SysBatch,
}

/// One message of a [`SendBatch`]: `count` datagrams from `first` on.
#[derive(Debug, Clone, Copy)]
struct Msg {
    first: usize,
    count: usize,
    /// Each datagram's length (all equal).
    size: usize,
    dest: Option<SocketAddr>,
    src: Option<Ipv4Addr>,
}

/// The kernel-facing arrays of a [`SendBatch`], filled just before each call.
#[cfg(target_os = "linux")]
struct SysBatch {
    /// Two per datagram: head and tail.
    iov: Vec<libc::iovec>,
    names: Vec<RawAddr>,
    ctrl: Vec<CmsgBuf>,
    hdr: Vec<libc::mmsghdr>,
}

/// A socket address as the kernel takes it.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy)]
#[repr(C)]
union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

/// Room for an `IP_PKTINFO` and a `UDP_SEGMENT` control message, aligned for `cmsghdr`.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_BUF]);

/// [`CmsgBuf`]'s size: CMSG_SPACE(12) + CMSG_SPACE(2) is 32 + 24 on 64-bit Linux.
#[cfg(target_os = "linux")]
const CMSG_BUF: usize = 64;

/// What one [`SendBatch::send`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams that failed (a refused message loses its datagrams).
    pub errors: usize,
    /// System calls made.
    pub calls: usize,
}

/// Most datagrams in one batch of the load engine (`--send-batch`).
pub const MAX_SEND_BATCH: usize = 512;
/// Most datagrams one [`SendBatch`] holds: the kernel's `UIO_MAXIOV`, the most messages
/// one `sendmmsg` call takes and the most iovecs per message (a GSO message takes two per
/// datagram, and holds at most 64 datagrams).
pub const SENDMMSG_MAX: usize = 1024;
/// `UDP_SEGMENT` (linux/udp.h): the segment size of a UDP GSO send.
#[cfg(target_os = "linux")]
const UDP_SEGMENT: libc::c_int = 103;
/// Most datagrams in one GSO message (the kernel's `UDP_MAX_SEGMENTS`, 64 on older
/// kernels).
const GSO_MAX_SEGMENTS: usize = 64;
/// Largest datagram sent with GSO: one that fits a 1500-byte MTU behind IPv6 and UDP
/// headers (the kernel refuses a segment larger than the route's MTU).
const GSO_MAX_SEGMENT: usize = 1452;
/// Most bytes in one GSO message: the largest UDP payload over IPv4.
const GSO_MAX_BYTES: usize = 65_507;

impl<'a> SendBatch<'a> {
    /// Room for `batch` (1..=[`SENDMMSG_MAX`]) datagrams with heads of up to `slot`
    /// bytes; GSO off.
    pub fn new(batch: usize, slot: usize) -> Self {
        let batch = batch.clamp(1, SENDMMSG_MAX);
        Self {
            slot,
            heads: vec![0; batch * slot],
            head_lens: vec![0; batch],
            tails: vec![&[]; batch],
            len: 0,
            msgs: Vec::with_capacity(batch),
            gso: false,
            #[cfg(target_os = "linux")]
            sys: SysBatch {
                iov: vec![
                    libc::iovec {
                        iov_base: std::ptr::null_mut(),
                        iov_len: 0,
                    };
                    2 * batch
                ],
                // SAFETY: sockaddr_in and sockaddr_in6 are plain C structs of integers,
                // for which all-zero bytes are valid.
                names: vec![unsafe { std::mem::zeroed::<RawAddr>() }; batch],
                ctrl: vec![CmsgBuf([0; CMSG_BUF]); batch],
                // SAFETY: mmsghdr is a plain C struct of integers and pointers, for which
                // all-zero bytes are a valid value (null pointers, zero lengths).
                hdr: vec![unsafe { std::mem::zeroed::<libc::mmsghdr>() }; batch],
            },
        }
    }

    /// Turns UDP GSO on or off (on only where [`gso_available`]).
    pub fn set_gso(&mut self, on: bool) {
        self.gso = on && gso_available();
    }

    /// Whether GSO is on.
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// How many datagrams are queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the batch is full (send it before pushing more).
    pub fn is_full(&self) -> bool {
        self.len == self.head_lens.len()
    }

    /// Queues a datagram `head ++ tail` (the head is copied, cut to the slot size) to
    /// `dest` (None: the connected peer) from `src` (None: the socket's own address).
    /// Returns the copied head, to fill in; `None` when the batch is full.
    pub fn push(
        &mut self,
        head: &[u8],
        tail: &'a [u8],
        dest: Option<SocketAddr>,
        src: Option<Ipv4Addr>,
    ) -> Option<&mut [u8]> {
        if self.is_full() {
            return None;
        }
        let i = self.len;
        let n = head.len().min(self.slot);
        let size = n + tail.len();
        let joins = self.gso
            && size > 0
            && size <= GSO_MAX_SEGMENT
            && self.msgs.last().is_some_and(|m| {
                m.size == size
                    && m.dest == dest
                    && m.src == src
                    && m.count < GSO_MAX_SEGMENTS
                    && (m.count + 1) * size <= GSO_MAX_BYTES
            });
        match self.msgs.last_mut() {
            Some(m) if joins => m.count += 1,
            _ => self.msgs.push(Msg {
                first: i,
                count: 1,
                size,
                dest,
                src,
            }),
        }
        let at = i * self.slot;
        self.heads[at..at + n].copy_from_slice(&head[..n]);
        self.head_lens[i] = n;
        self.tails[i] = tail;
        self.len += 1;
        Some(&mut self.heads[at..at + n])
    }

    /// The queued heads, in order, to update just before sending (send timestamps).
    pub fn heads_mut(&mut self) -> impl Iterator<Item = &mut [u8]> {
        self.heads
            .chunks_exact_mut(self.slot)
            .zip(&self.head_lens)
            .take(self.len)
            .map(|(c, &n)| &mut c[..n])
    }

    /// Drops every queued datagram.
    pub fn clear(&mut self) {
        self.len = 0;
        self.msgs.clear();
    }

    /// Sends every queued datagram on `socket` (as few `sendmmsg` calls as the kernel
    /// allows; a message the kernel refuses is counted and skipped) and empties the batch.
    /// A refused GSO message turns GSO off for this batch.
    pub fn send(&mut self, socket: &UdpSocket) -> SendOutcome {
        self.send_msgs(socket, false).0
    }

    /// For a non-blocking `socket`: sends the queued datagrams in order until the kernel
    /// refuses one (a full socket buffer, or an error) and empties the batch; returns how
    /// many were sent. The error comes back only when nothing was sent and the socket's
    /// buffer was not simply full (then `Ok(0)`).
    pub fn send_until_blocked(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        match self.send_msgs(socket, true) {
            (out, Some(e)) if out.sent == 0 && e.kind() != io::ErrorKind::WouldBlock => Err(e),
            (out, _) => Ok(out.sent),
        }
    }

    /// [`SendBatch::send`], or with `stop` [`SendBatch::send_until_blocked`]: then the
    /// first refusal ends the call, and is returned.
    fn send_msgs(&mut self, socket: &UdpSocket, stop: bool) -> (SendOutcome, Option<io::Error>) {
        let mut out = SendOutcome::default();
        let mut refused = None;
        if self.len == 0 {
            return (out, refused);
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            self.fill_sys();
            let mut at = 0;
            while at < self.msgs.len() {
                let left = u32::try_from(self.msgs.len() - at).unwrap_or(u32::MAX);
                out.calls += 1;
                // SAFETY: `hdr[at..msgs.len()]` are initialised mmsghdrs (filled by
                // `fill_sys` just above) whose pointers reach into `heads`, `tails`
                // (borrowed for 'a, outliving `self`), `iov`, `names` and `ctrl`, all live
                // and unmoved for the duration of the call (`&mut self` is held). The
                // kernel only reads them, apart from writing each entry's `msg_len`.
                let r = unsafe {
                    libc::sendmmsg(socket.as_raw_fd(), self.sys.hdr[at..].as_mut_ptr(), left, 0)
                };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    let m = self.msgs[at];
                    if m.count > 1 && matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIO)) {
                        self.gso = false;
                    }
                    if stop {
                        refused = Some(e);
                        break;
                    }
                    out.errors += m.count;
                    at += 1;
                } else {
                    let r = usize::try_from(r).unwrap_or(0).max(1);
                    out.sent += self.msgs[at..at + r].iter().map(|m| m.count).sum::<usize>();
                    at += r;
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let mut scratch = Vec::new();
            'msgs: for m in &self.msgs {
                for i in m.first..m.first + m.count {
                    scratch.clear();
                    let at = i * self.slot;
                    scratch.extend_from_slice(&self.heads[at..at + self.head_lens[i]]);
                    scratch.extend_from_slice(self.tails[i]);
                    out.calls += 1;
                    let r = match m.dest {
                        Some(d) => socket.send_to(&scratch, d),
                        None => socket.send(&scratch),
                    };
                    match r {
                        Ok(_) => out.sent += 1,
                        Err(e) if stop => {
                            refused = Some(e);
                            break 'msgs;
                        }
                        Err(_) => out.errors += 1,
                    }
                }
            }
        }
        self.clear();
        (out, refused)
    }

    /// Points the kernel-facing arrays at the queued datagrams.
    #[cfg(target_os = "linux")]
    fn fill_sys(&mut self) {
        let info_space = cmsg_space(size_of::<libc::in_pktinfo>());
        let info_cmsg = cmsg_len(size_of::<libc::in_pktinfo>());
        let seg_space = cmsg_space(size_of::<u16>());
        let seg_cmsg = cmsg_len(size_of::<u16>());
        let sys = &mut self.sys;
        for i in 0..self.len {
            let at = i * self.slot;
            sys.iov[2 * i] = libc::iovec {
                iov_base: self.heads[at..].as_mut_ptr().cast(),
                iov_len: self.head_lens[i],
            };
            sys.iov[2 * i + 1] = libc::iovec {
                // The kernel only reads through this pointer (sendmmsg).
                iov_base: self.tails[i].as_ptr().cast_mut().cast(),
                iov_len: self.tails[i].len(),
            };
        }
        for (k, m) in self.msgs.iter().enumerate() {
            let h = &mut sys.hdr[k].msg_hdr;
            h.msg_iov = &raw mut sys.iov[2 * m.first];
            h.msg_iovlen = 2 * m.count;
            match m.dest {
                None => {
                    h.msg_name = std::ptr::null_mut();
                    h.msg_namelen = 0;
                }
                Some(SocketAddr::V4(a)) => {
                    sys.names[k].v4 = libc::sockaddr_in {
                        sin_family: libc::AF_INET as libc::sa_family_t,
                        sin_port: a.port().to_be(),
                        sin_addr: libc::in_addr {
                            s_addr: u32::from(*a.ip()).to_be(),
                        },
                        sin_zero: [0; 8],
                    };
                    h.msg_name = (&raw mut sys.names[k]).cast();
                    h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
                }
                Some(SocketAddr::V6(a)) => {
                    sys.names[k].v6 = libc::sockaddr_in6 {
                        sin6_family: libc::AF_INET6 as libc::sa_family_t,
                        sin6_port: a.port().to_be(),
                        sin6_flowinfo: a.flowinfo().to_be(),
                        sin6_addr: libc::in6_addr {
                            s6_addr: a.ip().octets(),
                        },
                        sin6_scope_id: a.scope_id(),
                    };
                    h.msg_name = (&raw mut sys.names[k]).cast();
                    h.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
                }
            }
            let space = m.src.map_or(0, |_| info_space) + if m.count > 1 { seg_space } else { 0 };
            if space == 0 {
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            } else {
                let buf = &mut sys.ctrl[k];
                buf.0.fill(0);
                h.msg_control = buf.0.as_mut_ptr().cast();
                h.msg_controllen = space as _;
                // SAFETY: `h.msg_control` points at `ctrl[k]`, CMSG_BUF (64) bytes aligned
                // for cmsghdr and zeroed, and `msg_controllen` (at most CMSG_SPACE of an
                // in_pktinfo plus CMSG_SPACE of a u16, 56) fits in it. CMSG_FIRSTHDR then
                // points at its start; CMSG_NXTHDR, given the first header's length,
                // points CMSG_SPACE(12) further, still inside (it returns null only when
                // the next header would not fit in `msg_controllen`, checked). Each
                // header and its CMSG_DATA lie inside `ctrl[k]`; the data may be
                // unaligned for its type, so it is written unaligned.
                unsafe {
                    let mut c = libc::CMSG_FIRSTHDR(h);
                    if let Some(src) = m.src {
                        (*c).cmsg_level = libc::IPPROTO_IP;
                        (*c).cmsg_type = libc::IP_PKTINFO;
                        (*c).cmsg_len = info_cmsg as _;
                        let info = libc::in_pktinfo {
                            ipi_ifindex: 0,
                            ipi_spec_dst: libc::in_addr {
                                s_addr: u32::from(src).to_be(),
                            },
                            ipi_addr: libc::in_addr { s_addr: 0 },
                        };
                        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
                        c = libc::CMSG_NXTHDR(h, c);
                    }
                    if m.count > 1 && !c.is_null() {
                        (*c).cmsg_level = libc::SOL_UDP;
                        (*c).cmsg_type = UDP_SEGMENT;
                        (*c).cmsg_len = seg_cmsg as _;
                        let seg = u16::try_from(m.size).unwrap_or(u16::MAX);
                        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), seg);
                    }
                }
            }
            sys.hdr[k].msg_len = 0;
        }
    }
}

/// Whether this kernel takes UDP GSO (`UDP_SEGMENT`): probed once with two datagrams
/// over loopback.
pub fn gso_available() -> bool {
    static PROBE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROBE.get_or_init(|| {
        #[cfg(target_os = "linux")]
        {
            let probe = || -> io::Result<bool> {
                let rx = UdpSocket::bind("127.0.0.1:0")?;
                rx.set_read_timeout(Some(Duration::from_millis(200)))?;
                let tx = UdpSocket::bind("127.0.0.1:0")?;
                tx.connect(rx.local_addr()?)?;
                let tail = [0u8; 4];
                let mut b = SendBatch::new(2, 4);
                b.gso = true;
                let _ = b.push(&[1, 2, 3, 4], &tail, None, None);
                let _ = b.push(&[5, 6, 7, 8], &tail, None, None);
                if b.msgs.len() != 1 || b.send(&tx).sent != 2 {
                    return Ok(false);
                }
                let mut buf = [0u8; 64];
                let first = rx.recv(&mut buf)?;
                let second = rx.recv(&mut buf)?;
                Ok(first == 8 && second == 8 && buf[..4] == [5, 6, 7, 8])
            };
            probe().unwrap_or(false)
        }
        #[cfg(not(target_os = "linux"))]
        false
    })
}

/// The CPU time the calling thread has used (user and system).
pub fn thread_cpu_time() -> Duration {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the
        // kernel knows.
        let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
        if r == 0 {
            return Duration::new(
                u64::try_from(ts.tv_sec).unwrap_or(0),
                u32::try_from(ts.tv_nsec).unwrap_or(0),
            );
        }
    }
    Duration::ZERO
}

/// Pins the calling thread to `cpu` (Linux; elsewhere an `Unsupported` error).
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        if cpu >= 8 * size_of::<libc::cpu_set_t>() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "CPU number too large",
            ));
        }
        // SAFETY: cpu_set_t is a plain bitmask; all-zero bytes are the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is below the set's size in bits (checked above), so CPU_SET
        // writes one bit inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: pid 0 means the calling thread; `set` is a valid cpu_set_t and the size
        // passed is its size.
        let r = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pinning needs Linux",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn receives_a_batch() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            tx.send_to(&[i; 10][..usize::from(i) + 1], rx.local_addr().unwrap())
                .unwrap();
        }
        let mut b = RecvBatch::new(8, 64);
        let mut got = Vec::new();
        while got.len() < 5 {
            let n = b.recv(&rx).unwrap();
            for i in 0..n {
                got.push(b.packet(i).to_vec());
            }
        }
        for (i, p) in got.iter().enumerate() {
            assert_eq!(p.len(), i + 1);
            assert!(p.iter().all(|&x| usize::from(x) == i));
        }
        // Nothing queued: times out.
        assert!(b.recv(&rx).is_err());
        let mut one = RecvBatch::new(1, 64);
        tx.send_to(b"abc", rx.local_addr().unwrap()).unwrap();
        assert_eq!(one.recv(&rx).unwrap(), 1);
        assert_eq!(one.packet(0), b"abc");
    }

    fn recv_all(rx: &UdpSocket, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut buf = [0u8; 2048];
        (0..n)
            .map(|_| {
                let (len, from) = rx.recv_from(&mut buf).unwrap();
                (buf[..len].to_vec(), from)
            })
            .collect()
    }

    #[test]
    fn sends_a_batch_with_and_without_gso() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let tail = [9u8; 100];
        for gso in [false, true] {
            let mut b = SendBatch::new(8, 16);
            b.set_gso(gso);
            for i in 0..5u8 {
                let h = b.push(&[i; 4], &tail, None, None).unwrap();
                h[1] = 0xAA;
            }
            // A different size starts a new GSO message.
            b.push(&[7; 4], &tail[..10], None, None).unwrap();
            assert_eq!(b.len(), 6);
            assert_eq!(b.msgs.len(), if b.gso() { 2 } else { 6 });
            for h in b.heads_mut() {
                h[2] = 0xBB;
            }
            let o = b.send(&tx);
            assert_eq!((o.sent, o.errors), (6, 0), "gso {gso}");
            assert!(b.is_empty());
            let got = recv_all(&rx, 6);
            for (i, (d, _)) in got.iter().enumerate() {
                let i = u8::try_from(i).unwrap();
                let head = if i < 5 {
                    [i, 0xAA, 0xBB, i]
                } else {
                    [7, 7, 0xBB, 7]
                };
                assert_eq!(d.len(), if i < 5 { 104 } else { 14 });
                assert_eq!(&d[..4], &head);
                assert!(d[4..].iter().all(|&x| x == 9));
            }
        }
        // A full batch refuses more.
        let mut b = SendBatch::new(1, 16);
        assert!(b.push(b"x", &[], None, None).is_some());
        assert!(b.is_full() && b.push(b"y", &[], None, None).is_none());
    }

    #[test]
    fn sends_from_chosen_loopback_addresses() {
        use socket2::{Domain, Protocol, Socket, Type};
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        s.set_reuse_address(true).unwrap();
        s.bind(&SocketAddr::from(([0, 0, 0, 0], 0)).into()).unwrap();
        let shared: UdpSocket = s.into();
        let port = shared.local_addr().unwrap().port();
        let to = Some(rx.local_addr().unwrap());
        let mut b = SendBatch::new(8, 16);
        b.set_gso(true);
        let srcs = [
            Ipv4Addr::new(127, 0, 1, 1),
            Ipv4Addr::new(127, 0, 1, 1),
            Ipv4Addr::new(127, 0, 1, 2),
            Ipv4Addr::new(127, 0, 2, 9),
        ];
        for (i, src) in srcs.iter().enumerate() {
            b.push(&[u8::try_from(i).unwrap(); 8], &[], to, Some(*src))
                .unwrap();
        }
        assert_eq!(b.send(&shared).sent, 4);
        let got = recv_all(&rx, 4);
        for (i, (d, from)) in got.iter().enumerate() {
            assert_eq!(d[0], u8::try_from(i).unwrap());
            assert_eq!(*from, SocketAddr::from((srcs[i], port)));
        }

        // The same on a non-blocking socket, and the answers to those sources: they reach
        // the wildcard socket, each with the address it was sent to.
        crate::sys::enable_pktinfo(&shared).unwrap();
        shared.set_nonblocking(true).unwrap();
        for (i, src) in srcs.iter().enumerate().skip(1) {
            b.push(&[u8::try_from(i).unwrap() + 10], &[], to, Some(*src))
                .unwrap();
        }
        assert_eq!(b.send_until_blocked(&shared).unwrap(), 3);
        assert!(b.is_empty());
        for (d, from) in recv_all(&rx, 3) {
            rx.send_to(&d, from).unwrap();
        }
        let mut r = RecvBatch::new(8, 64).with_destinations();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while got.len() < 3 && std::time::Instant::now() < deadline {
            let n = r.recv_now(&shared).unwrap();
            for i in 0..n {
                got.push((r.packet(i).to_vec(), r.destination(i)));
            }
        }
        got.sort();
        let want: Vec<_> = (1..4)
            .map(|i| (vec![u8::try_from(i).unwrap() + 10], Some(srcs[i])))
            .collect();
        assert_eq!(got, want);
    }
}
