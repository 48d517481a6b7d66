//! A level-triggered epoll set whose events carry a caller-chosen `u64` token, through
//! `rustix`'s safe epoll wrappers.
//!
//! The server keeps every UDP relay socket of a worker in one [`Poller`], itself registered
//! with the worker's tokio reactor as one readable descriptor ([`Poller::register`], feature
//! `tokio`). Why not a tokio registration and a task per relay socket: each of those costs
//! memory per allocation (the registration, the task and its future) and, per wakeup, a
//! task poll plus a `recv` that ends in `EAGAIN` to re-arm the edge-triggered registration.
//! Here one `epoll_wait` names every relay socket with data, each is read once with
//! `recvmmsg` (level-triggered: what is left is reported again on the next round, no
//! `EAGAIN` read needed), and what they produce leaves in one `sendmmsg`. The bench's
//! event-driven engine waits on one ([`Poller::wait`]) for thousands of client sockets.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::event::Timespec;
use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};

/// Readiness events taken per [`Poller::ready`].
pub const MAX_EVENTS: usize = 64;

/// One ready socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The token the socket was added with.
    pub token: u64,
    /// Whether the socket has an error pending (an ICMP error queued, with `IP_RECVERR`).
    pub error: bool,
    /// Whether the socket has data.
    pub readable: bool,
}

impl From<&Event> for Ready {
    #[inline]
    fn from(e: &Event) -> Self {
        let flags = e.flags;
        Self {
            token: e.data.u64(),
            error: flags.contains(EventFlags::ERR),
            readable: flags.contains(EventFlags::IN),
        }
    }
}

/// A level-triggered epoll instance.
pub struct Poller {
    epoll: OwnedFd,
    /// Events of the last [`Poller::wait`] (its capacity is the most one wait takes).
    events: Vec<Event>,
}

impl Poller {
    /// A new, empty poller whose [`Poller::wait`] reports up to [`MAX_EVENTS`] events.
    pub fn new() -> io::Result<Self> {
        Self::with_capacity(MAX_EVENTS)
    }

    /// A new, empty poller whose [`Poller::wait`] reports up to `max_events` (at least 1).
    pub fn with_capacity(max_events: usize) -> io::Result<Self> {
        let epoll = epoll::create(CreateFlags::CLOEXEC)?;
        Ok(Self {
            epoll,
            events: Vec::with_capacity(max_events.max(1)),
        })
    }

    /// Watches `socket` for input (level-triggered); its events carry `token`. A socket
    /// leaves the set by itself when it is closed.
    pub fn add(&self, socket: impl AsFd, token: u64) -> io::Result<()> {
        epoll::add(
            &self.epoll,
            socket,
            EventData::new_u64(token),
            EventFlags::IN,
        )?;
        Ok(())
    }

    /// Makes a watched socket report `token` from now on.
    pub fn modify(&self, socket: impl AsFd, token: u64) -> io::Result<()> {
        epoll::modify(
            &self.epoll,
            socket,
            EventData::new_u64(token),
            EventFlags::IN,
        )?;
        Ok(())
    }

    /// Stops watching `socket`.
    pub fn delete(&self, socket: impl AsFd) -> io::Result<()> {
        epoll::delete(&self.epoll, socket)?;
        Ok(())
    }

    /// The sockets ready now (up to [`MAX_EVENTS`]), without blocking; empty when none is.
    /// Takes `&self`, so it works through a shared tokio registration.
    #[inline]
    pub fn ready(&self, out: &mut Vec<Ready>) -> io::Result<()> {
        out.clear();
        let mut events = [const { MaybeUninit::<Event>::uninit() }; MAX_EVENTS];
        match epoll::wait(&self.epoll, &mut events, Some(&Timespec::default())) {
            Ok((ready, _)) => out.extend(ready.iter().map(Ready::from)),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Waits up to `timeout` (None: forever; rounded up to whole milliseconds) for events;
    /// returns how many are ready (see [`Poller::tokens`]). An interrupted wait (a signal)
    /// returns 0.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let timeout = timeout.map(crate::sys::timespec);
        self.events.clear();
        let spare = rustix::buffer::spare_capacity(&mut self.events);
        match epoll::wait(&self.epoll, spare, timeout.as_ref()) {
            Ok(n) => Ok(n),
            Err(rustix::io::Errno::INTR) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// The tokens of the events of the last [`Poller::wait`].
    pub fn tokens(&self) -> impl Iterator<Item = u64> + '_ {
        self.events.iter().map(|e| e.data.u64())
    }

    /// The events of the last [`Poller::wait`].
    pub fn events(&self) -> impl Iterator<Item = Ready> + '_ {
        self.events.iter().map(Ready::from)
    }

    /// Registers the poller with the current tokio reactor (readable interest).
    #[cfg(feature = "tokio")]
    pub fn register(self) -> io::Result<tokio::io::unix::AsyncFd<Self>> {
        // SAFETY: the poller owns its epoll descriptor and neither closes nor replaces it
        // while the AsyncFd owns the poller (no method hands it out or swaps it); it is
        // closed only when the AsyncFd (and so the registration) is dropped, and
        // `as_raw_fd` always answers that same descriptor.
        unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(self, tokio::io::Interest::READABLE)
                .map_err(|e| e.into_parts().1)
        }
    }
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("epoll", &self.epoll)
            .field("capacity", &self.events.capacity())
            .finish()
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
    use std::net::UdpSocket;

    #[test]
    fn reports_ready_sockets_until_drained() {
        let poller = Poller::new().unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        poller.add(&a, 7).unwrap();
        poller.add(&b, 9).unwrap();
        let mut ready = Vec::new();
        poller.ready(&mut ready).unwrap();
        assert!(ready.is_empty());

        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
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

    #[test]
    fn waits_for_tokens() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut ep = Poller::with_capacity(8).unwrap();
        ep.add(&a, 7).unwrap();
        ep.add(&b, 9).unwrap();
        assert_eq!(ep.wait(Some(Duration::from_millis(10))).unwrap(), 0);
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        assert_eq!(ep.wait(Some(Duration::from_secs(2))).unwrap(), 1);
        assert_eq!(ep.tokens().collect::<Vec<_>>(), vec![9]);
        ep.modify(&b, 11).unwrap();
        assert_eq!(ep.wait(Some(Duration::ZERO)).unwrap(), 1);
        assert_eq!(ep.events().next().map(|r| r.token), Some(11));
        ep.delete(&b).unwrap();
        assert_eq!(ep.wait(Some(Duration::from_millis(1))).unwrap(), 0);
    }
}
