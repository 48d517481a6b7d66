//! Linux system calls the event-driven engine, the load engine and the flood need beyond
//! `std`: epoll and poll readiness, the open-files limit, a SIGINT/SIGTERM flag, the
//! process's CPU time, socket buffers and `IP_PKTINFO` (the batches that send from and
//! learn the destination of any local IPv4 address are [`crate::mmsg`]'s).
//!
//! Everything here is Linux-only; elsewhere the functions return `Unsupported` errors.
#![allow(unsafe_code)]

use std::io;
use std::net::UdpSocket;
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
    pub fn add(&self, socket: &impl AsRawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, socket.as_raw_fd(), token)
    }

    /// Stops watching `socket`.
    pub fn delete(&self, socket: &impl AsRawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, socket.as_raw_fd(), 0)
    }

    /// Makes a watched socket report `token` from now on.
    pub fn modify(&self, socket: &impl AsRawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, socket.as_raw_fd(), token)
    }

    /// `epoll_ctl` for readability with `token` (ignored by `EPOLL_CTL_DEL`).
    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both fds are open (`self.fd` owned, `fd` borrowed by the caller for the
        // call) and `ev` is a valid epoll_event that the kernel only reads.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &raw mut ev) })?;
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
pub(crate) fn setsockopt_int(
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

/// Asks the kernel to report each received datagram's destination address
/// (`IP_PKTINFO`), which a [`crate::mmsg::RecvBatch::with_destinations`] returns.
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

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
