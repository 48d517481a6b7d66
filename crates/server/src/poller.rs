//! The relay sockets' readiness set: one level-triggered epoll instance per worker that
//! holds every UDP relay socket of the worker, itself registered with the worker's tokio
//! reactor as one readable descriptor.
//!
//! Why not a tokio registration and a task per relay socket: each of those costs memory
//! per allocation (the registration, the task and its future) and, per wakeup, a task poll
//! plus a `recv` that ends in `EAGAIN` to re-arm the edge-triggered registration. Here one
//! `epoll_wait` names every relay socket with data, each is read once with `recvmmsg`
//! (level-triggered: what is left is reported again on the next round, no `EAGAIN` read
//! needed), and what they produce for the clients leaves in one `sendmmsg`
//! (performance.md §2). An allocation's relay socket costs a descriptor and a map entry.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Readiness events taken per `epoll_wait`.
pub(crate) const MAX_EVENTS: usize = 64;

/// One ready relay socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ready {
    /// The token the socket was added with.
    pub(crate) token: u64,
    /// Whether the socket has an error pending (an ICMP error queued, with `IP_RECVERR`).
    pub(crate) error: bool,
    /// Whether the socket has data.
    pub(crate) readable: bool,
}

/// A level-triggered epoll instance.
#[derive(Debug)]
pub(crate) struct Poller {
    epoll: OwnedFd,
}

impl Poller {
    /// A new, empty poller.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes only flags and returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { epoll })
    }

    /// Registers the poller with the current tokio reactor (readable interest).
    pub(crate) fn register(self) -> io::Result<tokio::io::unix::AsyncFd<Self>> {
        // SAFETY: the poller owns its epoll descriptor and neither closes nor replaces it
        // while the AsyncFd owns the poller; it is closed only when the AsyncFd (and so
        // the registration) is dropped.
        unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(self, tokio::io::Interest::READABLE)
                .map_err(|e| e.into_parts().1)
        }
    }

    /// Watches `fd` for input (level-triggered); its events carry `token`.
    pub(crate) fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `event` is a live epoll_event the kernel only reads; both descriptors
        // are open (the caller owns `fd`).
        let rc = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd,
                &raw mut event,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The sockets ready now, without blocking; empty when none is.
    pub(crate) fn ready(&self, out: &mut Vec<Ready>) -> io::Result<()> {
        out.clear();
        // SAFETY: epoll_event is plain old data; all-zero is a valid value.
        let mut events: [libc::epoll_event; MAX_EVENTS] = unsafe { std::mem::zeroed() };
        // SAFETY: `events` is a live array of MAX_EVENTS entries the kernel writes at most
        // MAX_EVENTS of; timeout 0 never blocks.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        for e in &events[..n as usize] {
            let flags = e.events;
            out.push(Ready {
                token: e.u64,
                error: flags & (libc::EPOLLERR as u32) != 0,
                readable: flags & (libc::EPOLLIN as u32) != 0,
            });
        }
        Ok(())
    }
}

impl AsRawFd for Poller {
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_ready_sockets_until_drained() {
        let poller = Poller::new().unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        poller.add(a.as_raw_fd(), 7).unwrap();
        poller.add(b.as_raw_fd(), 9).unwrap();
        let mut ready = Vec::new();
        poller.ready(&mut ready).unwrap();
        assert!(ready.is_empty());

        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"x", a.local_addr().unwrap()).unwrap();
        tx.send_to(b"y", a.local_addr().unwrap()).unwrap();
        poller.ready(&mut ready).unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].token, 7);
        assert!(ready[0].readable && !ready[0].error);

        // Level-triggered: still reported while one datagram is left.
        let mut buf = [0u8; 8];
        a.recv(&mut buf).unwrap();
        poller.ready(&mut ready).unwrap();
        assert_eq!(ready.len(), 1);
        a.recv(&mut buf).unwrap();
        poller.ready(&mut ready).unwrap();
        assert!(ready.is_empty());

        // Closing a socket takes it out of the set.
        let b_addr = b.local_addr().unwrap();
        tx.send_to(b"z", b_addr).unwrap();
        drop(b);
        poller.ready(&mut ready).unwrap();
        assert!(ready.is_empty());
    }
}
