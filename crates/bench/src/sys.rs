//! Linux system calls the event-driven engine and the flood need beyond `std`: epoll and
//! poll readiness, the open-files limit, a SIGINT/SIGTERM flag, the process's CPU time,
//! and `sendmmsg`/`recvmmsg` with an `IP_PKTINFO` control message per datagram (sending
//! from, and learning the destination of, any local IPv4 address on one socket).
//!
//! Everything here is Linux-only; elsewhere the functions return `Unsupported` errors.
#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[cfg_attr(target_os = "linux", allow(dead_code))]
fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "needs Linux")
}

/// Converts a `-1`-on-error return value into an `io::Result`.
#[cfg(target_os = "linux")]
fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An epoll instance whose events carry a caller-chosen `u64` token.
#[cfg(target_os = "linux")]
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
    ready: usize,
}

#[cfg(target_os = "linux")]
impl Epoll {
    /// A new epoll instance reporting up to `max_events` events per wait.
    pub fn new(max_events: usize) -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new fd
        // that nothing else owns, so OwnedFd may take it.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; max_events.max(1)],
            ready: 0,
        })
    }

    /// Watches `socket` for readability (level-triggered), reporting `token`. A socket
    /// leaves the set by itself when it is closed.
    pub fn add(&self, socket: &UdpSocket, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both fds are open (borrowed for the call) and `ev` is a valid
        // epoll_event that the kernel only reads.
        check(unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                socket.as_raw_fd(),
                &raw mut ev,
            )
        })?;
        Ok(())
    }

    /// Stops watching `socket`.
    pub fn delete(&self, socket: &UdpSocket) -> io::Result<()> {
        // SAFETY: both fds are open (borrowed for the call); EPOLL_CTL_DEL ignores the
        // event pointer, null is allowed since Linux 2.6.9.
        check(unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                socket.as_raw_fd(),
                std::ptr::null_mut(),
            )
        })?;
        Ok(())
    }

    /// Makes a watched socket report `token` from now on.
    pub fn modify(&self, socket: &UdpSocket, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both fds are open (borrowed for the call) and `ev` is a valid
        // epoll_event that the kernel only reads.
        check(unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_MOD,
                socket.as_raw_fd(),
                &raw mut ev,
            )
        })?;
        Ok(())
    }

    /// Waits up to `timeout` (None: forever) for events; returns how many are ready.
    /// An interrupted wait (a signal) returns 0.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let ms = timeout_ms(timeout);
        let max = libc::c_int::try_from(self.events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `events` holds `max` writable epoll_event entries; the kernel writes at
        // most that many and returns how many it wrote.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), max, ms) };
        self.ready = match check(n) {
            Ok(n) => usize::try_from(n).unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        Ok(self.ready)
    }

    /// The tokens of the events of the last [`Epoll::wait`].
    pub fn tokens(&self) -> impl Iterator<Item = u64> + '_ {
        self.events[..self.ready].iter().map(|e| e.u64)
    }
}

/// Milliseconds for epoll_wait/poll, rounded up so that a wait never ends early.
#[cfg(target_os = "linux")]
fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    timeout.map_or(-1, |t| {
        let ms = t.as_micros().div_ceil(1000);
        libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
    })
}

/// Waits until one of `sockets` is readable or `timeout` passes; sets `readable[i]` for
/// each readable (or failed) socket and returns how many there are. Uses poll(2).
#[cfg(target_os = "linux")]
pub fn poll_readable(
    sockets: &[&UdpSocket],
    fds: &mut Vec<libc::pollfd>,
    readable: &mut Vec<bool>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    fds.clear();
    fds.extend(sockets.iter().map(|s| libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }));
    let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `fds` holds `nfds` initialised pollfd entries of open sockets (borrowed
    // for the call); the kernel writes only their `revents`.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout_ms(timeout)) };
    readable.clear();
    readable.extend(fds.iter().map(|p| p.revents != 0));
    match check(n) {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// Raises the soft limit on open files to the hard limit, and beyond it to `want` when
/// the hard limit is lower and the process may raise it (root); returns the new soft
/// limit.
pub fn raise_nofile_limit(want: u64) -> io::Result<u64> {
    #[cfg(target_os = "linux")]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a valid rlimit the kernel writes.
        check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) })?;
        if lim.rlim_max < want {
            let both = libc::rlimit {
                rlim_cur: want,
                rlim_max: want,
            };
            // SAFETY: `both` is a valid rlimit the kernel reads.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const both) } == 0 {
                return Ok(want);
            }
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            // SAFETY: `lim` is a valid rlimit the kernel reads.
            check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) })?;
        }
        Ok(lim.rlim_cur)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = want;
        Err(unsupported())
    }
}

static TERMINATE: AtomicBool = AtomicBool::new(false);

#[cfg(target_os = "linux")]
extern "C" fn on_terminate(_signal: libc::c_int) {
    // An atomic store is async-signal-safe.
    TERMINATE.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM set a flag (see [`terminate_requested`]) instead of killing
/// the process. Blocking calls they interrupt return `EINTR` (no `SA_RESTART`).
pub fn catch_termination() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: sigaction is a plain C struct; all-zero is an empty mask, no flags.
            let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
            sa.sa_sigaction = on_terminate as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // SAFETY: `sa` is a valid sigaction whose handler only does an atomic store
            // (async-signal-safe); the old action is not asked for (null).
            check(unsafe { libc::sigaction(sig, &raw const sa, std::ptr::null_mut()) })?;
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    Err(unsupported())
}

/// Whether SIGINT or SIGTERM arrived since [`catch_termination`].
pub fn terminate_requested() -> bool {
    TERMINATE.load(Ordering::Relaxed)
}

/// User plus system CPU time used so far by the calling thread (`thread`) or by the
/// whole process.
pub fn cpu_time(thread: bool) -> Duration {
    #[cfg(target_os = "linux")]
    {
        let who = if thread {
            libc::RUSAGE_THREAD
        } else {
            libc::RUSAGE_SELF
        };
        // SAFETY: rusage is a plain C struct; all-zero is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid rusage the kernel writes.
        if unsafe { libc::getrusage(who, &raw mut ru) } != 0 {
            return Duration::ZERO;
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
                + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
        };
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = thread;
        Duration::ZERO
    }
}

/// Sets an integer socket option.
#[cfg(target_os = "linux")]
fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `v` is a live c_int and the length passed is its size.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Sets the socket's send and receive buffers to `bytes`, beyond the sysctl maximum when
/// allowed (`SO_*BUFFORCE`, root), else as far as the maximum allows.
pub fn set_buffers(socket: &UdpSocket, bytes: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        let fd = socket.as_raw_fd();
        for (force, plain) in [
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        ] {
            if setsockopt_int(fd, libc::SOL_SOCKET, force, v).is_err() {
                setsockopt_int(fd, libc::SOL_SOCKET, plain, v)?;
            }
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (socket, bytes);
        Err(unsupported())
    }
}

/// Space for one `IP_PKTINFO` control message, in u64 words (8-byte aligned, as cmsghdr
/// needs on every Linux ABI).
#[cfg(target_os = "linux")]
const PKTINFO_WORDS: usize = 8;

#[cfg(target_os = "linux")]
fn pktinfo_space() -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as usize }
}

fn sockaddr_v4(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A batch of IPv4 datagrams, each sent from its own local source address with
/// `sendmmsg(2)` and an `IP_PKTINFO` control message (`ipi_spec_dst`), on one socket
/// bound to `0.0.0.0:port`. Linux accepts any local address as the source, so on
/// loopback every address of 127.0.0.0/8 can be a distinct client, with no raw socket.
pub struct PktinfoSender {
    buf: Vec<u8>,
    slot: usize,
    lens: Vec<usize>,
    names: Vec<libc::sockaddr_in>,
    srcs: Vec<Ipv4Addr>,
    /// Control buffers, `PKTINFO_WORDS` words per datagram.
    #[cfg(target_os = "linux")]
    cmsg: Vec<u64>,
    #[cfg(target_os = "linux")]
    iov: Vec<libc::iovec>,
    #[cfg(target_os = "linux")]
    hdr: Vec<libc::mmsghdr>,
}

impl PktinfoSender {
    /// Room for `batch` (at least 1) datagrams of up to `slot` bytes.
    pub fn new(batch: usize, slot: usize) -> Self {
        let batch = batch.max(1);
        let zero = sockaddr_v4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        Self {
            buf: vec![0; batch * slot],
            slot,
            lens: vec![0; batch],
            names: vec![zero; batch],
            srcs: vec![Ipv4Addr::UNSPECIFIED; batch],
            #[cfg(target_os = "linux")]
            cmsg: vec![0; batch * PKTINFO_WORDS],
            #[cfg(target_os = "linux")]
            iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                batch
            ],
            // SAFETY: mmsghdr is a plain C struct; all-zero bytes are a valid value.
            #[cfg(target_os = "linux")]
            hdr: vec![unsafe { std::mem::zeroed() }; batch],
        }
    }

    /// How many datagrams a batch holds.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// The buffer of datagram `i` (`slot` bytes) to write into.
    pub fn buffer(&mut self, i: usize) -> &mut [u8] {
        &mut self.buf[i * self.slot..(i + 1) * self.slot]
    }

    /// Sets datagram `i`: `len` bytes of its buffer, from `src` to `dst`.
    pub fn set(&mut self, i: usize, len: usize, src: Ipv4Addr, dst: SocketAddrV4) {
        self.lens[i] = len.min(self.slot);
        self.names[i] = sockaddr_v4(dst);
        self.srcs[i] = src;
    }

    /// Sends datagrams `0..n` with as few `sendmmsg` calls as the kernel allows; returns
    /// how many were sent (fewer than `n` when the socket's buffer is full: the socket
    /// should be non-blocking).
    pub fn send(&mut self, socket: &UdpSocket, n: usize) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        {
            let n = n.min(self.capacity());
            let space = pktinfo_space();
            if space > PKTINFO_WORDS * 8 {
                return Err(io::Error::other("in_pktinfo control message too large"));
            }
            for i in 0..n {
                let base = self.buf[i * self.slot..].as_mut_ptr();
                self.iov[i] = libc::iovec {
                    iov_base: base.cast(),
                    iov_len: self.lens[i],
                };
                let cmsg_buf = self.cmsg[i * PKTINFO_WORDS..].as_mut_ptr();
                let h = &mut self.hdr[i].msg_hdr;
                h.msg_name = (&raw mut self.names[i]).cast();
                h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
                h.msg_iov = &raw mut self.iov[i];
                h.msg_iovlen = 1;
                h.msg_control = cmsg_buf.cast();
                h.msg_controllen = space as _;
                h.msg_flags = 0;
                // SAFETY: `h` describes a control buffer of `space` bytes (8-byte
                // aligned, inside `cmsg`), so CMSG_FIRSTHDR returns a pointer to its
                // start, which has room for a cmsghdr followed by an in_pktinfo
                // (CMSG_SPACE of it, checked above). Writes stay inside that buffer.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = libc::IPPROTO_IP;
                    (*c).cmsg_type = libc::IP_PKTINFO;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
                    let info = libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr {
                            s_addr: u32::from(self.srcs[i]).to_be(),
                        },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in_pktinfo>(), info);
                }
            }
            let mut sent = 0;
            while sent < n {
                let vlen = u32::try_from(n - sent).unwrap_or(u32::MAX);
                // SAFETY: entries `sent..n` of `hdr` were initialised above and point
                // at live buffers of this batch (names, iovecs over `buf`, control
                // buffers) that stay put for the call; the kernel only reads them,
                // apart from writing each entry's `msg_len`.
                let r = unsafe {
                    libc::sendmmsg(socket.as_raw_fd(), self.hdr[sent..].as_mut_ptr(), vlen, 0)
                };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    if sent > 0 || e.kind() == io::ErrorKind::WouldBlock {
                        break;
                    }
                    return Err(e);
                }
                if r == 0 {
                    break;
                }
                sent += usize::try_from(r).unwrap_or(0);
            }
            Ok(sent)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (socket, n);
            Err(unsupported())
        }
    }
}

/// Asks the kernel to report each received datagram's destination address
/// (`IP_PKTINFO`), which [`PktinfoReceiver`] returns.
pub fn enable_pktinfo(socket: &UdpSocket) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        setsockopt_int(socket.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        Err(unsupported())
    }
}

/// Batched non-blocking receive with `recvmmsg(2)` that also reports each datagram's
/// destination IPv4 address (from `IP_PKTINFO`, see [`enable_pktinfo`]).
pub struct PktinfoReceiver {
    buf: Vec<u8>,
    slot: usize,
    lens: Vec<usize>,
    dsts: Vec<Option<Ipv4Addr>>,
    #[cfg(target_os = "linux")]
    names: Vec<libc::sockaddr_in>,
    #[cfg(target_os = "linux")]
    cmsg: Vec<u64>,
    #[cfg(target_os = "linux")]
    iov: Vec<libc::iovec>,
    #[cfg(target_os = "linux")]
    hdr: Vec<libc::mmsghdr>,
}

impl PktinfoReceiver {
    /// Room for `batch` (at least 1) datagrams of up to `slot` bytes.
    pub fn new(batch: usize, slot: usize) -> Self {
        let batch = batch.max(1);
        Self {
            buf: vec![0; batch * slot],
            slot,
            lens: vec![0; batch],
            dsts: vec![None; batch],
            #[cfg(target_os = "linux")]
            names: vec![sockaddr_v4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)); batch],
            #[cfg(target_os = "linux")]
            cmsg: vec![0; batch * PKTINFO_WORDS],
            #[cfg(target_os = "linux")]
            iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                batch
            ],
            // SAFETY: mmsghdr is a plain C struct; all-zero bytes are a valid value.
            #[cfg(target_os = "linux")]
            hdr: vec![unsafe { std::mem::zeroed() }; batch],
        }
    }

    /// Receives the datagrams already queued, up to the batch size, without blocking;
    /// returns how many (an empty queue is `Ok(0)`).
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        {
            let space = PKTINFO_WORDS * 8;
            let batch = self.lens.len();
            for i in 0..batch {
                let base = self.buf[i * self.slot..].as_mut_ptr();
                self.iov[i] = libc::iovec {
                    iov_base: base.cast(),
                    iov_len: self.slot,
                };
                let cmsg_buf = self.cmsg[i * PKTINFO_WORDS..].as_mut_ptr();
                let h = &mut self.hdr[i].msg_hdr;
                h.msg_name = (&raw mut self.names[i]).cast();
                h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
                h.msg_iov = &raw mut self.iov[i];
                h.msg_iovlen = 1;
                h.msg_control = cmsg_buf.cast();
                h.msg_controllen = space as _;
                h.msg_flags = 0;
            }
            let vlen = u32::try_from(batch).unwrap_or(u32::MAX);
            // SAFETY: `hdr` holds `vlen` initialised entries whose name, iovec and
            // control pointers point into this receiver's live buffers with the lengths
            // given; the kernel writes at most those lengths and updates the lengths.
            let r = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    self.hdr.as_mut_ptr(),
                    vlen,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::WouldBlock {
                    Ok(0)
                } else {
                    Err(e)
                };
            }
            let n = usize::try_from(r).unwrap_or(0).min(batch);
            for i in 0..n {
                self.lens[i] = (self.hdr[i].msg_len as usize).min(self.slot);
                self.dsts[i] = None;
                let h = &self.hdr[i].msg_hdr;
                // SAFETY: the kernel set `msg_controllen` to the bytes of control data
                // it wrote into this entry's buffer; CMSG_FIRSTHDR/CMSG_NXTHDR walk only
                // headers inside that length and return null past it, and an
                // IP_PKTINFO header carries an in_pktinfo (read unaligned).
                unsafe {
                    let mut c = libc::CMSG_FIRSTHDR(h);
                    while !c.is_null() {
                        if (*c).cmsg_level == libc::IPPROTO_IP
                            && (*c).cmsg_type == libc::IP_PKTINFO
                            && (*c).cmsg_len as usize
                                >= libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as usize
                        {
                            let info: libc::in_pktinfo =
                                std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                            self.dsts[i] = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
                        }
                        c = libc::CMSG_NXTHDR(h, c);
                    }
                }
            }
            Ok(n)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = socket;
            Err(unsupported())
        }
    }

    /// Datagram `i` of the last [`PktinfoReceiver::recv`].
    pub fn packet(&self, i: usize) -> &[u8] {
        let start = i * self.slot;
        &self.buf[start..start + self.lens[i]]
    }

    /// The destination address datagram `i` was sent to, if the kernel said.
    pub fn destination(&self, i: usize) -> Option<Ipv4Addr> {
        self.dsts[i]
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn sends_from_other_loopback_addresses() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("0.0.0.0:0").unwrap();
        enable_pktinfo(&tx).unwrap();
        let port = tx.local_addr().unwrap().port();
        let dst = match rx.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => unreachable!(),
        };
        let mut s = PktinfoSender::new(4, 64);
        for i in 0..3u8 {
            s.buffer(usize::from(i))[0] = i;
            s.set(usize::from(i), 1, Ipv4Addr::new(127, 9, 0, i + 1), dst);
        }
        assert_eq!(s.send(&tx, 3).unwrap(), 3);
        let mut buf = [0u8; 16];
        for i in 0..3u8 {
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (1, i));
            assert_eq!(from, std::net::SocketAddr::from(([127, 9, 0, i + 1], port)));
            // Answer to the spoofed address: the sender's socket gets it.
            rx.send_to(&[i + 10], from).unwrap();
        }
        tx.set_nonblocking(true).unwrap();
        let mut r = PktinfoReceiver::new(8, 64);
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while got.len() < 3 && std::time::Instant::now() < deadline {
            let n = r.recv(&tx).unwrap();
            for i in 0..n {
                got.push((r.packet(i).to_vec(), r.destination(i)));
            }
        }
        got.sort();
        for (i, (p, d)) in got.iter().enumerate() {
            let i = u8::try_from(i).unwrap();
            assert_eq!(p, &[i + 10]);
            assert_eq!(*d, Some(Ipv4Addr::new(127, 9, 0, i + 1)));
        }
    }

    #[test]
    fn epoll_reports_tokens() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut ep = Epoll::new(8).unwrap();
        ep.add(&a, 7).unwrap();
        ep.add(&b, 9).unwrap();
        assert_eq!(ep.wait(Some(Duration::from_millis(10))).unwrap(), 0);
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        assert_eq!(ep.wait(Some(Duration::from_secs(2))).unwrap(), 1);
        assert_eq!(ep.tokens().collect::<Vec<_>>(), vec![9]);
        assert!(raise_nofile_limit(64).unwrap() >= 64);
        assert!(cpu_time(false) >= cpu_time(true));
    }
}
